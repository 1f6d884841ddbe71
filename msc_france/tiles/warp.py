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
from rasterio.windows import Window

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


def _same_grid(ds: rasterio.io.DatasetReader, target: GeoBox) -> bool:
    """True when ``target``'s pixels are pixels of ``ds`` (same CRS, resolution and alignment)."""
    a, t = ds.transform, target.affine
    if ds.crs is None or ds.crs.to_epsg() != target.crs.epsg or a.b or a.d or t.b or t.d:
        return False
    if not (np.isclose(a.a, t.a) and np.isclose(a.e, t.e)):
        return False
    offsets = ((t.c - a.c) / a.a, (t.f - a.f) / a.e)
    return all(np.isclose(o, round(o), atol=1e-6) for o in offsets)


def _read_warped(path: str, bands: list[str | None], target: GeoBox, resampling: Resampling | None) -> np.ndarray:
    """Bands of ``path`` named ``bands`` (by description; None: band 1) on ``target``, read in one
    call (pixel-interleaved files decode once), as float32 (band, y, x), NaN where nodata or outside."""
    out = np.full((len(bands), *target.shape), np.nan, dtype=np.float32)
    with rasterio.open(path) as ds:
        names = list(ds.descriptions)
        indexes = [names.index(b) + 1 if b in names else 1 for b in bands]
        if _same_grid(ds, target):  # no resampling needed: a plain windowed read
            col = round((target.affine.c - ds.transform.c) / ds.transform.a)
            row = round((target.affine.f - ds.transform.f) / ds.transform.e)
            window = Window(col, row, target.shape[1], target.shape[0])
            fill = ds.nodata if ds.nodata is not None else 0
            src = ds.read(indexes, window=window, boundless=True, fill_value=fill).astype(np.float32)
            return np.where(src == fill, np.float32(np.nan), src) if ds.nodata is not None else src
        bounds = transform_bounds(str(target.crs), ds.crs, *target.boundingbox, densify_pts=21)
        window = padded_window(ds, bounds, MARGIN)
        if window is None:
            return out
        src = ds.read(indexes, window=window).astype(np.float32)
        if ds.nodata is not None:
            src[src == ds.nodata] = np.nan
        if resampling is None:  # choose by scale
            resampling = Resampling.average if abs(target.resolution.x) > abs(ds.res[0]) * 1.01 else Resampling.bilinear
        reproject(src, out, src_transform=ds.window_transform(window), src_crs=ds.crs, src_nodata=np.nan,
                  dst_transform=target.affine, dst_crs=str(target.crs), dst_nodata=np.nan,
                  resampling=resampling, num_threads=1)
    return out


def _band_reads(layer: Layer, item: SourceItem) -> list[tuple[str, str | None]]:
    """(local path, band name) for each band of the layer in this item (local files name their bands)."""
    if layer.group == LABELS:
        return [(item.assets[0][1], None)]
    sensor = SENSORS[layer.group]
    return [(item.asset(sensor.band(name).asset), name) for name in layer.bands]


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
        reads: dict[str, list[str | None]] = {}
        for path, band in _band_reads(layer, item):
            reads.setdefault(path, []).append(band)
        bands = np.concatenate([_read_warped(path, names, target, Resampling.nearest if classes else None)
                                for path, names in reads.items()])
        present = ~np.isnan(bands).any(axis=0)
        usable = present.copy()
        if sensor is not None and sensor.mask is not None:
            codes = _read_warped(item.asset(sensor.mask.asset), [None], target, Resampling.nearest)[0]
            known = ~np.isnan(codes)
            usable &= known & ~sensor.mask.invalid(np.where(known, codes, 0).astype(np.int64))
        if layer.group == "s2" and item.baseline is not None and item.baseline < "04.00":
            bands = bands + S2_HARMONISE_DN
        take = usable & ~valid  # clear pixels not yet filled by a clearer item
        fill = present & ~has_data & ~take  # cloudy data where nothing better exists (yet)
        value = np.where((take | fill)[np.newaxis], bands, value)
        first[take | fill] = k
        valid |= take
        has_data |= present
    info = np.iinfo(layer.dtype)
    data = np.where(has_data, np.clip(np.rint(value), info.min + 1, info.max), layer.nodata).astype(layer.dtype)
    return Rendered(data, valid, has_data, first, used)
