"""The model card of an exported backbone (``runs/NAME/export/model_card.json``): what pretraining
hands to eval and to users: architecture, input size, and per sensor its file, bands and the
normalisation it was trained with."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from msc_france.errors import UserError
from msc_france.store.atomic import atomic_write
from msc_france.store.records import Normalisation

CARD = "model_card.json"
NORMALISATION = "reflectance = DN * dn_scale + dn_offset; input = (reflectance - mean) / std; nodata -> 0"


@dataclass(frozen=True)
class SensorCard:
    """One sensor's weights file and input normalisation."""

    file: str
    bands: tuple[str, ...]
    dn_scale: float
    dn_offset: float
    nodata: int
    mean: tuple[float, ...]
    std: tuple[float, ...]

    @property
    def in_chans(self) -> int:
        return len(self.bands)

    @classmethod
    def of(cls, file: str, norm: Normalisation) -> SensorCard:
        return cls(file, norm.bands, norm.scale, norm.offset, norm.nodata, norm.mean, norm.std)


@dataclass(frozen=True)
class ModelCard:
    """An exported backbone: one timm model per sensor sharing ``arch``, ``img_size`` and ``mode``."""

    arch: str
    mode: str
    img_size: int
    patch_size: int
    embed_dim: int
    step: int
    recipe: str
    preset: str
    msad_weight: float
    msad_mode: str
    sensors: dict[str, SensorCard]
    model: str = "X-STARS (DINO + MSAD) backbone, msc-france"

    @property
    def method(self) -> str:
        """The method the backbone was trained with, as reports name it."""
        return "DINO + MSAD" if self.msad_weight > 0 else "DINO alone"

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["normalisation"] = NORMALISATION
        out["sensors"] = {s: {**asdict(c), "in_chans": c.in_chans} for s, c in self.sensors.items()}
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ModelCard:
        sensors = {str(s): SensorCard(str(c["file"]), tuple(c["bands"]), float(c["dn_scale"]), float(c["dn_offset"]),
                                      int(c["nodata"]), tuple(map(float, c["mean"])), tuple(map(float, c["std"])))
                   for s, c in data["sensors"].items()}
        return cls(str(data["arch"]), str(data["mode"]), int(data["img_size"]), int(data["patch_size"]),
                   int(data["embed_dim"]), int(data["step"]), str(data["recipe"]), str(data["preset"]),
                   float(data["msad_weight"]), str(data["msad_mode"]), sensors, str(data["model"]))


def write_card(folder: Path, card: ModelCard) -> Path:
    path = folder / CARD
    atomic_write(path, json.dumps(card.to_json(), indent=2))
    return path


def read_card(folder: Path) -> ModelCard:
    """The card of the backbone exported in ``folder``; a missing or damaged one is a one-line error."""
    path = Path(folder) / CARD
    try:
        return ModelCard.from_json(json.loads(path.read_text()))
    except FileNotFoundError:
        raise UserError(f"no exported backbone in {folder} (no {CARD}); run `make pretrain` first") from None
    except (ValueError, KeyError, TypeError, AttributeError):
        raise UserError(f"{path} is damaged; export the backbone again (`make pretrain resume=1`)") from None
