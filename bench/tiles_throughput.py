"""Tiler throughput against odc-stac, the bare warp floor and the I/O floor, on the same inputs and output grid.

    make download region=demo catalog=demo      # once: the inputs
    .venv/bin/python bench/tiles_throughput.py [--data data] [--sensor all|s2|l8|vhr] [--repeat 3]

For each sensor of the demo download (all three by default), over the region's tiles (the output grid
is the tiles' union on the France grid at the recipe's GSD), five ways in one process, one thread each:
- msc-france: what one shard task does: render (read windows, warp, mosaic, mask), then open the
  store's arrays and write the data and valid shards (one chunk per tile) into them;
- odc-stac: ``odc.stac.load`` of the same items and bands on the same GeoBox, fused into one mosaic
  (one group), then ``to_zarr`` (same zstd level);
- warp floor: ``rasterio.warp.reproject`` of the source bands already in memory (no I/O, no masks, no
  write), all bands of an item in one call in their integer type (the fastest way; the old per-band
  float32 floor is printed below it for reference);
- I/O floor: what no tiler can avoid: open each file once and decode exactly the source window the
  output needs (the output's outline in the file's CRS, one pixel of kernel reach; the quality mask's
  too, as the valid mask needs it), one warp of the item's stacked bands in their integer type into
  the output (none for a source already on the output grid: its window is decoded straight into the
  output), then encode every output chunk (data and valid, the store's chunking) with the store's
  codec, zstd at the store's level (libzstd through numcodecs; the tiler's zarrs calls libzstd too).
  No masks, no mosaic rules, no file writes: the output is encoded, not stored.
All use the tiler's kernel (``average`` when downsampling, else ``bilinear``).
Prints output megapixels per second, ratios, and the peak of Python-tracked memory (tracemalloc),
then one table of the ratios of every sensor. The ways run in turn, ``--repeat`` rounds after a warm-up
one, so that a load that comes and goes weighs on all alike: the ratios are the robust figures.
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
from dataclasses import dataclass
from pathlib import Path

import dask
import numpy as np
import pystac
import rasterio
import zarr
from numcodecs import Zstd
from odc.geo.geobox import GeoBox
from rasterio.warp import reproject, transform_bounds
from rich.console import Console
from rich.table import Table
from zarr.codecs import ZstdCodec

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.timing import interleaved_medians
from msc_france.config import load_recipe
from msc_france.grid import tiles_between
from msc_france.sensors import SENSORS
from msc_france.store.layout import Layer, layers
from msc_france.tiles.create import ZSTD_LEVEL
from msc_france.tiles.shard import RUST_CODECS
from msc_france.tiles.sources import SourceItem, read_items, region_geometry
from msc_france.tiles.warp import GDAL_OPTIONS, kernel, render
from msc_france.windows import padded_window

SENSOR_NAMES = ("s2", "l8", "vhr")
TILER, ODC, WARP, PER_BAND, IO = ("msc-france tiler", "odc-stac load + to_zarr", "warp floor (in memory)",
                                  "  per band, float32", "I/O floor")
Runs = dict[str, tuple[float, float]]  # way -> (median seconds, peak MB)


def peak_mb(run: Callable[[], None]) -> float:
    """The peak traced MB of one run (tracing slows allocation, so it is kept out of the timed runs)."""
    tracemalloc.start()
    run()
    peak = tracemalloc.get_traced_memory()[1] / 1e6
    tracemalloc.stop()
    return peak


def profile(run: Callable[[], None], repeat: int, most: int) -> None:
    """Where the time of ``repeat`` runs goes: the ``most`` costliest functions (own time)."""
    profiler = cProfile.Profile()
    profiler.runcall(lambda: [run() for _ in range(repeat)])
    pstats.Stats(profiler).sort_stats("tottime").print_stats(most)


@dataclass
class Case:
    """One sensor's inputs and output grid."""

    layer: Layer
    items: list[SourceItem]
    target: GeoBox
    px: int  # tile size: the store's chunk
    stac_items: list[pystac.Item]

    @property
    def megapixels(self) -> float:
        return self.target.shape[0] * self.target.shape[1] * len(self.layer.bands) / 1e6


