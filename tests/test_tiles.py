"""The tiles stage on the tiny demo world: alignment across sensors, encodings and masks, resume after
kill -9, a distributed run with `dask scheduler` / `dask worker` processes, a store on S3 (moto)."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rasterio
import rasterio.enums
import rasterio.transform
import rasterio.warp
import rasterio.windows
import xarray as xr
import zarr
from rich.console import Console

from msc_france.config import load_recipe
from msc_france.demo.server import DemoServer, free_port, stop_process
from msc_france.download.run import DownloadRequest, run_download
from msc_france.errors import UserError
from msc_france.grid import TileId
from msc_france.pairs import open_pairs
from msc_france.pretrain.config import default_preset
from msc_france.provenance import RecipeRecord
from msc_france.store.layout import done_root, layers
from msc_france.tiles.create import create_or_open
from msc_france.tiles.run import TilesRequest, run_tiles
from msc_france.tiles.sources import downloaded_recipe, read_items
from msc_france.tiles.warp import render
from tests.test_cli import _cli
from tests.test_download import _catalog_file, _region, recipe_file

World = tuple[Path, dict[str, Any]]
QUIET = Console(file=open(os.devnull, "w"))  # noqa: SIM115
GROUPS = ("s2", "l8", "vhr", "labels")


@pytest.fixture(scope="module")
def downloaded(tmp_path_factory: pytest.TempPathFactory, served_world: DemoServer, tiny_world: World) -> Path:
    data = tmp_path_factory.mktemp("tiles") / "data"
    catalog = _catalog_file(data.parent, served_world.stac_url)
    summary = run_download(DownloadRequest(region=_region(tiny_world), catalog=str(catalog), recipe="demo",
                                           data=data), QUIET)
    assert summary.failed == []
    return data


@pytest.fixture(scope="module")
def store(downloaded: Path) -> str:
    """The store of the download, tiled without naming a recipe: the download's (demo) is taken."""
    summary = run_tiles(TilesRequest(data=downloaded, workers=1), QUIET)
    assert summary.tiles == 4 and summary.written > 0
    assert summary.store == str(downloaded / "demo.zarr")
    return summary.store


def _arrays(store: str, storage_options: dict[str, Any] | None = None) -> dict[str, np.ndarray]:
    root = zarr.open_group(store, mode="r", zarr_format=3, storage_options=storage_options)
    out = {}
    pairs = open_pairs(store, storage_options)
    for tile in pairs.tiles["tile"]:
        for group, ds in pairs.tile(tile).items():
            out[f"{tile}/{group}/data"] = ds["data"].values
            out[f"{tile}/{group}/valid"] = ds["valid"].values
    assert set(root) >= set(GROUPS)
    return out


def test_store_opens_as_a_map(store: str) -> None:
    import odc.geo.xr  # noqa: F401 - registers .odc
    import rioxarray  # noqa: F401 - registers .rio

    for group in GROUPS:
        ds = xr.open_zarr(store, group=group, decode_coords="all", chunks=None)
        assert ds.rio.crs.to_epsg() == 2154
        assert ds["data"].rio.crs.to_epsg() == 2154
        assert ds.odc.geobox.crs.epsg == 2154
    grid = load_recipe("demo").tile_grid
    s2 = zarr.open_group(store, mode="r")["s2"]
    assert s2["data"].chunks == (4, 48, 48), "one tile of one sensor is one chunk"
    assert s2["data"].shards is not None and s2["data"].shards[1] % 48 == 0
    assert s2["data"].shape[1:] == grid.geobox("s2").shape
    stats = s2.attrs["statistics"]
    assert set(stats) == {"B02", "B03", "B04", "B08"} and 0.2 < stats["B08"]["mean"] < 0.5


def test_tiles_align_with_the_grid(store: str) -> None:
    grid = load_recipe("demo").tile_grid
    pairs = open_pairs(store)
    assert len(pairs) == 4
    for tile in pairs.tiles["tile"]:
        bounds = grid.tile_bounds(TileId.parse(tile))
        for group, ds in pairs[tile].items():
            gsd = float(ds.x[1] - ds.x[0])
            edges = (float(ds.x[0]) - gsd / 2, float(ds.y[-1]) - gsd / 2,
                     float(ds.x[-1]) + gsd / 2, float(ds.y[0]) + gsd / 2)
            assert np.allclose(edges, tuple(bounds), atol=1e-6), f"{tile} {group}"


