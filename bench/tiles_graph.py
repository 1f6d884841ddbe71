"""The Dask graph of a France run of the tiles stage, submitted dry: the jobs of the msc-france recipe over the
France tiles, built by the tiles stage's own code, then submitted to a cluster of worker processes whose task
function does nothing (nothing is read or written), in a bounded window and, as before, all at once.

    .venv/bin/python bench/tiles_graph.py [--tiles 5000] [--workers 2] [--sample 50]

``--tiles N`` keeps the first N France tiles (rows from the north) for the submissions; 0 keeps all of them
(172,655 tiles, 4 layers: about 690,000 tasks). The jobs are always built for all of France too. Items come
from the footprint world (msc_france/demo/footprints.py) for one month: its Sentinel-2 and Landsat-8 scenes,
its WorldCover tiles as the labels' items, and 20 km squares as VHR items; there is no plan, so a shard takes
every item that meets it. The scheduler and the workers run as ``dask scheduler`` / ``dask worker`` processes,
so that the scheduler's memory is its own; the peak RSS of the client, the scheduler and the workers
(together) is sampled every 50 ms. The old per-shard job loop (a
completion record read per shard, every footprint parsed and tested per shard) is timed on ``--sample`` shards
per layer and scaled.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import pickle
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import psutil
import shapely
from dask.distributed import Client, as_completed
from pyproj import Transformer
from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.timing import PeriodicSampler
from msc_france.config import DateRange, load_recipe
from msc_france.demo.footprints import footprints
from msc_france.grid import TileGrid, TileId
from msc_france.regions import resolve_region
from msc_france.store.done import read_done
from msc_france.store.layout import layers, shard_of, shard_tiles
from msc_france.tiles.jobs import Job, Jobs, Shard, build_jobs, by_shard
from msc_france.tiles.sources import SourceItem
from msc_france.tiles.tileplan import TileOrders
from msc_france.tiles.window import bounded, window_size

MONTH = DateRange(start=dt.date(2023, 6, 1), end=dt.date(2023, 6, 30))
VHR_SQUARE = 20_000.0  # metres


def _item(sensor: str, name: str, footprint: shapely.Geometry, cloud: float = 0.0) -> SourceItem:
    return SourceItem(sensor, name, "france", None, cloud, None, footprint.wkt, (("data", f"/nowhere/{name}.tif"),))


def world() -> list[SourceItem]:
    """The month's items of every layer, footprints in Lambert-93."""
    prints = footprints(MONTH, seed=2154)
    to_l93 = Transformer.from_crs("EPSG:4326", "EPSG:2154", always_xy=True)

    def l93(geometry: shapely.Geometry) -> shapely.Geometry:
        dense = shapely.segmentize(geometry, 0.5)  # degrees: a STAC footprint has a few vertices a side
        return shapely.transform(dense, lambda xy: np.column_stack(to_l93.transform(*xy.T)))

    items = [_item("s2", f"{s.tile}-{s.datatake:%Y%m%d}-{n}", l93(s.footprint), s.cloud_cover)
             for n, s in enumerate(prints.s2)]
    items += [_item("l8", f"{s.path:03d}{s.row:03d}-{s.when:%Y%m%d}", l93(s.footprint), s.cloud_cover)
              for s in prints.landsat if s.platform == "landsat-8"]
    items += [_item("labels", f"wc-{w.lat}-{w.lon}", l93(w.footprint)) for w in prints.worldcover]
    france = l93(resolve_region("France").geometry.geom)
    left, bottom, right, top = france.bounds
    xs, ys = np.meshgrid(np.arange(left, right, VHR_SQUARE), np.arange(bottom, top, VHR_SQUARE))
    squares = shapely.box(xs.ravel(), ys.ravel(), xs.ravel() + VHR_SQUARE, ys.ravel() + VHR_SQUARE)
    items += [_item("vhr", f"vhr-{n}", square) for n, square in enumerate(squares[shapely.intersects(squares, france)])]
    return items


