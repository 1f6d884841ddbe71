"""Writing Cloud-Optimized GeoTIFFs atomically (temporary name, then rename)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from odc.geo.geobox import GeoBox
from rasterio.io import MemoryFile

from msc_france.store.atomic import atomic_write


def write_cog(
    path: Path,
    data: np.ndarray,
    geobox: GeoBox,
    nodata: int | float | None,
    overview_resampling: str = "average",
    band_names: list[str] | None = None,
    blocksize: int = 256,
) -> int:
    """Write ``data`` (bands, y, x) on ``geobox`` as a tiled, DEFLATE-compressed COG with overviews.

    The file appears under its final name only once complete. Returns its size in bytes. GDAL
    encodes in memory and Python writes the bytes, so a full disk is an ``OSError`` (ENOSPC) naming
    the file, not an unrelated GDAL seek error.
    """
    if data.ndim == 2:
        data = data[np.newaxis]
    path.parent.mkdir(parents=True, exist_ok=True)
    predictor = 2 if np.issubdtype(data.dtype, np.integer) else 3
    with MemoryFile() as memory:
        with memory.open(
            driver="COG",
            width=data.shape[2],
            height=data.shape[1],
            count=data.shape[0],
            dtype=data.dtype,
            crs=str(geobox.crs),
            transform=geobox.affine,
            nodata=nodata,
            BLOCKSIZE=blocksize,
            COMPRESS="DEFLATE",
            PREDICTOR=predictor,
            OVERVIEW_RESAMPLING=overview_resampling.upper(),
            NUM_THREADS=1,
        ) as dst:
            dst.write(data)
            for i, name in enumerate(band_names or [], start=1):
                dst.set_band_description(i, name)
        encoded = memory.read()
    atomic_write(path, encoded)
    return len(encoded)
