"""Cloud over each tile from an item's own quality mask (SCL, ``qa_pixel``), not the scene's figure: a
scene 5 % cloudy can be 100 % cloudy over one tile. The share is of the mask's data pixels inside the
tile's box (taken in the file's CRS) that the sensor's mask flags invalid: cloud, shadow, cirrus, snow.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import rasterio
from pyproj import Transformer
from rasterio.windows import from_bounds

from msc_france.grid import CRS, TileGrid, TileId
from msc_france.sensors import SENSORS


def tile_cloud(path: Path, sensor: str, grid: TileGrid, tiles: Sequence[TileId]) -> dict[str, float]:
    """Percent of invalid data pixels over each of ``tiles`` in the mask file ``path`` of ``sensor``;
    tiles where the file has no data pixel are left out."""
    mask = SENSORS[sensor].mask
    assert mask is not None, f"{sensor} has no quality mask"
    with rasterio.open(path) as dataset:
        codes = dataset.read(1)
        to_file = Transformer.from_crs(CRS, dataset.crs, always_xy=True)
        transform = dataset.transform
    bounds = np.array([tuple(grid.tile_bounds(t)) for t in tiles], dtype=np.float64).reshape(-1, 4)
    xs = bounds[:, [0, 2, 2, 0]]
    ys = bounds[:, [1, 1, 3, 3]]
    fx, fy = to_file.transform(xs, ys)
    height, width = codes.shape
    out: dict[str, float] = {}
    for tile, x, y in zip(tiles, fx, fy, strict=True):
        window = from_bounds(x.min(), y.min(), x.max(), y.max(), transform)
        row0, col0 = max(0, round(window.row_off)), max(0, round(window.col_off))
        row1 = min(height, round(window.row_off + window.height))
        col1 = min(width, round(window.col_off + window.width))
        if row1 <= row0 or col1 <= col0:
            continue
        block = codes[row0:row1, col0:col1]
        present = ~mask.missing(block)
        count = int(present.sum())
        if count:
            out[str(tile)] = round(100.0 * float((mask.invalid(block) & present).sum()) / count, 3)
    return out
