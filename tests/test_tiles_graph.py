"""The tiles stage's graph at scale: the items of every shard found at once (STRtree) are those of the per-shard
intersection of before, a plan's order still filters them, and the shard tasks run in a bounded window, named by
their group."""

from __future__ import annotations

import time
from contextlib import closing
from pathlib import Path

import numpy as np
import pytest
import shapely
from dask.utils import key_split

from msc_france.config import load_recipe
from msc_france.grid import TileGrid, TileId
from msc_france.store.layout import layers, shard_tiles
from msc_france.tiles.jobs import build_jobs, by_shard, items_near, shard_boxes
from msc_france.tiles.run import dask_client, task_name
from msc_france.tiles.sources import SourceItem
from msc_france.tiles.tileplan import TileOrders
from msc_france.tiles.window import bounded

RECIPE = load_recipe("demo")  # 480 m tiles, 6 x 6 tiles a shard


def _world(seed: int) -> tuple[TileGrid, list[TileId], list[SourceItem]]:
    """Scattered tiles (shards with some of their tiles), and s2/l8 items of random triangles and boxes near most
    of them (the tiles of columns 2300-2309 meet none)."""
    rng = np.random.default_rng(seed)
    grid = RECIPE.tile_grid
    cols, rows = rng.integers(2000, 2060, 400), rng.integers(1500, 1560, 400)
    far = [TileId(2300 + n, 1500 + n) for n in range(10)]
    tiles = sorted({TileId(int(c), int(r)) for c, r in zip(cols, rows, strict=True)} | set(far),
                   key=lambda t: (t.row, t.col))
    box = shapely.bounds(shapely.union_all(grid.tile_boxes(cols, rows)))
    items = []
    for n in range(120):
        x, y = rng.uniform(box[0], box[2], 3), rng.uniform(box[1], box[3], 3)
        shape = shapely.Polygon(np.column_stack([x, y])) if n % 2 else shapely.box(x[0], y[0], x[0] + 900, y[0] + 700)
        items.append(SourceItem("s2" if n % 3 else "l8", f"i{n}", "r", None, float(n), None, shape.wkt, ()))
    return grid, tiles, items


def _per_shard(grid: TileGrid, tiles: list[TileId], items: list[SourceItem]) -> list[list[SourceItem]]:
    """The selection as it was: the box of each shard's tiles, every footprint parsed and tested."""
    out = []
    for shard_tile_list in by_shard(tiles, shard_tiles(RECIPE)).values():
        bounds = [grid.tile_bounds(t) for t in shard_tile_list]
        area = shapely.box(min(b.left for b in bounds), min(b.bottom for b in bounds),
                           max(b.right for b in bounds), max(b.top for b in bounds))
        out.append([i for i in items if shapely.from_wkt(i.footprint_wkt).intersects(area)])
    return out


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_strtree_selection_is_the_per_shard_intersection(seed: int) -> None:
    grid, tiles, items = _world(seed)
    shards = by_shard(tiles, shard_tiles(RECIPE))
    near = items_near(shard_boxes(grid, shards), items)
    assert [[items[i] for i in picks] for picks in near] == _per_shard(grid, tiles, items)
    assert sum(len(p) for p in near) > len(shards), "a case where shards meet several items"
    assert any(len(p) == 0 for p in near), "and shards that meet none"


def test_build_jobs_takes_the_items_the_order_lists(tmp_path: Path) -> None:
    grid, tiles, items = _world(3)
    shards = by_shard(tiles, shard_tiles(RECIPE))
    planned = next(iter(shards))  # every tile of this shard ordered: only the listed items
    listed = tuple(i.key for i in items[::2] if i.sensor == "s2")
    orders = TileOrders({("s2", tile): listed for tile in shards[planned]})
    jobs = build_jobs(str(tmp_path / "x.zarr"), grid, [lay for lay in layers(RECIPE) if lay.group in ("s2", "l8")],
                      shards, items, orders, {})
    assert jobs.skipped == jobs.damaged == 0
    assert len(jobs.jobs) == 2 * len(shards)
    near = dict(zip(shards, _per_shard(grid, tiles, items), strict=True))
    for job in jobs.jobs:
        want = [i for i in near[job.shard] if i.sensor == job.layer.group]
        if (job.layer.group, job.shard) == ("s2", planned):
            assert want, "the planned shard meets items"
            want = [i for i in want if i.key in listed]
        assert job.items() == want, (job.layer.group, job.shard)


def _unfinished(dask_scheduler: object) -> int:
    """Tasks the scheduler has not finished (run on the scheduler)."""
    return sum(t.state not in ("memory", "erred", "released", "forgotten")
               for t in dask_scheduler.tasks.values())  # type: ignore[attr-defined]


@pytest.mark.parametrize("window", [6, 16])  # topped up one task at a time, then two at a time
def test_bounded_window_keeps_at_most_n_in_flight_and_runs_every_call(window: int) -> None:
    calls = 60
    seen = []
    with dask_client(None, 2) as client:
        for future in bounded(client, time.sleep, ((0.02 * (n % 3),) for n in range(calls)), window,
                              pure=False):
            seen.append(client.run_on_scheduler(_unfinished))
            future.result()
        assert len(seen) == calls
        assert max(seen) <= window
        assert max(seen) >= window - 2, "the window was used: tasks in flight together"


def test_closing_the_window_cancels_what_is_in_flight() -> None:
    with dask_client(None, 2) as client:
        calls = [(0.0,)] + [(5.0,)] * 20  # one quick, then tasks that would outlive the deadline
        with closing(bounded(client, time.sleep, calls, 8, pure=False)) as done:
            next(done)
        deadline = time.monotonic() + 3
        while client.run_on_scheduler(_unfinished) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert client.run_on_scheduler(_unfinished) == 0


def test_named_tasks_carry_their_prefix_for_the_dashboard_and_metrics() -> None:
    layer = next(layer for layer in layers(RECIPE) if layer.group == "s2")
    assert task_name(("store", None, layer)) == "process_shard_s2"
    with dask_client(None, 1) as client:
        calls = [(0.0, f"g{n % 2}") for n in range(5)]
        futures = list(bounded(client, lambda seconds, _: time.sleep(seconds), calls, 2,
                               name=lambda call: f"nap_{call[1]}", pure=False))
        assert sorted(key_split(f.key) for f in futures) == ["nap_g0"] * 3 + ["nap_g1"] * 2
        assert len({f.key for f in futures}) == 5
