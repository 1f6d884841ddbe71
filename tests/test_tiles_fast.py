"""The tiler's fast paths against the general ones: warps against GDAL's nodata-aware (masked) warp,
whole-shard writes against zarr-python's bytes, a shard rewritten without reading against the merge,
band sums from histograms against float64 sums."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest
import rasterio
import shapely
import zarr
from odc.geo.geobox import GeoBox
from odc.geo.geom import Geometry
from rasterio.enums import Resampling
from rasterio.transform import from_origin
from rasterio.warp import reproject, transform_bounds
from zarr.codecs import ZstdCodec

from msc_france.config import load_recipe
from msc_france.grid import TileId
from msc_france.store.layout import layers, shard_box, shard_of, shard_tiles
from msc_france.tiles import shard as shard_module
from msc_france.tiles.create import create_or_open
from msc_france.tiles.shard import RUST_CODECS, _sums, process_shard
from msc_france.tiles.sources import read_items
from msc_france.tiles.warp import _warp
from tests.test_tiles import downloaded  # noqa: F401 - the demo download, as a fixture

UTM = "EPSG:32631"
ORIGIN = (360_000.0, 4_830_000.0)  # UTM 31N, near Toulouse


def _source(path: Path, holes: bool, bands: int = 2, nodata: int | None = 0, fill: int = 0) -> Path:
    """A smooth uint16 UTM raster at 10 m, with ``fill`` holes and a ``fill`` edge if asked; the file
    declares ``nodata`` (None: none)."""
    rng = np.random.default_rng(4)
    yy, xx = np.mgrid[0:300, 0:300]
    data = np.stack([1000 + 300 * b + 400 * np.sin(xx / (7 + b)) * np.cos(yy / 11) + rng.integers(0, 50, xx.shape)
                     for b in range(bands)]).astype(np.uint16)
    if holes:
        for r, c, k in rng.integers(0, 300, (150, 3)):
            data[:, r : r + k % 6 + 1, c : c + k % 6 + 1] = fill
        data[:, :, :25] = fill  # a swath edge
    profile = {"driver": "GTiff", "width": 300, "height": 300, "count": bands, "dtype": "uint16", "nodata": nodata,
               "crs": UTM, "transform": from_origin(*ORIGIN, 10, 10)}
    with rasterio.open(path, "w", **profile) as out:
        out.write(data)
    return path


def _lambert_target(gsd: float, beyond: bool) -> GeoBox:
    """A Lambert-93 grid inside the source (or past its edges), pixel-aligned on the gsd."""
    left, bottom, right, top = transform_bounds(UTM, "EPSG:2154", ORIGIN[0], ORIGIN[1] - 3_000, ORIGIN[0] + 3_000,
                                                ORIGIN[1])
    pad = 300 if beyond else -300
    box = [round(v / gsd) * gsd for v in (left - pad, bottom - pad, right + pad, top + pad)]
    return GeoBox.from_bbox(box, "EPSG:2154", resolution=gsd)


def _masked_reference(path: Path, target: GeoBox, resampling: Resampling) -> tuple[np.ndarray, np.ndarray]:
    """GDAL's nodata-aware warp of the bands as float32 with NaN (the general path), rounded half up."""
    with rasterio.open(path) as ds:
        values = ds.read().astype(np.float32)
        values[ds.read() == ds.nodata] = np.nan
        out = np.full((ds.count, *target.shape), np.nan, np.float32)
        reproject(values, out, src_transform=ds.transform, src_crs=ds.crs, src_nodata=np.nan,
                  dst_transform=target.affine, dst_crs=str(target.crs), dst_nodata=np.nan, resampling=resampling)
    present = ~np.isnan(out).any(axis=0)
    return np.where(present, np.floor(out + 0.5), 0), present


def _fast(path: Path, target: GeoBox, resampling: Resampling) -> tuple[np.ndarray, np.ndarray, np.dtype]:
    with rasterio.open(path) as ds:
        values, present = _warp([(ds, list(range(1, ds.count + 1)))], target, resampling, ds.nodata)
    rounded = np.floor(values + 0.5) if values.dtype.kind == "f" else values
    return np.where(present, rounded, 0), present, values.dtype


