"""Faults of the tiles stage on the tiny demo world, against an uninterrupted store: a Dask worker
killed mid-task, a second run on the same store, damaged downloaded files, all-nodata and all-cloud
scenes, a full disk. The runs share one local Dask cluster (``cluster`` in conftest.py)."""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rasterio
import zarr

from msc_france.demo.server import DemoServer
from msc_france.download.run import DownloadRequest, run_download
from msc_france.errors import UserError
from msc_france.lock import exclusive
from msc_france.store.done import all_done
from msc_france.store.index import read_index
from msc_france.store.layout import BUILDING, lock_path
from msc_france.tiles import run as tiles_run
from msc_france.tiles.create import create_or_open
from msc_france.tiles.run import TilesRequest, run_tiles
from tests.reliability import dask_faults
from tests.reliability.conftest import pages, resize
from tests.test_download import _catalog_file, _region
from tests.test_tiles import QUIET, _arrays, downloaded  # noqa: F401 - downloaded is a fixture

MIB = 1 << 20


@pytest.fixture(scope="module")
def store(downloaded: Path, cluster: str) -> str:  # noqa: F811
    """The uninterrupted store, the yardstick of the others."""
    summary = run_tiles(TilesRequest(recipe="demo", data=downloaded, scheduler=cluster), QUIET)
    assert summary.tiles == 4 and summary.written > 0
    return summary.store


def _same_arrays(a: str, b: str) -> bool:
    left, right = _arrays(a), _arrays(b)
    return left.keys() == right.keys() and all(np.array_equal(left[k], right[k]) for k in left)


def _copy_data(downloaded: Path, tmp_path: Path) -> Path:  # noqa: F811
    data = tmp_path / "data"
    shutil.copytree(downloaded / "catalogs", data / "catalogs")
    return data


def test_a_killed_worker_task_is_redone_and_the_store_is_identical(
    downloaded: Path, store: str, cluster: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,  # noqa: F811
) -> None:
    marker = tmp_path / "killed"
    monkeypatch.setattr(tiles_run, "process_shard", functools.partial(dask_faults.process_shard_killing_once,
                                                                      marker=str(marker)))
    other = str(tmp_path / "killed.zarr")
    summary = run_tiles(TilesRequest(recipe="demo", data=downloaded, store=other, scheduler=cluster), QUIET)
    assert marker.exists(), "a worker was killed"
    assert summary.written == len(all_done(other)) == len(all_done(store))
    assert _same_arrays(store, other)


def test_a_second_run_on_the_same_store_is_refused(downloaded: Path, store: str, cluster: str) -> None:  # noqa: F811
    lock = lock_path(store)
    assert lock is not None
    before = _arrays(store)
    with exclusive(lock, "the first run"), pytest.raises(UserError) as error:
        run_tiles(TilesRequest(recipe="demo", data=downloaded, store=store, scheduler=cluster), QUIET)
    message = str(error.value)
    assert message.startswith(f"store {store} is in use by process {os.getpid()}") and str(lock) in message
    assert "\n" not in message
    after = _arrays(store)
    assert all(np.array_equal(before[k], after[k]) for k in before)
    # The lock file stays behind, unheld (like after kill -9 of its holder): the next run goes ahead.
    assert lock.exists()
    assert run_tiles(TilesRequest(recipe="demo", data=downloaded, scheduler=cluster), QUIET).written == 0


