"""Render one shard of one store group from the downloaded items: open each source file once, warp
all the bands that share a source grid in one GDAL call onto the shard's grid (``average`` when
downsampling, ``bilinear`` when upsampling, ``nearest`` for classes), mosaic them by each tile's ranks
(the plan's order), and build the valid mask and, for each pixel that is not valid, why (cloud, snow,
nodata, other). A file that declares no nodata gets the one its STAC item's ``raster:bands`` declare,
else the layer's (the mask's for quality layers), so that the fill outside a swath is never taken for
data.

Fast paths, each equal to GDAL's nodata-aware (masked) warp of the bands as float32 with NaN: a
plain windowed read when the source is already on the grid; integer data straight to GDAL when no
nodata pixel lies within a kernel's reach of the target (always for ``nearest``, which never mixes
pixels; up to a rounding tie, 1 DN); where nodata is within reach, a normalised convolution: the
data with nodata as 0 and the valid mask warped together by GDAL's unmasked kernels, then divided.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import numpy as np
import rasterio
import shapely
from odc.geo.crs import CRS
from odc.geo.geobox import GeoBox
from pyproj import Transformer
from rasterio._err import CPLE_BaseError
from rasterio.enums import Resampling
from rasterio.errors import RasterioError
from rasterio.io import DatasetReader
from rasterio.warp import reproject
from rasterio.windows import Window

from msc_france.errors import UserError, error_chain
from msc_france.sensors import SENSORS, BitMask, ClassMask
from msc_france.store.layout import LABELS, Layer
from msc_france.tiles.sources import SourceItem
from msc_france.tiles.tileplan import UNUSED
from msc_france.windows import padded_window

S2_HARMONISE_DN = 1000  # DN added to Sentinel-2 scenes before baseline 04.00 (offset -1000 since)
MARGIN = 3  # source pixels read around the target area, for the resampling kernels
KERNEL_REACH = 2  # source pixels a kernel sampling inside the target's outline may reach past it
MIN_WEIGHT = 1e-5  # GDAL's masked kernels: a pixel with less valid weight is nodata
GDAL_OPTIONS = {"GDAL_DISABLE_READDIR_ON_OPEN": "EMPTY_DIR"}  # no sibling-file listing on each open

Reads = list[tuple[DatasetReader, list[int]]]  # datasets sharing one grid, with the band indexes to read
# What datasets must share for their bands to be warped in one call: CRS (WKT), transform, shape, dtype, nodata.
GridKey = tuple[str | None, tuple[float, ...], tuple[int, int], str, float | None]
# Why a pixel is what it is (Rendered.cause): valid, or the reason it is not.
CLEAR, CLOUD, SNOW, NODATA, OTHER = range(5)
CAUSES = {CLOUD: "cloud", SNOW: "snow", NODATA: "nodata", OTHER: "other"}  # the reasons, by code


@dataclass
class Rendered:
    data: np.ndarray  # (band, y, x) DN, the layer's dtype
    valid: np.ndarray  # (y, x) bool
    has_data: np.ndarray  # (y, x) bool: some item had a non-nodata value
    first_item: np.ndarray  # (y, x) int16: index in ``items`` of the item that filled the pixel, -1 none
    items: list[SourceItem]
    cause: np.ndarray  # (y, x) uint8: CLEAR where valid, else why not (a key of CAUSES)
    ranks: np.ndarray  # (item, tile row, tile column) int16: each of ``items``' rank on each tile, UNUSED: not used

    def used_in(self, window: tuple[slice, slice]) -> list[SourceItem]:
        """The items that filled pixels of ``window`` (within one tile), best-ranked first."""
        row = (window[0].start or 0) * self.ranks.shape[1] // self.first_item.shape[0]
        col = (window[1].start or 0) * self.ranks.shape[2] // self.first_item.shape[1]
        used = [int(i) for i in np.unique(self.first_item[window]) if i >= 0]
        return [self.items[i] for i in sorted(used, key=lambda i: (self.ranks[i, row, col], i))]


def _crs(target: GeoBox) -> CRS:
    """The target's CRS (every store grid has one)."""
    if target.crs is None:
        raise ValueError(f"the target grid {target} has no CRS")
    return target.crs


