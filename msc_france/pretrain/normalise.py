"""Normalisation where the model runs: batches of DN as stored (``TileDataset(as_stored=True)``) to the
normalised reflectance the model takes, on the batch's device (the GPU's work, not the loader's)."""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

from msc_france.store import Normalisation


class NormaliseOnDevice(nn.Module):
    """``{sensor: (B, C, H, W) DN}`` to float32 ``(DN * scale + offset - mean) / std``, nodata to 0: the
    float32 operations of :meth:`Normalisation.normalise` in the same order, so the same values."""

    def __init__(self, stats: Mapping[str, Normalisation]) -> None:
        super().__init__()
        self.constants = {s: (n.scale, n.offset, float(n.nodata)) for s, n in stats.items()}
        for sensor, norm in stats.items():
            self.register_buffer(f"mean_{sensor}", torch.tensor(norm.mean, dtype=torch.float32)[:, None, None],
                                 persistent=False)
            self.register_buffer(f"std_{sensor}", torch.tensor(norm.std, dtype=torch.float32)[:, None, None],
                                 persistent=False)

    def forward(self, batch: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        out = {}
        for sensor, dn in batch.items():
            scale, offset, nodata = self.constants[sensor]
            values = dn.to(torch.float32, copy=True)  # the conversion numpy's astype makes
            missing = values == nodata
            values.mul_(scale).add_(offset).sub_(self.get_buffer(f"mean_{sensor}"))
            values.div_(self.get_buffer(f"std_{sensor}"))
            out[sensor] = values.masked_fill_(missing, 0.0)
        return out