def _damage(path: Path, how: str) -> None:
    size = path.stat().st_size
    if how == "truncated":
        with path.open("r+b") as handle:
            handle.truncate(size // 3)
    else:  # everything after the header is garbage
        with path.open("r+b") as handle:
            handle.seek(size // 3)
            handle.write(np.random.default_rng(0).integers(0, 256, size - size // 3, dtype=np.uint8).tobytes())


@pytest.mark.parametrize("how", ["truncated", "corrupt"])
def test_a_damaged_cog_is_a_one_line_error_and_a_new_download_repairs_it(
    downloaded: Path, store: str, cluster: str, served_world: DemoServer,  # noqa: F811
    tiny_world: tuple[Path, dict[str, Any]], tmp_path: Path, how: str,
) -> None:
    data = _copy_data(downloaded, tmp_path)
    b04 = next(data.glob("catalogs/*/s2/*/B04.tif"))
    _damage(b04, how)
    other = str(tmp_path / "damaged.zarr")
    with pytest.raises(UserError) as error:
        run_tiles(TilesRequest(recipe="demo", data=data, store=other, scheduler=cluster), QUIET)
    message = str(error.value)
    assert "unreadable" in message and str(b04.parent) in message and "\n" not in message
    kept = all_done(other)
    assert "s2" not in {r.group for r in kept}, "the failed shard is not recorded as complete"
    shutil.rmtree(b04.parent)  # what the message says to do
    catalog = _catalog_file(tmp_path, served_world.stac_url)
    summary = run_download(DownloadRequest(region=_region(tiny_world), catalog=str(catalog), recipe="demo",
                                           data=data), QUIET)
    assert summary.failed == [] and 0 < len(summary.fetched) - len(summary.skipped) <= 5
    resumed = run_tiles(TilesRequest(recipe="demo", data=data, store=other, scheduler=cluster), QUIET)
    assert resumed.skipped >= len(kept) and resumed.written + resumed.skipped == len(all_done(store))
    assert _same_arrays(store, other)


def _blank_s2(data: Path, what: str) -> None:
    """Every Sentinel-2 scene all nodata, or all cloud (SCL 9) over its valid pixels."""
    for folder in data.glob("catalogs/*/s2/*"):
        for path in folder.glob("*.tif"):
            if (path.name == "SCL.tif") != (what == "cloud"):
                continue
            with rasterio.open(path, "r+", IGNORE_COG_LAYOUT_BREAK="YES") as ds:
                value = 9 if what == "cloud" else ds.nodata
                ds.write(np.full((ds.count, ds.height, ds.width), value, dtype=ds.dtypes[0]))


@pytest.mark.parametrize("what", ["nodata", "cloud"])
def test_an_all_nodata_or_all_cloud_scene_gives_invalid_tiles_not_a_crash(
    downloaded: Path, cluster: str, tmp_path: Path, what: str,  # noqa: F811
) -> None:
    data = _copy_data(downloaded, tmp_path)
    _blank_s2(data, what)
    summary = run_tiles(TilesRequest(recipe="demo", data=data, store=str(tmp_path / "blank.zarr"), scheduler=cluster),
                        QUIET)
    index = read_index(summary.store)
    assert len(index) == 4
    assert (index["s2_valid"] == 0).all() and (index["l8_valid"] > 0.5).all()
    assert not index["quality_ok"].any() and index["quality_reason"].str.contains("s2 valid 0.00").all()
    why = "(cloud 1.00)" if what == "cloud" else "(nodata 1.00)"
    assert index["quality_reason"].str.contains(f"s2 valid 0.00 < 0.95 {why}", regex=False).all()
    if what == "cloud":
        assert (index["s2_cloud"] == 1).all()
    else:
        assert (index["s2_cloud"] == 0).all()


def test_a_full_disk_is_a_one_line_error_and_the_rerun_completes(
    downloaded: Path, store: str, cluster: str, tmp_path: Path, small_fs: Path,  # noqa: F811
) -> None:
    data = _copy_data(downloaded, tmp_path)
    shards = sum(pages(p) for p in (*Path(store).glob("*/data/c"), *Path(store).glob("*/valid/c")))
    needed = (pages(Path(store)) + pages(Path(store).with_suffix(".tiles.done"))
              + pages(Path(store).with_suffix(".tiles.parquet")))
    resize(small_fs, needed - shards // 2)  # the metadata fit, half the shards do not
    other = small_fs / "demo.zarr"
    command = [sys.executable, "-m", "msc_france", "tiles", "--recipe", "demo", "--data", str(data),
               "--store", str(other), "--scheduler", cluster]
    full = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert full.returncode == 2, full.stderr[-2000:]
    last = full.stderr.strip().splitlines()[-1]
    assert last.startswith("error: no space left on device"), full.stderr[-2000:]
    assert "free some space and rerun" in last, full.stderr[-2000:]
    assert "Traceback" not in full.stderr
    kept = len(all_done(str(other)))
    resize(small_fs, 64 * MIB)
    again = run_tiles(TilesRequest(recipe="demo", data=data, store=str(other), scheduler=cluster), QUIET)
    assert again.skipped >= kept, "finished shards are kept"
    assert _same_arrays(store, str(other))


def test_a_group_whose_creation_was_cut_short_is_created_again(tmp_path: Path) -> None:
    from msc_france.config import load_recipe

    path = str(tmp_path / "cut.zarr")
    root = create_or_open(path, load_recipe("demo"))
    del root["l8"]
    root.create_group("l8").attrs.update({"tile_px": 16, BUILDING: True})  # as a kill -9 or full disk leaves it
    create_or_open(path, load_recipe("demo"))
    group = zarr.open_group(path, mode="r")["l8"]
    assert {"data", "valid", "x", "y", "band", "spatial_ref"} <= set(group) and BUILDING not in group.attrs
