"""Tiler throughput against odc-stac and against the bare warp floor, on the same inputs and output grid.

    make download region=demo catalog=demo      # once: the inputs
    .venv/bin/python bench/tiles_throughput.py [--data data] [--sensor s2|l8|vhr] [--repeat 3]

For one sensor of the demo download, over the region's tiles (the output grid is the tiles' union on
the France grid at the recipe's GSD), three ways in one process, one thread each:
- msc-france: the tiles stage's shard renderer (read windows, warp, mosaic, mask) + Zarr v3 write;
- odc-stac: ``odc.stac.load`` of the same items on the same GeoBox, then ``to_zarr``;
- warp floor: ``rasterio.warp.reproject`` of the source bands already in memory (no I/O, no masks).
Prints output megapixels per second, ratios, and the peak of Python-tracked memory (tracemalloc).
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path

import dask
import numpy as np
import pystac
import rasterio
import zarr
from rasterio.enums import Resampling
from rasterio.warp import reproject

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from msc_france.config import load_recipe  # noqa: E402
from msc_france.grid import tiles_between  # noqa: E402
from msc_france.sensors import SENSORS  # noqa: E402
from msc_france.tiles.sources import read_items, region_geometry  # noqa: E402
from msc_france.tiles.store import layers  # noqa: E402
from msc_france.tiles.warp import render  # noqa: E402


def measure(run: Callable[[], None], repeat: int) -> tuple[float, float]:
    """Median seconds over ``repeat`` timed runs (after one warm-up), then the peak traced MB of one
    more run (tracing slows allocation, so it is kept out of the timed runs)."""
    run()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    tracemalloc.start()
    run()
    peak = tracemalloc.get_traced_memory()[1] / 1e6
    tracemalloc.stop()
    return statistics.median(times), peak


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=Path("data"))
    parser.add_argument("--region", default="demo")
    parser.add_argument("--sensor", default="s2", choices=["s2", "l8", "vhr"])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    dask.config.set(scheduler="synchronous")

    recipe = load_recipe("demo")
    grid = recipe.tile_grid
    folder = args.data / "catalogs" / args.region
    if not (folder / "catalog.json").exists():
        sys.exit(f"no download in {folder}: run `make download region={args.region} catalog=demo` first")
    layer = next(layer for layer in layers(recipe) if layer.group == args.sensor)
    items = [i for i in read_items(folder) if i.sensor == args.sensor]
    area = tiles_between(grid, grid.tiles_in(region_geometry(folder)))
    mosaic = grid.geobox(args.sensor)
    gsd = grid.gsd(args.sensor)
    row0, col0 = round((mosaic.affine.f - area.top) / gsd), round((area.left - mosaic.affine.c) / gsd)
    target = mosaic[row0 : row0 + round(area.span_y / gsd), col0 : col0 + round(area.span_x / gsd)]
    megapixels = target.shape[0] * target.shape[1] * len(layer.bands) / 1e6
    work = Path(tempfile.mkdtemp(prefix="bench-tiles-"))
    px = grid.tile_px(args.sensor)

    def ours() -> None:
        rendered = render(layer, items, target)
        out = zarr.create_array(str(work / "ours.zarr"), shape=rendered.data.shape, dtype=layer.dtype,
                                chunks=(len(layer.bands), px, px), shards=rendered.data.shape,
                                fill_value=layer.nodata, overwrite=True)
        out[:] = rendered.data

    stac_items = []
    for item in pystac.Catalog.from_file(str(folder / "catalog.json")).get_items(recursive=True):
        if item.properties["msc:sensor"] == args.sensor:
            item.make_asset_hrefs_absolute()
            stac_items.append(item)
    sensor = SENSORS[args.sensor]
    assets = [sensor.band(b).asset for b in layer.bands]

    def odc() -> None:
        import odc.stac

        loaded = odc.stac.load(stac_items, bands=list(dict.fromkeys(assets)), geobox=target, chunks={},
                               resampling="average" if args.sensor != "vhr" else "bilinear", groupby="solar_day")
        loaded.to_zarr(str(work / "odc.zarr"), mode="w", zarr_format=3, consolidated=False)

    sources = []
    for item in items:
        for name in layer.bands:
            path = item.asset(sensor.band(name).asset)
            with rasterio.open(path) as ds:
                index = list(ds.descriptions).index(name) + 1 if name in ds.descriptions else 1
                sources.append((ds.read(index).astype(np.float32), ds.transform, ds.crs))
    floor_out = np.empty(target.shape, dtype=np.float32)

    def floor() -> None:
        for array, transform, crs in sources:
            reproject(array, floor_out, src_transform=transform, src_crs=crs, dst_transform=target.affine,
                      dst_crs=str(target.crs), resampling=Resampling.average, num_threads=1)

    results = {"msc-france tiler": measure(ours, args.repeat), "odc-stac load + to_zarr": measure(odc, args.repeat),
               "warp floor (in memory)": measure(floor, args.repeat)}
    shutil.rmtree(work, ignore_errors=True)
    print(f"{args.sensor}: {len(items)} items, {len(layer.bands)} bands, output {target.shape[0]}x{target.shape[1]} px "
          f"= {megapixels:.2f} MP per run, median of {args.repeat}")
    base = results["msc-france tiler"][0]
    for name, (seconds, peak) in results.items():
        print(f"{name:26s} {megapixels / seconds:8.2f} MP/s  {seconds:7.3f} s  x{seconds / base:5.2f} of tiler time  "
              f"peak {peak:7.1f} MB")
    print(f"tiler vs odc-stac: {results['odc-stac load + to_zarr'][0] / base:.2f}x faster; "
          f"tiler vs warp floor: {base / results['warp floor (in memory)'][0]:.2f}x the floor's time")


if __name__ == "__main__":
    main()
