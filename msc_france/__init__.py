"""msc-france: multi-sensor remote-sensing datasets over France and X-STARS pretraining."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from msc_france.grid import TileGrid, TileId
from msc_france.sensors import SENSORS, Sensor

if TYPE_CHECKING:
    from msc_france.pairs import Pairs

__all__ = ["SENSORS", "Sensor", "TileGrid", "TileId", "open_pairs"]


def open_pairs(store: str, storage_options: dict[str, Any] | None = None) -> Pairs:
    """Open a tile store for notebooks (see :mod:`msc_france.pairs`); imported on first use."""
    from msc_france.pairs import open_pairs as _open

    return _open(store, storage_options)
__version__ = "0.1.0"