def case(data: Path, region: str, sensor: str) -> Case:
    """``sensor``'s items of the download and the region's tiles as one output grid."""
    recipe = load_recipe("demo")
    grid = recipe.tile_grid
    folder = data / "catalogs" / region
    if not (folder / "catalog.json").exists():
        sys.exit(f"no download in {folder}: run `make download region={region} catalog=demo` first")
    layer = next(layer for layer in layers(recipe) if layer.group == sensor)
    area = tiles_between(grid, grid.tiles_in(region_geometry(folder)))
    mosaic, gsd = grid.geobox(sensor), grid.gsd(sensor)
    row0, col0 = round((mosaic.affine.f - area.top) / gsd), round((area.left - mosaic.affine.c) / gsd)
    target = mosaic[row0 : row0 + round(area.span_y / gsd), col0 : col0 + round(area.span_x / gsd)]
    stac_items = []
    for item in pystac.Catalog.from_file(str(folder / "catalog.json")).get_items(recursive=True):
        if item.properties["msc:sensor"] == sensor:
            item.make_asset_hrefs_absolute()
            stac_items.append(item)
    items = [i for i in read_items(folder) if i.sensor == sensor]
    return Case(layer, items, target, grid.tile_px(sensor), stac_items)


def tiler(c: Case, work: Path) -> Callable[[], None]:
    """Render, then write the shard as the tiles stage does (into arrays created beforehand, as the store's)."""
    outputs = {"data": (len(c.layer.bands), *c.target.shape), "valid": c.target.shape}
    for name, shape in outputs.items():
        data = name == "data"
        zarr.create_array(str(work / f"ours-{name}.zarr"), shape=shape, dtype=c.layer.dtype if data else "uint8",
                          chunks=(*shape[:-2], c.px, c.px), shards=shape, fill_value=c.layer.nodata if data else 0,
                          compressors=ZstdCodec(level=ZSTD_LEVEL))

    def run() -> None:
        rendered = render(c.layer, c.items, c.target)
        for name, values in (("data", rendered.data), ("valid", rendered.valid.view(np.uint8))):
            with zarr.config.set(RUST_CODECS):  # as the tiles stage writes (tiles/shard.py)
                zarr.open_array(str(work / f"ours-{name}.zarr"), mode="r+")[...] = values
    return run


def odc(c: Case, work: Path, resampling: str) -> Callable[[], None]:
    """odc-stac: every band of the layer (``asset.N`` inside a multi-band asset), one mosaic of all items."""
    sensor = SENSORS[c.layer.group]
    shared = [sensor.band(b).asset for b in c.layer.bands]
    bands = [f"{band.asset}.{band.asset_band}" if shared.count(band.asset) > 1 else band.asset
             for band in map(sensor.band, c.layer.bands)]

    def run() -> None:
        import odc.stac

        loaded = odc.stac.load(c.stac_items, bands=bands, geobox=c.target, chunks={}, resampling=resampling,
                               groupby=lambda item, parsed, index: 0)  # one group: the tiler's one mosaic
        encoding = {name: {"compressors": ZstdCodec(level=ZSTD_LEVEL)} for name in loaded.data_vars}
        loaded.to_zarr(str(work / "odc.zarr"), mode="w", zarr_format=3, consolidated=False, encoding=encoding)
    return run


@dataclass
class Source:
    """One file of an item as the floors read it: the bands it gives, the window the output needs."""

    path: str
    indexes: list[int]
    window: rasterio.windows.Window
    box: tuple[slice, slice] | None  # where the window lies in the output, when the file is on its grid


