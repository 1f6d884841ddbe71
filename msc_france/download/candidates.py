"""Candidates: the items a search found, one record each with what planning needs (date, scene cloud,
footprint in Lambert-93), and one item per acquisition.

The Planetary Computer can hold one acquisition twice: the same Sentinel-2 datatake over the same MGRS
tile from two processing runs or ground stations (same cloud cover, ids that differ only in the
processing time), or a Landsat scene in two collection categories. Those are the same pixels:
:func:`one_per_acquisition` keeps the newest processing (highest baseline, then latest id).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

import pystac
from odc.geo.geom import Geometry

from msc_france.download.validate import item_datetime, item_footprint


@dataclass(frozen=True)
class Candidate:
    """One item considered for one sensor."""

    sensor: str
    item: pystac.Item | None  # None for a WMS/WMTS source (one candidate for the whole service)
    item_id: str
    date: dt.date | None
    cloud: float  # percent, scene-wide as the item says
    footprint: Geometry  # EPSG:2154
    acquisition: str = ""  # shared by the items of one acquisition ("" when unknown: never merged)
    processing: str = ""  # sorts older processings first (baseline, then id)


def acquisition_key(sensor: str, item: pystac.Item) -> str:
    """What identifies one acquisition: platform, time to the second and the item's grid cell (MGRS
    tile, WRS-2 path/row); else the id itself (never merged)."""
    props = item.properties
    when = item.datetime.strftime("%Y%m%dT%H%M%S") if item.datetime else ""
    if props.get("s2:mgrs_tile") and when:
        return f"{sensor}:{props.get('platform', '')}:{when}:{props['s2:mgrs_tile']}"
    if props.get("landsat:wrs_path") and props.get("landsat:wrs_row") and when:
        return f"{sensor}:{props.get('platform', '')}:{when[:8]}:{props['landsat:wrs_path']}{props['landsat:wrs_row']}"
    return f"{sensor}:{item.id}"


def candidate(sensor: str, item: pystac.Item) -> Candidate:
    """The candidate of a checked item (see :mod:`msc_france.download.validate`)."""
    footprint = item_footprint(item).to_crs("EPSG:2154")
    baseline = str(item.properties.get("s2:processing_baseline") or "")
    cloud = float(item.properties.get("eo:cloud_cover", 0.0))
    return Candidate(sensor, item, item.id, item_datetime(item).date(), cloud,
                     footprint, acquisition_key(sensor, item), f"{baseline}|{item.id}")


def one_per_acquisition(candidates: Sequence[Candidate]) -> tuple[list[Candidate], list[Candidate]]:
    """(kept, dropped), each sorted by id: one candidate per acquisition, the newest processing."""
    best: dict[str, Candidate] = {}
    for c in candidates:
        key = c.acquisition or c.item_id
        if key not in best or c.processing > best[key].processing:
            best[key] = c
    kept_ids = {c.item_id for c in best.values()}
    kept = sorted(best.values(), key=lambda c: c.item_id)
    dropped = sorted((c for c in candidates if c.item_id not in kept_ids), key=lambda c: c.item_id)
    return kept, dropped
