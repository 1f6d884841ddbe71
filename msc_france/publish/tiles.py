"""The published tiles, as typed records read from the tile index: per tile its footprint, split,
quality and, per group, the source items used and their dates; and what they add up to (extent,
split counts, the source items of each group)."""

from __future__ import annotations

import datetime as dt
import math
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import SupportsFloat

import geopandas as gpd
import shapely
from shapely.geometry.base import BaseGeometry

WGS84 = "EPSG:4326"


@dataclass(frozen=True)
class GroupOnTile:
    """What one group holds on one tile: its source items (priority order) and their dates."""

    items: tuple[str, ...]
    dates: tuple[dt.datetime | None, ...]  # one per item
    valid: float | None  # share of the tile's pixels usable
    cloud: float | None  # share of the non-nodata pixels flagged cloud or shadow


@dataclass(frozen=True)
class Tile:
    """One tile of the index."""

    id: str
    col: int
    row: int
    region: str | None
    split: str
    quality_ok: bool
    quality_reason: str
    bounds: tuple[float, float, float, float]  # EPSG:2154 (left, bottom, right, top)
    footprint: BaseGeometry  # WGS84 polygon
    groups: Mapping[str, GroupOnTile]  # groups with a record on the tile

    @property
    def dates(self) -> list[dt.datetime]:
        """Every source date on the tile, all groups."""
        return [d for group in self.groups.values() for d in group.dates if d is not None]


@dataclass(frozen=True)
class SourceItem:
    """One source item used by a group: its date and on how many tiles."""

    id: str
    datetime: dt.datetime | None
    tiles: int


@dataclass(frozen=True)
class GroupSummary:
    """A group over all tiles: the tiles it has data on and the source items used."""

    group: str
    tiles: int
    items: tuple[SourceItem, ...]  # sorted by id

    @property
    def years(self) -> list[int]:
        return sorted({item.datetime.year for item in self.items if item.datetime is not None})

    @cached_property
    def interval(self) -> tuple[dt.datetime, dt.datetime] | None:
        dates = [item.datetime for item in self.items if item.datetime is not None]
        return (min(dates), max(dates)) if dates else None


@dataclass(frozen=True)
class TileSet:
    """The published tiles (index order: by row, then column) and the groups of the store."""

    tiles: tuple[Tile, ...]
    groups: tuple[str, ...]

    @property
    def ids(self) -> tuple[str, ...]:
        return tuple(t.id for t in self.tiles)

    @cached_property
    def bbox(self) -> tuple[float, float, float, float]:
        """WGS84 (west, south, east, north) of all tiles."""
        west, south, east, north = shapely.total_bounds([t.footprint for t in self.tiles])
        return float(west), float(south), float(east), float(north)

    @cached_property
    def interval(self) -> tuple[dt.datetime, dt.datetime] | None:
        """First and last source date over all tiles and groups; None when no date is known."""
        dates = [d for t in self.tiles for d in t.dates]
        return (min(dates), max(dates)) if dates else None

    @cached_property
    def splits(self) -> dict[str, tuple[int, int]]:
        """Per split (``train``, ``val``, ``test`` order): tiles, and of them those that pass quality."""
        order = {"train": 0, "val": 1, "test": 2}
        counts = Counter(t.split for t in self.tiles)
        good = Counter(t.split for t in self.tiles if t.quality_ok)
        return {s: (counts[s], good[s]) for s in sorted(counts, key=lambda s: (order.get(s, 3), s))}

    @property
    def regions(self) -> list[str]:
        return sorted({part for t in self.tiles for part in (t.region or "").split(",") if part})

    def summary(self, group: str) -> GroupSummary:
        """``group`` over all tiles."""
        return self._summaries[group]

    @cached_property
    def _summaries(self) -> dict[str, GroupSummary]:
        uses: dict[str, Counter[str]] = {group: Counter() for group in self.groups}
        dates: dict[str, dict[str, dt.datetime | None]] = {group: {} for group in self.groups}
        tiles: Counter[str] = Counter()
        for tile in self.tiles:
            for group, held in tile.groups.items():
                if not held.items:
                    continue
                tiles[group] += 1
                for item, date in zip(held.items, held.dates, strict=True):
                    uses[group][item] += 1
                    dates[group][item] = dates[group].get(item) or date
        return {group: GroupSummary(group, tiles[group], tuple(SourceItem(i, dates[group][i], uses[group][i])
                                                               for i in sorted(uses[group])))
                for group in self.groups}


def _bounds(values: tuple[float, ...]) -> tuple[float, float, float, float]:
    left, bottom, right, top = (float(v) for v in values)
    return left, bottom, right, top


def read_tiles(index: gpd.GeoDataFrame, groups: tuple[str, ...]) -> TileSet:
    """The tiles of a tile index (``docs/store.md``) for the store's ``groups``."""
    lonlat = index.geometry.to_crs(WGS84)
    tiles = []
    for record, footprint in zip(index.to_dict(orient="records"), lonlat, strict=True):
        fields = {str(k): v for k, v in record.items()}
        held = {g: on for g in groups if (on := _group_on_tile(fields, g)) is not None}
        tiles.append(Tile(
            id=str(fields["tile"]), col=int(fields["col"]), row=int(fields["row"]), region=fields["region"],
            split=str(fields["split"]), quality_ok=bool(fields["quality_ok"]),
            quality_reason=str(fields["quality_reason"]), bounds=_bounds(fields["geometry"].bounds),
            footprint=footprint, groups=held,
        ))
    return TileSet(tiles=tuple(tiles), groups=groups)


def _group_on_tile(fields: Mapping[str, object], group: str) -> GroupOnTile | None:
    """The index columns ``<group>_*`` of one row; None when the group has no record on the tile."""
    items = fields.get(f"{group}_items")
    if not isinstance(items, str):
        return None
    ids = tuple(i for i in items.split(",") if i)
    dates_text = fields.get(f"{group}_dates")
    if isinstance(dates_text, str):  # every date, in the order of the items
        dates = tuple(_date(d) for d in dates_text.split(","))
    else:  # records of earlier versions: the first item's date only
        dates = (_date(fields.get(f"{group}_datetime")), *([None] * (len(ids) - 1)))
    return GroupOnTile(items=ids, dates=(*dates, *([None] * len(ids)))[:len(ids)],
                       valid=_fraction(fields.get(f"{group}_valid")), cloud=_fraction(fields.get(f"{group}_cloud")))


def iso(value: dt.datetime) -> str:
    """A datetime as STAC writes it (``Z`` for UTC)."""
    return value.isoformat().replace("+00:00", "Z")


def _date(text: object) -> dt.datetime | None:
    return dt.datetime.fromisoformat(text) if isinstance(text, str) and text else None


def _fraction(value: object) -> float | None:
    """An index share as a float; None where the tile has none (None or NaN)."""
    if not isinstance(value, SupportsFloat) or math.isnan(float(value)):
        return None
    return float(value)
