"""``msc-france import-msc``: the released MSC-France layout (a miniature from tests/data/msc_release.py)
into a tile store that pretraining and eval read unchanged."""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import rasterio
from PIL import Image, UnidentifiedImageError
from rich.console import Console

from msc_france.errors import UserError
from msc_france.eval.report import NO_LABELS_NOTE
from msc_france.eval.run import EvalRequest, run_eval
from msc_france.import_msc import run as import_run
from msc_france.import_msc.place import city_splits
from msc_france.import_msc.run import ImportRequest, ImportSummary, run_import
from msc_france.pretrain.config import default_preset, load_pretrain_config
from msc_france.pretrain.trainer import PretrainRequest, run_pretrain
from msc_france.store import open_store
from msc_france.store.done import write_done
from msc_france.store.index import split_of
from msc_france.store.layout import done_root
from msc_france.store.records import ShardRecord
from tests.data.msc_release import CITIES, RESIZED, SIXTEEN_BIT, SIZES, Release, write_release
from tests.pretrain_fixtures import write_preset

GROUPS = {"Sentinel": "s2", "Landsat": "l8", "SPOT": "vhr"}


def _import(release: Release, store: Path, **options: object) -> tuple[ImportSummary, str]:
    out = io.StringIO()
    summary = run_import(ImportRequest(path=release.root, store=str(store), **options),  # type: ignore[arg-type]
                         Console(file=out, width=400))
    return summary, out.getvalue()


@pytest.fixture(scope="module")
def release(tmp_path_factory: pytest.TempPathFactory) -> Release:
    return write_release(tmp_path_factory.mktemp("release"), seed=7)


@pytest.fixture(scope="module")
def imported(release: Release, tmp_path_factory: pytest.TempPathFactory) -> tuple[ImportSummary, str, str]:
    store = tmp_path_factory.mktemp("store") / "msc-paper.zarr"
    summary, printed = _import(release, store)
    return summary, printed, str(store)


def _expected(path: Path, side: int) -> np.ndarray:
    """(3, side, side) uint8 of a source file, read independently of the importer: rasterio for GeoTIFF
    (first three bands), PIL for PNG, resized bilinear to ``side`` where it differs."""
    if path.suffix == ".tif":
        with rasterio.open(path) as src:
            rgb = np.moveaxis(src.read([1, 2, 3]), 0, -1).astype(np.uint8)
    else:
        rgb = np.asarray(Image.open(path).convert("RGB"))
    if rgb.shape[:2] != (side, side):
        rgb = np.asarray(Image.fromarray(rgb).resize((side, side), Image.Resampling.BILINEAR))
    return np.moveaxis(rgb, -1, 0)


def _size(path: Path) -> tuple[int, int]:
    if path.suffix == ".tif":
        with rasterio.open(path) as src:
            return src.width, src.height
    return Image.open(path).size


def test_paired_tiles_hold_the_source_pixels(release: Release, imported: tuple[ImportSummary, str, str]) -> None:
    summary, _, store = imported
    opened = open_store(store)
    assert opened.groups == ["s2", "l8", "vhr"]
    assert {g: opened.tile_px(g) for g in opened.groups} == {"s2": 32, "l8": 12, "vhr": 96} == summary.px
    table = opened.index()
    kept = [key for key in release.paired if key not in release.left_out]
    assert sorted(f"{c}/{n}" for c, n in zip(table["city"], table["name"], strict=True)) == sorted(kept)
    assert summary.tiles == len(table) == len(kept) == sum(CITIES.values()) - 2
    assert table["quality_ok"].all() and (table["region"] == table["city"]).all()
    # premise of the 16-bit case: PIL cannot open those GeoTIFFs, the importer's rasterio fallback did
    with pytest.raises(UnidentifiedImageError):
        Image.open(release.root / "SPOT" / SIXTEEN_BIT / "img_000.tif")
    resized = 0
    for _, row in table.iterrows():
        for sensor, group in GROUPS.items():
            source = release.root / sensor / row["city"] / row["name"]
            assert row[f"{group}_items"] == f"{sensor}/{row['city']}/{row['name']}"
            side = opened.tile_px(group)
            resized += _size(source) != (side, side)
            tile = opened.read_tile(group, row["col"], row["row"])
            np.testing.assert_array_equal(tile, _expected(source, side), err_msg=f"{group} {source}")
            assert opened.read_tile(group, row["col"], row["row"], "valid").all()
    assert resized == summary.resized == 1 and RESIZED[3] != SIZES[RESIZED[0]]
    # the encoding keeps 8-bit values exactly and never mistakes one for nodata
    layer = opened.layer("s2")
    assert (layer.dtype, layer.nodata, layer.scale) == ("uint16", 65535, 1 / 255)
    assert set(opened.statistics("vhr").bands) == {"red", "green", "blue"}


