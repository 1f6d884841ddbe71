"""Creating the tile store (the writer's side of :mod:`msc_france.store`): one georeferenced mosaic
per sensor over the France extent, one chunk per tile, K x K tiles per shard (docs/store.md). Local
paths and fsspec URLs (s3://, gs://, az://).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pyproj
import zarr
from zarr.codecs import ZstdCodec
from zarr.errors import ContainsArrayError

from msc_france.config import Recipe
from msc_france.errors import UserError
from msc_france.grid import TileGrid
from msc_france.provenance import STORE_KEY, RecipeRecord, content, describe
from msc_france.sensors import Encoding
from msc_france.store.done import forget_done
from msc_france.store.layout import BUILDING, ROOT_KEY, STORE_VERSION, Layer, layers, shard_tiles
from msc_france.store.reader import StoreMeta, attributes, child_array

ZSTD_LEVEL = 1  # fast, within a few % of the default level's size on imagery (docs/store.md)


def _crs_attrs(grid: TileGrid) -> dict[str, Any]:
    crs = pyproj.CRS.from_user_input(grid.crs)
    return {**crs.to_cf(), "crs_wkt": crs.to_wkt(), "spatial_ref": crs.to_wkt()}


def create_or_open(store: str, recipe: Recipe, storage_options: dict[str, Any] | None = None,
                   encodings: Mapping[str, Encoding] | None = None) -> zarr.Group:
    """Open ``store`` for writing, creating its groups (see :func:`layers` for ``encodings``);
    refuse a store built on another grid, with a recipe of other content (its groups hold other
    bands) or holding a group in another encoding. Refuse any other Zarr hierarchy that holds
    something (no :data:`ROOT_KEY` on its root): nothing of it is ever deleted; the only group ever
    deleted is one whose creation here was cut short (it still carries :data:`BUILDING`)."""
    grid = recipe.tile_grid
    root = _open_root(store, storage_options)
    meta = StoreMeta(grid, recipe.name, STORE_VERSION, RecipeRecord(recipe=recipe)).to_json()
    existing = attributes(root).get(ROOT_KEY)
    held = sorted(root.keys()) if existing is None else []
    if held:
        raise UserError(_foreign(store, f"its root has no msc_france attribute but holds {', '.join(held[:3])}"))
    if existing is None:
        root.attrs[ROOT_KEY] = meta
    elif existing.get("grid") != meta["grid"]:
        raise UserError(f"store {store} was built on another grid ({existing.get('recipe')}: "
                        f"{existing.get('grid', {}).get('footprint')} m tiles); "
                        "grids never mix: use another store")
    elif STORE_KEY in existing:
        built = RecipeRecord.from_json(existing[STORE_KEY], f"store {store}").recipe
        if content(built) != content(recipe):
            raise UserError(f"store {store} was built with recipe {describe(built)}, not {describe(recipe)}; "
                            "recipes never mix in a store: use another store (store=PATH)")
    k = shard_tiles(recipe)
    for layer in layers(recipe, encodings):
        if layer.group in root:
            node = root[layer.group]
            if isinstance(node, zarr.Group) and _complete(node):
                _same_encoding(store, child_array(node, "data"), layer)
                continue
            if not (isinstance(node, zarr.Group) and BUILDING in node.attrs):
                raise UserError(f"store {store} holds a {layer.group} that msc-france did not create "
                                f"(no {BUILDING} marker, not complete); nothing was deleted: "
                                "choose another store (store=PATH)")
            del root[layer.group]  # its creation here was cut short (kill -9, full disk): only metadata in it
        forget_done(store, layer.group, storage_options)
        px = grid.tile_px(layer.grid_sensor)
        geobox = grid.geobox(layer.grid_sensor)
        height, width = geobox.shape
        # created with its marker in one write: a group of ours is never left without it
        group = root.create_group(layer.group, attributes={"grid_sensor": layer.grid_sensor, "tile_px": px,
                                                           "shard_tiles": k, BUILDING: True})
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
        transform = " ".join(map(str, geobox.affine.to_gdal()))
        ref = group.create_array("spatial_ref", shape=(), dtype="int32",
                                 attributes={**_crs_attrs(grid), "GeoTransform": transform})
        ref[...] = 0
        del group.attrs[BUILDING]  # last: the group is complete
    return root


def _foreign(store: str, why: str) -> str:
    return (f"store {store} is not an msc-france store ({why}); nothing was changed: "
            "choose another store (store=PATH)")


def _open_root(store: str, storage_options: dict[str, Any] | None) -> zarr.Group:
    """The root group of ``store`` for writing, created (Zarr v3) when nothing is there; another
    project's hierarchy (Zarr v2, an array at the root) is refused untouched."""
    options = storage_options or None
    try:
        root = zarr.open_group(store, mode="a", storage_options=options)
    except ContainsArrayError as exc:
        raise UserError(_foreign(store, f"it is not a Zarr group: {exc}".replace("\n", " "))) from None
    if root.metadata.zarr_format != 3:
        raise UserError(_foreign(store, f"it is a Zarr v{root.metadata.zarr_format} hierarchy"))
    return root


def _same_encoding(store: str, data: zarr.Array[Any], layer: Layer) -> None:
    """Refuse to write ``layer`` into an existing array of another type, scale, offset or nodata."""
    attrs = attributes(data)
    held = Encoding(str(data.dtype), attrs["nodata"], attrs["scale_factor_dn"], attrs["add_offset_dn"])
    wanted = layer.encoding
    if held != wanted:
        raise UserError(f"store {store} holds {layer.group} as {held}, these items are {wanted}; "
                        "one store holds one encoding: use another store")


def _complete(group: zarr.Group) -> bool:
    """True when every array of a store group was created (see :func:`create_or_open`)."""
    return "tile_px" in group.attrs and BUILDING not in group.attrs
