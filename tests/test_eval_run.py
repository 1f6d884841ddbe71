"""`msc-france eval` on a tiny run: every encoder scored, report.md / report.json and figures written."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from msc_france.errors import UserError
from msc_france.eval.downstream import eurosat, from_samples
from msc_france.eval.run import EvalRequest, run_eval
from msc_france.pretrain.trainer import PretrainRequest, run_pretrain
from tests.data.eurosat import CLASSES, write_eurosat
from tests.data.tile_store import write_tile_store
from tests.pretrain_fixtures import write_preset

SENSORS = ("s2", "l8", "vhr")


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """A labelled store with train, val and test tiles, and a tiny run with its DINO-alone baseline."""
    folder = tmp_path_factory.mktemp("eval")
    store = str(folder / "demo.zarr")
    write_tile_store(store, seed=4, blocks=1, splits=("train", "val", "test"), labels=True)
    preset = write_preset(folder, optim={"epochs": 1, "batch_size": 4})
    for dino_only in (False, True):
        run_pretrain(PretrainRequest(config=preset, data=folder / "data", store=store, max_steps=2, quiet=True,
                                     dino_only=dino_only))
    return folder / "data", store


def test_report_scores_every_model_pair_and_probe(trained: tuple[Path, str]) -> None:
    data, store = trained
    summary = run_eval(EvalRequest(run="pretrain-tiny", data=data, store=store, quiet=True))
    assert summary.report == data / "runs" / "pretrain-tiny" / "report.md"
    report = json.loads((data / "runs" / "pretrain-tiny" / "report.json").read_text())
    assert list(report["models"]) == ["random init", "DINO alone", "DINO + MSAD"]
    assert report["splits"] == {"train": 16, "val": 16, "test": 16} and report["chance"]["R@1"] == 1 / 16
    assert set(report["classes"]) == {"tree cover", "cropland", "built-up"}
    pairs = {f"{a}->{b}" for a in SENSORS for b in SENSORS if a != b}
    for name, scores in report["models"].items():
        assert set(scores["retrieval"]) == set(scores["transfer"]) == set(scores["segmentation_transfer"]) == pairs, \
            name
        assert set(scores["knn"]) == set(scores["linear"]) == set(scores["segmentation"]) == set(SENSORS)
        for value in scores["summary"].values():
            assert 0.0 <= value <= 1.0, (name, scores["summary"])
    # the store's sensors sample one field: co-located tiles are far easier to match than chance
    assert report["models"]["DINO + MSAD"]["summary"]["retrieval_R@1"] > 3 / 16
    for figure in report["figures"].values():
        assert (data / "runs" / "pretrain-tiny" / figure).stat().st_size > 10_000
    text = summary.report.read_text()
    assert "| random init |" in text and "## Cross-sensor transfer" in text and "![triplets]" in text
    # retrieval with the class token alone and the mean patch token alone, beside the tile embedding
    for scores in report["models"].values():
        assert set(scores["retrieval_cls"]) == set(scores["retrieval_mean"]) == pairs
        assert {"retrieval_R@1_cls", "retrieval_R@1_mean"} <= set(scores["intervals"])
    msad = report["models"]["DINO + MSAD"]
    assert len({msad["summary"][k] for k in ("retrieval_R@1", "retrieval_R@1_cls", "retrieval_R@1_mean")}) > 1 or \
        msad["summary"]["retrieval_R@1"] == 1.0  # three embeddings, three rankings (unless all are perfect)
    assert "### Which embedding retrieves" in text and "| class + mean patch | class token | mean patch token |" in text
    assert [row["model"] for row in summary.headline] == list(report["models"])


def test_report_carries_intervals_and_differences(trained: tuple[Path, str]) -> None:
    data, store = trained
    summary = run_eval(EvalRequest(run="pretrain-tiny", data=data, store=store, quiet=True, resamples=300))
    report = json.loads(summary.report.with_suffix(".json").read_text())
    assert {k: report["bootstrap"][k] for k in ("tiles", "resamples", "seed", "level", "tile_points")} == {
        "tiles": 16, "resamples": 300, "seed": 0, "level": 0.95, "tile_points": 100 / 16}
    for name, scores in report["models"].items():
        assert set(scores["intervals"]) == set(scores["summary"]), name  # every headline score has one
        for key, interval in scores["intervals"].items():
            assert interval["value"] == pytest.approx(scores["summary"][key], abs=1e-6), (name, key)  # torch: float32
            assert 0.0 <= interval["low"] <= interval["high"] <= 1.0, (name, key)
        # 16 tiles: a recall moves with the tiles drawn (unless every query finds its tile)
        assert scores["intervals"]["retrieval_R@5"]["high"] > scores["intervals"]["retrieval_R@5"]["low"] or \
            scores["summary"]["retrieval_R@5"] == 1.0
    differences = report["bootstrap"]["differences"]
    assert {(d["model"], d["baseline"]) for d in differences} == {
        ("DINO alone", "random init"), ("DINO + MSAD", "random init"), ("DINO + MSAD", "DINO alone")}
    models = report["models"]
    for d in differences:
        assert d["value"] == pytest.approx(models[d["model"]]["summary"][d["metric"]]
                                           - models[d["baseline"]]["summary"][d["metric"]], abs=1e-6)
        assert d["significant"] == (d["low"] > 0 or d["high"] < 0) and d["low"] <= d["high"]
    text = summary.report.read_text()
    r1 = models["DINO + MSAD"]["intervals"]["retrieval_R@1"]
    assert f"| DINO + MSAD | {100 * r1['value']:.1f} [{100 * r1['low']:.1f}, {100 * r1['high']:.1f}] |" in text
    assert "### Differences between models" in text and "| DINO + MSAD vs DINO alone |" in text
    assert "16 test tiles (300 resamples of the tiles" in text and "one test tile is 6.2 points" in text
    assert summary.bootstrap.resamples == 300 and list(summary.bootstrap.figures) == list(models)
    claim = {c["claim"]: c for c in report["claim"]}
    r1_gain = summary.bootstrap.difference("DINO + MSAD", "DINO alone", "retrieval_R@1")
    assert r1_gain is not None and claim["R@1 ahead of DINO alone"]["met"] == (r1_gain.low > 0)
    worst = min(p["R@1"] for p in models["DINO + MSAD"]["retrieval"].values())
    assert claim["R@1 ≥ 90 % for every sensor pair"]["met"] == (worst >= 0.9) and len(claim) == 7
    assert "### The cross-sensor claim" in text


def test_the_command_line_prints_intervals_and_refuses_no_resamples(trained: tuple[Path, str]) -> None:
    data, store = trained
    args = [sys.executable, "-m", "msc_france", "eval", "--data", str(data), "--run", "pretrain-tiny", "--store", store]
    bad = subprocess.run([*args, "--resamples", "0"], capture_output=True, text=True, timeout=600)
    assert bad.returncode == 2 and bad.stderr.strip().count("\n") == 0 and "Traceback" not in bad.stderr
    assert "--resamples 0: give a number of bootstrap resamples of 1 or more" in bad.stderr
    result = subprocess.run([*args, "--resamples", "200"], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    report = json.loads((data / "runs" / "pretrain-tiny" / "report.json").read_text())
    r1 = report["models"]["DINO + MSAD"]["intervals"]["retrieval_R@1"]
    assert f"{100 * r1['value']:.1f} [{math.floor(100 * r1['low'])},{math.ceil(100 * r1['high'])}]" in result.stdout
    assert "DINO + MSAD vs DINO alone" in result.stdout and "200 resamples" in result.stdout
    assert "the cross-sensor claim" in result.stdout and "R@1 ahead of DINO alone" in result.stdout
    assert "[low, high]: 95 % percentile interval" in " ".join(result.stdout.split())  # not eaten as markup
    assert report["bootstrap"]["resamples"] == 200


def test_without_baselines_only_the_run(trained: tuple[Path, str]) -> None:
    data, store = trained
    summary = run_eval(EvalRequest(run="pretrain-tiny-dino", data=data, store=store, baselines=False, quiet=True))
    assert [row["model"] for row in summary.headline] == ["DINO alone"]


def test_unknown_run_is_a_user_error(trained: tuple[Path, str]) -> None:
    data, store = trained
    with pytest.raises(UserError, match="no run 'nope'"):
        run_eval(EvalRequest(run="nope", data=data, store=store))


def test_downstream_eurosat_probes(trained: tuple[Path, str], tmp_path: Path) -> None:
    data, store = trained
    root = write_eurosat(tmp_path / "EuroSAT")
    summary = run_eval(EvalRequest(run="pretrain-tiny", data=data, store=store, quiet=True,
                                   downstream={"eurosat": str(root)}))
    report = json.loads(summary.report.with_suffix(".json").read_text())
    scores = report["downstream"]["eurosat"]
    assert list(scores) == ["random init", "DINO alone", "DINO + MSAD"]
    for model in scores.values():
        assert model["train"] == 24 and model["test"] == 12  # the split files' images, not all of them
        assert model["linear"]["accuracy"] > 0.8  # three very different spectra; chance is 1/3
    assert "## Downstream: eurosat" in summary.report.read_text()


def test_eurosat_reader_bands_and_errors(tmp_path: Path) -> None:
    root = write_eurosat(tmp_path / "EuroSAT", per_class=3)
    test = eurosat(root, "test", ["B04", "B8A"])
    assert test.images.shape == (3, 2, 32, 32) and test.classes == ["Forest", "Industrial", "River"]
    forest = test.images[test.labels == 0][0]
    ratio = float((forest[1] / forest[0]).mean())  # B8A (last on disk) over B04: texture and brightness cancel
    assert abs(ratio - CLASSES["Forest"][12] / CLASSES["Forest"][3]) < 0.5, ratio  # B08 would give 10
    with pytest.raises(UserError, match="no band B13"):
        eurosat(root, "test", ["B13"])
    with pytest.raises(UserError, match="no EuroSAT class folders"):
        eurosat(tmp_path / "empty", "test", ["B04"])


def test_samples_adapter_keeps_bands_in_order() -> None:
    samples = [{"image": torch.full((3, 4, 4), float(i)) * torch.tensor([1.0, 2.0, 3.0])[:, None, None],
                "label": i % 2} for i in range(4)]
    data = from_samples(samples, ["a", "b"], ["B02", "B03", "B04"], ["B04", "B02"], scale=0.5)
    assert data.images.shape == (4, 2, 4, 4) and data.labels.tolist() == [0, 1, 0, 1]
    assert float(data.images[2, 0, 0, 0]) == 3.0 and float(data.images[2, 1, 0, 0]) == 1.0


def test_store_without_val_tiles_keeps_a_fixed_l2(trained: tuple[Path, str], tmp_path: Path) -> None:
    data, _ = trained
    store = str(tmp_path / "no-val.zarr")
    write_tile_store(store, seed=5, blocks=1, splits=("train", "test"), labels=True)
    summary = run_eval(EvalRequest(run="pretrain-tiny", data=data, store=store, baselines=False, quiet=True))
    report = json.loads(summary.report.with_suffix(".json").read_text())
    assert report["splits"] == {"train": 16, "val": 0, "test": 16}
    assert {v["weight_decay"] for v in report["models"]["DINO + MSAD"]["linear"].values()} == {1e-2}


def test_auto_resume_of_a_finished_run_only_re_exports(trained: tuple[Path, str]) -> None:
    data, store = trained
    card = data / "runs" / "pretrain-tiny-dino" / "export" / "model_card.json"
    before = json.loads(card.read_text())["step"]
    summary = run_pretrain(PretrainRequest(config=data.parent / "tiny.yaml", data=data, store=store, max_steps=2,
                                           quiet=True, dino_only=True, resume="auto"))
    assert summary.steps == before == 2 and summary.run_dir.name == "pretrain-tiny-dino"