def _same_grid(ds: DatasetReader, target: GeoBox) -> bool:
    """True when ``target``'s pixels are pixels of ``ds`` (same CRS, resolution and alignment)."""
    a, t = ds.transform, target.affine
    if ds.crs is None or ds.crs.to_epsg() != _crs(target).epsg or a.b or a.d or t.b or t.d:
        return False
    if not (np.isclose(a.a, t.a) and np.isclose(a.e, t.e)):
        return False
    offsets = ((t.c - a.c) / a.a, (t.f - a.f) / a.e)
    return all(np.isclose(o, round(o), atol=1e-6) for o in offsets)


def _grid_key(ds: DatasetReader, nodata: float | None) -> GridKey:
    """What datasets must share for their bands to be warped in one call."""
    return ds.crs.to_wkt() if ds.crs else None, tuple(ds.transform), ds.shape, ds.dtypes[0], nodata


def _nodata(ds: DatasetReader, declared: float | None) -> float | None:
    """The file's nodata; ``declared`` (its item's or the layer's) when the file declares none."""
    return ds.nodata if ds.nodata is not None else declared


def _present(out: np.ndarray, nodata: float | None) -> np.ndarray:
    """(y, x) True where every band of ``out`` holds data (not ``nodata``, not NaN)."""
    if out.dtype.kind == "f":
        present: np.ndarray = ~np.isnan(out).any(axis=0)
        return present
    if nodata is None:
        return np.ones(out.shape[1:], bool)
    # reduced over the bands of a (band, y, x) array: a (y, x) array, never the scalar the stubs allow
    return cast(np.ndarray, out.all(axis=0) if nodata == 0 else (out != nodata).all(axis=0))


