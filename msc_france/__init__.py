"""msc-france: multi-sensor remote-sensing datasets over France and X-STARS pretraining."""

from msc_france.grid import TileGrid, TileId
from msc_france.sensors import SENSORS, Sensor

__all__ = ["SENSORS", "Sensor", "TileGrid", "TileId", "open_pairs"]


def open_pairs(store: str, storage_options: dict | None = None):  # noqa: ANN201 - msc_france.pairs.Pairs
    """Open a tile store for notebooks (see :mod:`msc_france.pairs`); imported on first use."""
    from msc_france.pairs import open_pairs as _open

    return _open(store, storage_options)
__version__ = "0.1.0"
