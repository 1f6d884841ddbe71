"""The footprint world as lean STAC items, with the Planetary Computer's ids, properties and the asset
keys the download needs (hrefs on the demo file server that point at nothing), written as one item
collection (GeoJSON FeatureCollection) per collection: ``stac/item-collections/<collection>.json``.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import shapely
from shapely.geometry import mapping
from shapely.geometry.base import BaseGeometry

from msc_france.demo import items as stac
from msc_france.demo.footprints import Footprints, LandsatScene, S2Scene, WorldCoverTile
from msc_france.sensors import LANDSAT8, SENTINEL2

COLLECTIONS = {
    "s2": "sentinel-2-l2a-france",
    "l8": "landsat-c2-l2-france",
    "labels": "esa-worldcover-france",
}
ITEM_COLLECTIONS = "item-collections"  # under the world's stac/ folder
S2_ASSETS = (*(b.asset for b in SENTINEL2.bands), "SCL")
LANDSAT_ASSETS = (*(b.asset for b in LANDSAT8.bands), "qa_pixel")
DESCRIPTIONS = {
    "s2": "Sentinel-2 L2A footprints over France (demo world: items only, no rasters)",
    "l8": "Landsat Collection 2 Level-2 footprints over France (demo world: items only, no rasters)",
    "labels": "ESA WorldCover-like 3 x 3 degree tiles over France (demo world: items only, no rasters)",
}


def _geometry(geom: BaseGeometry) -> tuple[dict[str, Any], list[float]]:
    rounded = shapely.set_precision(geom, 1e-6)
    return mapping(rounded), [round(v, 6) for v in rounded.bounds]


def _stamp(when: dt.datetime) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _item(item_id: str, collection: str, geom: BaseGeometry, properties: dict[str, Any],
          assets: tuple[str, ...], extensions: list[str]) -> dict[str, Any]:
    geometry, bbox = _geometry(geom)
    return {
        "type": "Feature", "stac_version": "1.0.0", "stac_extensions": [stac.EXT[e] for e in extensions],
        "id": item_id, "collection": collection, "geometry": geometry, "bbox": bbox, "properties": properties,
        "links": [], "assets": {key: {"href": f"footprints/{item_id}/{key}.tif", "type": stac.COG}
                                for key in assets},
    }


def sentinel2_item(s: S2Scene) -> dict[str, Any]:
    sat, start, baseline = s.platform[-1], s.datatake.strftime("%Y%m%dT%H%M%S"), s.baseline.replace(".", "")
    processed = s.processed.strftime("%Y%m%dT%H%M%S")
    properties = {
        "datetime": _stamp(s.datatake), "platform": s.platform, "constellation": "Sentinel 2", "instruments": ["msi"],
        "eo:cloud_cover": s.cloud_cover, "s2:mgrs_tile": s.tile, "s2:processing_baseline": s.baseline,
        "s2:product_type": "S2MSI2A", "s2:nodata_pixel_percentage": s.nodata_percentage,
        "s2:datatake_id": f"GS2{sat}_{start}_{s.absolute_orbit:06d}_N{s.baseline}",
        "s2:product_uri": f"S2{sat}_MSIL2A_{start}_N{baseline}_R{s.relative_orbit:03d}_T{s.tile}_{processed}.SAFE",
        "sat:orbit_state": "descending", "sat:relative_orbit": s.relative_orbit, "proj:code": f"EPSG:{s.epsg}",
    }
    item_id = f"S2{sat}_MSIL2A_{start}_R{s.relative_orbit:03d}_T{s.tile}_{processed}"
    return _item(item_id, COLLECTIONS["s2"], s.footprint, properties, S2_ASSETS, ["eo", "sat", "proj2"])


def landsat_item(s: LandsatScene) -> dict[str, Any]:
    mission = "LC08" if s.platform == "landsat-8" else "LC09"
    properties = {
        "datetime": _stamp(s.when), "platform": s.platform, "instruments": ["oli", "tirs"], "gsd": 30,
        "eo:cloud_cover": s.cloud_cover, "landsat:wrs_path": f"{s.path:03d}", "landsat:wrs_row": f"{s.row:03d}",
        "landsat:collection_category": "T1", "landsat:collection_number": "02", "landsat:correction": "L2SP",
        "proj:code": f"EPSG:{s.epsg}", "view:off_nadir": 0,
    }
    item_id = f"{mission}_L2SP_{s.path:03d}{s.row:03d}_{s.when:%Y%m%d}_02_T1"
    return _item(item_id, COLLECTIONS["l8"], s.footprint, properties, LANDSAT_ASSETS,
                 ["eo", "view", "proj2", "landsat"])


def worldcover_item(t: WorldCoverTile) -> dict[str, Any]:
    name = f"{'N' if t.lat >= 0 else 'S'}{abs(t.lat):02d}{'E' if t.lon >= 0 else 'W'}{abs(t.lon):03d}"
    properties = {"datetime": _stamp(dt.datetime(2021, 1, 1)), "start_datetime": "2021-01-01T00:00:00Z",
                  "end_datetime": "2021-12-31T23:59:59Z", "esa_worldcover:product_version": "2.0.0",
                  "proj:code": "EPSG:4326"}
    return _item(f"ESA_WorldCover_10m_2021_v200_{name}", COLLECTIONS["labels"], t.footprint, properties, ("map",),
                 ["proj2"])


def write_footprints(world: Path, prints: Footprints) -> dict[str, int]:
    """Write the collections and item collections into the world's ``stac/``; items per collection."""
    by_key = {"s2": [sentinel2_item(s) for s in prints.s2], "l8": [landsat_item(s) for s in prints.landsat],
              "labels": [worldcover_item(t) for t in prints.worldcover]}
    counts = {}
    for key, items in by_key.items():
        collection_id = COLLECTIONS[key]
        (world / "stac" / "collections").mkdir(parents=True, exist_ok=True)
        (world / "stac" / "collections" / f"{collection_id}.json").write_text(
            json.dumps(stac.collection(collection_id, items, DESCRIPTIONS[key]), indent=1))
        folder = world / "stac" / ITEM_COLLECTIONS
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{collection_id}.json").write_text(
            json.dumps({"type": "FeatureCollection", "features": items}, separators=(",", ":")))
        counts[collection_id] = len(items)
    return counts
