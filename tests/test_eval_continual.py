"""The continual row of `msc-france eval`: a Sentinel-2 model adapted to VHR (continual.init run:NAME),
reported before and after adaptation in the report of the run NAME it is named after."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from msc_france.errors import UserError
from msc_france.eval.continual import AFTER, BEFORE
from msc_france.eval.encoders import continual_start
from msc_france.eval.run import EvalRequest, run_eval
from msc_france.pretrain.checkpoint import load_checkpoint
from msc_france.pretrain.config import load_pretrain_config
from msc_france.pretrain.dataset import TileDataset
from msc_france.pretrain.trainer import PretrainRequest, run_pretrain
from msc_france.pretrain.weights import resolve_init
from tests.data.tile_store import write_tile_store
from tests.pretrain_fixtures import write_preset

PAIRS = ["s2->vhr", "vhr->s2"]
COLUMNS = [f"{metric} {pair}" for metric in ("retrieval_R@1", "retrieval_R@5", "transfer_accuracy") for pair in PAIRS]


def continual_preset(folder: Path, init: str) -> Path:
    return write_preset(folder, name="continual", data={"sensors": ["s2", "vhr"], "workers": 0},
                        optim={"epochs": 1, "batch_size": 4, "freeze_last_layer_epochs": 0},
                        continual={"init": init, "new_sensor": "vhr", "known_sensor": "s2"})


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """A labelled store; the run pretrain-tiny, a Sentinel-2 run and its adaptation to VHR,
    pretrain-tiny-continual, started from it by run name."""
    folder = tmp_path_factory.mktemp("continual")
    store = str(folder / "demo.zarr")
    write_tile_store(store, seed=4, blocks=1, splits=("train", "val", "test"), labels=True)
    data = folder / "data"
    main = write_preset(folder, optim={"epochs": 1, "batch_size": 4})
    s2 = write_preset(folder, name="s2", data={"sensors": ["s2"]}, loss={"msad_weight": 0.0},
                      optim={"epochs": 1, "batch_size": 4})
    for preset, run in ((main, None), (s2, "pretrain-tiny-s2")):
        run_pretrain(PretrainRequest(config=preset, data=data, run=run, store=store, max_steps=2, quiet=True))
    run_pretrain(PretrainRequest(config=continual_preset(folder, "run:pretrain-tiny-s2"), data=data,
                                 run="pretrain-tiny-continual", store=store, max_steps=2, quiet=True))
    return data, store


def test_report_has_the_continual_section_before_and_after(trained: tuple[Path, str]) -> None:
    data, store = trained
    summary = run_eval(EvalRequest(run="pretrain-tiny", data=data, store=store, quiet=True, resamples=200))
    report = json.loads(summary.report.with_suffix(".json").read_text())
    continual = report["continual"]
    assert summary.continual is not None and continual["run"] == "pretrain-tiny-continual"
    assert (continual["known_sensor"], continual["new_sensor"], continual["init"]) == ("s2", "vhr",
                                                                                       "run:pretrain-tiny-s2")
    assert continual["pairs"] == PAIRS and continual["same_tiles"] is True
    # the headline's test tiles and resamples: the intervals of both sections are paired
    assert {k: continual["bootstrap"][k] for k in ("tiles", "resamples", "seed")} == {
        k: report["bootstrap"][k] for k in ("tiles", "resamples", "seed")} == {"tiles": 16, "resamples": 200, "seed": 0}
    assert list(continual["models"]) == [BEFORE, AFTER]
    for name, scores in continual["models"].items():
        assert set(scores["retrieval"]) == set(scores["transfer"]) == set(PAIRS), name
        assert list(scores["intervals"]) == COLUMNS, name
        for pair in PAIRS:
            r1 = scores["intervals"][f"retrieval_R@1 {pair}"]
            assert r1["value"] == pytest.approx(scores["retrieval"][pair]["R@1"], abs=1e-6)
            assert 0.0 <= r1["low"] <= r1["high"] <= 1.0
            accuracy = scores["intervals"][f"transfer_accuracy {pair}"]["value"]
            assert accuracy == pytest.approx(scores["transfer"][pair]["accuracy"], abs=1e-6)
    differences = continual["bootstrap"]["differences"]
    assert [(d["model"], d["baseline"], d["metric"]) for d in differences] == [(AFTER, BEFORE, k) for k in COLUMNS]
    models = continual["models"]
    for d in differences:
        after, before = (models[m]["intervals"][d["metric"]]["value"] for m in (AFTER, BEFORE))
        assert d["value"] == pytest.approx(after - before, abs=1e-9)
        assert d["significant"] == (d["low"] > 0 or d["high"] < 0)
    text = summary.report.read_text()
    assert "## Continual: s2 model adapted to vhr (run `pretrain-tiny-continual`)" in text
    r1 = models[AFTER]["intervals"]["retrieval_R@1 s2->vhr"]
    assert f"| {AFTER} | {100 * r1['value']:.1f} [{100 * r1['low']:.1f}, {100 * r1['high']:.1f}] |" in text
    assert "| after - before |" in text and "| model | R@1 s2->vhr | R@1 vhr->s2 | R@5 s2->vhr |" in text
    assert text.index("## Continual") < text.index("## Cross-sensor retrieval")  # beside the headline


def test_before_is_the_sentinel2_model_the_run_started_from(trained: tuple[Path, str]) -> None:
    data, _ = trained
    runs = data / "runs"
    state = load_checkpoint(runs / "pretrain-tiny-continual" / "checkpoint.pt")["model"]
    before = continual_start(runs / "pretrain-tiny-continual" / "export", state, BEFORE)
    start = load_checkpoint(runs / "pretrain-tiny-s2" / "checkpoint.pt")["model"]
    assert set(before.models) == {"s2", "vhr"}  # RGB mode: the Sentinel-2 backbone embeds VHR too
    for sensor, model in before.models.items():
        for key, value in model.state_dict().items():
            assert torch.equal(value, start[f"student.backbone.vit.{key}"]), (sensor, key)
    qkv = "student.backbone.vit.blocks.0.attn.qkv.weight"
    assert not torch.equal(state[qkv], start[qkv])  # the adaptation moved the student


def test_the_command_line_prints_the_continual_table(trained: tuple[Path, str]) -> None:
    data, store = trained
    result = subprocess.run([sys.executable, "-m", "msc_france", "eval", "--data", str(data), "--run", "pretrain-tiny",
                             "--store", store, "--resamples", "50", "--no-baselines",
                             "--continual", "pretrain-tiny-continual"],
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    assert "continual run pretrain-tiny-continual" in result.stdout
    assert BEFORE in result.stdout and AFTER in result.stdout and "after - before" in result.stdout


def test_a_named_continual_run_must_exist_and_be_continual(trained: tuple[Path, str]) -> None:
    data, store = trained
    with pytest.raises(UserError, match="--continual nope: no exported run nope") as missing:
        run_eval(EvalRequest(run="pretrain-tiny", data=data, store=store, quiet=True, continual="nope"))
    assert "\n" not in str(missing.value)
    with pytest.raises(UserError, match="run pretrain-tiny-s2 is not a continual run"):
        run_eval(EvalRequest(run="pretrain-tiny", data=data, store=store, quiet=True, continual="pretrain-tiny-s2"))


def test_without_a_continual_run_no_section(trained: tuple[Path, str]) -> None:
    data, store = trained
    summary = run_eval(EvalRequest(run="pretrain-tiny-s2", data=data, store=store, quiet=True, baselines=False,
                                   resamples=20))
    assert summary.continual is None and summary.claim == []  # one sensor, no baseline: nothing to claim
    assert json.loads(summary.report.with_suffix(".json").read_text())["continual"] is None
    assert "## Continual" not in summary.report.read_text()


def test_init_by_run_name(trained: tuple[Path, str], tmp_path: Path) -> None:
    data, store = trained
    assert resolve_init("run:pretrain-tiny-s2", data) == data / "runs" / "pretrain-tiny-s2" / "checkpoint.pt"
    assert resolve_init("weights/dino.pth", data) == Path("weights/dino.pth")  # a plain path as it is
    preset = continual_preset(tmp_path, "run:pretrain-nope")
    with pytest.raises(UserError) as missing:
        run_pretrain(PretrainRequest(config=preset, data=data, run="nope-continual", store=store, max_steps=1,
                                     quiet=True))
    message = str(missing.value)
    assert message == (f"continual.init: run pretrain-nope has no checkpoint in {data / 'runs'}; "
                       "train it first with `make pretrain config=pretrain-nope`")
    with pytest.raises(UserError, match="is not a safe name"):
        resolve_init("run:../elsewhere", data)


def test_tile_dataset_keeps_only_the_tiles_asked(trained: tuple[Path, str]) -> None:
    _, store = trained
    every = TileDataset(store, {"s2": None}, "test")
    kept = TileDataset(store, {"s2": None}, "test", tiles=every.tiles[3:7])
    assert kept.tiles == every.tiles[3:7] and kept.cells == every.cells[3:7]


def test_the_demo_presets_adapt_a_sentinel2_model_of_the_same_shape() -> None:
    demo, s2, continual = (load_pretrain_config(name) for name in
                           ("pretrain-demo", "pretrain-demo-s2", "pretrain-demo-continual"))
    assert s2.data.sensors == ["s2"] and s2.loss.msad_weight == 0 and s2.model.mode == "rgb"
    assert (s2.model, s2.crops, s2.optim) == (demo.model, demo.crops, demo.optim)  # the same budget
    assert continual.continual is not None and continual.continual.init == f"run:{s2.name}"
    assert continual.model == s2.model and continual.optim.epochs == 5
