"""Pixel windows of a raster around an area, snapped outwards and padded (shared by download and tiles)."""

from __future__ import annotations

import math

from rasterio.io import DatasetReader
from rasterio.windows import Window, from_bounds


def padded_window(dataset: DatasetReader, bounds: tuple[float, float, float, float], margin: int) -> Window | None:
    """The window of ``dataset`` covering ``bounds`` (in its CRS) plus ``margin`` pixels, clipped to the
    raster; None when they do not overlap."""
    window = from_bounds(*bounds, transform=dataset.transform)
    col0 = max(math.floor(window.col_off) - margin, 0)
    row0 = max(math.floor(window.row_off) - margin, 0)
    col1 = min(math.ceil(window.col_off + window.width) + margin, dataset.width)
    row1 = min(math.ceil(window.row_off + window.height) + margin, dataset.height)
    if col1 <= col0 or row1 <= row0:
        return None
    return Window(col0, row0, col1 - col0, row1 - row0)