def sources(c: Case, item: SourceItem) -> tuple[list[Source], Source | None]:
    """The item's band files (in the layer's band order) and its quality mask file, with their windows."""
    sensor = SENSORS[c.layer.group]
    files: dict[str, list[int]] = {}
    for name in c.layer.bands:
        band = sensor.band(name)
        files.setdefault(band.asset, []).append(band.asset_band)
    bounds = c.target.boundingbox
    t = c.target.affine

    def source(asset: str, indexes: list[int]) -> Source:
        with rasterio.open(item.asset(asset)) as ds:
            a = ds.transform
            offsets = ((t.c - a.c) / a.a, (t.f - a.f) / a.e)
            same = (a.a, a.e, ds.crs.to_epsg()) == (t.a, t.e, c.target.crs.epsg)
            if same and np.allclose(offsets, np.round(offsets)):
                window = padded_window(ds, bounds, 0)  # on the output grid: exactly the output's pixels
                row, col = round(window.row_off - offsets[1]), round(window.col_off - offsets[0])
                return Source(ds.name, indexes, window, (slice(row, row + window.height),
                                                          slice(col, col + window.width)))
            outline = transform_bounds(str(c.target.crs), ds.crs, *bounds, densify_pts=21)
            return Source(ds.name, indexes, padded_window(ds, outline, 1), None)  # 1 px: the kernel's reach

    bands = [source(asset, indexes) for asset, indexes in files.items()]
    return bands, None if sensor.mask is None else source(sensor.mask.asset, [1])


def io_floor(c: Case, resampling: rasterio.enums.Resampling) -> Callable[[], None]:
    """Decode the needed windows once, one warp of each item's stacked bands, encode every output chunk."""
    plans = [sources(c, item) for item in c.items]
    valid = render(c.layer, c.items, c.target).valid.view(np.uint8)  # the output's valid mask, to encode
    codec = Zstd(level=ZSTD_LEVEL)
    count = len(c.layer.bands)

    def run() -> None:
        out = np.full((count, *c.target.shape), c.layer.nodata, c.layer.dtype)
        with rasterio.Env(**GDAL_OPTIONS):
            for bands, mask in plans:
                if all(s.box is not None for s in bands):  # on the output grid: decoded into it, no warp
                    start = 0
                    for s in bands:
                        with rasterio.open(s.path) as ds:
                            ds.read(s.indexes, window=s.window, out=out[(slice(start, start + len(s.indexes)),
                                                                         *s.box)])
                        start += len(s.indexes)
                else:
                    stack = np.empty((count, int(bands[0].window.height), int(bands[0].window.width)),
                                     c.layer.dtype)
                    start = 0
                    for s in bands:
                        with rasterio.open(s.path) as ds:
                            ds.read(s.indexes, window=s.window, out=stack[start : start + len(s.indexes)])
                            transform, crs = ds.window_transform(s.window), ds.crs
                        start += len(s.indexes)
                    reproject(stack, out, src_transform=transform, src_crs=crs, dst_transform=c.target.affine,
                              dst_crs=str(c.target.crs), resampling=resampling, init_dest_nodata=False,
                              num_threads=1)
                if mask is not None:
                    with rasterio.open(mask.path) as ds:
                        ds.read(1, window=mask.window)
        for array in (out, valid):
            for row in range(0, array.shape[-2], c.px):
                for col in range(0, array.shape[-1], c.px):
                    codec.encode(np.ascontiguousarray(array[..., row : row + c.px, col : col + c.px]))
    return run


def warp_floors(c: Case, resampling: rasterio.enums.Resampling) -> tuple[Callable[[], None], Callable[[], None]]:
    """The bare warp of the whole source bands in memory: stacked in their type, and per band in float32."""
    sensor = SENSORS[c.layer.group]
    stacks = []  # per item: its bands (one source grid), native type, in memory
    for item in c.items:
        bands = []
        for name in c.layer.bands:
            with rasterio.open(item.asset(sensor.band(name).asset)) as ds:
                bands.append(ds.read(list(ds.descriptions).index(name) + 1 if name in ds.descriptions else 1))
                transform, crs = ds.transform, ds.crs
        stacks.append((np.stack(bands), transform, crs))
    stacked_out = np.empty((len(c.layer.bands), *c.target.shape), dtype=c.layer.dtype)
    band_out = np.empty(c.target.shape, dtype=np.float32)
    per_band = [(band.astype(np.float32), transform, crs) for stack, transform, crs in stacks for band in stack]
    grids = {"dst_transform": c.target.affine, "dst_crs": str(c.target.crs), "resampling": resampling,
             "num_threads": 1}

    def floor() -> None:
        for stack, transform, crs in stacks:
            reproject(stack, stacked_out, src_transform=transform, src_crs=crs, **grids)

    def floor_per_band() -> None:
        for band, transform, crs in per_band:
            reproject(band, band_out, src_transform=transform, src_crs=crs, **grids)
    return floor, floor_per_band