def test_faults_are_reported_in_one_line_each_and_left_out(release: Release,
                                                           imported: tuple[ImportSummary, str, str]) -> None:
    summary, printed, store = imported
    lines = printed.splitlines()
    for path in release.unpaired:
        assert sum(str(path) in line and "no file of the same name in Sentinel, Landsat" in line
                   for line in lines) == 1, printed
    for path in release.corrupt:
        assert sum(str(path) in line and "unreadable image" in line for line in lines) == 1, printed
    assert (summary.unpaired, summary.unreadable, summary.ignored) == (1, 2, 1)
    assert "Traceback" not in printed
    items = set(open_store(store).index()["vhr_items"])
    assert not any(str(p.relative_to(release.root)) in items for p in release.unpaired + release.corrupt)


def test_splits_by_city_hold_out_whole_cities(imported: tuple[ImportSummary, str, str]) -> None:
    summary, _, store = imported
    table = open_store(store).index()
    expected = city_splits(sorted(CITIES))
    assert summary.cities == expected and set(expected.values()) == {"train", "val", "test"}
    assert all(table.loc[table["city"] == city, "split"].eq(split).all() for city, split in expected.items())
    # cities lie on separate split blocks of tiles
    blocks = {city: {(c // 4, r // 4) for c, r in zip(group["col"], group["row"], strict=True)}
              for city, group in table.groupby("city")}
    assert not set.intersection(*blocks.values())


def test_split_by_block_and_named_test_cities(release: Release, tmp_path: Path) -> None:
    summary, _ = _import(release, tmp_path / "block.zarr", split="block")
    table = open_store(str(tmp_path / "block.zarr")).index()
    assert list(table["split"]) == [split_of(c, r, 4) for c, r in zip(table["col"], table["row"], strict=True)]
    assert set(summary.cities.values()) == {"block"}
    _import(release, tmp_path / "named.zarr", test_cities=["Grenoble"], val_cities=[])
    table = open_store(str(tmp_path / "named.zarr")).index()
    assert dict(zip(table["city"], table["split"], strict=True)) == {"Bordeaux": "train", "Grenoble": "test",
                                                                       "Toulouse": "train"}


def _chunk_digests(store: str) -> dict[str, str]:
    return {str(p.relative_to(store)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(Path(store).rglob("*")) if p.is_file() and "/c/" in p.as_posix()}


def test_rerun_gives_the_same_store(release: Release, imported: tuple[ImportSummary, str, str]) -> None:
    first, _, store = imported
    before, index_before = _chunk_digests(store), open_store(store).index()
    assert first.written > 0 and before
    again, printed = _import(release, Path(store))
    assert again.written == 0 and again.skipped == first.written + first.skipped
    assert _chunk_digests(store) == before
    assert open_store(store).index().equals(index_before)
    assert (again.unreadable, again.tiles) == (first.unreadable, first.tiles)  # the lost footprint is still said
    assert "left out" in printed


def test_an_import_cut_short_resumes_to_the_same_store(release: Release, imported: tuple[ImportSummary, str, str],
                                                      tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    first, _, complete = imported
    calls: list[str] = []

    def die_on_the_second(store: str, record: ShardRecord, storage_options: object = None) -> None:
        calls.append(record.group)
        if len(calls) == 2:  # the second shard's data are written, its completion record never is
            raise KeyboardInterrupt
        write_done(store, record)

    monkeypatch.setattr(import_run, "write_done", die_on_the_second)
    store = tmp_path / "cut.zarr"
    with pytest.raises(KeyboardInterrupt):
        _import(release, store)
    assert calls == ["s2", "l8"] and (store / "l8").is_dir()
    monkeypatch.undo()
    resumed, _ = _import(release, store)
    assert (resumed.written, resumed.skipped) == (first.written - 1, 1)
    assert _chunk_digests(str(store)) == _chunk_digests(complete)
    assert open_store(str(store)).index().drop(columns="geometry").equals(
        open_store(complete).index().drop(columns="geometry"))


def test_a_shard_lost_after_its_record_is_imported_again(release: Release, imported: tuple[ImportSummary, str, str],
                                                          tmp_path: Path) -> None:
    first, _, complete = imported
    store = Path(shutil.copytree(complete, tmp_path / "lost.zarr"))
    shutil.copytree(done_root(complete), done_root(str(store)))  # the completion records beside it
    shard = next(p for p in sorted((store / "s2" / "data").rglob("*")) if p.is_file() and p.name != "zarr.json")
    shard.write_bytes(b"")  # a power loss kept the record and dropped the data
    resumed, _ = _import(release, store)
    assert (resumed.written, resumed.skipped) == (1, first.written + first.skipped - 1)
    assert _chunk_digests(str(store)) == _chunk_digests(complete)


def test_a_store_of_other_files_is_refused(release: Release, tmp_path: Path) -> None:
    store = tmp_path / "other.zarr"
    _import(release, store)
    moved = tmp_path / "copy"
    write_release(moved, seed=7)
    first = moved / "MSC-France" / "Sentinel" / "Bordeaux" / "img_000.png"
    for sensor in GROUPS:  # a footprint fewer: every later tile moves
        (moved / "MSC-France" / sensor / "Bordeaux" / first.name).unlink()
    with pytest.raises(UserError, match="imported from other files"):
        _import(Release(moved / "MSC-France"), store)


def test_not_the_layout_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "Sentinel" / "Bordeaux").mkdir(parents=True)
    result = subprocess.run([sys.executable, "-m", "msc_france", "import-msc", str(tmp_path), "--data",
                             str(tmp_path / "data")], capture_output=True, text=True, check=False)
    assert result.returncode == 2
    assert result.stderr.startswith("error: ") and "is not the MSC-France layout" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr
    assert not (tmp_path / "data").exists()


def test_pretrain_and_eval_run_on_the_import(imported: tuple[ImportSummary, str, str], tmp_path: Path) -> None:
    _, _, store = imported
    # `make pretrain` finds the store's preset; the test trains a tiny one on the same store
    assert default_preset(Path(store).parent, None) == ("pretrain-msc-paper", store)
    assert load_pretrain_config("pretrain-msc-paper").data.recipe == "msc-paper"
    preset = write_preset(tmp_path, data={"recipe": "msc-paper"}, optim={"epochs": 1, "batch_size": 2})
    trained = run_pretrain(PretrainRequest(config=preset, data=tmp_path / "data", store=store, max_steps=1,
                                           quiet=True))
    assert trained.steps == 1 and trained.export is not None
    summary = run_eval(EvalRequest(run="pretrain-tiny", data=tmp_path / "data", store=store, baselines=False,
                                   quiet=True))
    report = json.loads(summary.report.with_suffix(".json").read_text())
    splits = city_splits(sorted(CITIES))
    tiles = {"Bordeaux": 6, "Grenoble": 5, "Toulouse": 4}
    assert report["splits"] == {name: sum(n for c, n in tiles.items() if splits[c] == name)
                                for name in ("train", "val", "test")}
    assert report["classes"] is None
    retrieval = report["models"]["DINO + MSAD"]["retrieval"]
    assert set(retrieval) == {f"{a}->{b}" for a in GROUPS.values() for b in GROUPS.values() if a != b}
    assert all(0.0 <= v["R@1"] <= 1.0 for v in retrieval.values())
    assert NO_LABELS_NOTE in summary.report.read_text()
