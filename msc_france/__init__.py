"""msc-france: multi-sensor remote-sensing datasets over France and X-STARS pretraining."""

from msc_france.grid import TileGrid, TileId
from msc_france.sensors import SENSORS, Sensor

__all__ = ["SENSORS", "Sensor", "TileGrid", "TileId"]
__version__ = "0.1.0"
