"""The local STAC catalog written by the download stage: items that point at the local files and
keep their provenance (source item and href without any token, processing baseline, scale/offset,
cloud cover, datetime), with each file's size and checksum.
"""

from __future__ import annotations

import copy
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pystac
from pystac.stac_io import DefaultStacIO

from msc_france.download.candidates import Candidate
from msc_france.download.fetch import Fetched, FileRecord
from msc_france.provenance import CATALOG_KEY, RecipeRecord
from msc_france.sensors import SENSORS
from msc_france.store.atomic import atomic_write

FILE_EXT = "https://stac-extensions.github.io/file/v2.1.0/schema.json"
PROJ_EXT = "https://stac-extensions.github.io/projection/v2.0.0/schema.json"
RASTER_EXT = "https://stac-extensions.github.io/raster/v1.1.0/schema.json"
KEPT_PROPERTIES = (
    "datetime", "start_datetime", "end_datetime", "platform", "constellation", "instruments", "gsd",
    "eo:cloud_cover", "s2:processing_baseline", "s2:mgrs_tile", "landsat:wrs_path", "landsat:wrs_row",
    "sat:relative_orbit", "sat:orbit_state", "view:sun_elevation", "view:sun_azimuth",
)


def local_item(entry: Candidate, fetched: list[Fetched], root: Path, api_url: str,
               source_href: Callable[[str], str]) -> dict[str, Any]:
    """A STAC item (as a dict) for the fetched assets of one planned item."""
    source = entry.item.to_dict(transform_hrefs=False) if entry.item else {}
    properties = {k: v for k, v in source.get("properties", {}).items() if k in KEPT_PROPERTIES}
    if not properties.get("datetime") and entry.date:
        properties["datetime"] = f"{entry.date.isoformat()}T00:00:00Z"
    properties.update({
        "msc:sensor": entry.sensor,
        "msc:source_item": entry.item_id,
        "msc:source_api": api_url,
        "msc:source_collection": source.get("collection"),
    })
    sensor = SENSORS.get(entry.sensor)
    assets: dict[str, Any] = {}
    for f in fetched:
        origin = source.get("assets", {}).get(f.job.key, {})
        asset = local_asset(f, root, origin.get("roles", ["data"]), source_href(f.job.href))
        if origin.get("eo:bands"):
            asset["eo:bands"] = copy.deepcopy(origin["eo:bands"])
        is_mask = sensor is not None and sensor.mask is not None and f.job.key == sensor.mask.asset
        if sensor is not None and not is_mask and entry.sensor != "labels":
            encodings = [sensor.encoding_for(source.get("properties", {}), origin, index, f.dtype)
                         for index in f.job.bands]
            asset["raster:bands"] = [{"scale": enc.scale, "offset": enc.offset, "nodata": enc.nodata,
                                      "data_type": enc.dtype, "name": name}
                                     for enc, name in zip(encodings, f.job.band_names, strict=True)]
        assets[f.job.key] = asset
    return {
        "type": "Feature",
        "stac_version": "1.0.0",
        "stac_extensions": [FILE_EXT, PROJ_EXT, RASTER_EXT],
        "id": entry.item_id,
        "collection": entry.sensor,
        "geometry": source.get("geometry") or entry.footprint.to_crs("EPSG:4326").json,
        "bbox": source.get("bbox") or list(entry.footprint.to_crs("EPSG:4326").boundingbox),
        "properties": properties,
        "links": [],
        "assets": assets,
    }


def local_asset(f: Fetched, root: Path, roles: list[str], source_href: str) -> dict[str, Any]:
    """The asset of one fetched file: relative href, provenance, size, checksum and grid."""
    return {
        "href": os.path.relpath(f.job.path, root / f.job.sensor / f.job.item_id),
        "type": "image/tiff; application=geotiff; profile=cloud-optimized",
        "roles": roles,
        "msc:source_href": source_href,
        "file:size": f.size,
        "file:checksum": f.checksum,
        "proj:code": f.crs,
        "proj:shape": list(f.shape),
        "proj:transform": f.transform,
    }


def write_catalog(root: Path, region_name: str, items: list[dict[str, Any]], record: RecipeRecord) -> Path:
    """Write ``root/catalog.json`` with one sub-catalog per sensor holding its items (self-contained),
    and the recipe and catalog the download used (``msc:download``)."""
    catalog = pystac.Catalog(id=root.name, description=f"msc-france download of {region_name}",
                             extra_fields={CATALOG_KEY: record.to_json()})
    for sensor in sorted({i["properties"]["msc:sensor"] for i in items}):
        child = pystac.Catalog(id=sensor, description=f"{sensor} items")
        for item in sorted((i for i in items if i["properties"]["msc:sensor"] == sensor), key=lambda i: i["id"]):
            stac_item = pystac.Item.from_dict(copy.deepcopy(item))
            for key, asset in stac_item.assets.items():
                asset.href = str((root / sensor / item["id"] / item["assets"][key]["href"]).resolve())
            child.add_item(stac_item)
        catalog.add_child(child)
    catalog.normalize_hrefs(str(root))
    catalog.make_all_asset_hrefs_relative()
    catalog.save(catalog_type=pystac.CatalogType.SELF_CONTAINED, stac_io=AtomicStacIO())
    return root / "catalog.json"


class AtomicStacIO(DefaultStacIO):
    """pystac's file I/O with every file written whole or not at all (:func:`atomic_write`).

    ``Catalog.save`` writes a catalog's items and sub-catalogs before the catalog itself, so with each
    file atomic the catalog is atomic as a set: a save cut short leaves the previous ``catalog.json``
    (or none), and whatever it links to is complete."""

    def write_text_to_href(self, href: str, txt: str) -> None:
        atomic_write(Path(href), txt)


def write_json(path: Path, data: object) -> None:
    atomic_write(path, json.dumps(data, indent=1, sort_keys=True, default=str))


def recorded_files(root: Path) -> dict[Path, FileRecord]:
    """Size and checksum of each file the local catalog under ``root`` lists (``root/SENSOR/ITEM/ITEM.json``),
    by resolved path: what a rerun checks a local file against before taking it as complete. An
    unreadable item file records nothing (its files are then checked by reading them)."""
    records: dict[Path, FileRecord] = {}
    for item_file in sorted(root.glob("*/*/*.json")):
        try:
            item = json.loads(item_file.read_text())
            assets = item.get("assets", {}) if isinstance(item, dict) else {}
            for asset in assets.values():
                size, checksum, href = asset.get("file:size"), asset.get("file:checksum"), asset.get("href")
                if isinstance(size, int) and isinstance(checksum, str) and isinstance(href, str):
                    records[(item_file.parent / href).resolve()] = FileRecord(size, checksum)
        except (OSError, ValueError, AttributeError):
            continue
    return records