def _water_centroid(ds: xr.Dataset, band: str, scale: float, offset: float) -> tuple[float, float]:
    """Centroid of the water fraction (linear unmixing of NIR between water and land), blur-invariant."""
    nir = ds["data"].sel(band=band).values.astype(float) * scale + offset
    water = np.clip((0.25 - nir) / (0.25 - 0.01), 0, 1)
    xx, yy = np.meshgrid(ds.x.values, ds.y.values)
    return float((water * xx).sum() / water.sum()), float((water * yy).sum() / water.sum())


def test_lake_lands_at_the_same_place_in_every_sensor(store: str, tiny_world: World) -> None:
    """The lake's water centroid, in Sentinel-2, Landsat and VHR, within half a Landsat pixel (15 m) of the
    centroid of the same window in the ground truth. The window stays 60 m inside the scene."""
    root_dir, manifest = tiny_world
    cx, cy = manifest["features"]["lake_center"]
    ax, ay = manifest["features"]["lake_semi_axes_m"]
    left, bottom, right, top = manifest["scene"]["bounds"]
    x0, x1 = max(cx - ax - 45, left + 60), min(cx + ax + 45, right - 60)
    y0, y1 = max(cy - ay - 45, bottom + 60), min(cy + ay + 45, top - 60)
    with rasterio.open(root_dir / "truth" / "worldcover.tif") as truth:
        window = rasterio.windows.from_bounds(x0, y0, x1, y1, transform=truth.transform).round_offsets()
        water = truth.read(1, window=window.round_lengths()) == 80
        xs, ys = rasterio.transform.xy(truth.window_transform(window), *np.nonzero(water))
    expected = (float(np.mean(xs)), float(np.mean(ys)))
    root = zarr.open_group(store, mode="r")
    for group, band in {"s2": "B08", "l8": "nir08", "vhr": "nir"}.items():
        ds = xr.open_zarr(store, group=group, decode_coords="all", mask_and_scale=False, chunks=None)
        attrs = root[group]["data"].attrs
        found = _water_centroid(ds.sel(x=slice(x0, x1), y=slice(y1, y0)), band, attrs["scale_factor_dn"],
                                attrs["add_offset_dn"])
        assert np.hypot(found[0] - expected[0], found[1] - expected[1]) <= 15, f"{group}: {found} vs {expected}"
    labels = xr.open_zarr(store, group="labels", mask_and_scale=False, chunks=None)
    assert int(labels["data"].sel(band="label").sel(x=cx, y=cy, method="nearest")) == 80


def test_older_baseline_is_harmonised_and_clouds_are_masked(downloaded: Path, tiny_world: World) -> None:
    recipe = load_recipe("demo")
    layer = next(layer for layer in layers(recipe) if layer.group == "s2")
    folder = next((downloaded / "catalogs").iterdir())
    item = next(i for i in read_items(folder) if i.sensor == "s2")
    target = recipe.tile_grid.tile_geobox(recipe.tile_grid.tile_at(*tiny_world[1]["features"]["lake_center"]), "s2")
    new = render(layer, [dataclasses.replace(item, baseline="05.09")], target)
    old = render(layer, [dataclasses.replace(item, baseline="03.01")], target)
    assert new.has_data.all() and old.has_data.all()
    assert np.all(old.data.astype(int) - new.data.astype(int) == 1000), "one formula for the whole store"
    with rasterio.open(item.asset("SCL")) as scl:
        codes = np.zeros(target.shape, dtype=np.uint8)
        rasterio.warp.reproject(rasterio.band(scl, 1), codes, dst_transform=target.affine, dst_crs="EPSG:2154",
                                resampling=rasterio.enums.Resampling.nearest)
    assert np.array_equal(new.valid, ~np.isin(codes, [0, 1, 3, 8, 9, 10, 11])), "valid follows the SCL classes"


def test_grids_never_mix(store: str) -> None:
    with pytest.raises(UserError, match="grids never mix"):
        create_or_open(store, load_recipe("msc-france"))


