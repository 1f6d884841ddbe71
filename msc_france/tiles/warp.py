"""Render one shard of one store group from the downloaded items: read each source window once,
warp it with GDAL onto the shard's grid (``average`` when downsampling, ``bilinear`` when
upsampling, ``nearest`` for classes), mosaic least cloudy first, and build the valid mask.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import rasterio
import shapely
from odc.geo.geobox import GeoBox
from rasterio.enums import Resampling
from rasterio.warp import reproject, transform_bounds

from msc_france.sensors import SENSORS
from msc_france.windows import padded_window
from msc_france.tiles.sources import SourceItem
from msc_france.tiles.store import LABELS, Layer

S2_HARMONISE_DN = 1000  # DN added to Sentinel-2 scenes before baseline 04.00 (offset -1000 since)
MARGIN = 3  # source pixels read around the target area, for the resampling kernels


@dataclass
class Rendered:
    data: np.ndarray  # (band, y, x) DN, the layer's dtype
    valid: np.ndarray  # (y, x) bool
    has_data: np.ndarray  # (y, x) bool: some item had a non-nodata value
    first_item: np.ndarray  # (y, x) int16: index in ``items`` of the item that filled the pixel, -1 none
    items: list[SourceItem]


def _read_warped(path: str, index: int, target: GeoBox, resampling: Resampling | None) -> np.ndarray:
    """Band ``index`` of ``path`` on ``target`` as float32, NaN where nodata or outside."""
    out = np.full(target.shape, np.nan, dtype=np.float32)
    with rasterio.open(path) as ds:
        bounds = transform_bounds(str(target.crs), ds.crs, *target.boundingbox, densify_pts=21)
        window = padded_window(ds, bounds, MARGIN)
        if window is None:
            return out
        src = ds.read(index, window=window).astype(np.float32)
        if ds.nodata is not None:
            src[src == ds.nodata] = np.nan
        if resampling is None:  # choose by scale
            resampling = Resampling.average if abs(target.resolution.x) > abs(ds.res[0]) * 1.01 else Resampling.bilinear
        reproject(src, out, src_transform=ds.window_transform(window), src_crs=ds.crs, src_nodata=np.nan,
                  dst_transform=target.affine, dst_crs=str(target.crs), dst_nodata=np.nan,
                  resampling=resampling, num_threads=1)
    return out


def _band_reads(layer: Layer, item: SourceItem) -> list[tuple[str, int]]:
    """(local path, band index) for each band of the layer in this item."""
    if layer.group == LABELS:
        return [(item.assets[0][1], 1)]
    sensor = SENSORS[layer.group]
    reads = []
    for name in layer.bands:
        band = sensor.band(name)
        path = item.asset(band.asset)
        with rasterio.open(path) as ds:  # local files hold only the recipe's bands, named
            index = list(ds.descriptions).index(name) + 1 if name in ds.descriptions else 1
        reads.append((path, index))
    return reads


def render(layer: Layer, items: list[SourceItem], target: GeoBox) -> Rendered:
    """Mosaic ``items`` (least cloudy first) on ``target``."""
    shape = target.shape
    value = np.zeros((len(layer.bands), *shape), dtype=np.float32)
    valid = np.zeros(shape, dtype=bool)
    has_data = np.zeros(shape, dtype=bool)
    first = np.full(shape, -1, dtype=np.int16)
    area = shapely.box(*target.boundingbox)
    used = [i for i in items if shapely.from_wkt(i.footprint_wkt).intersects(area)]
    sensor = SENSORS.get(layer.group)
    for k, item in enumerate(used):
        classes = layer.group == LABELS
        bands = np.stack([_read_warped(p, b, target, Resampling.nearest if classes else None)
                          for p, b in _band_reads(layer, item)])
        present = ~np.isnan(bands).any(axis=0)
        usable = present.copy()
        if sensor is not None and sensor.mask is not None:
            codes = _read_warped(item.asset(sensor.mask.asset), 1, target, Resampling.nearest)
            known = ~np.isnan(codes)
            usable &= known & ~sensor.mask.invalid(np.where(known, codes, 0).astype(np.int64))
        if layer.group == "s2" and item.baseline is not None and item.baseline < "04.00":
            bands = bands + S2_HARMONISE_DN
        take = usable & ~valid  # clear pixels not yet filled by a clearer item
        fill = present & ~has_data & ~take  # cloudy data where nothing better exists (yet)
        for mask in (take, fill):
            value[:, mask] = bands[:, mask]
        first[take | fill] = k
        valid |= take
        has_data |= present
    info = np.iinfo(layer.dtype)
    data = np.where(has_data, np.clip(np.rint(value), info.min + 1, info.max), layer.nodata).astype(layer.dtype)
    return Rendered(data, valid, has_data, first, used)
