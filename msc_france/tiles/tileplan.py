"""The download stage's plan per tile (``plan.parquet`` beside each local catalog), read as the order in
which the tiles stage mosaics items on each tile. See ``docs/store.md`` (The plan).

Items are named by :attr:`SourceItem.key` (``region/item id``): the same source item downloaded for two
regions is two local items (two windows).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from msc_france.download.plan import PLAN_FILE
from msc_france.errors import UserError
from msc_france.grid import TileId
from msc_france.store.layout import GROUP_ORDER
from msc_france.tiles.sources import SourceItem

UNUSED = np.iinfo(np.int16).max  # rank of an item on a tile whose plan does not list it


@dataclass(frozen=True)
class RegionOrders:
    """One region's plan: per (group, tile), the ids of its local items to mosaic there, best first."""

    region: str
    groups: frozenset[str]  # the groups it orders (it has their `<group>_items` column)
    orders: dict[tuple[str, TileId], tuple[str, ...]]


def read_plan(folder: Path) -> RegionOrders | None:
    """``folder/plan.parquet`` as a :class:`RegionOrders`; None when the download wrote none (an earlier version).
    A null item list is an empty one: nothing of that sensor on the tile."""
    path = folder / PLAN_FILE
    if not path.exists():
        return None
    table = pq.read_table(path)
    if "tile" not in table.column_names:
        raise UserError(f"{path} has no `tile` column; download the region again")
    tiles = [TileId.parse(t) for t in table.column("tile").to_pylist()]
    groups = frozenset(g for g in GROUP_ORDER if f"{g}_items" in table.column_names)  # the groups it orders
    orders = {(group, tile): tuple(ids or ())
              for group in groups
              for tile, ids in zip(tiles, table.column(f"{group}_items").to_pylist(), strict=True)}
    return RegionOrders(folder.name, groups, orders)


@dataclass(frozen=True)
class ShardOrder:
    """What one shard task mosaics on each of its requested tiles: item keys best first, or None for
    every item near the shard, least cloudy first (the order of the items it is given). Small and picklable."""

    tiles: dict[TileId, tuple[str, ...] | None]

    def keys(self) -> set[str] | None:
        """Every item key some tile lists; None when a tile takes every item."""
        if any(keys is None for keys in self.tiles.values()):
            return None
        return {key for keys in self.tiles.values() for key in keys or ()}

    def ranks(self, items: list[SourceItem], shard: tuple[int, int], k: int,
              shape: tuple[int, int]) -> np.ndarray:
        """(item, tile row, tile column) int16: the rank of each of ``items`` on each tile of the shard
        (``shape`` tiles from tile ``shard * k``), :data:`UNUSED` where it is not to be used."""
        ranks = np.full((len(items), *shape), UNUSED, np.int16)
        for tile, keys in self.tiles.items():
            at = (slice(None), tile.row - shard[1] * k, tile.col - shard[0] * k)
            if keys is None:
                ranks[at] = np.arange(len(items))
            else:
                ranks[at] = [keys.index(i.key) if i.key in keys else UNUSED for i in items]
        return ranks


@dataclass(frozen=True)
class TileOrders:
    """Every region's plan in one: item keys per (group, tile), best first. A tile in several plans takes
    the later-listed region's order, then the items of the earlier ones' orders whose ids it lacks (fill-ins);
    a (group, tile) that no plan orders takes every item near it, least cloudy first, as before plans."""

    orders: dict[tuple[str, TileId], tuple[str, ...]]

    @classmethod
    def combine(cls, plans: Iterable[RegionOrders]) -> TileOrders:
        orders: dict[tuple[str, TileId], tuple[str, ...]] = {}
        for plan in reversed(list(plans)):
            for at, ids in plan.orders.items():
                kept = orders.get(at, ())
                seen = {key.split("/", 1)[1] for key in kept}
                orders[at] = kept + tuple(f"{plan.region}/{i}" for i in ids if i not in seen)
        return cls(orders)

    def for_shard(self, group: str, tiles: list[TileId]) -> ShardOrder:
        return ShardOrder({tile: self.orders.get((group, tile)) for tile in tiles})

    def keys(self) -> set[str]:
        """Every item key that some plan lists."""
        return {key for keys in self.orders.values() for key in keys}
