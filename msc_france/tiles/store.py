"""The Zarr v3 tile store: one georeferenced mosaic per sensor over the France extent, one chunk per
tile, K x K tiles per shard (see docs/store.md). Local paths and fsspec URLs (s3://, gs://, az://).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import fsspec
import google_crc32c
import numpy as np
import zarr
from fsspec.implementations.local import LocalFileSystem
from numcodecs.zstd import Zstd
from pyproj import CRS as ProjCRS
from zarr.codecs import BytesCodec, Crc32cCodec, ShardingCodec, ShardingCodecIndexLocation, ZstdCodec
from zarr.core.buffer import default_buffer_prototype
from zarr.core.indexing import morton_order_iter
from zarr.core.sync import sync

from msc_france.config import Recipe
from msc_france.errors import UserError
from msc_france.grid import TileGrid, TileId
from msc_france.provenance import STORE_KEY, RecipeRecord, content, describe
from msc_france.sensors import SENSORS, Encoding, Sensor
from msc_france.tiles.index import index_path

STORE_VERSION = 1
LABELS = "labels"
LABEL_GRID = "s2"  # labels are stored on the Sentinel-2 grid
DONE_SUFFIX = ".tiles.done"  # completion records live beside the store, outside the Zarr hierarchy
LOCK_SUFFIX = ".tiles.lock"  # held by the one run writing the store
BUILDING = "msc_france_building"  # group attribute while its arrays are being created
ZSTD_LEVEL = 1  # fast, within a few % of the default level's size on imagery (docs/store.md)
EMPTY = np.iinfo(np.uint64).max  # shard index entry of a chunk that is not stored


@dataclass(frozen=True)
class Layer:
    """What one group of the store holds: band names, integer type, nodata, scale/offset."""

    group: str
    grid_sensor: str
    bands: tuple[str, ...]
    dtype: str
    nodata: int
    scale: float
    offset: float
    wavelengths: tuple[float, ...]


def layers(recipe: Recipe, encodings: Mapping[str, Encoding] | None = None) -> list[Layer]:
    """The store's groups for a recipe, in a fixed order; ``encodings`` (by group) replace the
    sensors' defaults (VHR: what the downloaded items record, see ``sources.item_encodings``)."""
    out = []
    for key in ("s2", "l8", "vhr"):
        if key not in recipe.sensors:
            continue
        sensor: Sensor = SENSORS[key]
        bands = sensor.select(recipe.sensors[key].bands)
        # Sentinel-2: the 04.00+ encoding, to which older baselines are harmonised
        enc = (encodings or {}).get(key, sensor.encoding)
        out.append(Layer(key, key, tuple(b.name for b in bands), enc.dtype, enc.nodata, enc.scale, enc.offset,
                         tuple(b.center_wavelength for b in bands)))
    if recipe.labels:
        out.append(Layer(LABELS, LABEL_GRID, ("label",), "uint8", 0, 1.0, 0.0, (0.0,)))
    return out


