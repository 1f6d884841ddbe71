"""Tiler throughput against odc-stac and against the bare warp floor, on the same inputs and output grid.

    make download region=demo catalog=demo      # once: the inputs
    .venv/bin/python bench/tiles_throughput.py [--data data] [--sensor s2|l8|vhr] [--repeat 3]

For one sensor of the demo download, over the region's tiles (the output grid is the tiles' union on
the France grid at the recipe's GSD), three ways in one process, one thread each:
- msc-france: what one shard task does: render (read windows, warp, mosaic, mask), then open the
  store's arrays and write the data and valid shards (one chunk per tile) into them;
- odc-stac: ``odc.stac.load`` of the same items on the same GeoBox, then ``to_zarr`` (same zstd level);
- warp floor: ``rasterio.warp.reproject`` of the source bands already in memory (no I/O, no masks, no
  write), all bands of an item in one call in their integer type (the fastest way; the old per-band
  float32 floor is printed below it for reference).
All three use the tiler's kernel (``average`` when downsampling, else ``bilinear``).
Prints output megapixels per second, ratios, and the peak of Python-tracked memory (tracemalloc).
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import shutil
import sys
import tempfile
import tracemalloc
from collections.abc import Callable
from pathlib import Path

import dask
import numpy as np
import pystac
import rasterio
import zarr
from rasterio.warp import reproject
from zarr.codecs import ZstdCodec

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.timing import median_seconds
from msc_france.config import load_recipe
from msc_france.grid import tiles_between
from msc_france.sensors import SENSORS
from msc_france.store.layout import layers
from msc_france.tiles.create import ZSTD_LEVEL
from msc_france.tiles.shard import RUST_CODECS
from msc_france.tiles.sources import read_items, region_geometry
from msc_france.tiles.warp import kernel, render


def measure(run: Callable[[], None], repeat: int) -> tuple[float, float]:
    """Median seconds over ``repeat`` timed runs (after one warm-up), then the peak traced MB of one
    more run (tracing slows allocation, so it is kept out of the timed runs)."""
    seconds = median_seconds(run, repeat)
    tracemalloc.start()
    run()
    peak = tracemalloc.get_traced_memory()[1] / 1e6
    tracemalloc.stop()
    return seconds, peak


def profile(run: Callable[[], None], repeat: int, most: int) -> None:
    """Where the time of ``repeat`` runs goes: the ``most`` costliest functions (own time)."""
    profiler = cProfile.Profile()
    profiler.runcall(lambda: [run() for _ in range(repeat)])
    pstats.Stats(profiler).sort_stats("tottime").print_stats(most)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=Path("data"))
    parser.add_argument("--region", default="demo")
    parser.add_argument("--sensor", default="s2", choices=["s2", "l8", "vhr"])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--profile", type=int, default=0, metavar="N",
                        help="also print the N functions where the tiler spends most time (cProfile)")
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

    outputs = {"data": (len(layer.bands), *target.shape), "valid": target.shape}
    for name, shape in outputs.items():  # the store exists before the shard tasks run
        data = name == "data"
        zarr.create_array(str(work / f"ours-{name}.zarr"), shape=shape, dtype=layer.dtype if data else "uint8",
                          chunks=(*shape[:-2], px, px), shards=shape, fill_value=layer.nodata if data else 0,
                          compressors=ZstdCodec(level=ZSTD_LEVEL))

    def ours() -> None:
        rendered = render(layer, items, target)
        for name, values in (("data", rendered.data), ("valid", rendered.valid.view(np.uint8))):
            with zarr.config.set(RUST_CODECS):  # as the tiles stage writes (tiles/shard.py)
                zarr.open_array(str(work / f"ours-{name}.zarr"), mode="r+")[...] = values

    stac_items = []
    for item in pystac.Catalog.from_file(str(folder / "catalog.json")).get_items(recursive=True):
        if item.properties["msc:sensor"] == args.sensor:
            item.make_asset_hrefs_absolute()
            stac_items.append(item)
    sensor = SENSORS[args.sensor]
    assets = [sensor.band(b).asset for b in layer.bands]

    with rasterio.open(items[0].asset(assets[0])) as ds:
        resampling = kernel(abs(ds.res[0]), gsd)  # the tiler's choice of kernel, for all three

    def odc() -> None:
        import odc.stac

        loaded = odc.stac.load(stac_items, bands=list(dict.fromkeys(assets)), geobox=target, chunks={},
                               resampling=resampling.name, groupby="solar_day")
        encoding = {name: {"compressors": ZstdCodec(level=ZSTD_LEVEL)} for name in loaded.data_vars}
        loaded.to_zarr(str(work / "odc.zarr"), mode="w", zarr_format=3, consolidated=False, encoding=encoding)

    stacks = []  # per item: its bands (one source grid), native type, in memory
    for item in items:
        bands = []
        for name in layer.bands:
            with rasterio.open(item.asset(sensor.band(name).asset)) as ds:
                bands.append(ds.read(list(ds.descriptions).index(name) + 1 if name in ds.descriptions else 1))
                transform, crs = ds.transform, ds.crs
        stacks.append((np.stack(bands), transform, crs))
    stacked_out = np.empty((len(layer.bands), *target.shape), dtype=layer.dtype)
    band_out = np.empty(target.shape, dtype=np.float32)
    per_band = [(band.astype(np.float32), transform, crs) for stack, transform, crs in stacks for band in stack]
    grids = {"dst_transform": target.affine, "dst_crs": str(target.crs), "resampling": resampling, "num_threads": 1}

    def floor() -> None:
        for stack, transform, crs in stacks:
            reproject(stack, stacked_out, src_transform=transform, src_crs=crs, **grids)

    def floor_per_band() -> None:
        for band, transform, crs in per_band:
            reproject(band, band_out, src_transform=transform, src_crs=crs, **grids)

    results = {"msc-france tiler": measure(ours, args.repeat), "odc-stac load + to_zarr": measure(odc, args.repeat),
               "warp floor (in memory)": measure(floor, args.repeat),
               "  per band, float32": measure(floor_per_band, args.repeat)}
    if args.profile:
        profile(ours, args.repeat, args.profile)
    shutil.rmtree(work, ignore_errors=True)
    print(f"{args.sensor}: {len(items)} items, {len(layer.bands)} bands, output {target.shape[0]}x{target.shape[1]} px "
          f"= {megapixels:.2f} MP per run, {resampling.name}, median of {args.repeat}")
    base = results["msc-france tiler"][0]
    for name, (seconds, peak) in results.items():
        print(f"{name:26s} {megapixels / seconds:8.2f} MP/s  {seconds:7.3f} s  x{seconds / base:5.2f} of tiler time  "
              f"peak {peak:7.1f} MB")
    print(f"tiler vs odc-stac: {results['odc-stac load + to_zarr'][0] / base:.2f}x faster; "
          f"tiler vs warp floor: {base / results['warp floor (in memory)'][0]:.2f}x the floor's time")


if __name__ == "__main__":
    main()
