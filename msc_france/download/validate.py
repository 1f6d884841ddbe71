"""Items from a STAC API are untrusted input: each is checked before planning, and one that cannot be
used (not a valid item, an id that is not a safe folder name, no usable footprint or date, a needed
asset missing) is left out with its reason instead of stopping the run."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import pystac
import shapely
import shapely.geometry
from odc.geo.geom import Geometry

from msc_france.names import is_safe_name


@dataclass(frozen=True)
class Rejected:
    """An item left out: its id (as sent, possibly not a string) and why."""

    item_id: str
    reason: str


def item_datetime(item: pystac.Item) -> dt.datetime:
    """The item's ``datetime``, else its ``start_datetime``."""
    if item.datetime is not None:
        return item.datetime
    return dt.datetime.fromisoformat(str(item.properties.get("start_datetime")).replace("Z", "+00:00"))


def item_footprint(item: pystac.Item) -> Geometry:
    """The item's geometry, in EPSG:4326 (ValueError when it has none)."""
    if item.geometry is None:
        raise ValueError(f"item {item.id} has no geometry")
    try:  # found by fuzzing: malformed coordinates raise IndexError, RecursionError, GeometryTypeError...
        geom = shapely.geometry.shape(item.geometry)
    except Exception as exc:  # noqa: BLE001 - any malformed GeoJSON geometry from the API is unusable
        raise ValueError(f"item {item.id} has no valid geometry ({type(exc).__name__})") from None
    if not np.all(np.isfinite(shapely.get_coordinates(geom))):
        raise ValueError(f"item {item.id} has a coordinate that is not a finite number")
    return Geometry(geom, "EPSG:4326")


def checked(raw: object, assets: Iterable[str]) -> pystac.Item | str:
    """The item ``raw`` (a dict from the API) when it can be used, else why not."""
    if not isinstance(raw, dict):
        return "not a JSON object"
    if not is_safe_name(raw.get("id")):
        return "its id is not a safe folder name"
    try:
        item = pystac.Item.from_dict(raw)
        footprint = item_footprint(item)
        if footprint.is_empty or not footprint.geom.is_valid:
            return "no valid footprint"
        item_datetime(item)
        float(item.properties.get("eo:cloud_cover", 0.0))
    # Any error parsing an untrusted item leaves it out: pystac's errors share no base class
    # (STACTypeError on a 'type' that is not Feature was found by fuzzing), and nor do shapely's.
    except Exception as exc:  # noqa: BLE001
        return f"not a valid STAC item ({type(exc).__name__})"
    missing = [key for key in assets if key not in item.assets or not item.assets[key].href]
    if missing:
        return f"no asset {missing[0]!r}"
    return item


def usable_items(raws: Iterable[object], assets: Iterable[str]) -> tuple[list[pystac.Item], list[Rejected]]:
    """The items of ``raws`` that can be used, and the others with their reasons."""
    wanted = tuple(assets)
    kept: list[pystac.Item] = []
    rejected: list[Rejected] = []
    for raw in raws:
        result = checked(raw, wanted)
        if isinstance(result, pystac.Item):
            kept.append(result)
        else:
            item_id = raw.get("id", "?") if isinstance(raw, dict) else "?"
            rejected.append(Rejected(str(item_id)[:80], result))
    return kept, rejected
