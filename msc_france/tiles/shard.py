"""One Dask task: render the requested tiles of one shard of one group, merge them into the shard's
current content (not read when every tile of the shard is rewritten, nor when none of its tiles is
recorded as complete, or its record does not match its objects: it may be torn by a write cut short
or lost to a power loss), write the whole shard at once, flush it to disk and return its completion
record, which the client writes (:mod:`msc_france.tiles.run`). No two tasks write the same shard,
and memory is bounded by one shard whatever the scene size.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast

import numpy as np
import zarr

from msc_france.errors import UserError
from msc_france.grid import TileGrid, TileId
from msc_france.store.done import read_done
from msc_france.store.durable import intact, seal, shard_keys
from msc_france.store.layout import Layer, shard_box, tile_window
from msc_france.store.reader import child_array, child_group
from msc_france.store.records import BandSums, ShardRecord, TileRecord
from msc_france.tiles.sources import SourceItem
from msc_france.tiles.tileplan import ShardOrder
from msc_france.tiles.warp import CAUSES, CLOUD, Rendered, render

# Shards are encoded by zarrs-python's Rust codec pipeline, one thread per task (a tiles worker runs one
# task at a time): the bytes zarr-python writes, 1.4x faster than the hand-written encoder it replaced and
# 4x faster than zarr-python's own pipeline (bench/shard_writer.py, docs/store.md).
RUST_CODECS = {"codec_pipeline.path": "zarrs.ZarrsCodecPipeline", "threading.max_workers": 1}


def rewrites_whole_shard(tiles: list[TileId], shape: Sequence[int], px: int) -> bool:
    """True when ``tiles`` (all in one shard of ``shape`` pixels) are every tile of it: nothing to merge."""
    return len(set(tiles)) == (shape[0] // px) * (shape[1] // px)


def _merged(data_array: zarr.Array[Any], valid_array: zarr.Array[Any], box: tuple[slice, slice],
            rendered: Rendered, windows: list[tuple[slice, slice]]) -> tuple[np.ndarray, np.ndarray]:
    """The shard's current data and valid mask with the rendered ``windows`` written over them."""
    # zarr types a read as any array-like or scalar; slices of a numpy-backed array read as numpy arrays
    data = cast(np.ndarray, data_array[(slice(None), *box)])
    valid = cast(np.ndarray, valid_array[box])
    for window in windows:
        data[(slice(None), *window)] = rendered.data[(slice(None), *window)]
        valid[window] = rendered.valid[window]
    return data, valid


def _tile_record(tile: TileId, layer: Layer, rendered: Rendered, window: tuple[slice, slice]) -> TileRecord:
    valid = rendered.valid[window]
    has_data = rendered.has_data[window]
    cause = rendered.cause[window]
    items = rendered.used_in(window)
    counts = np.bincount(cause.ravel(), minlength=len(CAUSES) + 1)
    return TileRecord(
        tile.col, tile.row, layer.group, tuple(i.item_id for i in items), tuple(i.datetime for i in items),
        region=",".join(sorted({i.region for i in items})) or None,
        datetime=items[0].datetime if items else None,
        valid_fraction=float(valid.mean()),
        cloud_fraction=float((has_data & (cause == CLOUD)).sum() / has_data.sum()) if has_data.any() else 0.0,
        invalid_fractions={name: float(counts[code] / cause.size) for code, name in CAUSES.items()},
    )


def _sums(data: np.ndarray, valid: np.ndarray, layer: Layer) -> BandSums:
    """Per-band sums over valid pixels in physical units, to be combined across shards. 8- and 16-bit
    unsigned bands are summed exactly, from a histogram of their values (one pass over each band's valid
    pixels, 6x faster than float64 arrays of them on a VHR shard), then scaled: sum(s x + o) = s S1 + o n
    and sum((s x + o)^2) = s^2 S2 + 2 s o S1 + o^2 n. Other types (a histogram of 32-bit values would be
    too large) as float64 arrays."""
    n = float(valid.sum())
    if data.dtype.kind != "u" or data.dtype.itemsize > 2:
        values = data[:, valid].astype(np.float64) * layer.scale + layer.offset
        return BandSums((n,) * len(layer.bands), tuple(values.sum(axis=1).tolist()),
                        tuple((values**2).sum(axis=1).tolist()))
    s, o = layer.scale, layer.offset
    sums, sumsq = [], []
    for band in data:
        counts = np.bincount(band[valid])
        levels = np.arange(counts.size, dtype=np.int64)
        s1, s2 = int(counts @ levels), int(counts @ levels**2)  # int64: exact below 2^31 pixels of 16 bits
        sums.append(s * s1 + o * n)
        sumsq.append(s * s * s2 + 2 * s * o * s1 + o * o * n)
    return BandSums((n,) * len(layer.bands), tuple(sums), tuple(sumsq))


