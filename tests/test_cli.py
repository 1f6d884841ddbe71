"""The command line: one-line errors with exit status 2, and `demo run` end to end (every stage) on a small world."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from msc_france.config import CATALOGS_DIR, load_recipe
from msc_france.tiles.create import create_or_open
from tests.pretrain_fixtures import write_preset

E2E_SIZE = 2880.0  # metres
E2E_CENTER = [1.349, 43.5325]  # lon, lat


def _cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "msc_france", *args], capture_output=True, text=True, cwd=cwd,
                          timeout=900)


def test_unknown_catalog_is_one_line() -> None:
    result = _cli("download", "--catalog", "atlantis")
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0 and "Traceback" not in result.stderr
    assert "unknown catalog 'atlantis'" in result.stderr and "planetary-computer" in result.stderr


def test_eval_without_a_run_is_one_line(tmp_path: Path) -> None:
    result = _cli("eval", "--data", str(tmp_path), "--run", "missing")
    assert result.returncode == 2 and "Traceback" not in result.stderr and result.stderr.strip().count("\n") == 0
    assert "no run 'missing'" in result.stderr and "make pretrain" in result.stderr


def test_eval_bad_downstream_is_one_line(tmp_path: Path) -> None:
    result = _cli("eval", "--data", str(tmp_path), "--downstream", "eurosat")
    assert result.returncode == 2 and "expected NAME=FOLDER" in result.stderr


def test_pretrain_without_a_store_is_one_line(tmp_path: Path) -> None:
    result = _cli("pretrain", "--data", str(tmp_path))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip().count("\n") == 0 and "run `make tiles` first" in result.stderr


def test_pretrain_and_eval_take_the_preset_of_the_store(tmp_path: Path) -> None:
    """Without config= (run= for eval) the preset is pretrain-<recipe the store was built with>."""
    tiny = tmp_path / "tiny.yaml"
    tiny.write_text(yaml.safe_dump({**load_recipe("demo").model_dump(mode="json"), "name": "tiny"}))
    create_or_open(str(tmp_path / "data" / "tiny.zarr"), load_recipe(str(tiny)))
    result = _cli("pretrain", "--data", str(tmp_path / "data"))
    assert result.returncode == 2 and "Traceback" not in result.stderr and result.stderr.strip().count("\n") == 0
    assert "built with recipe tiny, which has no preset pretrain-tiny" in result.stderr
    demo = str(tmp_path / "demo.zarr")
    create_or_open(demo, load_recipe("demo"))
    result = _cli("eval", "--data", str(tmp_path / "data"), "--store", demo)
    assert result.returncode == 2 and "no run 'pretrain-demo'" in result.stderr, result.stderr
    create_or_open(str(tmp_path / "data" / "demo.zarr"), load_recipe("demo"))
    result = _cli("pretrain", "--data", str(tmp_path / "data"))
    assert result.returncode == 2 and "holds several tile stores (demo.zarr, tiny.zarr)" in result.stderr


def test_pretrain_seed_reaches_the_run_and_its_baseline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from msc_france.cli import app
    from msc_france.pretrain.trainer import PretrainRequest, PretrainSummary

    requests: list[PretrainRequest] = []

    def record(request: PretrainRequest) -> PretrainSummary:
        requests.append(request)
        return PretrainSummary(tmp_path, 0, tmp_path / "checkpoint.pt", None, None, {})

    monkeypatch.setattr("msc_france.pretrain.trainer.run_pretrain", record)
    result = CliRunner().invoke(app, ["pretrain", "--config", "pretrain-demo", "--seed", "4", "--baselines"])
    assert result.exit_code == 0, result.output
    assert [(r.seed, r.dino_only) for r in requests] == [(4, False), (4, True)]
    assert CliRunner().invoke(app, ["pretrain", "--seed", "-1"]).exit_code == 2  # seeds are >= 0


def test_bad_recipe_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\ngrid: {footprint: 1920, gsd: {s2: 7}}\nsensors: {s2: {bands: [B04]}}\n")
    result = _cli("grid", "--recipe", str(bad))
    assert result.returncode == 2 and str(bad) in result.stderr and "Traceback" not in result.stderr


def test_grid_counts_tiles() -> None:
    result = _cli("grid", "--recipe", "demo", "--bbox", "1.30,43.50,1.31,43.51")
    assert result.returncode == 0, result.stderr
    assert "480 m tiles" in result.stdout and " tiles: " in result.stdout


def test_demo_run_end_to_end(tmp_path: Path) -> None:
    catalog = yaml.safe_load((CATALOGS_DIR / "demo.yaml").read_text())
    # 6 x 6 tiles over four split blocks (16 test, 8 val, 12 train tiles), about 20 s to generate
    catalog["world"].update(size=E2E_SIZE, height=None, center=E2E_CENTER)  # a square
    catalog_file = tmp_path / "tiny.yaml"
    catalog_file.write_text(yaml.safe_dump(catalog))
    small = {"data": {"min_valid": 0.0, "workers": 0}, "optim": {"epochs": 1, "batch_size": 4}}
    preset = write_preset(tmp_path, name="preset", **small)
    s2 = write_preset(tmp_path, name="s2", preset_name="pretrain-tiny-s2", data={**small["data"], "sensors": ["s2"]},
                      loss={"msad_weight": 0.0}, optim=small["optim"])
    continual = write_preset(tmp_path, name="continual", preset_name="pretrain-tiny-continual",
                             data={**small["data"], "sensors": ["s2", "vhr"]},
                             optim={**small["optim"], "freeze_last_layer_epochs": 0},
                             continual={"init": "run:pretrain-tiny-s2", "new_sensor": "vhr", "known_sensor": "s2"})
    result = _cli("demo", "run", "--data", str(tmp_path / "data"), "--catalog", str(catalog_file),
                  "--pretrain-config", str(preset), "--s2-config", str(s2), "--continual-config", str(continual))
    assert result.returncode == 0, result.stderr
    assert "sentinel-2-l2a" in result.stdout and "window of S2" in result.stdout
    assert "local catalog:" in result.stdout and "failed 0" in result.stdout
    assert "random init" in result.stdout and "DINO alone" in result.stdout and "DINO + MSAD" in result.stdout
    runs = tmp_path / "data" / "runs"
    assert (runs / "pretrain-tiny" / "export" / "backbone-vhr.safetensors").exists()
    assert (runs / "pretrain-tiny-dino" / "export" / "backbone-vhr.safetensors").exists()
    report = json.loads((runs / "pretrain-tiny" / "report.json").read_text())
    assert report["splits"]["test"] == 16 and len(report["models"]) == 3
    assert report["continual"]["run"] == "pretrain-tiny-continual" and report["continual"]["same_tiles"]
    assert "continual run pretrain-tiny-continual" in result.stdout and "after - before" in result.stdout
    assert "the cross-sensor claim" in result.stdout and len(report["claim"]) == 7  # two baselines x 3, per pair
    assert f"report: {runs / 'pretrain-tiny' / 'report.md'}\n" in result.stdout
    assert (tmp_path / "data" / "demo.tiles.parquet").exists() and (tmp_path / "data" / "demo.zarr").is_dir()
    assert "published " in result.stdout and "as version 1.0.0 (first publish)" in result.stdout
    assert json.loads((tmp_path / "data" / "demo.publish" / "collection.json").read_text())["msc:synthetic"] is True
    assert (tmp_path / "data" / "catalogs" / "demo" / "catalog.json").exists()
    assert not (tmp_path / "data" / "demo-world" / "server.json").exists(), "servers stopped and state removed"
