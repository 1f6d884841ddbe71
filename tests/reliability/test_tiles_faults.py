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

from msc_france.checksum import sha256_hex
from msc_france.config import load_recipe
from msc_france.demo.server import DemoServer
from msc_france.download.run import DownloadRequest, run_download
from msc_france.errors import UserError
from msc_france.lock import exclusive
from msc_france.store.done import all_done, read_done
from msc_france.store.index import read_index
from msc_france.store.layout import BUILDING, done_root, layers, lock_path, shard_of, shard_tiles
from msc_france.tiles import run as tiles_run
from msc_france.tiles.create import create_or_open
from msc_france.tiles.run import TilesRequest, run_tiles
from msc_france.tiles.shard import process_shard
from msc_france.tiles.sources import catalog_dirs, read_items, region_geometry
from tests.reliability import dask_faults
from tests.reliability.conftest import pages, resize, settle
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


def _records(store: str) -> dict[str, bytes]:
    """The completion records of ``store``, by path."""
    root = Path(done_root(store))
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*.json"))}


def _copy_data(downloaded: Path, tmp_path: Path) -> Path:  # noqa: F811
    data = tmp_path / "data"
    shutil.copytree(downloaded / "catalogs", data / "catalogs")
    return data


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_a_killed_worker_task_is_redone_and_the_store_is_identical(
    downloaded: Path, store: str, cluster: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,  # noqa: F811
) -> None:
    marker = tmp_path / "killed"
    monkeypatch.setattr(tiles_run, "process_shard", functools.partial(dask_faults.process_shard_killing_once,
                                                                      marker=str(marker)))
    other = str(tmp_path / "killed.zarr")
    summary = run_tiles(TilesRequest(recipe="demo", data=downloaded, store=other, scheduler=cluster), QUIET)
    killed = Path(f"{marker}.killed")
    assert killed.exists(), "a task reached the kill point: its shard written, its record not"
    pid = int(killed.read_text())
    assert pid != os.getpid() and not _alive(pid), "its worker process was killed"
    assert summary.written == len(all_done(other)) == len(all_done(store)) > 0
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
    settle(cluster)  # tasks already running when the run failed still finish, and record their shards
    kept = all_done(other)
    assert "s2" not in {r.group for r in kept}, "the failed shard is not recorded as complete"
    assert len(kept) > 0, "the premise: shards of the other groups were finished before the error"
    records = _records(other)
    shutil.rmtree(b04.parent)  # what the message says to do
    catalog = _catalog_file(tmp_path, served_world.stac_url)
    summary = run_download(DownloadRequest(region=_region(tiny_world), catalog=str(catalog), recipe="demo",
                                           data=data), QUIET)
    assert summary.failed == [] and 0 < len(summary.fetched) - len(summary.skipped) <= 5
    resumed = run_tiles(TilesRequest(recipe="demo", data=data, store=other, scheduler=cluster), QUIET)
    assert resumed.skipped == len(kept) and resumed.written + resumed.skipped == len(all_done(store))
    assert {k: v for k, v in _records(other).items() if k in records} == records, "the kept shards were not redone"
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


