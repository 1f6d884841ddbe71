"""The shard tasks of a tiles run, built for every shard at once: footprints parsed once, the items that meet
each shard found with one STRtree query per layer, completion records listed once per group.

Nothing here writes: :func:`build_jobs` only reads the completion records beside the store.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import fsspec
import numpy as np
import shapely

from msc_france.grid import TileGrid, TileId
from msc_france.store.done import read_done
from msc_france.store.durable import intact
from msc_france.store.layout import Layer, done_root, shard_of
from msc_france.tiles.sources import SourceItem
from msc_france.tiles.tileplan import ShardOrder, TileOrders

Shard = tuple[int, int]  # (shard column, shard row)


@dataclass(frozen=True, slots=True)
class Job:
    """One shard task: ``picks`` index the layer's items (``sources``) that meet the shard and its order
    wants, in the order of ``sources``. The items and the order are made when the task is submitted."""

    layer: Layer
    shard: Shard
    tiles: list[TileId]
    sources: tuple[SourceItem, ...]
    picks: np.ndarray

    def items(self) -> list[SourceItem]:
        return [self.sources[i] for i in self.picks]


@dataclass(frozen=True)
class Jobs:
    """The shard tasks to run, and the shards skipped (recorded complete and intact) or found damaged."""

    jobs: list[Job]
    skipped: int
    damaged: int


def by_shard(tiles: Iterable[TileId], k: int) -> dict[Shard, list[TileId]]:
    """The tiles of each shard (``k`` tiles per shard side), shards and tiles by row then column."""
    out: dict[Shard, list[TileId]] = {}
    for tile in sorted(tiles, key=lambda t: (t.row, t.col)):
        out.setdefault(shard_of(tile, k), []).append(tile)
    return out


def shard_boxes(grid: TileGrid, shards: dict[Shard, list[TileId]]) -> np.ndarray:
    """Per shard, the box of its listed tiles (Lambert-93 shapely boxes)."""
    counts = np.fromiter((len(t) for t in shards.values()), np.int64, len(shards))
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    cols = np.fromiter((t.col for ts in shards.values() for t in ts), np.int64, int(counts.sum()))
    rows = np.fromiter((t.row for ts in shards.values() for t in ts), np.int64, int(counts.sum()))
    first = shapely.bounds(grid.tile_boxes(np.minimum.reduceat(cols, starts), np.minimum.reduceat(rows, starts)))
    last = shapely.bounds(grid.tile_boxes(np.maximum.reduceat(cols, starts), np.maximum.reduceat(rows, starts)))
    return shapely.box(first[:, 0], last[:, 1], last[:, 2], first[:, 3])


def items_near(boxes: np.ndarray, items: list[SourceItem]) -> list[np.ndarray]:
    """Per box, the indices (ascending) of the items whose footprint meets it: one STRtree query."""
    tree = shapely.STRtree(shapely.from_wkt([i.footprint_wkt for i in items]))
    box_index, item_index = tree.query(boxes, predicate="intersects")
    order = np.lexsort((item_index, box_index))
    box_index, item_index = box_index[order], item_index[order]
    cuts = np.searchsorted(box_index, np.arange(len(boxes) + 1))
    return [item_index[cuts[n]:cuts[n + 1]] for n in range(len(boxes))]


def recorded_shards(store: str, group: str, storage_options: dict[str, Any]) -> set[Shard]:
    """The shards of ``group`` that have a completion record: one listing of its folder."""
    fs, path = fsspec.core.url_to_fs(f"{done_root(store)}/{group}", **storage_options)
    if not fs.exists(path):
        return set()
    names = (name.rsplit("/", 1)[-1].removesuffix(".json").split("_") for name in fs.ls(path, detail=False)
             if name.endswith(".json"))
    return {(int(col), int(row)) for col, row in names}


def wanted(order: ShardOrder, sources: tuple[SourceItem, ...], picks: np.ndarray) -> np.ndarray:
    """``picks`` less the items no tile of the shard's order lists (all of them when a tile takes every item)."""
    keys = order.keys()
    if keys is None:
        return picks
    kept: np.ndarray = picks[np.fromiter((sources[i].key in keys for i in picks), bool, len(picks))]
    return kept


def build_jobs(store: str, grid: TileGrid, layers: list[Layer], shards: dict[Shard, list[TileId]],
               items: list[SourceItem], orders: TileOrders, storage_options: dict[str, Any]) -> Jobs:
    """A job per layer and shard, less the shards recorded complete whose objects are as recorded."""
    jobs: list[Job] = []
    skipped = damaged = 0
    boxes = shard_boxes(grid, shards) if shards else np.empty(0, object)
    for layer in layers:
        sources = tuple(i for i in items if i.sensor == layer.group)
        near = items_near(boxes, list(sources)) if sources else [np.empty(0, np.intp)] * len(shards)
        recorded = recorded_shards(store, layer.group, storage_options)
        for (shard, tiles), picks in zip(shards.items(), near, strict=True):
            if shard in recorded:
                done = read_done(store, layer.group, shard, storage_options)
                if done and {str(t) for t in tiles} <= done.tiles.keys():
                    if intact(store, done.objects, storage_options):
                        skipped += 1
                        continue
                    damaged += 1
            jobs.append(Job(layer, shard, tiles, sources, wanted(orders.for_shard(layer.group, tiles), sources, picks)))
    return Jobs(jobs, skipped, damaged)
