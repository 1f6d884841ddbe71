"""Load test of the tiles stage: a large synthetic region, 1 then 2 Dask workers, peak memory per worker.

    make download region=demo catalog=demo      # once: the demo download to copy
    .venv/bin/python bench/tiles_load.py [--source data/catalogs/demo] [--copies 5] [--workers 1 2]

The region is ``copies x copies`` translated copies of the demo download, side by side on the France
grid (each a region folder of its own, its COGs copied with their georeferencing shifted by whole
source pixels): 5 x 5 copies of a 5.76 km demo download are 3,600 tiles of 480 m (of the 9.6 km demo,
10,000: use --copies 3 for 3,600). For each worker count, the real tiles stage (``run_tiles``, recipe
demo) runs into a fresh store on a LocalCluster of worker processes with one thread each, passed as
``--scheduler`` would be, while the resident memory of every worker process is sampled. Prints, per
run: the stage's wall time, the shard tasks' span (first start to last end), tiles/s and output
band-MP/s over that span, the workers' CPU seconds (tiles per CPU second does not depend on other jobs
sharing the machine) and the peak RSS of each worker.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import psutil
import rasterio
import shapely
import shapely.affinity
from affine import Affine
from dask.distributed import Client, LocalCluster, get_task_stream
from odc.geo.geom import Geometry
from pyproj import Transformer
from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.timing import PeriodicSampler
from msc_france.config import load_recipe
from msc_france.store.layout import layers
from msc_france.tiles.run import TilesRequest, run_tiles

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


def translated_copy(source: Path, target: Path, dx: float, dy: float) -> None:
    """``source`` (a downloaded region folder) copied to ``target``, moved by ``(dx, dy)`` metres."""
    shutil.copytree(source, target)
    region_file = target / "region.geojson"
    region = json.loads(region_file.read_text())
    centre = shapely.centroid(Geometry(region, "EPSG:4326").to_crs(L93).geom).coords[0]
    region_file.write_text(json.dumps(_shift_geojson(region, dx, dy)))
    for item_file in target.glob("*/*/*.json"):
        item = json.loads(item_file.read_text())
        item["id"] = f"{item['id']}-{target.name}"
        item["geometry"] = _shift_geojson(item["geometry"], dx, dy)
        item.pop("bbox", None)
        _shift_item(item_file.parent, item["assets"], centre, dx, dy)
        item_file.write_text(json.dumps(item))


class RssSampler(PeriodicSampler):
    """Peak resident memory of every worker process, sampled every ``interval`` seconds."""

    def __init__(self, client: Client, interval: float = 0.25) -> None:
        super().__init__(interval)
        self.client, self.peak = client, {}

    def sample(self) -> None:
        for worker, rss in self.client.run(lambda: psutil.Process().memory_info().rss).items():
            self.peak[worker] = max(self.peak.get(worker, 0), rss)


def load_run(data: Path, workers: int, console: Console) -> dict[str, float]:
    """The tiles stage on every region under ``data`` with ``workers`` single-thread worker processes."""
    store = str(data / f"load-{workers}.zarr")
    with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=":0",
                      silence_logs=40) as cluster, Client(cluster) as client:
        baseline = max(client.run(lambda: psutil.Process().memory_info().rss).values())
        cpu_before = client.run(_cpu_seconds)
        started = time.perf_counter()
        with RssSampler(client) as sampler, get_task_stream(client) as stream:
            summary = run_tiles(TilesRequest(recipe="demo", data=data, store=store,
                                             scheduler=cluster.scheduler_address), console)
        wall = time.perf_counter() - started
        cpu = sum(client.run(_cpu_seconds)[w] - cpu_before[w] for w in cpu_before)
    spans = [s for task in stream.data if task["key"].startswith("process_shard")
             for s in task["startstops"] if s["action"] == "compute"]
    span = max(s["stop"] for s in spans) - min(s["start"] for s in spans)
    grid = load_recipe("demo").tile_grid
    band_px = sum(grid.tile_px(layer.grid_sensor) ** 2 * len(layer.bands) for layer in layers(load_recipe("demo")))
    return {"workers": workers, "tiles": summary.tiles, "tasks": len(spans), "wall": wall, "span": span,
            "tiles_per_s": summary.tiles / span, "cpu": cpu, "mp_per_s": summary.tiles * band_px / span / 1e6,
            "baseline_mb": baseline / 1e6, "peaks_mb": sorted(p / 1e6 for p in sampler.peak.values())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--source", type=Path, default=Path("data/catalogs/demo"), help="a downloaded demo region")
    parser.add_argument("--copies", type=int, default=5, help="copies along each side of the square region")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--work", type=Path, help="where the copies and stores go (default: a temporary folder)")
    args = parser.parse_args()
    if not (args.source / "catalog.json").exists():
        sys.exit(f"no download in {args.source}: run `make download region=demo catalog=demo` first")
    work = args.work or Path(tempfile.mkdtemp(prefix="tiles-load-"))
    data = work / "data"
    grid = load_recipe("demo").tile_grid
    side = len({t.col for t in grid.tiles_in(Geometry(json.loads((args.source / "region.geojson").read_text()),
                                                     "EPSG:4326"))}) * grid.footprint
    console = Console(width=max(Console().width, 150))
    started = time.perf_counter()
    for i in range(args.copies):
        for j in range(args.copies):
            translated_copy(args.source, data / "catalogs" / f"load-{i:02d}-{j:02d}", i * side, -j * side)
    console.print(f"{args.copies ** 2} copies of {args.source} ({side:g} m) in {data}: "
                  f"{time.perf_counter() - started:.0f} s")
    try:
        runs = [load_run(data, n, console) for n in args.workers]
    finally:
        if args.work is None:
            shutil.rmtree(work)
    table = Table(title=f"tiles stage load test: recipe demo, {runs[0]['tiles']:,} tiles, "
                        f"{runs[0]['tasks']} shard tasks, {psutil.cpu_count()} CPUs (shared with other jobs)")
    for column in ("workers", "wall s", "tasks s", "tiles/s", "band-MP/s", "speed-up", "CPU s", "cores held",
                   "tiles/CPU s", "idle RSS MB", "peak RSS MB per worker"):
        table.add_column(column, justify="right")
    for run in runs:
        table.add_row(str(run["workers"]), f"{run['wall']:.1f}", f"{run['span']:.1f}", f"{run['tiles_per_s']:.1f}",
                      f"{run['mp_per_s']:.1f}", f"{runs[0]['span'] / run['span']:.2f}x", f"{run['cpu']:.1f}",
                      f"{run['cpu'] / run['span']:.2f}",
                      f"{run['tiles'] / run['cpu']:.1f}", f"{run['baseline_mb']:.0f}",
                      ", ".join(f"{p:.0f}" for p in run["peaks_mb"]))
    console.print(table)
    console.print(f"tasks s: span of the shard tasks; speed-up: tasks s of the first run / of this one; cores held: "
                  f"workers' CPU s / tasks s. Load average {psutil.getloadavg()[0]:.1f} on {psutil.cpu_count()} CPUs "
                  "at the end: where other jobs hold the cores, N workers cannot run N times faster; tiles per CPU s "
                  "does not depend on them.")


if __name__ == "__main__":
    main()
