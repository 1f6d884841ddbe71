"""Land-cover targets from the store's label maps: the dominant class of each tile, and per-pixel class
indices, over the classes that occur in the evaluated splits."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from msc_france.eval.segmentation import IGNORE
from msc_france.landcover import WORLDCOVER, WORLDCOVER_NODATA


@dataclass(frozen=True)
class ClassSpace:
    """The label codes in use, in order; index ``i`` of a probe is ``codes[i]``."""

    codes: tuple[int, ...]

    @classmethod
    def of(cls, *maps: torch.Tensor) -> ClassSpace:
        codes = torch.unique(torch.cat([m.flatten() for m in maps]))
        return cls(tuple(int(c) for c in codes if int(c) != WORLDCOVER_NODATA))

    def __len__(self) -> int:
        return len(self.codes)

    @property
    def names(self) -> list[str]:
        known = {c.code: c.name for c in WORLDCOVER}
        return [known.get(code, str(code)) for code in self.codes]

    @property
    def colors(self) -> list[str]:
        known = {c.code: c.color for c in WORLDCOVER}
        return [known.get(code, "#808080") for code in self.codes]

    def pixel_classes(self, maps: torch.Tensor) -> torch.Tensor:
        """(N, H, W) class indices; nodata and unknown codes become ``IGNORE``."""
        lookup = torch.full((256,), IGNORE, dtype=torch.long)  # label maps are uint8
        lookup[list(self.codes)] = torch.arange(len(self.codes))
        return lookup[maps.long()]

    def dominant(self, maps: torch.Tensor) -> torch.Tensor:
        """(N,) index of the most frequent class of each map (nodata left out)."""
        pixels = self.pixel_classes(maps).flatten(1)
        counts = torch.stack([(pixels == c).sum(dim=1) for c in range(len(self))], dim=1)
        return counts.argmax(dim=1)
