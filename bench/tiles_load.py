"""Load test of the tiles stage: a large synthetic region, 1 then 2 Dask workers, peak memory per worker, and
``msc-france plan``'s tiler core-seconds for the same region against the measured ones.

    make download region=demo catalog=demo      # once: the demo download to copy
    .venv/bin/python bench/tiles_load.py [--source data/catalogs/demo] [--copies 3] [--workers 1 2] [--fine-shards K]

The region is ``copies x copies`` translated copies of the demo download, side by side on the France
grid (each a region folder of its own, its COGs copied with their georeferencing shifted by whole
source pixels, its per-tile plan moved by whole tiles and its items renamed): --copies 3 of the
9.6 x 14.88 km demo download (620 tiles) are 5,580 tiles of 480 m. For each worker count, the real
tiles stage (``run_tiles``, recipe demo) runs into a fresh store on a LocalCluster of worker processes
with one thread each, passed as ``--scheduler`` would be, while the resident memory of every worker
process is sampled. Prints, per run: the stage's wall time, the shard tasks' span (first start to last
end), tiles/s and output band-MP/s over that span, the workers' CPU seconds (tiles per CPU second does
not depend on other jobs sharing the machine) and the peak RSS of each worker. Then, per group, the
plan's prediction for the region (:mod:`bench.tiles_model`) against the CPU seconds measured; with
``--fine-shards K``, one more run with 1 worker in shards of K x K tiles, and the fit of the plan's
figures from the two 1-worker runs (msc_france/throughput.py).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any
from unittest import mock

import geopandas as gpd
import psutil
import rasterio
import shapely
import shapely.affinity
from affine import Affine
from dask.distributed import Client, LocalCluster, Worker, get_task_stream
from odc.geo.geom import Geometry
from pyproj import Transformer
from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.tiles_model import fit_line, predicted, prediction_table
from bench.timing import PeriodicSampler
from msc_france.config import load_recipe
from msc_france.download.plan import PLAN_FILE
from msc_france.grid import TileId
from msc_france.store.layout import layers, shard_tiles
from msc_france.tiles.run import TASK_PREFIX, TilesRequest, run_tiles

L93 = "EPSG:2154"


def _cpu_seconds() -> float:
    """User + system CPU seconds of this process (run on each worker)."""
    times = psutil.Process().cpu_times()
    return times.user + times.system


def _shift_geojson(geometry: dict, dx: float, dy: float) -> dict:
    """A lon/lat GeoJSON geometry moved by ``(dx, dy)`` Lambert-93 metres."""
    moved = shapely.affinity.translate(Geometry(geometry, "EPSG:4326").to_crs(L93).geom, dx, dy)
    return Geometry(moved, L93).to_crs("EPSG:4326").json


def _shift_item(folder: Path, assets: dict, centre: tuple[float, float], dx: float, dy: float) -> None:
    """Move an item's GeoTIFFs in place by the whole number of their coarsest pixels nearest ``(dx, dy)``
    Lambert-93 metres (so that bands of different resolutions stay aligned as they were)."""
    paths = [folder / asset["href"] for asset in assets.values()]
    grids = []
    for path in paths:
        with rasterio.open(path) as ds:
            grids.append((ds.crs, abs(ds.res[0])))
    crs, step = grids[0][0], max(res for _, res in grids)
    to_native = Transformer.from_crs(L93, crs, always_xy=True)
    (x0, y0), (x1, y1) = to_native.transform(*centre), to_native.transform(centre[0] + dx, centre[1] + dy)
    shift = Affine.translation(round((x1 - x0) / step) * step, round((y1 - y0) / step) * step)
    for asset, path in zip(assets.values(), paths, strict=True):
        with rasterio.open(path, "r+", IGNORE_COG_LAYOUT_BREAK="YES") as ds:  # only the georeferencing changes
            ds.transform = shift * ds.transform
            asset["proj:transform"] = list(ds.transform)[:6]


def _shift_plan(path: Path, suffix: str, dx: float, dy: float, footprint: float) -> None:
    """The download's per-tile plan moved by ``(dx, dy)`` metres (whole tiles), its item ids renamed as the
    copied items are: the tiles stage mosaics the copy's items on the copy's tiles as on the original's."""
    plan = gpd.read_parquet(path)
    plan["col"] += round(dx / footprint)
    plan["row"] -= round(dy / footprint)  # rows count from the north edge
    plan["tile"] = [str(TileId(c, r)) for c, r in zip(plan["col"], plan["row"], strict=True)]
    plan = plan.set_geometry(plan.geometry.translate(dx, dy))
    for column in plan.columns[plan.columns.str.endswith("_items")]:
        plan[column] = [None if ids is None else [f"{i}-{suffix}" for i in ids] for ids in plan[column]]
    plan.to_parquet(path, index=False)


