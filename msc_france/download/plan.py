"""Choose acquisitions: per sensor the items that cover the region with the least cloud, paired
across sensors around the Sentinel-2 reference date, printed as a table before anything is fetched.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import pystac
from odc.geo.geom import Geometry
from rich.table import Table

from msc_france.regions import Region

TARGET_CLEAR = 0.98  # expected clear share of the region to reach before stopping adding items


@dataclass(frozen=True)
class Candidate:
    """One item considered for one sensor, with its overlap of the region."""

    sensor: str
    item: pystac.Item | None  # None for non-STAC sources (a WMS)
    item_id: str
    date: dt.date | None
    cloud: float  # percent
    coverage: float  # share of the region's area inside the item's footprint
    footprint: Geometry  # in EPSG:2154


def candidate(sensor: str, item: pystac.Item, region_l93: Geometry) -> Candidate:
    footprint = Geometry(item.geometry, "EPSG:4326").to_crs("EPSG:2154")
    overlap = footprint.intersection(region_l93).area / region_l93.area if region_l93.area else 0.0
    when = item.datetime or dt.datetime.fromisoformat(str(item.properties.get("start_datetime")).replace("Z", "+00:00"))
    return Candidate(sensor, item, item.id, when.date(), float(item.properties.get("eo:cloud_cover", 0.0)),
                     overlap, footprint)


def season_distance(a: dt.date, b: dt.date) -> int:
    """Days between two dates' positions in the year (same season whatever the years)."""
    d = abs(a.timetuple().tm_yday - b.timetuple().tm_yday)
    return min(d, 365 - d)


def cover(candidates: Sequence[Candidate], region_l93: Geometry, most: int,
          order: Callable[[Candidate], Any] | None = None) -> list[Candidate]:
    """Greedy choice in ``order`` (default: least cloudy first) until the region is covered and the
    expected clear share is reached."""
    chosen: list[Candidate] = []
    union: Geometry | None = None
    clear = 0.0
    for c in sorted(candidates, key=order or (lambda c: (c.cloud, -c.coverage, c.item_id))):
        if c.coverage <= 0 or len(chosen) >= most:
            continue
        grown = c.footprint if union is None else union.union(c.footprint)
        gain = (grown.intersection(region_l93).area - (union.intersection(region_l93).area if union else 0)) / region_l93.area
        if gain > 0.01 or clear < TARGET_CLEAR:
            chosen.append(c)
            union = grown
            clear = min(1.0, clear + c.coverage * (1 - c.cloud / 100))
        covered = union is not None and union.intersection(region_l93).area / region_l93.area > 0.999
        if covered and clear >= TARGET_CLEAR:
            break
    return chosen


@dataclass(frozen=True)
class Plan:
    region: Region
    reference_date: dt.date
    entries: list[Candidate]

    def table(self) -> Table:
        table = Table(title=f"download plan for {self.region.name} (reference date {self.reference_date})")
        for column in ("sensor", "item id", "date", "cloud %", "coverage %"):
            table.add_column(column, justify="right" if "%" in column else "left")
        for e in self.entries:
            if e.item is None:  # a WMS/WMTS: dated and measured window by window when fetched
                table.add_row(e.sensor, e.item_id, "per window", "-", "at fetch")
            else:
                table.add_row(e.sensor, e.item_id, str(e.date or "-"), f"{e.cloud:.1f}", f"{100 * e.coverage:.1f}")
        return table


def make_plan(region: Region, found: dict[str, list[Candidate]], window_days: int, most: int = 3) -> Plan:
    """Pair sensors around the best Sentinel-2 date: Landsat within ``window_days`` of it, VHR and
    labels in the same season of any year (they are acquired rarely)."""
    region_l93 = region.geometry.to_crs("EPSG:2154")
    s2 = found.get("s2", [])
    if not s2:
        raise ValueError("no Sentinel-2 candidates")
    reference = max(s2, key=lambda c: (c.coverage * (1 - c.cloud / 100), -c.cloud, c.item_id))
    assert reference.date is not None
    entries = cover([c for c in s2 if c.date and abs((c.date - reference.date).days) <= window_days], region_l93, most)
    ref = reference.date
    entries += cover([c for c in found.get("l8", []) if c.date and abs((c.date - ref).days) <= window_days],
                     region_l93, most)
    vhr = [c for c in found.get("vhr", []) if c.date is None or season_distance(c.date, ref) <= window_days]
    entries += cover(vhr, region_l93, most,
                     order=lambda c: (season_distance(c.date, ref) if c.date else 0, c.cloud, c.item_id))
    entries += cover(found.get("labels", []), region_l93, 16)
    return Plan(region, reference.date, entries)