def process_shard(store: str, grid: TileGrid, layer: Layer, shard: tuple[int, int], k: int,
                  tiles: list[TileId], items: list[SourceItem],
                  storage_options: dict[str, Any] | None = None, order: ShardOrder | None = None) -> ShardRecord:
    """Render ``tiles`` (all in ``shard``) for ``layer``, write the shard and flush it to disk; return its
    completion record, for the caller to write.
    ``order`` says which items go on which tile, best first (default: every item on every tile, in the
    order given).

    The Dask task. A :class:`UserError` leaves it without the errors chained to it (rasterio's do
    not unpickle), so that the client gets it back as it is and the command line prints one line."""
    try:
        every = ShardOrder(dict.fromkeys(tiles)) if order is None else order
        return _process_shard(store, grid, layer, shard, k, tiles, items, storage_options, every)
    except UserError as exc:
        exc.__context__ = exc.__cause__ = None
        raise


def _process_shard(store: str, grid: TileGrid, layer: Layer, shard: tuple[int, int], k: int,
                   tiles: list[TileId], items: list[SourceItem],
                   storage_options: dict[str, Any] | None, order: ShardOrder) -> ShardRecord:
    previous = read_done(store, layer.group, shard, storage_options)
    box = shard_box(grid, layer, shard, k)
    target = grid.geobox(layer.grid_sensor)[box]
    px = grid.tile_px(layer.grid_sensor)
    whole = rewrites_whole_shard(tiles, target.shape, px)
    if previous is not None and not whole and not intact(store, previous.objects, storage_options):
        previous = None  # its objects are not those it recorded (lost to a power loss): neither read nor kept
    ranks = order.ranks(items, shard, k, (target.shape[0] // px, target.shape[1] // px))
    rendered = render(layer, items, target, ranks)
    windows = {tile: tile_window(tile, shard, k, px) for tile in tiles}
    if whole:
        data, valid = rendered.data, rendered.valid.view(np.uint8)
    elif previous is None:
        # No tile of this shard is recorded: what it holds is nothing or a write cut short (a full disk
        # tears a shard file, which then fails its checksum); start from the fill values, never read it.
        data = np.full_like(rendered.data, layer.nodata)
        valid = np.zeros(rendered.valid.shape, dtype=np.uint8)
        for window in windows.values():
            data[(slice(None), *window)] = rendered.data[(slice(None), *window)]
            valid[window] = rendered.valid[window]
    else:
        with zarr.config.set(RUST_CODECS):
            data, valid = _merged(*_arrays(store, layer, storage_options), box, rendered, list(windows.values()))
    records = dict(previous.tiles) if previous else {}
    records.update({str(tile): _tile_record(tile, layer, rendered, window) for tile, window in windows.items()})
    return write_shard(store, layer, shard, box, data, valid, records, storage_options)


def _arrays(store: str, layer: Layer,
            storage_options: dict[str, Any] | None) -> tuple[zarr.Array[Any], zarr.Array[Any]]:
    """The ``data`` and ``valid`` arrays of ``layer``'s group, opened for writing."""
    root = zarr.open_group(store, mode="r+", zarr_format=3, storage_options=storage_options or None)
    group = child_group(root, layer.group)
    return child_array(group, "data"), child_array(group, "valid")


def write_shard(store: str, layer: Layer, shard: tuple[int, int], box: tuple[slice, slice], data: np.ndarray,
                valid: np.ndarray, records: dict[str, TileRecord],
                storage_options: dict[str, Any] | None = None) -> ShardRecord:
    """Write a whole shard (``data`` (band, y, x) and ``valid`` (y, x) over ``box``) in one put per array,
    flush its objects to disk and return its completion record (``records``: its tiles; the objects' sizes
    and checksums), for the caller to write once it knows it still owns the store. The one shard writer
    of the project: the tiles stage and ``import-msc`` both write through it."""
    with zarr.config.set(RUST_CODECS):  # arrays take their codec pipeline when opened
        data_array, valid_array = _arrays(store, layer, storage_options)
        data_array[(slice(None), *box)] = data  # the whole shard, clipped at the grid's edge: one encode, one put
        valid_array[box] = valid
    objects = seal(store, shard_keys([data_array, valid_array], box), storage_options)
    return ShardRecord(layer.group, shard, records, _sums(data, valid.astype(bool), layer), objects)