def translated_copy(source: Path, target: Path, dx: float, dy: float, footprint: float) -> None:
    """``source`` (a downloaded region folder) copied to ``target``, moved by ``(dx, dy)`` metres (whole tiles
    of ``footprint`` metres)."""
    shutil.copytree(source, target)
    _shift_plan(target / PLAN_FILE, target.name, dx, dy, footprint)
    region_file = target / "region.geojson"
    region = json.loads(region_file.read_text())
    centre = shapely.centroid(Geometry(region, "EPSG:4326").to_crs(L93).geom).coords[0]
    region_file.write_text(json.dumps(_shift_geojson(region, dx, dy)))
    for item_file in target.glob("*/*/*.json"):
        item = json.loads(item_file.read_text())
        if item.get("type") != "Feature":  # a VHR window's record, not a STAC item
            continue
        item["id"] = f"{item['id']}-{target.name}"
        item["geometry"] = _shift_geojson(item["geometry"], dx, dy)
        item.pop("bbox", None)
        _shift_item(item_file.parent, item["assets"], centre, dx, dy)
        item_file.write_text(json.dumps(item))


def _shard_cpu(dask_worker: Worker) -> dict[str, float]:
    """Thread CPU seconds of this worker's shard tasks, per group (Dask's fine performance metrics, by key
    prefix ``process_shard_<group>``)."""
    cpu: dict[str, float] = {}
    for key, value in dask_worker.digests_total.items():
        if (isinstance(key, tuple) and key[0] == "execute" and key[-2:] == ("thread-cpu", "seconds")
                and str(key[-3]).startswith(f"{TASK_PREFIX}_")):
            group = str(key[-3]).removeprefix(f"{TASK_PREFIX}_")
            cpu[group] = cpu.get(group, 0.0) + value
    return cpu


class RssSampler(PeriodicSampler):
    """Peak resident memory of every worker process, sampled every ``interval`` seconds."""

    def __init__(self, client: Client, interval: float = 0.25) -> None:
        super().__init__(interval)
        self.client, self.peak = client, {}

    def sample(self) -> None:
        for worker, rss in self.client.run(lambda: psutil.Process().memory_info().rss).items():
            self.peak[worker] = max(self.peak.get(worker, 0), rss)