def test_store_records_its_recipe_and_refuses_another(store: str, tmp_path: Path) -> None:
    meta = zarr.open_group(store, mode="r", zarr_format=3).attrs["msc_france"]
    assert meta["recipe"] == "demo"
    assert RecipeRecord.from_json(meta["recipe_record"], store).recipe == load_recipe("demo")
    rgb = load_recipe(str(recipe_file(tmp_path, "demo-rgb", s2=["B02", "B03", "B04"])))
    with pytest.raises(UserError, match=r"built with recipe demo .* not demo-rgb .*recipes never mix"):
        create_or_open(store, rgb)


@pytest.mark.parametrize(("recipe", "says"), [
    ("msc-france", "it is on another grid"),
    ("rededge", "the download lacks s2 B05"),
])
def test_a_recipe_the_download_cannot_serve_is_one_line(downloaded: Path, tmp_path: Path, recipe: str,
                                                        says: str) -> None:
    """Before any Dask work, through the command line: one line naming both recipes and what to do."""
    if recipe == "rededge":
        recipe = str(recipe_file(tmp_path, "demo-rededge", s2=["B02", "B03", "B04", "B05", "B08"]))
    result = _cli("tiles", "--data", str(downloaded), "--recipe", recipe, "--store", str(tmp_path / "x.zarr"))
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    assert result.stderr.strip().count("\n") == 0 and "Dask" not in result.stdout
    assert says in result.stderr and "made with recipe demo (480 m tiles" in result.stderr
    assert "run tiles without --recipe to use demo" in result.stderr
    assert not (tmp_path / "x.zarr").exists()


def test_downloads_of_different_recipes_are_one_line(downloaded: Path, tmp_path: Path) -> None:
    catalog = json.loads((next((downloaded / "catalogs").iterdir()) / "catalog.json").read_text())
    for name, recipe in (("alpha", "demo"), ("beta", str(recipe_file(tmp_path, "demo-rgb", s2=["B02", "B03"])))):
        (tmp_path / name).mkdir()
        record = RecipeRecord(recipe=load_recipe(recipe), catalog="demo")
        (tmp_path / name / "catalog.json").write_text(json.dumps({**catalog, "msc:download": record.to_json()}))
    assert downloaded_recipe([tmp_path / "alpha"], None) == load_recipe("demo")
    with pytest.raises(UserError, match=r"different recipes \(alpha: demo, beta: demo-rgb\); tile one region"):
        downloaded_recipe([tmp_path / "alpha", tmp_path / "beta"], None)


def test_pretrain_preset_follows_the_store(store: str, downloaded: Path) -> None:
    assert default_preset(downloaded, None) == ("pretrain-demo", store)
    assert default_preset(downloaded / "elsewhere", store) == ("pretrain-demo", store)


def test_rerun_skips_complete_shards(store: str, downloaded: Path) -> None:
    before = _arrays(store)
    summary = run_tiles(TilesRequest(recipe="demo", data=downloaded, workers=1), QUIET)
    assert summary.written == 0 and summary.skipped > 0
    after = _arrays(store)
    assert all(np.array_equal(before[k], after[k]) for k in before)


def test_pairs_api_and_quicklooks(store: str, downloaded: Path) -> None:
    pairs = open_pairs(store)
    assert {"tile", "geometry", "split", "quality_ok", "s2_valid", "l8_valid", "vhr_valid"} <= set(pairs.tiles.columns)
    assert pairs.tiles.crs.to_epsg() == 2154
    first = pairs[0]
    assert set(first) == set(GROUPS)
    assert first["vhr"]["data"].shape == (4, 120, 120) and first["l8"]["data"].shape == (4, 16, 16)
    figure = pairs.plot(0)
    assert len(figure.axes) == 4
    with pytest.raises(KeyError):
        pairs["9999_9999"]
    looks = downloaded / "quicklooks" / "demo"
    assert (looks / "coverage.png").stat().st_size > 0 and list(looks.glob("triplet_*.png"))


