"""`msc-france plan`: tiles, triplets, stored bytes, download and compute figures of a region, from the
download stage's per-tile plan."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from rich.console import Console

from msc_france.config import load_recipe
from msc_france.demo.server import DemoServer
from msc_france.download.plan_report import fetch_bytes
from msc_france.download.run import DownloadRequest, run_download
from msc_france.errors import UserError
from msc_france.plan import DEMO_STORE_RATIOS, make_plan, store_ratios
from msc_france.store.index import build_index, write_index
from msc_france.store.records import TileRecord
from msc_france.throughput import TILES_MP_PER_CORE_S, TILES_TASK_CORE_S
from msc_france.tiles.create import create_or_open
from tests.test_download import World, _catalog_file, _region


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "msc_france", *args], capture_output=True, text=True, timeout=300)


def test_plan_is_the_download_stages_per_tile_plan(tmp_path: Path, served_world: DemoServer, tiny_world: World) -> None:
    catalog = str(_catalog_file(tmp_path, served_world.stac_url))
    plan = make_plan(_region(tiny_world), recipe="demo", catalog=catalog, data=tmp_path / "d")
    recipe = load_recipe("demo")
    dry = run_download(DownloadRequest(region=_region(tiny_world), catalog=catalog, recipe="demo", data=tmp_path / "e",
                                       dry_run=True), Console(quiet=True))
    assert dry.plan is not None and plan.tiles == len(dry.plan.tiles) > 0
    planned, dry_planned = (p.drop(columns=["reason"]).astype(str) for p in (plan.region_plan.tiles, dry.plan.tiles))
    assert planned.equals(dry_planned)
    assert plan.download_bytes == sum(fetch_bytes(dry.plan, recipe).values()) > 0
    assert plan.region_plan.triplets == plan.region_plan.coverable == plan.tiles
    by_group = {s.group: s for s in plan.sensors}
    assert list(by_group) == ["s2", "l8", "vhr", "labels"]
    n = plan.tiles
    assert (by_group["s2"].tile_px, by_group["s2"].bands, by_group["s2"].raw_bytes) == (48, 4, n * 48**2 * 4 * 2)
    assert by_group["vhr"].stored_bytes == round(n * 120**2 * 4 * DEMO_STORE_RATIOS["vhr"])
    assert plan.epochs == 12 and plan.hours_per_epoch is not None
    # tiler core-hours: every (tile, item) pair's band-pixels at the group's measured band-MP/s per core, and
    # a shard task per group and shard of 17 x 17 tiles (the demo recipe's) at its measured CPU time
    tiles = dry.plan.tiles
    shards = len({(col // 17, row // 17) for col, row in zip(tiles["col"], tiles["row"], strict=True)})
    assert plan.shards == shards > 0
    for group, px in (("s2", 48), ("l8", 16), ("vhr", 120), ("labels", 48)):
        pairs = int(dry.plan.tiles[f"{group}_items"].map(len).sum())
        assert pairs >= n
        bands = by_group[group].bands
        pixels_s = pairs * px**2 * bands / (TILES_MP_PER_CORE_S[group].value * 1e6)
        core_s = pixels_s + shards * TILES_TASK_CORE_S[group].value
        assert by_group[group].core_hours == pytest.approx(core_s / 3600), group
        assert by_group[group].tile_px == px
    assert plan.core_hours == pytest.approx(sum(s.core_hours or 0.0 for s in plan.sensors))


def test_tiler_core_hours_follow_the_measured_figure(tmp_path: Path, served_world: DemoServer, tiny_world: World,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    catalog = str(_catalog_file(tmp_path, served_world.stac_url))
    before = make_plan(_region(tiny_world), recipe="demo", catalog=catalog, data=tmp_path / "d")
    figure, task = TILES_MP_PER_CORE_S["vhr"], TILES_TASK_CORE_S["s2"]
    monkeypatch.setitem(TILES_MP_PER_CORE_S, "vhr", replace(figure, value=figure.value / 4))
    monkeypatch.setitem(TILES_TASK_CORE_S, "s2", replace(task, value=task.value + 1.0))
    monkeypatch.delitem(TILES_MP_PER_CORE_S, "labels")
    after = make_plan(_region(tiny_world), recipe="demo", catalog=catalog, data=tmp_path / "d")
    hours = {p.group: (b.core_hours or 0.0, p.core_hours) for b, p in zip(before.sensors, after.sensors, strict=True)}
    vhr_tasks_h = before.shards * TILES_TASK_CORE_S["vhr"].value / 3600  # not the figure's: unchanged
    assert hours["vhr"][1] == pytest.approx(4 * (hours["vhr"][0] - vhr_tasks_h) + vhr_tasks_h) and hours["vhr"][1]
    assert hours["s2"][1] == pytest.approx(hours["s2"][0] + before.shards / 3600), "1 s more a shard task"
    assert hours["l8"][1] == hours["l8"][0]
    assert hours["labels"][1] is None, "a group with no measured figure is not counted"


def test_unknown_region_is_one_line() -> None:
    result = _cli("plan", "--region", "atlantis")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip().count("\n") == 0 and "unknown region 'atlantis'" in result.stderr


def test_cli_prints_the_plan_table(tmp_path: Path, served_world: DemoServer, tiny_world: World) -> None:
    catalog = str(_catalog_file(tmp_path, served_world.stac_url))
    result = _cli("plan", "--region", _region(tiny_world), "--recipe", "demo", "--catalog", catalog,
                  "--data", str(tmp_path / "d"))
    assert result.returncode == 0, result.stderr
    out = " ".join(result.stdout.split())
    assert "recipe demo, catalog demo" in out
    for text in ("sentinel-2-l2a", "HR.ORTHOIMAGERY.ORTHOPHOTOS", "full triplets", "download", "tiles stage",
                 "pretraining (2-core CPU)", "12 epochs"):
        assert text in out, text
    assert not (tmp_path / "d" / "catalogs").exists(), "plan writes nothing"


def test_store_ratios_measure_stored_per_raw_bytes(tmp_path: Path) -> None:
    store = str(tmp_path / "tiny.zarr")
    root = create_or_open(store, load_recipe("demo"))
    rng = np.random.default_rng(0)
    root["s2"]["data"][:, :48, :48] = rng.integers(0, 2**16, (4, 48, 48), dtype=np.uint16)  # incompressible
    root["vhr"]["data"][:, :120, :120] = 7  # constant: next to nothing stored
    with pytest.raises(UserError, match="no tile index"):
        store_ratios(store)
    write_index(build_index([TileRecord(0, 0, "s2")], load_recipe("demo").tile_grid), store)
    ratios = store_ratios(store)
    assert set(ratios) == {"s2", "l8", "vhr", "labels"}
    # one tile carries its shard's whole index (17 x 17 x 16 bytes) and the array metadata with it
    assert 1.0 < ratios["s2"] < 1.6 and ratios["vhr"] < 0.15
