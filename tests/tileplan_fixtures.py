"""A deterministic, hand-made download of 2 x 2 demo tiles with three Sentinel-2 items of known values and
known clouds and holes, and a ``plan.parquet`` written as the download stage writes it.

Each item's bands hold one value everywhere it has data (:attr:`Scene.dn`), so a store pixel says which
item it came from. The items sit on the Sentinel-2 grid of the demo recipe.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import geopandas as gpd
import numpy as np
import rasterio
import shapely

from msc_france.config import load_recipe
from msc_france.download.local_catalog import write_catalog
from msc_france.grid import TileId
from msc_france.provenance import RecipeRecord

RECIPE = load_recipe("demo")
GRID = RECIPE.tile_grid
TILES = (TileId(1180, 1936), TileId(1181, 1936), TileId(1180, 1937), TileId(1181, 1937))  # NW, NE, SW, SE
PX = GRID.tile_px("s2")  # 48
BANDS = ("B02", "B03", "B04", "B08")
CLEAR_SCL, CLOUD_SCL = 4, 9  # vegetation; cloud high probability
REGION = "planned"


@dataclass(frozen=True)
class Scene:
    """One synthetic Sentinel-2 item: its value, date and cloud cover, and where (tile, quarter) it is
    cloudy or has no data. Quarters are ``nw``, ``ne``, ``sw``, ``se``."""

    item_id: str
    dn: int
    datetime: str
    cloud: float
    cloudy: tuple[tuple[TileId, str], ...] = ()
    holes: tuple[tuple[TileId, str], ...] = ()


# A is the least cloudy; C has no data on the west half of the south-west tile and a cloud on its north-east
# quarter; B has a cloud on the north-west quarter of the south-east tile.
NW, NE, SW, SE = TILES
A = Scene("S2_A", 1100, "2023-07-01T10:30:00Z", 5.0)
B = Scene("S2_B", 1200, "2023-07-11T10:30:00Z", 30.0, cloudy=((SE, "nw"),))
C = Scene("S2_C", 1300, "2023-06-21T10:30:00Z", 20.0, cloudy=((SW, "ne"),), holes=((SW, "nw"), (SW, "sw")))
SCENES = (A, B, C)


def quarter(tile: TileId, which: str) -> tuple[slice, slice]:
    """Pixel rows and columns of a quarter of ``tile`` in the 2 x 2 tiles' mosaic."""
    half = PX // 2
    row = (tile.row - TILES[0].row) * PX + (half if which[0] == "s" else 0)
    col = (tile.col - TILES[0].col) * PX + (half if which[1] == "e" else 0)
    return slice(row, row + half), slice(col, col + half)


def _write(path: Path, array: np.ndarray, description: str) -> None:
    left, _, _, top = GRID.tile_bounds(TILES[0])
    profile = {"driver": "GTiff", "width": array.shape[1], "height": array.shape[0], "count": 1,
               "dtype": array.dtype.name, "crs": "EPSG:2154", "nodata": 0,
               "transform": rasterio.transform.from_origin(left, top, 10.0, 10.0)}
    with rasterio.open(path, "w", **profile) as ds:
        ds.write(array, 1)
        ds.set_band_description(1, description)


def _item(root: Path, scene: Scene, footprint: shapely.Polygon) -> dict:
    folder = root / "s2" / scene.item_id
    folder.mkdir(parents=True)
    shape = (2 * PX, 2 * PX)
    dn, scl = np.full(shape, scene.dn, np.uint16), np.full(shape, CLEAR_SCL, np.uint8)
    for tile, which in scene.cloudy:
        scl[quarter(tile, which)] = CLOUD_SCL
    for tile, which in scene.holes:
        dn[quarter(tile, which)] = scl[quarter(tile, which)] = 0
    assets = {}
    for band in BANDS:
        _write(folder / f"{band}.tif", dn, band)
        assets[band] = {"href": f"{band}.tif", "roles": ["data"], "raster:bands": [
            {"scale": 1e-4, "offset": -0.1, "nodata": 0, "data_type": "uint16", "name": band}]}
    _write(folder / "SCL.tif", scl, "SCL")
    assets["SCL"] = {"href": "SCL.tif", "roles": ["data"]}
    lonlat = gpd.GeoSeries([footprint], crs="EPSG:2154").to_crs("EPSG:4326").iloc[0]
    return {"type": "Feature", "stac_version": "1.0.0", "id": scene.item_id, "collection": "s2",
            "geometry": shapely.geometry.mapping(lonlat), "bbox": list(lonlat.bounds), "links": [], "assets": assets,
            "properties": {"datetime": scene.datetime, "eo:cloud_cover": scene.cloud, "msc:sensor": "s2",
                           "s2:processing_baseline": "05.09"}}


def write_download(data: Path) -> Path:
    """``data/catalogs/planned``: the local catalog of :data:`SCENES` over :data:`TILES`, without a plan."""
    root = data / "catalogs" / REGION
    root.mkdir(parents=True)
    bounds = [GRID.tile_bounds(t) for t in TILES]
    area = shapely.box(min(b.left for b in bounds), min(b.bottom for b in bounds),
                       max(b.right for b in bounds), max(b.top for b in bounds))
    write_catalog(root, REGION, [_item(root, scene, area) for scene in SCENES],
                  RecipeRecord(recipe=RECIPE, catalog="demo"))
    region = gpd.GeoSeries([area.buffer(-20)], crs="EPSG:2154").to_crs("EPSG:4326").iloc[0]
    (root / "region.geojson").write_text(json.dumps(shapely.geometry.mapping(region)))
    return root


def write_plan(folder: Path, s2: Mapping[TileId, tuple[Scene, ...]]) -> None:
    """``folder/plan.parquet`` as the download stage writes it (one row per tile, EPSG:2154), ordering
    only Sentinel-2: ``s2`` gives each tile's scenes, best first."""
    rows = []
    for tile, scenes in s2.items():
        b = GRID.tile_bounds(tile)
        rows.append({"tile": str(tile), "col": tile.col, "row": tile.row,
                     "geometry": shapely.box(b.left, b.bottom, b.right, b.top),
                     "s2_items": [s.item_id for s in scenes], "s2_dates": [s.datetime[:10] for s in scenes],
                     "s2_clear": 1.0, "reference_date": scenes[0].datetime[:10] if scenes else None,
                     "triplet": False, "reason": "no l8, vhr or labels in this fixture"})
    gpd.GeoDataFrame(rows, geometry="geometry", crs="EPSG:2154").to_parquet(folder / "plan.parquet")