def test_kill_and_resume_gives_the_same_arrays(store: str, downloaded: Path, tmp_path: Path) -> None:
    other = str(tmp_path / "killed.zarr")
    command = [sys.executable, "-m", "msc_france", "tiles", "--recipe", "demo", "--data", str(downloaded),
               "--store", other, "--workers", "1"]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    done = Path(done_root(other))
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and process.poll() is None and len(list(done.glob("*/*.json"))) < 1:
        time.sleep(0.02)
    assert process.poll() is None, "the premise: the run was still going when killed"
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    kept = len(list(done.glob("*/*.json")))
    assert 0 < kept < len(layers(load_recipe("demo"))), f"the premise: killed part-way ({kept} records kept)"
    resumed = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    reference, again = _arrays(store), _arrays(other)
    assert reference.keys() == again.keys()
    assert all(np.array_equal(reference[k], again[k]) for k in reference)


@pytest.fixture
def dask_cluster() -> Iterator[str]:
    """A real `dask scheduler` and a `dask worker` process on loopback."""
    port = free_port()
    bin_dir = Path(sys.executable).parent
    scheduler = subprocess.Popen([str(bin_dir / "dask"), "scheduler", "--host", "127.0.0.1", "--port", str(port),
                                  "--no-dashboard"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    worker = subprocess.Popen([str(bin_dir / "dask"), "worker", f"tcp://127.0.0.1:{port}", "--nworkers", "1",
                               "--nthreads", "1", "--no-dashboard"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        yield f"tcp://127.0.0.1:{port}"
    finally:
        stop_process(worker)
        stop_process(scheduler)


def test_distributed_run_gives_the_same_arrays(store: str, downloaded: Path, tmp_path: Path, dask_cluster: str) -> None:
    other = str(tmp_path / "distributed.zarr")
    run_tiles(TilesRequest(recipe="demo", data=downloaded, store=other, scheduler=dask_cluster), QUIET)
    reference, again = _arrays(store), _arrays(other)
    assert all(np.array_equal(reference[k], again[k]) for k in reference)


@pytest.fixture
def s3_endpoint() -> Iterator[str]:
    """A moto S3 server on loopback with a bucket."""
    port = free_port()
    server = subprocess.Popen([str(Path(sys.executable).parent / "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        import boto3

        deadline = time.monotonic() + 30
        while True:
            try:
                boto3.client("s3", endpoint_url=url, aws_access_key_id="test", aws_secret_access_key="test",
                             region_name="us-east-1").create_bucket(Bucket="tiles")
                break
            except Exception:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        yield url
    finally:
        stop_process(server)


def test_store_on_s3(store: str, downloaded: Path, s3_endpoint: str) -> None:
    options = {"key": "test", "secret": "test", "client_kwargs": {"endpoint_url": s3_endpoint,
                                                                   "region_name": "us-east-1"}}
    url = "s3://tiles/demo.zarr"
    run_tiles(TilesRequest(recipe="demo", data=downloaded, store=url, workers=1, storage_options=options), QUIET)
    reference, remote = _arrays(store), _arrays(url, options)
    assert reference.keys() == remote.keys()
    assert all(np.array_equal(reference[k], remote[k]) for k in reference)
    import s3fs

    files = s3fs.S3FileSystem(**options)
    assert files.exists("tiles/demo.tiles.parquet"), "the premise: the listing sees what the run wrote"
    assert not files.exists("tiles/demo.tiles.lock"), "the run's lease (tests/reliability/test_s3_lease.py) is released"


def test_a_deleted_store_is_rebuilt_not_taken_as_complete(store: str, downloaded: Path, tmp_path: Path) -> None:
    """Completion records live beside the store: deleting the store must not leave them claiming its shards."""
    copy = tmp_path / "data"
    shutil.copytree(downloaded, copy, ignore=shutil.ignore_patterns("*.lock"))
    expected = _arrays(str(copy / "demo.zarr"))
    assert any(Path(done_root(str(copy / "demo.zarr"))).rglob("*.json")), "the premise: records were kept"
    shutil.rmtree(copy / "demo.zarr")
    summary = run_tiles(TilesRequest(data=copy, workers=1), QUIET)
    assert summary.skipped == 0 and summary.written > 0, "every shard is written again"
    again = _arrays(str(copy / "demo.zarr"))
    assert again.keys() == expected.keys() and all(np.array_equal(again[k], expected[k]) for k in expected)