def bench(c: Case, repeat: int, most: int) -> Runs:
    """Time the five ways on one sensor's case; print them."""
    work = Path(tempfile.mkdtemp(prefix="bench-tiles-"))
    with rasterio.open(c.items[0].asset(SENSORS[c.layer.group].band(c.layer.bands[0]).asset)) as ds:
        resampling = kernel(abs(ds.res[0]), abs(c.target.resolution.x))  # the tiler's choice of kernel, for all
    floor, floor_per_band = warp_floors(c, resampling)
    runs = {TILER: tiler(c, work), ODC: odc(c, work, resampling.name), WARP: floor, PER_BAND: floor_per_band,
            IO: io_floor(c, resampling)}
    seconds = interleaved_medians(runs, repeat)
    results = {name: (seconds[name], peak_mb(run)) for name, run in runs.items()}
    if most:
        profile(runs[TILER], repeat, most)
    shutil.rmtree(work, ignore_errors=True)
    print(f"{c.layer.group}: {len(c.items)} items, {len(c.layer.bands)} bands, output {c.target.shape[0]}x"
          f"{c.target.shape[1]} px = {c.megapixels:.2f} MP per run, {resampling.name}, median of {repeat}")
    base = results[TILER][0]
    for name, (seconds, peak) in results.items():
        print(f"{name:26s} {c.megapixels / seconds:8.2f} MP/s  {seconds:7.3f} s  x{seconds / base:5.2f} of tiler time  "
              f"peak {peak:7.1f} MB")
    print(f"tiler vs odc-stac: {results[ODC][0] / base:.2f}x faster; tiler vs warp floor: "
          f"{base / results[WARP][0]:.2f}x the floor's time; tiler vs I/O floor: {base / results[IO][0]:.2f}x")
    return results


def summary(cases: dict[str, Case], results: dict[str, Runs], repeat: int) -> Table:
    """One row per sensor: throughputs, the tiler's ratios, peaks."""
    table = Table(title=f"tiler throughput, output MP/s (one thread, median of {repeat}); ratios of times")
    for column in ("sensor", "output px", "tiler", "odc-stac", "warp floor", "I/O floor", "odc-stac / tiler",
                   "tiler / warp floor", "tiler / I/O floor", "peak MB tiler, odc-stac, I/O floor"):
        table.add_column(column, justify="left" if column == "sensor" else "right")
    for sensor, runs in results.items():
        c, base = cases[sensor], runs[TILER][0]
        table.add_row(f"{sensor} ({len(c.layer.bands)} bands)", f"{c.target.shape[0]} x {c.target.shape[1]}",
                      *(f"{c.megapixels / runs[way][0]:.1f}" for way in (TILER, ODC, WARP, IO)),
                      f"{runs[ODC][0] / base:.2f}x", f"{base / runs[WARP][0]:.2f}x", f"{base / runs[IO][0]:.2f}x",
                      ", ".join(f"{runs[way][1]:.1f}" for way in (TILER, ODC, IO)))
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=Path("data"))
    parser.add_argument("--region", default="demo")
    parser.add_argument("--sensor", default="all", choices=["all", *SENSOR_NAMES])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--profile", type=int, default=0, metavar="N",
                        help="also print the N functions where the tiler spends most time (cProfile)")
    args = parser.parse_args()
    dask.config.set(scheduler="synchronous")
    sensors = SENSOR_NAMES if args.sensor == "all" else (args.sensor,)
    cases = {sensor: case(args.data, args.region, sensor) for sensor in sensors}
    results = {sensor: bench(c, args.repeat, args.profile) for sensor, c in cases.items()}
    Console(width=160).print(summary(cases, results, args.repeat))


if __name__ == "__main__":
    main()