@pytest.mark.parametrize("resampling", [Resampling.bilinear, Resampling.average, Resampling.nearest])
@pytest.mark.parametrize("holes", [False, True])
@pytest.mark.parametrize("beyond", [False, True])
def test_warp_fast_paths_equal_the_masked_warp(tmp_path: Path, resampling: Resampling, holes: bool,
                                               beyond: bool) -> None:
    path = _source(tmp_path / "src.tif", holes)
    target = _lambert_target(20.0 if resampling == Resampling.average else 10.0, beyond)
    expected, expected_present = _masked_reference(path, target, resampling)
    found, present, dtype = _fast(path, target, resampling)
    integers = resampling == Resampling.nearest or not holes
    assert dtype == (np.uint16 if integers else np.float32), "integers go to GDAL as they are when they may"
    assert present.mean() > 0.3 and np.array_equal(present, expected_present)
    difference = np.abs(found.astype(np.int64) - expected.astype(np.int64))
    assert difference.max() <= 1 and (difference > 0).mean() < 1e-3, "equal but for rounding ties"
    if resampling == Resampling.nearest:
        assert difference.max() == 0


def test_same_grid_read_equals_the_warp(tmp_path: Path) -> None:
    """A target on the source's own grid (part of it past the edge) is read, not warped: same values."""
    path = _source(tmp_path / "src.tif", holes=True)
    target = GeoBox((400, 200), from_origin(ORIGIN[0] + 2_000, ORIGIN[1] - 1_000, 10, 10), UTM)
    expected, expected_present = _masked_reference(path, target, Resampling.bilinear)
    found, present, dtype = _fast(path, target, Resampling.bilinear)
    assert dtype == np.uint16 and np.array_equal(present, expected_present)
    assert np.array_equal(found, expected)