def shard_tiles(recipe: Recipe) -> int:
    """Tiles per shard side: shards of about 2048 px of the finest grid, at least 1 tile."""
    grid = recipe.tile_grid
    finest = max(grid.tile_px(s) for s in grid.sensors)
    return max(1, 2048 // finest)


def _crs_attrs(grid: TileGrid) -> dict[str, Any]:
    crs = ProjCRS.from_user_input(grid.crs)
    return {**crs.to_cf(), "crs_wkt": crs.to_wkt(), "spatial_ref": crs.to_wkt()}


def create_or_open(store: str, recipe: Recipe, storage_options: dict[str, Any] | None = None,
                   encodings: Mapping[str, Encoding] | None = None) -> zarr.Group:
    """Open ``store`` for writing, creating its groups (see :func:`layers` for ``encodings``);
    refuse a store built on another grid, with a recipe of other content (its groups hold other
    bands) or holding a group in another encoding."""
    grid = recipe.tile_grid
    root = zarr.open_group(store, mode="a", zarr_format=3, storage_options=storage_options or None)
    meta = {"grid": grid.to_dict(), "recipe": recipe.name, STORE_KEY: RecipeRecord(recipe=recipe).to_json(),
            "version": STORE_VERSION}
    existing = root.attrs.get("msc_france")
    if existing is None:
        root.attrs["msc_france"] = meta
    elif existing.get("grid") != meta["grid"]:
        raise UserError(f"store {store} was built on another grid ({existing.get('recipe')}: "
                        f"{existing.get('grid', {}).get('footprint')} m tiles); grids never mix: use another store")
    elif STORE_KEY in existing:
        built = RecipeRecord.from_json(existing[STORE_KEY], f"store {store}").recipe
        if content(built) != content(recipe):
            raise UserError(f"store {store} was built with recipe {describe(built)}, not {describe(recipe)}; "
                            "recipes never mix in a store: use another store (store=PATH)")
    k = shard_tiles(recipe)
    for layer in layers(recipe, encodings):
        if layer.group in root:
            if _complete(root[layer.group]):
                _same_encoding(store, root[layer.group]["data"], layer)
                continue
            del root[layer.group]  # its creation was cut short (kill -9, full disk): only metadata in it
        forget_done(store, layer.group, storage_options)
        px = grid.tile_px(layer.grid_sensor)
        geobox = grid.geobox(layer.grid_sensor)
        height, width = geobox.shape
        group = root.create_group(layer.group)
        group.attrs.update({"grid_sensor": layer.grid_sensor, "tile_px": px, "shard_tiles": k, BUILDING: True})
        group.create_array(
            "data", shape=(len(layer.bands), height, width), dtype=layer.dtype,
            chunks=(len(layer.bands), px, px), shards=(len(layer.bands), k * px, k * px),
            fill_value=layer.nodata, dimension_names=("band", "y", "x"), compressors=ZstdCodec(level=ZSTD_LEVEL),
            attributes={"grid_mapping": "spatial_ref", "scale_factor_dn": layer.scale, "add_offset_dn": layer.offset,
                        "nodata": layer.nodata, "bands": list(layer.bands),
                        "wavelengths": list(layer.wavelengths)},
        )
        group.create_array(
            "valid", shape=(height, width), dtype="uint8", chunks=(px, px), shards=(k * px, k * px),
            fill_value=0, dimension_names=("y", "x"), attributes={"grid_mapping": "spatial_ref"},
            compressors=ZstdCodec(level=ZSTD_LEVEL),
        )
        gsd = abs(geobox.resolution.x)
        x = geobox.affine.c + gsd * (np.arange(width) + 0.5)
        y = geobox.affine.f - gsd * (np.arange(height) + 0.5)
        for name, values in (("x", x), ("y", y)):
            coord = group.create_array(name, shape=values.shape, dtype="float64", chunks=(min(len(values), 1 << 17),),
                                       dimension_names=(name,), attributes={"units": "metre", "axis": name.upper()})
            coord[:] = values
        band = group.create_array("band", shape=(len(layer.bands),), dtype=str, dimension_names=("band",))
        band[:] = np.array(layer.bands)
        ref = group.create_array("spatial_ref", shape=(), dtype="int32",
                                 attributes={**_crs_attrs(grid), "GeoTransform": " ".join(map(str, geobox.affine.to_gdal()))})
        ref[...] = 0
        del group.attrs[BUILDING]  # last: the group is complete
    return root


def recipe_name(store: str, storage_options: dict[str, Any] | None = None) -> str:
    """The name of the recipe a tile store was built with."""
    return str(open_store(store, storage_options).attrs["msc_france"]["recipe"])


def stores_in(data: Path) -> list[str]:
    """The tile stores directly under ``data`` (``*.zarr`` with the msc-france root attrs)."""
    found = []
    for path in sorted(data.glob("*.zarr")):
        try:
            meta = json.loads((path / "zarr.json").read_text()).get("attributes", {}).get("msc_france")
        except (OSError, ValueError):
            continue
        if meta:
            found.append(str(path))
    return found


def _same_encoding(store: str, data: zarr.Array, layer: Layer) -> None:
    """Refuse to write ``layer`` into an existing array of another type, scale, offset or nodata."""
    attrs = data.attrs
    held = Encoding(str(data.dtype), attrs.get("nodata"), attrs.get("scale_factor_dn"), attrs.get("add_offset_dn"))
    wanted = Encoding(layer.dtype, layer.nodata, layer.scale, layer.offset)
    if held != wanted:
        raise UserError(f"store {store} holds {layer.group} as {held}, these items are {wanted}; "
                        "one store holds one encoding: use another store")


def _complete(group: zarr.Group) -> bool:
    """True when every array of a store group was created (see :func:`create_or_open`)."""
    return "tile_px" in group.attrs and BUILDING not in group.attrs


def open_store(store: str, storage_options: dict[str, Any] | None = None) -> zarr.Group:
    """A tile store opened read-only; a missing one is a one-line user error."""
    try:
        root = zarr.open_group(store, mode="r", zarr_format=3, storage_options=storage_options or None)
    except (FileNotFoundError, zarr.errors.GroupNotFoundError):
        raise UserError(f"no tile store at {store}; run `make tiles` first") from None
    if not root.attrs.get("msc_france"):
        raise UserError(f"{store} is not an msc-france tile store")
    return root


def _zstd_sharding(array: zarr.Array) -> tuple[ShardingCodec, Zstd] | None:
    """The array's sharding codec and its chunks' compressor, when its layout is the one
    :func:`write_shard` encodes (little-endian chunks, zstd, crc32c index at the end); else None."""
    codecs = array.metadata.codecs
    if len(codecs) != 1 or not isinstance(codecs[0], ShardingCodec):
        return None
    sharding = codecs[0]
    inner, index = sharding.codecs, sharding.index_codecs
    if (sharding.index_location != ShardingCodecIndexLocation.end or len(inner) != 2
            or not isinstance(inner[0], BytesCodec) or not isinstance(inner[1], ZstdCodec)
            or index != (BytesCodec(), Crc32cCodec()) or array.dtype.itemsize > 1 and inner[0].endian.name != "little"):
        return None
    return sharding, Zstd(level=inner[1].level, checksum=inner[1].checksum)


def _shard_bytes(block: np.ndarray, chunk: tuple[int, ...], fill: Any, zstd: Zstd) -> bytes | None:
    """A full shard's encoding: its chunks that are not all ``fill`` (in Morton order, zstd), then the
    index of (offset, length) pairs and its crc32c; None when every chunk is ``fill``."""
    counts = tuple(s // c for s, c in zip(block.shape, chunk, strict=True))
    ndim = len(chunk)
    interleaved = [n for pair in zip(counts, chunk, strict=True) for n in pair]
    chunks = np.ascontiguousarray(  # chunk-major: chunks[coords] is one contiguous little-endian chunk
        block.astype(block.dtype.newbyteorder("<"), copy=False).reshape(interleaved)
        .transpose(*range(0, 2 * ndim, 2), *range(1, 2 * ndim, 2)))
    stored = (chunks != fill).any(axis=tuple(range(ndim, 2 * ndim)))
    index = np.full((*counts, 2), EMPTY, dtype="<u8")
    parts, offset = [], 0
    for coords in morton_order_iter(counts):
        if stored[coords]:
            encoded = zstd.encode(chunks[coords])
            index[coords] = (offset, len(encoded))
            parts.append(encoded)
            offset += len(encoded)
    if not parts:
        return None
    table = index.tobytes()
    return b"".join([*parts, table, google_crc32c.value(table).to_bytes(4, "little")])


def write_shard(array: zarr.Array, shard: tuple[int, ...], data: np.ndarray) -> None:
    """Write the whole shard ``shard`` (its index in the shard grid) of ``array``: ``data`` covers it
    (clipped to the array), encoded here in one pass and put in one request; the stored bytes are
    those zarr-python writes. Arrays of another codec layout are written through zarr-python."""
    size = array.shards
    region = tuple(slice(i * s, min((i + 1) * s, n)) for i, s, n in zip(shard, size, array.shape, strict=True))
    layout = _zstd_sharding(array)
    if layout is None:
        array[region] = data
        return
    sharding, zstd = layout
    block = np.full(size, array.fill_value, dtype=array.dtype)
    block[tuple(slice(0, r.stop - r.start) for r in region)] = data
    encoded = _shard_bytes(block, sharding.chunk_shape, array.fill_value, zstd)
    path = array.store_path / array.metadata.encode_chunk_key(shard)
    if encoded is None:
        sync(path.delete())
    else:
        sync(path.set(default_buffer_prototype().buffer.from_bytes(encoded)))


def shard_of(tile: TileId, k: int) -> tuple[int, int]:
    """(shard column, shard row) holding ``tile``."""
    return tile.col // k, tile.row // k


def done_root(store: str) -> str:
    """``STORE.tiles.done`` beside ``STORE.zarr`` (like the index)."""
    return index_path(store).removesuffix(".tiles.parquet") + DONE_SUFFIX


def lock_path(store: str) -> Path | None:
    """``STORE.tiles.lock`` beside a local store (see :mod:`msc_france.lock`); None for a URL, where
    a local lock would not see writers on other machines."""
    if "://" in store and not store.startswith("file://"):
        return None
    return Path(done_root(store.removeprefix("file://")).removesuffix(DONE_SUFFIX) + LOCK_SUFFIX)


def forget_done(store: str, group: str, storage_options: dict[str, Any] | None = None) -> None:
    """Remove the completion records of ``group``: it is being created anew (the store was deleted,
    or the group's creation was cut short), so none of its shards is complete."""
    fs, path = fsspec.core.url_to_fs(f"{done_root(store)}/{group}", **(storage_options or {}))
    if fs.exists(path):
        fs.rm(path, recursive=True)


def done_path(store: str, group: str, shard: tuple[int, int]) -> str:
    return f"{done_root(store)}/{group}/{shard[0]:04d}_{shard[1]:04d}.json"


def _load_record(fs: fsspec.AbstractFileSystem, path: str) -> dict[str, Any]:
    """One completion record; an unreadable one is a one-line error (they are written atomically,
    so only outside damage makes one)."""
    try:
        with fs.open(path, "r") as handle:
            return json.load(handle)
    except ValueError:  # JSON and UTF-8 errors; raised below, unchained, to pass through Dask as it is
        pass
    raise UserError(f"the completion record {path} is damaged; delete it and rerun (its shard is redone)")


def read_done(store: str, group: str, shard: tuple[int, int], storage_options: dict[str, Any] | None = None) -> dict[str, Any] | None:
    """The completion record of a shard, or None if it was not completed."""
    fs, path = fsspec.core.url_to_fs(done_path(store, group, shard), **(storage_options or {}))
    if not fs.exists(path):
        return None
    return _load_record(fs, path)


def write_done(store: str, group: str, shard: tuple[int, int], record: dict[str, Any],
               storage_options: dict[str, Any] | None = None) -> None:
    """Record a shard as complete (written last, after the shard's data), whole or not at all: a local
    record goes to a temporary name first and is renamed (object stores put whole objects anyway)."""
    fs, path = fsspec.core.url_to_fs(done_path(store, group, shard), **(storage_options or {}))
    fs.makedirs(path.rsplit("/", 1)[0], exist_ok=True)
    text = json.dumps(record, sort_keys=True)
    if isinstance(fs, LocalFileSystem):
        tmp = Path(path).with_name(f".{Path(path).name}.{os.getpid()}.partial")
        try:
            tmp.write_text(text)
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
    else:
        fs.pipe_file(path, text.encode())


def all_done(store: str, storage_options: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """Every completion record in the store (all groups, all regions)."""
    fs, path = fsspec.core.url_to_fs(done_root(store), **(storage_options or {}))
    if not fs.exists(path):
        return []
    return [_load_record(fs, name) for name in sorted(fs.glob(f"{path}/*/*.json"))]
