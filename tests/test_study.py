"""`msc-france study` on a tiny store: every (variant, seed) trained once, scored on val and test,
the choice made on val, seeds pooled, a bad variant refused before anything trains."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from msc_france.errors import UserError
from msc_france.eval.bootstrap import TileMean
from msc_france.study.run import Pooled, StudyRequest, run_study
from msc_france.study.spec import CHOICE_SCORES, load_study, variant_config
from tests.data.tile_store import write_tile_store
from tests.pretrain_fixtures import write_preset


def _study(folder: Path, base: Path, **variants: dict) -> Path:
    path = folder / "ablation.yaml"
    path.write_text(yaml.safe_dump({
        "name": "ablation", "description": "tiny", "base": str(base), "reference": "dino",
        "variants": [{"name": name, **spec} for name, spec in variants.items()]}))
    return path


@pytest.fixture(scope="module")
def studied(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str, Path]:
    """A two-variant study (DINO alone; MSAD with two seeds) run through the command line."""
    folder = tmp_path_factory.mktemp("study")
    store = str(folder / "demo.zarr")
    write_tile_store(store, seed=5, blocks=1, splits=("train", "val", "test"), labels=True)
    base = write_preset(folder, optim={"epochs": 1, "batch_size": 4}, runtime={"max_steps": 2, "device": "cpu"})
    study = _study(folder, base, dino={"note": "MSAD off", "set": {"loss.msad_weight": 0}},
                   msad={"note": "weight 1", "set": {"loss.msad_weight": 1.0}, "seeds": [0, 1]})
    data = folder / "data"
    result = subprocess.run([sys.executable, "-m", "msc_france", "study", str(study), "--data", str(data),
                             "--store", store, "--resamples", "200"], capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "chosen on val:" in result.stdout
    return data, store, study


def test_every_arm_is_trained_and_the_choice_is_made_on_val(studied: tuple[Path, str, Path]) -> None:
    data, _, _ = studied
    runs = sorted(p.name for p in (data / "runs").iterdir() if p.is_dir())
    assert runs == ["study-ablation-dino-seed0", "study-ablation-msad-seed0", "study-ablation-msad-seed1"]
    presets = data / "studies" / "ablation" / "presets"
    msad1 = yaml.safe_load((presets / "study-ablation-msad-seed1.yaml").read_text())
    assert (msad1["loss"]["msad_weight"], msad1["runtime"]["seed"]) == (1.0, 1)
    report = json.loads((data / "studies" / "ablation" / "study.json").read_text())
    assert report["val"]["tiles"] == report["test"]["tiles"] == 16 and report["val"]["resamples"] == 200
    figures = report["val"]["figures"]
    assert list(figures) == ["random init", "dino", "msad"]
    choice = {v["name"]: np.mean([figures[v["name"]][k]["value"] for k in report["study"]["choose_by"]])
              for v in report["variants"]}
    assert choice == pytest.approx({v["name"]: v["choice"] for v in report["variants"]})
    assert report["chosen"] == max(choice, key=lambda name: choice[name])
    assert [v["chosen"] for v in report["variants"]].count(True) == 1
    # val and test are other tiles: their scores differ somewhere
    assert any(figures["msad"][k]["value"] != report["test"]["figures"]["msad"][k]["value"] for k in figures["msad"])
    # the retrieval of each embedding is scored, and the differences against the reference and random init
    assert {"retrieval_R@1_cls", "retrieval_R@1_mean", "retrieval_R@1"} <= set(figures["msad"])
    compared = {(d["model"], d["baseline"]) for d in report["test"]["differences"]}
    assert {("msad", "dino"), ("msad", "random init"), ("dino", "random init")} <= compared
    msad = next(v for v in report["variants"] if v["name"] == "msad")
    assert msad["runs"] == ["study-ablation-msad-seed0", "study-ablation-msad-seed1"] and msad["seed_spread"]
    assert len(msad["pair_recall"]) == 6
    text = (data / "studies" / "ablation" / "study.md").read_text()
    assert "## Val (16 tiles)" in text and "★" in text and "msad vs dino" not in text  # column labels, not rows


def test_seeds_are_pooled_resample_by_resample(studied: tuple[Path, str, Path]) -> None:
    data, _, _ = studied
    report = json.loads((data / "studies" / "ablation" / "study.json").read_text())
    seeds = [json.loads((data / "runs" / run / "export" / "model_card.json").read_text())["step"]
             for run in ("study-ablation-msad-seed0", "study-ablation-msad-seed1")]
    assert seeds == [2, 2]  # both seeds trained their two steps
    a, b = TileMean((np.array([1.0, 0.0, 1.0, 1.0]),)), TileMean((np.array([0.0, 0.0, 1.0, 0.0]),))
    weights = np.array([[1, 1, 1, 1], [4, 0, 0, 0], [0, 0, 2, 2]], dtype=float)
    assert np.allclose(Pooled((a, b)).resampled(weights), (a.resampled(weights) + b.resampled(weights)) / 2)
    assert report["test"]["figures"]["msad"]["retrieval_R@1"]["low"] <= \
        report["test"]["figures"]["msad"]["retrieval_R@1"]["value"] <= \
        report["test"]["figures"]["msad"]["retrieval_R@1"]["high"]


def test_a_rerun_trains_nothing_again(studied: tuple[Path, str, Path]) -> None:
    data, store, study = studied
    checkpoints = {p: p.stat().st_mtime_ns for p in (data / "runs").glob("*/checkpoint.pt")}
    assert len(checkpoints) == 3
    summary = run_study(StudyRequest(study=str(study), data=data, store=store, resamples=50, quiet=True))
    assert {p: p.stat().st_mtime_ns for p in checkpoints} == checkpoints
    assert summary.test.resamples == 50


def test_a_bad_variant_is_one_line_before_any_training(tmp_path: Path) -> None:
    base = write_preset(tmp_path)
    study = _study(tmp_path, base, dino={"set": {"loss.msad_weight": 0}}, bad={"set": {"loss.msad_wieght": 1}})
    with pytest.raises(UserError, match=r"study ablation, variant bad: loss.msad_wieght: Extra inputs"):
        run_study(StudyRequest(study=str(study), data=tmp_path / "data", store=str(tmp_path / "none.zarr")))
    assert not (tmp_path / "data" / "runs").exists()
    unknown = _study(tmp_path, base, dino={}, other={})
    unknown.write_text(unknown.read_text().replace("reference: dino", "reference: nope"))
    with pytest.raises(UserError, match="reference 'nope' is not one of the variants"):
        load_study(str(unknown))


def test_the_shipped_study_is_valid() -> None:
    spec = load_study("msad")
    assert spec.reference in {v.name for v in spec.variants} and spec.base == "pretrain-demo"


def test_the_study_wide_keys_come_first_and_a_variant_overrides_them(tmp_path: Path) -> None:
    base = write_preset(tmp_path)
    study = _study(tmp_path, base, dino={"set": {"loss.msad_weight": 0}}, hard={"set": {"loss.msad_targets": "hard"}})
    raw = yaml.safe_load(study.read_text())
    raw["set"] = {"loss.msad_weight": 0.5, "loss.msad_targets": "soft", "model.msad_head_depth": 1}
    study.write_text(yaml.safe_dump(raw))
    spec = load_study(str(study))
    dino, hard = spec.variants
    assert variant_config(spec, dino, 0, "a")["loss"] == {"msad_weight": 0, "msad_targets": "soft"}
    hard_config = variant_config(spec, hard, 3, "b")
    assert hard_config["loss"] == {"msad_weight": 0.5, "msad_targets": "hard"}
    assert hard_config["model"]["msad_head_depth"] == 1 and hard_config["runtime"]["seed"] == 3
    assert hard_config["name"] == "b"


def test_a_store_without_labels_is_chosen_by_retrieval_alone(tmp_path: Path) -> None:
    store = str(tmp_path / "demo.zarr")
    write_tile_store(store, seed=6, blocks=1, splits=("train", "val", "test"), labels=False)
    base = write_preset(tmp_path, optim={"epochs": 1, "batch_size": 4}, runtime={"max_steps": 1, "device": "cpu"})
    study = _study(tmp_path, base, dino={"set": {"loss.msad_weight": 0}}, msad={"set": {"loss.msad_weight": 1.0}})
    summary = run_study(StudyRequest(study=str(study), data=tmp_path / "data", store=store, resamples=20, quiet=True))
    assert summary.spec.choose_by == list(CHOICE_SCORES)  # the default asks for transfer scores too
    assert "transfer_accuracy" not in summary.val.figures["msad"]  # the premise: no labels, no transfer
    assert summary.chosen_by == ["retrieval_R@1"]
    for result in summary.variants:
        assert result.choice == pytest.approx(summary.val.figures[result.name]["retrieval_R@1"].value)
    assert not np.isnan(max(r.choice for r in summary.variants))