def _read_on_grid(reads: Reads, target: GeoBox, nodata: float | None,
                  out: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The target's pixels read straight from datasets on its grid, nodata outside them; into ``out``
    (band, y, x), when given, of their type, and the target lies inside them."""
    ds = reads[0][0]
    col = round((target.affine.c - ds.transform.c) / ds.transform.a)
    row = round((target.affine.f - ds.transform.f) / ds.transform.e)
    height, width = target.shape
    count = sum(len(indexes) for _, indexes in reads)
    r0, c0 = max(row, 0), max(col, 0)
    r1, c1 = min(row + height, ds.height), min(col + width, ds.width)
    within = (r1 - r0, c1 - c0) == target.shape
    fill = nodata if nodata is not None else 0
    shape = (count, height, width)
    if out is None or not within or out.shape != shape or out.dtype != ds.dtypes[0]:
        out = np.empty(shape, ds.dtypes[0]) if within else np.full(shape, fill, ds.dtypes[0])
    inside = np.zeros(target.shape, bool)
    if r1 > r0 and c1 > c0:
        window = Window(c0, r0, c1 - c0, r1 - r0)
        box = (slice(r0 - row, r1 - row), slice(c0 - col, c1 - col))
        start = 0
        for d, indexes in reads:
            part = out[start : start + len(indexes)]
            if within:
                d.read(indexes, window=window, out=part)
            else:
                part[(slice(None), *box)] = d.read(indexes, window=window)
            start += len(indexes)
        inside[box] = True
    return out, _present(out, nodata) if within else inside & _present(out, nodata)


def kernel(source_gsd: float, target_gsd: float) -> Resampling:
    """The kernel for bands: ``average`` when downsampling, ``bilinear`` otherwise."""
    return Resampling.average if target_gsd > source_gsd * 1.01 else Resampling.bilinear


def _missing(src: np.ndarray, nodata: float | None) -> np.ndarray:
    """(band, y, x) True where ``src`` is nodata."""
    if nodata is None:
        return np.zeros(src.shape, bool)
    missing: np.ndarray = np.isnan(src) if np.isnan(nodata) else src == nodata
    return missing


@functools.lru_cache(maxsize=64)
def _transformer(source_crs: str, target_crs: str, thread: int) -> Transformer:
    """A PROJ transformer, made once per thread (they are not shared across threads)."""
    return Transformer.from_crs(source_crs, target_crs, always_xy=True)


def _outline(target: GeoBox, ds: DatasetReader) -> np.ndarray:
    """The target's outline in the source's CRS: 21 points an edge, corners first (as (x, y) rows)."""
    left, bottom, right, top = target.boundingbox
    steps = np.linspace(0, 1, 21)[1:-1]
    xs = np.concatenate([[left, right, right, left], left + (right - left) * steps, np.full(19, right),
                         right - (right - left) * steps, np.full(19, left)])
    ys = np.concatenate([[top, top, bottom, bottom], np.full(19, top), top - (top - bottom) * steps,
                         np.full(19, bottom), bottom + (top - bottom) * steps])
    transformer = _transformer(_crs(target).to_wkt(), ds.crs.to_wkt(), threading.get_ident())
    return np.column_stack(transformer.transform(xs, ys))


def _touches(missing: np.ndarray, corners: np.ndarray) -> bool:
    """True when a ``missing`` pixel of the window lies within reach of a kernel sampling inside the
    quadrilateral ``corners`` (window pixel coordinates, in order): within KERNEL_REACH pixels of it."""
    rows, cols = np.nonzero(missing)
    x, y = cols + 0.5, rows + 0.5
    ahead = np.roll(corners, -1, axis=0)
    area = np.sum(corners[:, 0] * ahead[:, 1] - ahead[:, 0] * corners[:, 1])
    near = np.ones(x.shape, bool)
    for (x0, y0), (x1, y1) in zip(corners, ahead, strict=True):
        distance = ((x1 - x0) * (y - y0) - (y1 - y0) * (x - x0)) / np.hypot(x1 - x0, y1 - y0)
        near &= np.sign(area) * distance >= -KERNEL_REACH
    return bool(near.any())


def _integers_as_they_are(src: np.ndarray, missing: np.ndarray, nodata: float | None,
                          resampling: Resampling, corners: np.ndarray) -> bool:
    """True when GDAL may warp the integers without a mask: ``nearest`` never mixes pixels, and other
    kernels (weighted means) reach no nodata pixel, so their values lie between valid ones and never
    equal a nodata at the end of the type's range."""
    if nodata is None or src.dtype.kind not in "iu":
        return False
    if resampling == Resampling.nearest:
        return True
    info = np.iinfo(src.dtype)
    # (y, x): reduced over the bands of a (band, y, x) array, never the scalar the stubs allow
    return nodata in (info.min, info.max) and not _touches(cast(np.ndarray, missing.any(axis=0)), corners)


def _normalised(src: np.ndarray, missing: np.ndarray, nodata: float | None, grids: dict[str, Any],
                shape: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    """``average`` or ``bilinear`` with nodata left out, as GDAL's masked kernels do, at the speed of
    its unmasked ones: warp the data (nodata as 0) and the valid mask in the same call, then divide
    (normalised convolution). Float32 values; present where the valid weight passes GDAL's threshold
    and, for ``bilinear``, where the source pixel under the sample is valid (GDAL's rule, one nearest
    warp of the mask)."""
    count = len(src)
    masks = missing[:1] if (missing == missing[0]).all() else missing  # one mask when bands share it
    stack = np.concatenate([src, ~masks]).astype(np.float32 if src.dtype.kind == "f" else src.dtype, copy=False)
    if nodata:  # nodata 0 is already 0
        stack[:count][missing] = 0
    out = np.zeros((len(stack), *shape), np.float32)
    reproject(stack, out, init_dest_nodata=False, **grids)
    values, weight = out[:count], out[count:]
    np.divide(values, weight, out=values, where=weight > MIN_WEIGHT)
    present = cast(np.ndarray, (weight > MIN_WEIGHT).all(axis=0))  # (y, x), as in _present
    if grids["resampling"] == Resampling.bilinear:
        under = np.zeros((len(masks), *shape), np.uint8)
        reproject((~masks).view(np.uint8), under, init_dest_nodata=False,
                  **{**grids, "resampling": Resampling.nearest})
        present &= under.all(axis=0)
    return values, present


def _warp(reads: Reads, target: GeoBox, resampling: Resampling | None, nodata: float | None,
          out: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Bands of datasets sharing one grid (and ``nodata``) on ``target``, warped in one call: (band, y, x)
    values (the source type on the fast paths, float32 on the normalised one) and the (y, x) present mask.
    Datasets on the target's grid are read into ``out`` when it may hold them (:func:`_read_on_grid`)."""
    ds = reads[0][0]
    if _same_grid(ds, target):
        return _read_on_grid(reads, target, nodata, out)
    count = sum(len(indexes) for _, indexes in reads)
    outline = _outline(target, ds)
    window = padded_window(ds, (*outline.min(axis=0), *outline.max(axis=0)), MARGIN)
    if window is None:
        return np.zeros((count, *target.shape), np.float32), np.zeros(target.shape, bool)
    src = np.concatenate([d.read(indexes, window=window) for d, indexes in reads])
    missing = _missing(src, nodata)
    to_window = ~ds.window_transform(window)
    corners = np.array([to_window @ tuple(point) for point in outline[:4]])
    resampling = kernel(abs(ds.res[0]), abs(target.resolution.x)) if resampling is None else resampling
    grids = {"src_transform": ds.window_transform(window), "src_crs": ds.crs, "dst_transform": target.affine,
             "dst_crs": str(target.crs), "resampling": resampling, "num_threads": 1}
    if not _integers_as_they_are(src, missing, nodata, resampling, corners):
        return _normalised(src, missing, nodata, grids, target.shape)
    out = np.full((count, *target.shape), nodata, src.dtype)
    reproject(src, out, init_dest_nodata=False, **grids)  # pixels no source covers keep nodata
    return out, _present(out, nodata)


def _to_dn(values: np.ndarray, layer: Layer, shift: int) -> np.ndarray:
    """Warped values (finite) as the layer's DN: rounded half up (as GDAL rounds), shifted, clipped
    off nodata. Float values are rounded in place."""
    if values.dtype == np.dtype(layer.dtype) and not shift:
        return values
    info = np.iinfo(layer.dtype)
    if values.dtype.kind == "f":
        values += 0.5
        wide = np.floor(values, out=values)
        wide += shift  # after rounding: whole numbers stay exact in float32
    else:
        wide = values.astype(np.int64) + shift
    dn: np.ndarray = np.clip(wide, info.min + 1, info.max, out=wide).astype(layer.dtype)
    return dn


def _band_reads(layer: Layer, item: SourceItem) -> list[tuple[str, str | None]]:
    """(asset key, band name) for each band of the layer in this item (local files name their bands)."""
    if layer.group == LABELS:
        return [(item.assets[0][0], None)]
    if layer.group == "vhr":  # one asset, whatever key the source gives it (the catalog's `asset`)
        return [(item.assets[0][0], name) for name in layer.bands]
    sensor = SENSORS[layer.group]
    return [(sensor.band(name).asset, name) for name in layer.bands]


def _open(layer: Layer, item: SourceItem, files: contextlib.ExitStack) -> dict[str, DatasetReader]:
    """The item's files that the layer reads (its bands', then its quality mask's), each opened once."""
    keys = [key for key, _ in _band_reads(layer, item)]
    sensor = SENSORS.get(layer.group)
    if sensor is not None and sensor.mask is not None:
        keys.append(sensor.mask.asset)
    return {key: files.enter_context(rasterio.open(item.asset(key))) for key in dict.fromkeys(keys)}


def _item_bands(layer: Layer, item: SourceItem, target: GeoBox, opened: dict[str, DatasetReader],
                out: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """One item's bands on ``target`` as the layer's DN (band, y, x), and where all are present. Bands
    read as they are, all in one call, in the layer's order, are read into ``out`` when it may hold them."""
    groups: dict[GridKey, tuple[Reads, list[int]]] = {}
    for position, (key, band) in enumerate(_band_reads(layer, item)):
        ds = opened[key]
        index = list(ds.descriptions).index(band) + 1 if band in ds.descriptions else 1
        declared = item.declared_nodata(key)
        nodata = _nodata(ds, layer.nodata if declared is None else declared)
        reads, positions = groups.setdefault(_grid_key(ds, nodata), ([], []))
        if reads and reads[-1][0] is ds:
            reads[-1][1].append(index)
        else:
            reads.append((ds, [index]))
        positions.append(position)
    shift = S2_HARMONISE_DN if layer.group == "s2" and item.baseline is not None and item.baseline < "04.00" else 0
    resampling = Resampling.nearest if layer.group == LABELS else None
    data: np.ndarray | None = None
    present = np.ones(target.shape, bool)
    for (*_, dtype, nodata), (reads, positions) in groups.items():
        in_order = len(groups) == 1 and positions == list(range(len(layer.bands)))
        as_they_are = in_order and not shift and dtype == layer.dtype
        values, here = _warp(reads, target, resampling, nodata, out if as_they_are else None)
        if in_order:
            data = _to_dn(values, layer, shift)  # every band in one call, in order: no copy
        else:
            data = np.empty((len(layer.bands), *target.shape), layer.dtype) if data is None else data
            data[positions] = _to_dn(values, layer, shift)
        present &= here
    assert data is not None, "a layer has bands"
    return data, present


def _quality(layer: Layer, target: GeoBox, opened: dict[str, DatasetReader]) -> np.ndarray | None:
    """(y, x) what the item's quality mask says of each pixel (one nearest warp): CLEAR, or the first
    of NODATA, CLOUD (cloud, cirrus, shadow), SNOW, OTHER that applies; None for a layer without a mask."""
    sensor = SENSORS.get(layer.group)
    if sensor is None or sensor.mask is None:
        return None
    mask = sensor.mask
    ds = opened[mask.asset]
    codes, known = _warp([(ds, [1])], target, Resampling.nearest, _nodata(ds, mask.nodata))
    if codes.dtype in (np.uint8, np.uint16):  # every code's cause, looked up
        cause: np.ndarray = _causes(mask, codes.dtype.str)[codes[0]]
    else:
        codes = codes[0] if codes.dtype.kind in "iu" else np.where(known, codes[0], mask.nodata).astype(np.int64)
        cause = _cause(mask, codes)
    cause[~known] = NODATA
    return cause


def _cause(mask: ClassMask | BitMask, codes: np.ndarray) -> np.ndarray:
    """What ``mask``'s ``codes`` say: CLEAR, or the first of NODATA, CLOUD, SNOW, OTHER that applies."""
    cause = np.where(mask.invalid(codes), np.uint8(OTHER), np.uint8(CLEAR))
    cause[mask.snowy(codes)] = SNOW
    cause[mask.cloudy(codes)] = CLOUD
    cause[mask.missing(codes)] = NODATA
    return cause


@functools.lru_cache(maxsize=16)
def _causes(mask: ClassMask | BitMask, dtype: str) -> np.ndarray:
    """:func:`_cause` of every value of an unsigned integer type, indexed by the value."""
    return _cause(mask, np.arange(np.iinfo(dtype).max + 1, dtype=dtype))


def _reason(exc: BaseException) -> str:
    """The most telling message of a GDAL error chain (rasterio's outer one often says only "see previous")."""
    messages = [" ".join(str(error).split()) for error in itertools.islice(error_chain(exc), 5)]
    return next((m for m in reversed(messages) if m), "unknown error")[:200]


@contextlib.contextmanager
def _readable(item: SourceItem) -> Iterator[None]:
    """Turn a GDAL failure to read one of ``item``'s downloaded files (truncated, corrupt, gone) into a
    one-line error that says how to get it again."""
    try:
        yield
    except (RasterioError, CPLE_BaseError) as exc:
        folder = Path(item.assets[0][1]).parent
        raise UserError(f"a downloaded file of {item.sensor} item {item.item_id} is unreadable ({_reason(exc)}); "
                        f"delete {folder} and rerun the download, then tiles") from None


def _box(opened: dict[str, DatasetReader], target: GeoBox,
         ranks: np.ndarray) -> tuple[slice, slice] | None:
    """The part of ``target`` an item may fill: where its files lie, when all of them are on the target's
    grid (read, not warped: the same pixels whatever the window), within the tiles whose ``ranks`` use it;
    else the whole target (GDAL's warp of a part may differ from that part of the whole's by a DN).
    None when that part is empty."""
    height, width = target.shape
    rows, cols = ranks.shape
    used = np.nonzero(ranks < UNUSED)
    if not len(used[0]):
        return None
    tile_h, tile_w = height // rows, width // cols
    r0, r1 = int(used[0].min()) * tile_h, (int(used[0].max()) + 1) * tile_h
    c0, c1 = int(used[1].min()) * tile_w, (int(used[1].max()) + 1) * tile_w
    datasets = list(opened.values())
    if not all(_same_grid(ds, target) for ds in datasets):
        return slice(0, height), slice(0, width)
    t = target.affine
    tops = [round((ds.transform.f - t.f) / t.e) for ds in datasets]
    lefts = [round((ds.transform.c - t.c) / t.a) for ds in datasets]
    r0, r1 = max(r0, min(tops)), min(r1, max(top + ds.height for top, ds in zip(tops, datasets, strict=True)))
    c0, c1 = max(c0, min(lefts)), min(c1, max(left + ds.width for left, ds in zip(lefts, datasets, strict=True)))
    return (slice(r0, r1), slice(c0, c1)) if r1 > r0 and c1 > c0 else None


def _rank_over(ranks: np.ndarray, shape: Sequence[int], box: tuple[slice, slice]) -> np.ndarray:
    """(y, x) ranks of one item over ``box`` of a target of ``shape``, from its (tile row, tile column)
    ranks (each tile ``shape / ranks.shape`` pixels); one rank (0-d) when the box's tiles share it."""
    tile_h, tile_w = shape[0] // ranks.shape[0], shape[1] // ranks.shape[1]
    rows, cols = box
    first_row, first_col = cast(int, rows.start) // tile_h, cast(int, cols.start) // tile_w
    tiles = ranks[first_row : (rows.stop - 1) // tile_h + 1, first_col : (cols.stop - 1) // tile_w + 1]
    if (tiles == tiles.flat[0]).all():
        return np.asarray(tiles.flat[0])
    r0, c0 = rows.start - first_row * tile_h, cols.start - first_col * tile_w
    blocks = np.repeat(np.repeat(tiles, tile_h, axis=0), tile_w, axis=1)
    return blocks[r0 : r0 + rows.stop - rows.start, c0 : c0 + cols.stop - cols.start]


def _overlaps(box: tuple[slice, slice], other: tuple[slice, slice]) -> bool:
    """True when two boxes of one target share a pixel."""
    return all(a.start < b.stop and b.start < a.stop for a, b in zip(box, other, strict=True))


@dataclass
class _Mosaic:
    """The mosaic being built: per pixel, the data kept, whether it is valid, and whose it is."""

    data: np.ndarray
    valid: np.ndarray
    has_data: np.ndarray
    first: np.ndarray
    cause: np.ndarray
    ranks: np.ndarray  # (item, tile row, tile column): each item's rank on each tile
    nodata: int  # the data's fill
    laid: list[tuple[int, tuple[slice, slice]]]  # (item, box) of each item laid so far
    kept: np.ndarray | None = None  # (y, x) see kept_rank; made when first needed

    @classmethod
    def empty(cls, layer: Layer, shape: Sequence[int], ranks: np.ndarray) -> _Mosaic:
        return cls(np.full((len(layer.bands), *shape), layer.nodata, dtype=layer.dtype), np.zeros(shape, bool),
                   np.zeros(shape, bool), np.full(shape, -1, np.int16), np.full(shape, NODATA, np.uint8), ranks,
                   layer.nodata, [])

    def fresh(self, box: tuple[slice, slice]) -> bool:
        """True when no item was laid over any pixel of ``box`` yet."""
        return not any(_overlaps(box, other) for _, other in self.laid)

    def kept_rank(self) -> np.ndarray:
        """(y, x) the rank of the item kept: its clear pixel's where valid, else the best rank with data
        (UNUSED: none). Made from ``first`` when an item is first laid over laid pixels, kept after."""
        if self.kept is None:
            shape = self.first.shape
            self.kept = np.full(shape, UNUSED, np.int16)
            for k, box in self.laid:
                np.copyto(self.kept[box], _rank_over(self.ranks[k], shape, box), where=self.first[box] == k)
        return self.kept

    def lay(self, k: int, box: tuple[slice, slice], bands: np.ndarray, present: np.ndarray,
            quality: np.ndarray | None, rank: np.ndarray) -> None:
        """Lay item ``k``'s ``bands`` over ``box``: its clear pixels where better than a clear one kept,
        its cloudy data where nothing clear is and it ranks better than the data kept. ``bands`` may be
        the mosaic's own data over a fresh box (read into it)."""
        present &= rank < UNUSED
        data, valid, first, cause = self.data[(slice(None), *box)], self.valid[box], self.first[box], self.cause[box]
        fresh = self.fresh(box)
        kept = self.kept_rank()[box] if not fresh else None if self.kept is None else self.kept[box]
        self.laid.append((k, box))
        if fresh and quality is None and present.all():  # all taken, all clear
            if not np.may_share_memory(bands, self.data):
                data[...] = bands
            first[...], cause[...], valid[...], self.has_data[box] = k, CLEAR, True, True
            if kept is not None:
                kept[...] = rank
            return
        here = np.where(present, np.uint8(CLEAR) if quality is None else quality, np.uint8(NODATA))
        if fresh:  # nothing kept here yet: every pixel with data is taken (those clear are valid)
            if np.may_share_memory(bands, self.data):
                np.copyto(data, np.asarray(self.nodata, data.dtype), where=~present)
            else:
                np.copyto(data, bands, where=present)
            np.copyto(first, k, where=present)
            if kept is not None:
                np.copyto(kept, rank, where=present)
            cause[...] = here
            np.equal(here, CLEAR, out=valid)
            self.has_data[box] = present
            return
        assert kept is not None, "made for a box laid over before"
        better = rank < kept
        take = (here == CLEAR) & (better | ~valid)  # clear, and better than a clear pixel kept
        put = take | (present & ~valid & better)  # and cloudy data where nothing clear is, best first
        np.copyto(data, bands, where=put)
        np.copyto(first, k, where=put)
        np.copyto(cause, here, where=put)
        np.copyto(kept, rank, where=put)
        valid |= take
        self.has_data[box] |= present


def render(layer: Layer, items: list[SourceItem], target: GeoBox, ranks: np.ndarray | None = None) -> Rendered:
    """Mosaic ``items`` on ``target``: per pixel, the clear data of the best-ranked item clear there, else
    the (cloudy) data of the best-ranked item with data there. ``ranks`` (item, tile row, tile column)
    gives each item's rank on each tile of ``target`` (:data:`UNUSED`: not used there); by default the
    items' order everywhere. Each item is read and laid over the part of the target it may fill
    (:func:`_box`)."""
    shape = target.shape
    if ranks is None:
        ranks = np.broadcast_to(np.arange(len(items), dtype=np.int16)[:, None, None], (len(items), 1, 1))
    area = shapely.box(*target.boundingbox)
    kept = [k for k, item in enumerate(items)
            if (ranks[k] < UNUSED).any() and shapely.from_wkt(item.footprint_wkt).intersects(area)]
    used, ranks = [items[k] for k in kept], ranks[kept]
    mosaic = _Mosaic.empty(layer, shape, ranks)
    with rasterio.Env(**GDAL_OPTIONS):
        for k, item in enumerate(used):
            with _readable(item), contextlib.ExitStack() as files:
                opened = _open(layer, item, files)
                box = _box(opened, target, ranks[k])
                if box is None:
                    continue
                part = target[box]
                into = mosaic.data[(slice(None), *box)] if mosaic.fresh(box) else None  # read into the mosaic
                bands, present = _item_bands(layer, item, part, opened, into)
                quality = _quality(layer, part, opened)
            mosaic.lay(k, box, bands, present, quality, _rank_over(ranks[k], shape, box))
    return Rendered(mosaic.data, mosaic.valid, mosaic.has_data, mosaic.first, used, mosaic.cause, ranks)