@pytest.mark.parametrize(("dtype", "shape", "chunks", "shards", "compressor"), [
    ("uint16", (2, 20, 12), (2, 4, 4), (2, 8, 8), ZstdCodec(level=1)),
    ("uint8", (20, 12), (4, 4), (8, 8), ZstdCodec(level=0, checksum=True)),
    ("uint16", (2, 20, 12), (2, 4, 4), (2, 8, 8), None),  # zarr's default compressor
])
def test_the_stages_rust_codecs_store_what_zarr_python_stores(tmp_path: Path, dtype: str, shape: tuple[int, ...],
                                                              chunks: tuple[int, ...], shards: tuple[int, ...],
                                                              compressor: ZstdCodec | None) -> None:
    """Every shard written through zarrs-python's pipeline (edge shards, empty chunks, an all-fill shard)
    holds the chunks zarr-python writes (the same encoded chunks, so the same size; the order of chunks
    inside a shard is the writer's choice) and reads back with zarr-python's own pipeline."""
    options = {"shape": shape, "dtype": dtype, "chunks": chunks, "shards": shards, "fill_value": 0,
               **({"compressors": compressor} if compressor else {})}
    reference = zarr.create_array(str(tmp_path / "reference"), **options)
    zarr.create_array(str(tmp_path / "ours"), **options)
    with zarr.config.set(RUST_CODECS):
        ours = zarr.open_array(str(tmp_path / "ours"), mode="r+")
    assert type(ours._async_array.codec_pipeline).__name__ == "ZarrsCodecPipeline", "the premise: zarrs encodes"
    data = np.random.default_rng(0).integers(0, 3, shape).astype(dtype)
    data[..., :4, :4] = 0  # an empty chunk
    data[..., 16:, :] = 0  # empty shards
    for index in itertools.product(*(range(-(-n // s)) for n, s in zip(shape, shards, strict=True))):
        region = tuple(slice(i * s, min((i + 1) * s, n)) for i, s, n in zip(index, shards, shape, strict=True))
        reference[region] = data[region]
        ours[region] = data[region]
    files = sorted(p.relative_to(tmp_path / "reference") for p in (tmp_path / "reference").rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(tmp_path / "ours") for p in (tmp_path / "ours").rglob("*") if p.is_file())
    assert len(files) == 5, "4 shards and the metadata: the all-fill shards are not stored"
    sizes = [((tmp_path / "reference" / f).stat().st_size, (tmp_path / "ours" / f).stat().st_size) for f in files]
    assert all(a == b for a, b in sizes), sizes
    assert np.array_equal(zarr.open_array(str(tmp_path / "ours"))[:], data)


def test_whole_shard_rewrite_skips_the_read_and_equals_the_merge(downloaded: Path, tmp_path: Path,  # noqa: F811
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    recipe = load_recipe("demo")
    grid = recipe.tile_grid
    layer = next(layer for layer in layers(recipe) if layer.group == "l8")
    items = [i for folder in (downloaded / "catalogs").iterdir() for i in read_items(folder) if i.sensor == "l8"]
    k = shard_tiles(recipe)
    shard = shard_of(grid.tiles_in(Geometry(shapely.from_wkt(items[0].footprint_wkt), "EPSG:2154"))[0], k)
    rows, cols = shard_box(grid, layer, shard, k)
    px = grid.tile_px("l8")
    tiles = [TileId(shard[0] * k + c, shard[1] * k + r) for r in range((rows.stop - rows.start) // px)
             for c in range((cols.stop - cols.start) // px)]
    results = {}
    for name, whole in (("merged", False), ("skipped", True)):
        store = str(tmp_path / f"{name}.zarr")
        group = create_or_open(store, recipe)["l8"]
        group["data"][:, rows, cols] = 7  # older content, entirely replaced
        group["valid"][rows, cols] = 1
        with monkeypatch.context() as patch:
            if whole:  # every tile of the shard: nothing is read
                patch.setattr(shard_module, "_merged", _no_read)
            else:
                patch.setattr(shard_module, "rewrites_whole_shard", lambda *_: False)
            record = process_shard(store, grid, layer, shard, k, tiles, items)
        results[name] = (record, group["data"][:, rows, cols], group["valid"][rows, cols])
    (merged, merged_data, merged_valid), (skipped, skipped_data, skipped_valid) = results["merged"], results["skipped"]
    assert merged == skipped
    assert np.array_equal(merged_data, skipped_data) and np.array_equal(merged_valid, skipped_valid)
    assert (skipped_data != 7).any() and (skipped_data == layer.nodata).any()


def _no_read(*_: object) -> None:
    raise AssertionError("a whole-shard rewrite must not read the shard")



@pytest.mark.parametrize("group", ["s2", "l8", "vhr", "labels"])
def test_band_sums_from_histograms_equal_float64_sums(group: str) -> None:
    layer = next(layer for layer in layers(load_recipe("demo")) if layer.group == group)
    rng = np.random.default_rng(7)
    data = rng.integers(0, np.iinfo(layer.dtype).max, (len(layer.bands), 96, 80), endpoint=True).astype(layer.dtype)
    valid = rng.random(data.shape[1:]) > 0.2
    values = data[:, valid].astype(np.float64) * layer.scale + layer.offset
    sums = _sums(data, valid, layer)
    assert sums.count == (float(valid.sum()),) * len(layer.bands)
    assert np.allclose(sums.sum, values.sum(axis=1), rtol=1e-12, atol=0)
    assert np.allclose(sums.sumsq, (values**2).sum(axis=1), rtol=1e-12, atol=0)
    signed = _sums(data.astype(np.int32), valid, layer)  # the float64 path
    assert np.allclose(signed.sum, sums.sum, rtol=1e-12) and np.allclose(signed.sumsq, sums.sumsq, rtol=1e-12)
    wide = _sums(data.astype(np.uint32), valid, layer)  # 32-bit values: float64 too, no 2^32-bin histogram
    assert np.allclose(wide.sum, sums.sum, rtol=1e-12) and np.allclose(wide.sumsq, sums.sumsq, rtol=1e-12)
