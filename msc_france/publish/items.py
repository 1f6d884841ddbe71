"""The tiles as STAC items (the collection's stac-geoparquet mirror) and the provenance list of the
source items of every group."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import rustac
import shapely

from msc_france.publish.layout import COLLECTION
from msc_france.publish.tiles import Tile, TileSet, iso
from msc_france.store.atomic import atomic_path

PROJECTION = "https://stac-extensions.github.io/projection/v2.0.0/schema.json"
CRS = "EPSG:2154"


def tile_items(tiles: TileSet, collection_id: str, span: tuple[dt.datetime, dt.datetime]) -> list[dict[str, Any]]:
    """One STAC item per tile: its WGS84 footprint, its EPSG:2154 box (``proj:bbox``), split, quality and,
    per group, the source item ids, their dates, the valid and cloud shares (``msc:<group>_*``). The item's
    interval spans its source dates (a tile without any: ``span``, the dataset's interval)."""
    return [_item(tile, tiles.groups, collection_id, span) for tile in tiles.tiles]


def _item(tile: Tile, groups: tuple[str, ...], collection_id: str,
          span: tuple[dt.datetime, dt.datetime]) -> dict[str, Any]:
    dates = tile.dates or list(span)
    properties: dict[str, Any] = {
        "datetime": None, "start_datetime": iso(min(dates)), "end_datetime": iso(max(dates)),
        "proj:code": CRS, "proj:bbox": list(tile.bounds),
        "msc:col": tile.col, "msc:row": tile.row, "msc:region": tile.region, "msc:split": tile.split,
        "msc:quality_ok": tile.quality_ok, "msc:quality_reason": tile.quality_reason,
    }
    for group in groups:
        held = tile.groups.get(group)
        properties |= {
            f"msc:{group}_items": list(held.items) if held else None,
            f"msc:{group}_datetimes": [iso(d) if d else None for d in held.dates] if held else None,
            f"msc:{group}_valid": held.valid if held else None,
            f"msc:{group}_cloud": held.cloud if held else None,
        }
    return {
        "type": "Feature", "stac_version": "1.1.0", "stac_extensions": [PROJECTION], "id": tile.id,
        "collection": collection_id, "geometry": shapely.geometry.mapping(tile.footprint),
        "bbox": list(tile.footprint.bounds), "properties": properties, "assets": {},
        "links": [{"rel": "collection", "href": COLLECTION, "type": "application/json"}],
    }


def write_mirror(path: Path, items: list[dict[str, Any]]) -> None:
    """Write ``items`` as stac-geoparquet (rustac), atomically."""
    with atomic_path(path) as temp:
        rustac.write_sync(str(temp), items, format="geoparquet")


def provenance(tiles: TileSet) -> dict[str, Any]:
    """Per group, every source item used: id, date, and the number of tiles it fills."""
    return {"groups": {group: [{"id": item.id, "datetime": iso(item.datetime) if item.datetime else None,
                                "tiles": item.tiles} for item in tiles.summary(group).items]
                       for group in tiles.groups}}