def old_loop_seconds(store: str, grid: TileGrid, jobs_layers: list[Any], shards: dict[Shard, list[TileId]],
                     items: list[SourceItem], sample: int) -> float:
    """The job loop as it was (a record read per shard, every footprint parsed per shard), timed on ``sample``
    shards per layer, scaled to all shards."""
    pick = list(shards.items())[:: max(1, len(shards) // sample)][:sample]
    start = time.perf_counter()
    for layer in jobs_layers:
        sensor_items = [i for i in items if i.sensor == layer.group]
        for shard, tiles in pick:
            read_done(store, layer.group, shard, {})
            bounds = [grid.tile_bounds(t) for t in tiles]
            area = shapely.box(min(b.left for b in bounds), min(b.bottom for b in bounds),
                               max(b.right for b in bounds), max(b.top for b in bounds))
            [i for i in sensor_items if shapely.from_wkt(i.footprint_wkt).intersects(area)]
    return (time.perf_counter() - start) / len(pick) * len(shards)


def noop(*args: Any, **kwargs: Any) -> None:
    """The dry task: takes a shard task's arguments, does nothing."""


class Peak(PeriodicSampler):
    """The peak RSS (MB) of processes together, sampled every 50 ms in a thread while in use, and its growth
    from the start."""

    def __init__(self, *pids: int) -> None:
        super().__init__(0.05)
        self.processes = [psutil.Process(pid) for pid in pids]
        self.start = self.peak = self.rss()

    def rss(self) -> float:
        return sum(process.memory_info().rss for process in self.processes) / 2**20

    def sample(self) -> None:
        self.peak = max(self.peak, self.rss())

    def __str__(self) -> str:
        return f"{self.peak:,.0f} (+{self.peak - self.start:,.0f})"


@contextmanager
def cluster(workers: int, folder: Path) -> Iterator[tuple[Client, int]]:
    """A ``dask scheduler`` process and ``workers`` one-thread worker processes; the client and the scheduler's pid."""
    dask = str(Path(sys.executable).with_name("dask"))
    file = folder / f"scheduler-{time.monotonic_ns()}.json"
    scheduler = subprocess.Popen([dask, "scheduler", "--host", "127.0.0.1", "--port", "0", "--dashboard-address",
                                  "127.0.0.1:0", "--scheduler-file", str(file)], stderr=subprocess.DEVNULL)
    worker = subprocess.Popen([dask, "worker", "--scheduler-file", str(file), "--nworkers", str(workers),
                               "--nthreads", "1", "--no-dashboard"], stderr=subprocess.DEVNULL)
    try:
        while not file.exists():
            time.sleep(0.1)
        with Client(scheduler_file=str(file)) as client:
            client.wait_for_workers(workers, timeout=60)
            yield client, scheduler.pid
    finally:
        for process in (worker, scheduler):
            process.terminate()
            process.wait(30)


def calls(jobs: list[Job], store: str, grid: TileGrid, k: int,
          orders: TileOrders) -> Iterator[tuple[Any, ...]]:
    """The shard tasks' arguments, as the tiles stage submits them."""
    for job in jobs:
        yield (store, grid, job.layer, job.shard, k, job.tiles, job.items(), {},
               orders.for_shard(job.layer.group, job.tiles))


def submit(jobs: list[Job], args: tuple[str, TileGrid, int, TileOrders], workers: int, folder: Path,
           window: bool) -> tuple[float, Peak, Peak, Peak, int]:
    """Seconds, peak RSS of the client, the scheduler and the workers, window (0: all at once) of a dry
    submission of ``jobs``."""
    with (cluster(workers, folder) as (client, pid), Peak(os.getpid()) as mine, Peak(pid) as theirs,
          Peak(*client.run(os.getpid).values()) as workers_rss):
        start = time.perf_counter()
        size = window_size(client) if window else 0
        if window:
            done = sum(1 for _ in bounded(client, noop, calls(jobs, *args), size, pure=False, retries=2))
        else:
            futures = [client.submit(noop, *call, pure=False, retries=2) for call in calls(jobs, *args)]
            done = sum(1 for _ in as_completed(futures))
            del futures
        assert done == len(jobs)
        seconds = time.perf_counter() - start
    return seconds, mine, theirs, workers_rss, size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiles", type=int, default=5_000, help="first N France tiles submitted (0: all)")
    parser.add_argument("--workers", type=int, default=2, help="worker processes of one thread")
    parser.add_argument("--sample", type=int, default=50, help="shards per layer the old job loop is timed on")
    args = parser.parse_args()
    recipe = load_recipe("msc-france")
    grid, k = recipe.tile_grid, shard_tiles(recipe)
    france = grid.tiles_in(resolve_region("France").geometry)
    start = time.perf_counter()
    items = world()
    made = time.perf_counter() - start
    groups = layers(recipe)
    console = Console(width=140)
    with tempfile.TemporaryDirectory() as tmp:
        store, orders = f"{tmp}/msc-france.zarr", TileOrders({})
        shards = by_shard(france, k)
        start = time.perf_counter()
        built: Jobs = build_jobs(store, grid, groups, shards, items, orders, {})
        build_s = time.perf_counter() - start
        build_rss = psutil.Process().memory_info().rss / 2**20
        old_s = old_loop_seconds(store, grid, groups, shards, items, args.sample)
        kept = {shard_of(tile, k) for tile in france[: args.tiles or None]}
        jobs = [job for job in built.jobs if job.shard in kept]
        runs = {window: submit(jobs, (store, grid, k, orders), args.workers, Path(tmp), window)
                for window in (True, False)}
    per_sensor = ", ".join(f"{sum(i.sensor == g.group for i in items):,} {g.group}" for g in groups)
    picks = sum(len(j.picks) for j in built.jobs) / max(len(built.jobs), 1)
    table = Table(title=f"dry Dask graph of the tiles stage, msc-france recipe: {len(france):,} France tiles, "
                        f"{len(built.jobs):,} shard tasks; items {per_sensor} (made in {made:.1f} s), "
                        f"{picks:.1f} per task")
    for column in ("step", "tasks", "seconds", "tasks/s", "peak MB (+growth): client", "scheduler", "workers"):
        table.add_column(column, justify="left" if column == "step" else "right")
    table.add_row(f"jobs, per-shard loop as before (timed on {args.sample} shards/layer, scaled)",
                  f"{len(built.jobs):,}", f"{old_s:,.0f}", f"{len(built.jobs) / old_s:,.0f}", "", "", "")
    table.add_row("jobs, build_jobs (STRtree, one listing)", f"{len(built.jobs):,}", f"{build_s:,.1f}",
                  f"{len(built.jobs) / build_s:,.0f}", f"{build_rss:,.0f} (RSS after)", "", "")
    for window, (seconds, client_rss, scheduler_rss, workers_rss, size) in runs.items():
        name = f"submit, bounded window of {size}" if window else "submit, all at once as before"
        table.add_row(name, f"{len(jobs):,}", f"{seconds:,.1f}", f"{len(jobs) / seconds:,.0f}",
                      str(client_rss), str(scheduler_rss), str(workers_rss))
    console.print(table)
    sample = [next(calls([job], store, grid, k, orders)) for job in jobs[:: max(1, len(jobs) // 1000)]]
    print(f"arguments of a task, pickled: {np.mean([len(pickle.dumps(call)) for call in sample]):,.0f} bytes on "
          f"average; {args.workers} worker processes of one thread; {psutil.cpu_count()} cores")


if __name__ == "__main__":
    main()