def load_run(data: Path, workers: int, console: Console, k: int | None = None) -> dict[str, Any]:
    """The tiles stage on every region under ``data`` with ``workers`` single-thread worker processes, in
    shards of ``k`` x ``k`` tiles (default: the recipe's)."""
    store = str(data / f"load-{workers}-{k}.zarr")
    with contextlib.ExitStack() as patched, LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                                                         dashboard_address=":0", silence_logs=40) as cluster, \
            Client(cluster) as client:
        if k is not None:  # the client builds the store and the jobs; the workers take k from their task
            for module in ("run", "create"):
                patched.enter_context(mock.patch(f"msc_france.tiles.{module}.shard_tiles", return_value=k))
        client.run(importlib.import_module, "msc_france.tiles.shard")  # once a worker: not counted below
        baseline = max(client.run(lambda: psutil.Process().memory_info().rss).values())
        cpu_before = client.run(_cpu_seconds)
        started = time.perf_counter()
        with RssSampler(client) as sampler, get_task_stream(client) as stream:
            summary = run_tiles(TilesRequest(recipe="demo", data=data, store=store,
                                             scheduler=cluster.scheduler_address), console)
        wall = time.perf_counter() - started
        cpu = sum(client.run(_cpu_seconds)[w] - cpu_before[w] for w in cpu_before)
        shard_cpu: dict[str, float] = {}
        for per_worker in client.run(_shard_cpu).values():
            for group, seconds in per_worker.items():
                shard_cpu[group] = shard_cpu.get(group, 0.0) + seconds
    # the workers' CPU outside the task threads (zarr's I/O threads writing the shards, Dask's event loop) goes
    # to the groups in proportion to their tasks' CPU
    share = cpu / sum(shard_cpu.values())
    spans = [s for task in stream.data if task["key"].startswith(TASK_PREFIX)
             for s in task["startstops"] if s["action"] == "compute"]
    span = max(s["stop"] for s in spans) - min(s["start"] for s in spans)
    grid = load_recipe("demo").tile_grid
    band_px = sum(grid.tile_px(layer.grid_sensor) ** 2 * len(layer.bands) for layer in layers(load_recipe("demo")))
    return {"workers": workers, "k": k or shard_tiles(load_recipe("demo")),
            "tiles": summary.tiles, "tasks": len(spans), "wall": wall, "span": span,
            "tiles_per_s": summary.tiles / span, "cpu": cpu, "mp_per_s": summary.tiles * band_px / span / 1e6,
            "baseline_mb": baseline / 1e6, "peaks_mb": sorted(p / 1e6 for p in sampler.peak.values()),
            "shard_cpu": shard_cpu, "group_cpu": {group: seconds * share for group, seconds in shard_cpu.items()}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--source", type=Path, default=Path("data/catalogs/demo"), help="a downloaded demo region")
    parser.add_argument("--copies", type=int, default=3, help="copies along each side of the region")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--fine-shards", type=int, metavar="K",
                        help="one more run, 1 worker, in shards of K x K tiles: fits the CPU of a shard task")
    parser.add_argument("--work", type=Path, help="where the copies and stores go (default: a temporary folder)")
    args = parser.parse_args()
    if not (args.source / "catalog.json").exists():
        sys.exit(f"no download in {args.source}: run `make download region=demo catalog=demo` first")
    work = args.work or Path(tempfile.mkdtemp(prefix="tiles-load-"))
    data = work / "data"
    recipe = load_recipe("demo")
    grid = recipe.tile_grid
    tiles = grid.tiles_in(Geometry(json.loads((args.source / "region.geojson").read_text()), "EPSG:4326"))
    width, height = (len({t.col for t in tiles}) * grid.footprint, len({t.row for t in tiles}) * grid.footprint)
    console = Console(width=max(Console().width, 150))
    started = time.perf_counter()
    for i in range(args.copies):
        for j in range(args.copies):
            translated_copy(args.source, data / "catalogs" / f"load-{i:02d}-{j:02d}", i * width, -j * height,
                            grid.footprint)
    console.print(f"{args.copies ** 2} copies of {args.source} ({width:g} x {height:g} m) in {data}: "
                  f"{time.perf_counter() - started:.0f} s")
    try:
        runs = [load_run(data, n, console) for n in args.workers]
        if args.fine_shards:
            runs.append(load_run(data, 1, console, args.fine_shards))
        plans = {run["k"]: predicted(data, recipe, run["k"]) for run in runs}
    finally:
        if args.work is None:
            shutil.rmtree(work)
    table = Table(title=f"tiles stage load test: recipe demo, {runs[0]['tiles']:,} tiles, "
                        f"{runs[0]['tasks']} shard tasks, {psutil.cpu_count()} CPUs (shared with other jobs)")
    for column in ("workers", "wall s", "tasks s", "tiles/s", "band-MP/s", "speed-up", "CPU s", "cores held",
                   "tiles/CPU s", "idle RSS MB", "peak RSS MB per worker"):
        table.add_column(column, justify="right")
    for run in runs:
        workers = f"{run['workers']}" + (f" (shards of {run['k']})" if run["k"] != runs[0]["k"] else "")
        table.add_row(workers, f"{run['wall']:.1f}", f"{run['span']:.1f}", f"{run['tiles_per_s']:.1f}",
                      f"{run['mp_per_s']:.1f}", f"{runs[0]['span'] / run['span']:.2f}x", f"{run['cpu']:.1f}",
                      f"{run['cpu'] / run['span']:.2f}",
                      f"{run['tiles'] / run['cpu']:.1f}", f"{run['baseline_mb']:.0f}",
                      ", ".join(f"{p:.0f}" for p in run["peaks_mb"]))
    console.print(table)
    console.print(f"tasks s: span of the shard tasks; speed-up: tasks s of the first run / of this one; cores held: "
                  f"workers' CPU s / tasks s. Load average {psutil.getloadavg()[0]:.1f} on {psutil.cpu_count()} CPUs "
                  "at the end: where other jobs hold the cores, N workers cannot run N times faster; tiles per CPU s "
                  "does not depend on them.")
    console.print(prediction_table(plans, runs))
    if args.fine_shards:
        console.print(fit_line(plans, runs[0], runs[-1]))


if __name__ == "__main__":
    main()
