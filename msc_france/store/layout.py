"""The on-disk layout of a tile store (docs/store.md): its groups in their fixed order, what each
holds, where a tile's pixels are, and the files kept beside the store.

    demo.zarr/                 Zarr v3; one group per sensor (+ labels): data (band, y, x), valid (y, x)
    demo.tiles.parquet         the tile index (GeoParquet, one row per tile)
    demo.tiles.done/GROUP/     one completion record per shard (JSON)
    demo.tiles.lock            held by the one run writing the store (a file lock; on s3:// a lease object)
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from msc_france.config import Recipe
from msc_france.grid import TileGrid, TileId
from msc_france.sensors import SENSORS, Encoding, Sensor
from msc_france.store.atomic import is_url, local_path

STORE_VERSION = 1
LABELS = "labels"
LABEL_GRID = "s2"  # labels are stored on the Sentinel-2 grid
IMAGING: tuple[str, ...] = ("s2", "l8", "vhr")
GROUP_ORDER: tuple[str, ...] = (*IMAGING, LABELS)  # every table and listing follows this order
ROOT_KEY = "msc_france"  # the root group's attribute holding grid, recipe and version
BUILDING = "msc_france_building"  # group attribute while its arrays are being created
INDEX_SUFFIX = ".tiles.parquet"
DONE_SUFFIX = ".tiles.done"
LOCK_SUFFIX = ".tiles.lock"


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

    @property
    def encoding(self) -> Encoding:
        return Encoding(self.dtype, self.nodata, self.scale, self.offset)


def layers(recipe: Recipe, encodings: Mapping[str, Encoding] | None = None) -> list[Layer]:
    """The store's groups for a recipe, in :data:`GROUP_ORDER`; ``encodings`` (by group) replace the
    sensors' defaults (VHR: what the downloaded items record)."""
    out = []
    for key in IMAGING:
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


def group_rank(group: str) -> tuple[int, str]:
    """Sort key of a group name: :data:`GROUP_ORDER` first, any other after, by name."""
    return (GROUP_ORDER.index(group) if group in GROUP_ORDER else len(GROUP_ORDER), group)


# --- pixels ------------------------------------------------------------------------------------
def tile_pixels(col: int, row: int, px: int) -> tuple[slice, slice]:
    """Rows and columns of tile (``col``, ``row``) in a group's mosaic of ``px``-pixel tiles."""
    return slice(row * px, (row + 1) * px), slice(col * px, (col + 1) * px)


def shard_tiles(recipe: Recipe) -> int:
    """Tiles per shard side: shards of about 2048 px of the finest grid, at least 1 tile."""
    grid = recipe.tile_grid
    finest = max(grid.tile_px(s) for s in grid.sensors)
    return max(1, 2048 // finest)


def shard_of(tile: TileId, k: int) -> tuple[int, int]:
    """(shard column, shard row) holding ``tile``."""
    return tile.col // k, tile.row // k


def shard_box(grid: TileGrid, layer: Layer, shard: tuple[int, int], k: int) -> tuple[slice, slice]:
    """Pixel rows and columns of a shard in the group's mosaic (clipped at the grid's edge)."""
    px = grid.tile_px(layer.grid_sensor)
    rows, cols = grid.shape
    r0, c0 = shard[1] * k, shard[0] * k
    return (slice(r0 * px, min(r0 + k, rows) * px), slice(c0 * px, min(c0 + k, cols) * px))


def tile_window(tile: TileId, shard: tuple[int, int], k: int, px: int) -> tuple[slice, slice]:
    """Pixel rows and columns of ``tile`` inside its shard."""
    return tile_pixels(tile.col - shard[0] * k, tile.row - shard[1] * k, px)


# --- files beside the store --------------------------------------------------------------------
def _stem(store: str | os.PathLike[str]) -> str:
    text = os.fspath(store).rstrip("/").removesuffix(".zarr")
    if not text or text.endswith(("/", ":")):
        raise ValueError(f"cannot place files beside store {os.fspath(store)!r}")
    return text


def index_path(store: str | os.PathLike[str]) -> str:
    """``STORE.tiles.parquet`` beside ``STORE.zarr`` (local paths and URLs such as ``s3://b/x.zarr``)."""
    return _stem(store) + INDEX_SUFFIX


def done_root(store: str) -> str:
    """``STORE.tiles.done``: the folder of the shards' completion records."""
    return _stem(store) + DONE_SUFFIX


def done_path(store: str, group: str, shard: tuple[int, int]) -> str:
    return f"{done_root(store)}/{group}/{shard[0]:04d}_{shard[1]:04d}.json"


def lock_path(store: str) -> Path | None:
    """``STORE.tiles.lock`` beside a local store (see :mod:`msc_france.lock`); None for a URL, where
    a local lock would not see writers on other machines."""
    if is_url(store):
        return None
    return local_path(_stem(store) + LOCK_SUFFIX)


def lease_url(store: str) -> str | None:
    """``s3://BUCKET/STORE.tiles.lock``: the lease object beside an ``s3://`` store (see
    :mod:`msc_france.store.lease`); None for a local store or another URL scheme."""
    if not store.startswith("s3://"):
        return None
    return _stem(store) + LOCK_SUFFIX