def test_a_shard_torn_by_a_write_cut_short_is_rewritten_not_read(
    downloaded: Path, store: str, cluster: str, tmp_path: Path,  # noqa: F811
) -> None:
    """A full disk tears a shard file (zarr writes it in place); its task records nothing. The retry, or
    the rerun, must not read it back: it failed its checksum ("RuntimeError: the checksum is invalid",
    exit 1 with a traceback, and every rerun the same), instead of rendering the shard again."""
    other = tmp_path / "torn.zarr"
    shutil.copytree(store, other)  # the arrays only: no completion record beside them
    torn = next(other.glob("l8/data/c/*/*/*"))
    torn.write_bytes(torn.read_bytes()[: torn.stat().st_size // 3])
    data = zarr.open_group(str(other), mode="r")["l8"]["data"]
    assert data.shards is not None
    row, col = (int(part) for part in torn.parts[-2:])
    _, height, width = data.shards
    with pytest.raises((RuntimeError, ValueError), match="checksum"):  # the premise: the torn shard cannot be read
        data[:, row * height:(row + 1) * height, col * width:(col + 1) * width]
    summary = run_tiles(TilesRequest(recipe="demo", data=downloaded, store=str(other), scheduler=cluster), QUIET)
    assert summary.skipped == 0 and summary.written == len(all_done(store))
    assert _same_arrays(store, str(other))


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
    settle(cluster)
    records = _records(str(other))
    assert len(records) > 0, "the premise: some shards were finished before the disk was full"
    resize(small_fs, 64 * MIB)
    again = run_tiles(TilesRequest(recipe="demo", data=data, store=str(other), scheduler=cluster), QUIET)
    assert again.skipped == len(records), "finished shards are kept"
    assert {k: v for k, v in _records(str(other)).items() if k in records} == records, "and not redone"
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


def _foreign_store(path: Path) -> np.ndarray:
    """Another project's Zarr v3 store: a ``labels`` group with an array of data, no ``msc_france`` attribute."""
    labels = zarr.open_group(str(path), mode="w", zarr_format=3).create_group("labels", attributes={"theirs": 1})
    values = np.arange(64, dtype="uint8").reshape(8, 8)
    labels.create_array("data", shape=values.shape, dtype="uint8", chunks=(4, 4))[:] = values
    return values


def _files(path: Path) -> dict[str, bytes]:
    return {str(p.relative_to(path)): p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()}


def test_a_foreign_zarr_store_is_refused_and_kept_whole(downloaded: Path, tmp_path: Path) -> None:  # noqa: F811
    """Before, create_or_open deleted every group not marked complete (here: ``labels``) and the run ended with 0."""
    other = tmp_path / "theirs.zarr"
    values = _foreign_store(other)
    before = _files(other)
    assert "labels/data/c/0/0" in before, "the premise: the foreign array holds data"
    result = subprocess.run([sys.executable, "-m", "msc_france", "tiles", "--recipe", "demo", "--data", str(downloaded),
                             "--store", str(other), "--workers", "1"], capture_output=True, text=True, timeout=300)
    assert result.returncode == 2, result.stderr[-2000:]
    assert result.stderr.strip().count("\n") == 0 and "Traceback" not in result.stderr, result.stderr[-2000:]
    assert "is not an msc-france store" in result.stderr and "choose another store" in result.stderr
    assert _files(other) == before, "nothing of the foreign store was changed"
    group = zarr.open_group(str(other), mode="r")
    assert set(group) == {"labels"} and "msc_france" not in group.attrs
    assert np.array_equal(group["labels"]["data"][:], values)
    assert not Path(str(other).removesuffix(".zarr") + ".tiles.done").exists()


@pytest.mark.parametrize("what", ["zarr v2 group", "array at the root"])
def test_other_zarr_hierarchies_are_refused_untouched(tmp_path: Path, what: str) -> None:
    from msc_france.config import load_recipe

    other = tmp_path / "theirs.zarr"
    if what == "array at the root":
        zarr.create_array(str(other), shape=(4,), dtype="int32", zarr_format=3)[:] = 7
    else:
        zarr.open_group(str(other), mode="w", zarr_format=2).create_array("labels", shape=(4,), dtype="int8")[:] = 7
    before = _files(other)
    assert len(before) > 1, "the premise: it holds data"
    with pytest.raises(UserError, match="is not an msc-france store") as error:
        create_or_open(str(other), load_recipe("demo"))
    assert "\n" not in str(error.value)
    assert _files(other) == before


def test_a_group_without_the_building_marker_is_never_deleted(tmp_path: Path) -> None:
    """In an msc-france store, a group that is neither complete nor marked as being built by us is refused,
    not deleted (only a group with BUILDING is created again)."""
    from msc_france.config import load_recipe

    path = str(tmp_path / "ours.zarr")
    root = create_or_open(path, load_recipe("demo"))
    del root["labels"]
    theirs = root.create_group("labels")  # put there by someone else: no tile_px, no marker
    theirs.create_array("mine", shape=(4,), dtype="int8")[:] = 3
    with pytest.raises(UserError, match=r"holds a labels that msc-france did not create.*nothing was deleted"):
        create_or_open(path, load_recipe("demo"))
    kept = zarr.open_group(path, mode="r")["labels"]
    assert BUILDING not in kept.attrs and np.array_equal(kept["mine"][:], np.full(4, 3, dtype="int8"))


def test_a_shard_is_flushed_to_disk_before_its_record_is_handed_back(
    downloaded: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,  # noqa: F811
) -> None:
    """A power loss drops what was written and not flushed; the record is written after the task hands
    it back, so every object of the shard, and every folder above it, must be flushed by then."""
    recipe = load_recipe("demo")
    grid, k = recipe.tile_grid, shard_tiles(recipe)
    layer = next(layer for layer in layers(recipe) if layer.group == "s2")
    folders = catalog_dirs(downloaded, None)
    items = [i for folder in folders for i in read_items(folder) if i.sensor == "s2"]
    tiles = grid.tiles_in(region_geometry(folders[0]))
    shard = shard_of(tiles[0], k)
    store = tmp_path / "flushed.zarr"
    create_or_open(str(store), recipe)
    flushed: list[Path] = []
    fsync = os.fsync

    def recorded_fsync(fd: int) -> None:
        flushed.append(Path(os.readlink(f"/proc/self/fd/{fd}")))
        fsync(fd)

    monkeypatch.setattr(os, "fsync", recorded_fsync)
    record = process_shard(str(store), grid, layer, shard, k, [t for t in tiles if shard_of(t, k) == shard], items)
    assert {Path(o.key).parts[:2] for o in record.objects} == {("s2", "data"), ("s2", "valid")}, "the premise"
    for stored in record.objects:
        path = (store / stored.key).resolve()
        assert path.stat().st_size == stored.size and sha256_hex(path) == stored.sha256
        assert path in flushed, f"{stored.key} is flushed before its record exists"
        assert {p for p in path.parents if p.is_relative_to(store.resolve())} <= set(flushed), "and its folders"
    assert read_done(str(store), "s2", shard) is None, "the record is the caller's to write, after this"


def test_a_power_loss_between_data_and_record_rebuilds_the_shards_it_dropped(
    downloaded: Path, store: str, cluster: str, tmp_path: Path,  # noqa: F811
) -> None:
    """A record kept while its shard's data were dropped (what a power loss does to writes not flushed:
    a zero-length file, stale bytes, no file) is not trusted: the rerun writes those shards again."""
    other = tmp_path / "power.zarr"
    shutil.copytree(store, other)
    shutil.copytree(done_root(store), done_root(str(other)))
    records = all_done(str(other))
    assert len(records) > 3 and all(r.objects for r in records), "the premise: records list their shards' objects"
    empty, stale, gone = records[0].objects[0], records[1].objects[0], records[2].objects[-1]
    (other / empty.key).write_bytes(b"")
    (other / stale.key).write_bytes(bytes(stale.size))  # the right size, not the right bytes
    (other / gone.key).unlink()
    summary = run_tiles(TilesRequest(recipe="demo", data=downloaded, store=str(other), scheduler=cluster), QUIET)
    assert summary.written == 3 and summary.skipped == len(records) - 3
    assert _same_arrays(store, str(other))
    assert _records(str(other)) == _records(store), "the same records, sizes and checksums as the original"
