"""`msc-france plan`: tiles, stored bytes, download and compute estimates of a region."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from msc_france.config import load_recipe
from msc_france.errors import UserError
from msc_france.plan import DEMO_STORE_RATIOS, make_plan, store_ratios
from msc_france.regions import DATES_PER_TILE, download_estimate, region_tiles, resolve_region
from msc_france.throughput import PRETRAIN_IMAGES_PER_S, TILES_MP_PER_CORE_S
from msc_france.tiles.index import index_path
from msc_france.tiles.store import create_or_open

# Metropolitan France with Corsica: 543,940 km2 (INSEE); tiles of 1920 m cover 3.6864 km2.
FRANCE_LAND_TILES = 543_940 / 1.92**2  # 147,553


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "msc_france", *args], capture_output=True, text=True, timeout=300)


def test_demo_plan_has_the_demo_world_tiles_and_the_download_estimate() -> None:
    plan = make_plan("demo", recipe="demo", catalog="demo")
    recipe = load_recipe("demo")
    assert plan.tiles == 400 == len(region_tiles(resolve_region("demo"), recipe.tile_grid))
    assert plan.download_bytes == download_estimate(resolve_region("demo"), recipe)[1]
    by_group = {s.group: s for s in plan.sensors}
    assert list(by_group) == ["s2", "l8", "vhr", "labels"]
    assert (by_group["s2"].tile_px, by_group["s2"].bands, by_group["s2"].raw_bytes) == (48, 4, 400 * 48**2 * 4 * 2)
    assert by_group["vhr"].raw_bytes == 400 * 120**2 * 4 and by_group["labels"].raw_bytes == 400 * 48**2
    assert by_group["vhr"].stored_bytes == round(400 * 120**2 * 4 * DEMO_STORE_RATIOS["vhr"])
    s2_seconds = 400 * 48**2 * 4 * DATES_PER_TILE / (TILES_MP_PER_CORE_S["s2"].value * 1e6)
    assert by_group["s2"].core_hours == pytest.approx(s2_seconds / 3600)
    assert by_group["labels"].core_hours is None
    assert plan.train_images == 320 and plan.epochs == 12
    assert plan.hours_per_epoch == pytest.approx(320 / PRETRAIN_IMAGES_PER_S["pretrain-demo"].value / 3600)


def test_france_plan_counts_the_grid_tiles_over_the_departements() -> None:
    plan = make_plan("France")
    assert plan.region.slug == "france"
    # 172,655 tiles: 1.17 x the land area in tiles, since the départements' boxes take in sea and neighbours
    assert plan.tiles == len(region_tiles(resolve_region("france"), load_recipe("msc-france").tile_grid))
    assert 0.9 * FRANCE_LAND_TILES < plan.tiles < 1.3 * FRANCE_LAND_TILES
    s2 = next(s for s in plan.sensors if s.group == "s2")
    assert s2.raw_bytes == plan.tiles * 192**2 * 10 * 2
    assert 0.3e12 < plan.stored_bytes < 2e12  # under a terabyte and a half: VHR at 1.5 m dominates
    assert plan.hours_per_epoch is not None and plan.epochs == 100


def test_unknown_region_is_one_line() -> None:
    result = _cli("plan", "--region", "atlantis")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip().count("\n") == 0 and "unknown region 'atlantis'" in result.stderr


def test_cli_prints_the_plan_table() -> None:
    result = _cli("plan", "--region", "demo", "--recipe", "demo", "--catalog", "demo")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "plan for demo: recipe demo, catalog demo, 400 tiles" in out
    for text in ("sentinel-2-l2a", "HR.ORTHOIMAGERY.ORTHOPHOTOS", "download", "tiles stage", "pretraining (2-core CPU)", "12 epochs"):
        assert text in out, text


def test_store_ratios_measure_stored_per_raw_bytes(tmp_path: Path) -> None:
    store = str(tmp_path / "tiny.zarr")
    root = create_or_open(store, load_recipe("demo"))
    rng = np.random.default_rng(0)
    root["s2"]["data"][:, :48, :48] = rng.integers(0, 2**16, (4, 48, 48), dtype=np.uint16)  # incompressible
    root["vhr"]["data"][:, :120, :120] = 7  # constant: next to nothing stored
    with pytest.raises(UserError, match="no tile index"):
        store_ratios(store)
    pd.DataFrame({"tile": ["0000_0000"]}).to_parquet(index_path(store))
    ratios = store_ratios(store)
    assert set(ratios) == {"s2", "l8", "vhr", "labels"}
    # one tile carries its shard's whole index (17 x 17 x 16 bytes) and the array metadata with it
    assert 1.0 < ratios["s2"] < 1.6 and ratios["vhr"] < 0.15
