"""What publishing reads from a built tile store: the recipe, the grid, each group's encoding and band
statistics, and the tile index. The one module of :mod:`msc_france.publish` that reads the store
(through the store package's readers and the Zarr attrs only), so that its imports can be retargeted.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import geopandas as gpd
import zarr

from msc_france.config import Recipe, load_recipe
from msc_france.errors import UserError
from msc_france.grid import TileGrid
from msc_france.provenance import STORE_KEY, RecipeRecord
from msc_france.tiles.index import index_path, read_index
from msc_france.tiles.store import open_store, stores_in

GROUP_ORDER = ("s2", "l8", "vhr", "labels")  # the store's groups, in the order they are described


@dataclass(frozen=True)
class BandStatistics:
    """Mean and standard deviation of one band over the valid pixels, in physical units (reflectance)."""

    mean: float
    std: float


@dataclass(frozen=True)
class GroupView:
    """One group of the store (``s2``, ``l8``, ``vhr``, ``labels``): its bands, encoding and pixel grid."""

    name: str
    bands: tuple[str, ...]
    wavelengths: tuple[float, ...]  # micrometres (0 for labels)
    dtype: str
    nodata: int
    scale: float
    offset: float
    gsd: float  # metres
    tile_px: int
    shape: tuple[int, int]  # (y, x) of the mosaic over the France extent
    transform: tuple[float, float, float, float, float, float]  # affine a, b, c, d, e, f (EPSG:2154)
    statistics: Mapping[str, BandStatistics]


@dataclass(frozen=True)
class StoreView:
    """A built tile store as publishing sees it."""

    path: Path
    recipe: Recipe
    grid: TileGrid
    store_version: int
    consolidated: bool
    groups: tuple[GroupView, ...]
    index_path: Path
    index: gpd.GeoDataFrame

    @property
    def name(self) -> str:
        """The store's name: ``demo`` for ``demo.zarr``."""
        return self.path.name.removesuffix(".zarr")


def find_store(data: Path, store: str | None) -> Path:
    """``store`` when given, else the one tile store in ``data``; publishing needs a local folder."""
    if store is None:
        found = stores_in(data)
        if not found:
            raise UserError(f"no tile store in {data}; run `make tiles` first")
        if len(found) > 1:
            names = ", ".join(Path(f).name for f in found)
            raise UserError(f"{data} holds several tile stores ({names}); say which with store=PATH (--store)")
        store = found[0]
    if "://" in store:
        raise UserError(f"publish writes beside a local store, not {store}; copy the store locally and publish the copy")
    return Path(store)


def read_store(path: Path) -> StoreView:
    """The store at ``path`` and its tile index; missing or empty ones are one-line errors."""
    root = open_store(os.fspath(path))
    meta = root.attrs["msc_france"]
    recipe = (RecipeRecord.from_json(meta[STORE_KEY], f"store {path}").recipe if STORE_KEY in meta
              else load_recipe(meta["recipe"]))
    grid = TileGrid.from_dict(meta["grid"])
    groups = tuple(_group(root[name], name, grid) for name in GROUP_ORDER if name in root)
    index = Path(index_path(os.fspath(path)))
    if not index.exists():
        raise UserError(f"no tile index {index} beside store {path}; run `make tiles` to finish the store")
    table = read_index(index)
    if table.empty:
        raise UserError(f"store {path} has no tiles yet; run `make tiles` first")
    return StoreView(path=path, recipe=recipe, grid=grid, store_version=int(meta["version"]),
                     consolidated=root.metadata.consolidated_metadata is not None, groups=groups,
                     index_path=index, index=table)


def _group(group: zarr.Group, name: str, grid: TileGrid) -> GroupView:
    attrs, data = group.attrs, group["data"]
    sensor = str(attrs["grid_sensor"])
    geobox = grid.geobox(sensor)
    affine = geobox.affine
    stats = {band: BandStatistics(float(s["mean"]), float(s["std"])) for band, s in attrs.get("statistics", {}).items()}
    return GroupView(
        name=name, bands=tuple(data.attrs["bands"]),
        wavelengths=tuple(float(w) for w in data.attrs["wavelengths"]), dtype=str(data.dtype),
        nodata=int(data.attrs["nodata"]), scale=float(data.attrs["scale_factor_dn"]),
        offset=float(data.attrs["add_offset_dn"]), gsd=grid.gsd(sensor), tile_px=int(attrs["tile_px"]),
        shape=(int(data.shape[1]), int(data.shape[2])),
        transform=(affine.a, affine.b, affine.c, affine.d, affine.e, affine.f), statistics=stats,
    )
