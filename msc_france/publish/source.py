"""What publishing reads from a built tile store: the recipe, the grid, each group's encoding and band
statistics, and the tile index. The one module of :mod:`msc_france.publish` that reads the store
(through the store package's reader, :func:`msc_france.store.open_store`).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import geopandas as gpd

from msc_france.config import Recipe, load_recipe
from msc_france.errors import UserError
from msc_france.grid import TileGrid
from msc_france.store import TileStore, index_path, open_store, stores_in
from msc_france.store.records import BandStatistic


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
    statistics: Mapping[str, BandStatistic]


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
        raise UserError(f"publish writes beside a local store, not {store}; "
                        "copy the store locally and publish the copy")
    return Path(store)


def read_store(path: Path) -> StoreView:
    """The store at ``path`` and its tile index; missing or empty ones are one-line errors."""
    store = open_store(os.fspath(path))
    meta = store.meta
    recipe = meta.recipe_record.recipe if meta.recipe_record is not None else load_recipe(meta.recipe)
    table = store.index()
    if table.empty:
        raise UserError(f"store {path} has no tiles yet; run `make tiles` first")
    return StoreView(path=path, recipe=recipe, grid=meta.grid, store_version=meta.version,
                     consolidated=store.root.metadata.consolidated_metadata is not None,
                     groups=tuple(_group(store, name) for name in store.groups),
                     index_path=Path(index_path(os.fspath(path))), index=table)


def _group(store: TileStore, name: str) -> GroupView:
    layer = store.layer(name)
    affine = store.grid.geobox(layer.grid_sensor).affine
    shape = store.array(name).shape
    return GroupView(
        name=name, bands=layer.bands, wavelengths=layer.wavelengths, dtype=layer.dtype, nodata=layer.nodata,
        scale=layer.scale, offset=layer.offset, gsd=store.grid.gsd(layer.grid_sensor), tile_px=store.tile_px(name),
        shape=(int(shape[1]), int(shape[2])), transform=(affine.a, affine.b, affine.c, affine.d, affine.e, affine.f),
        statistics=store.statistics(name).bands,
    )
