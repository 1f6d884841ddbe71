"""Pretraining end to end on CPU with a synthetic store: the loss moves, resume equals an uninterrupted
run, a 2-process DDP run (gloo), continual mode freezes what it should, the export loads into timm strictly
(RGB and multispectral)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from msc_france.errors import UserError
from msc_france.pretrain.checkpoint import load_checkpoint
from msc_france.pretrain.config import baseline_name, load_pretrain_config, seeded_name
from msc_france.pretrain.export import load_backbone
from msc_france.pretrain.meta_arch import XStars
from msc_france.pretrain.trainer import PretrainRequest, run_pretrain
from tests.pretrain_fixtures import write_preset

RGB3 = {"s2": 3, "l8": 3, "vhr": 3}


def records(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def full_run(tile_store: str, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("runs")
    preset = write_preset(folder, optim={"epochs": 2})
    summary = run_pretrain(PretrainRequest(config=preset, data=folder, run="full", store=tile_store, quiet=True))
    assert summary.steps == 8  # 32 tiles / batch 8 = 4 steps per epoch, 2 epochs
    return folder, preset


def test_a_few_steps_train_and_write_everything(full_run: tuple[Path, Path]) -> None:
    folder, _ = full_run
    run = folder / "runs" / "full"
    logged = records(run)
    assert [r["step"] for r in logged] == list(range(1, 9))
    assert all(r["processes"] == 1 and 0 <= r["data_wait"] <= 1 and r["images_per_s"] > 0 for r in logged)
    assert logged[-1]["msad"] < logged[0]["msad"]  # alignment is learnt
    assert logged[0]["lr"] < logged[3]["lr"]  # warm-up
    for name in ("checkpoint.pt", "metrics.csv", "curves.png", "export/model_card.json",
                 "export/backbone-vhr.safetensors"):
        assert (run / name).stat().st_size > 0, name
    assert list((run / "tensorboard").iterdir())


def test_resume_continues_exactly_like_an_uninterrupted_run(full_run: tuple[Path, Path], tile_store: str) -> None:
    folder, preset = full_run
    first = run_pretrain(PretrainRequest(config=preset, data=folder, run="split", store=tile_store, max_steps=5,
                                         quiet=True))
    assert first.steps == 5
    with pytest.raises(UserError, match="resume=1"):
        run_pretrain(PretrainRequest(config=preset, data=folder, run="split", store=tile_store, quiet=True))
    run_pretrain(PretrainRequest(config=preset, data=folder, run="split", store=tile_store, resume=True, quiet=True))
    whole, split = records(folder / "runs" / "full"), records(folder / "runs" / "split")
    assert [r["step"] for r in split] == [r["step"] for r in whole]
    for a, b in zip(whole, split, strict=True):
        for key in ("loss", "dino", "msad", "lr"):
            assert a[key] == pytest.approx(b[key], rel=1e-5, abs=1e-6), (a["step"], key)
    ours = load_checkpoint(folder / "runs" / "split" / "checkpoint.pt")["model"]
    theirs = load_checkpoint(folder / "runs" / "full" / "checkpoint.pt")["model"]
    for key in theirs:
        torch.testing.assert_close(ours[key], theirs[key], rtol=1e-5, atol=1e-6)


def test_resume_refuses_a_checkpoint_of_another_architecture(full_run: tuple[Path, Path], tile_store: str) -> None:
    folder, _ = full_run
    other = write_preset(folder, name="other", model={"arch": "vit_small_patch16"})
    with pytest.raises(UserError, match="another architecture"):
        run_pretrain(PretrainRequest(config=other, data=folder, run="full", store=tile_store, resume=True, quiet=True))


def test_exported_backbone_loads_into_timm_in_one_call(full_run: tuple[Path, Path]) -> None:
    folder, preset = full_run
    export = folder / "runs" / "full" / "export"
    timm_model = load_backbone(export, "l8").eval()
    model = XStars(load_pretrain_config(preset), RGB3)
    model.load_state_dict(load_checkpoint(folder / "runs" / "full" / "checkpoint.pt")["model"])
    model.eval()
    images = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(timm_model.forward_features(images), model.teacher.backbone(images, "l8"))
    card = json.loads((export / "model_card.json").read_text())
    assert card["sensors"]["s2"]["bands"] == ["B04", "B03", "B02"] and len(card["sensors"]["s2"]["mean"]) == 3


def test_a_multispectral_run_exports_backbones_that_reload_strictly(tile_store: str, tmp_path: Path) -> None:
    """Every sensor's own patch embedding (all the store's bands) goes to its file and comes back exactly."""
    preset = write_preset(tmp_path, model={"mode": "multispectral"}, optim={"epochs": 1}, runtime={"max_steps": 2})
    run_pretrain(PretrainRequest(config=preset, data=tmp_path, run="ms", store=tile_store, quiet=True))
    export = tmp_path / "runs" / "ms" / "export"
    card = json.loads((export / "model_card.json").read_text())
    in_chans = {s: c["in_chans"] for s, c in card["sensors"].items()}
    assert card["mode"] == "multispectral" and in_chans == {"s2": 4, "l8": 4, "vhr": 4}  # the demo recipe's bands
    model = XStars(load_pretrain_config(preset), in_chans)
    model.load_state_dict(load_checkpoint(tmp_path / "runs" / "ms" / "checkpoint.pt")["model"])
    model.eval()
    embeds = {}
    for sensor, channels in in_chans.items():
        timm_model = load_backbone(export, sensor).eval()
        embeds[sensor] = timm_model.patch_embed.proj.weight
        assert torch.equal(embeds[sensor], model.teacher.backbone.embed(sensor).proj.weight)
        images = torch.randn(2, channels, 32, 32)
        with torch.no_grad():
            torch.testing.assert_close(timm_model.forward_features(images), model.teacher.backbone(images, sensor))
    assert not torch.equal(embeds["s2"], embeds["l8"]) and not torch.equal(embeds["l8"], embeds["vhr"])


def test_continual_mode_freezes_the_reference_and_adapts_the_student(full_run: tuple[Path, Path],
                                                                     tile_store: str) -> None:
    folder, _ = full_run
    init = folder / "runs" / "full" / "checkpoint.pt"
    preset = write_preset(folder, name="continual", data={"sensors": ["s2", "vhr"], "workers": 0},
                          optim={"epochs": 1, "freeze_last_layer_epochs": 0},
                          continual={"init": str(init), "new_sensor": "vhr", "known_sensor": "s2"})
    run_pretrain(PretrainRequest(config=preset, data=folder, run="continual", store=tile_store, quiet=True))
    before = load_checkpoint(init)["model"]
    after = load_checkpoint(folder / "runs" / "continual" / "checkpoint.pt")["model"]
    frozen = {k.removeprefix("frozen."): v for k, v in after.items() if k.startswith("frozen.")}
    assert frozen and all(torch.equal(v, before[f"student.{k}"]) for k, v in frozen.items())
    qkv = "student.backbone.vit.blocks.0.attn.qkv.weight"
    moved = after[qkv] - before[qkv]
    assert moved.abs().max() > 0
    model = XStars(load_pretrain_config(preset), {"s2": 3, "vhr": 3})
    model.start_continual()
    model.train()
    assert not model.frozen.training and not any(p.requires_grad for p in model.frozen.parameters())
    assert model.msad_pairs() == [("vhr", "s2")]


def test_seeded_and_baseline_names_follow_one_rule() -> None:
    assert seeded_name("pretrain-demo", 3) == "pretrain-demo-seed3"
    assert seeded_name("pretrain-demo", None) == "pretrain-demo"
    assert baseline_name(seeded_name("pretrain-demo", 0)) == "pretrain-demo-seed0-dino"


def test_seed_names_the_run_and_drives_initialisation_and_sampling(tile_store: str, tmp_path: Path) -> None:
    """--seed K: runtime.seed = K and run NAME-seedK (baseline NAME-seedK-dino); the same seed gives the
    same first step, another seed another one."""
    preset = write_preset(tmp_path, optim={"epochs": 1}, runtime={"max_steps": 1})

    def run(name: str | None, seed: int, dino_only: bool = False) -> Path:
        summary = run_pretrain(PretrainRequest(config=preset, data=tmp_path, run=name, store=tile_store, seed=seed,
                                               dino_only=dino_only, quiet=True))
        return summary.run_dir

    a, b, c = run("a", 5), run("b", 5), run("a", 6)
    dino = run(None, 5, dino_only=True)
    assert [d.name for d in (a, b, c, dino)] == ["a-seed5", "b-seed5", "a-seed6", "pretrain-tiny-seed5-dino"]
    states = {d.name: load_checkpoint(d / "checkpoint.pt") for d in (a, b, c, dino)}
    assert [s["config"]["runtime"]["seed"] for s in states.values()] == [5, 5, 6, 5]
    assert states[dino.name]["config"]["loss"]["msad_weight"] == 0
    assert records(a)[0]["loss"] == records(b)[0]["loss"] != records(c)[0]["loss"]
    key = "student.backbone.vit.blocks.0.attn.qkv.weight"
    assert torch.equal(states["a-seed5"]["model"][key], states["b-seed5"]["model"][key])
    assert not torch.equal(states["a-seed5"]["model"][key], states["a-seed6"]["model"][key])


def test_two_process_ddp_run_with_gloo(tile_store: str, tmp_path: Path) -> None:
    preset = write_preset(tmp_path, optim={"epochs": 2, "batch_size": 4})
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MASTER_ADDR": "127.0.0.1"}
    torchrun = Path(sys.executable).parent / "torchrun"
    result = subprocess.run(
        [str(torchrun), "--standalone", "--nproc-per-node=2", "-m", "msc_france", "pretrain", "--config", str(preset),
         "--data", str(tmp_path), "--store", tile_store, "--run-name", "ddp"],
        env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    logged = records(tmp_path / "runs" / "ddp")
    assert [r["step"] for r in logged] == list(range(1, 9))  # 32 tiles / (4 x 2 processes) = 4 steps per epoch
    assert all(r["processes"] == 2 for r in logged)
    assert (tmp_path / "runs" / "ddp" / "export" / "backbone-s2.safetensors").exists()


def test_two_process_ddp_run_accumulates_gradients(tile_store: str, tmp_path: Path) -> None:
    """optim.accumulate > 1 under DDP: micro-steps between two optimizer steps run under ``no_sync``, a
    fresh context for the forward and one for the backward (one generator-based context cannot be entered
    twice: that was an AttributeError on the first such micro-step)."""
    preset = write_preset(tmp_path, optim={"epochs": 1, "batch_size": 4, "accumulate": 2},
                          runtime={"max_steps": 2})
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MASTER_ADDR": "127.0.0.1"}
    torchrun = Path(sys.executable).parent / "torchrun"
    result = subprocess.run(
        [str(torchrun), "--standalone", "--nproc-per-node=2", "-m", "msc_france", "pretrain", "--config", str(preset),
         "--data", str(tmp_path), "--store", tile_store, "--run-name", "ddp-accumulate"],
        env=env, capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, result.stderr[-2000:]
    logged = records(tmp_path / "runs" / "ddp-accumulate")
    assert [r["step"] for r in logged] == [1, 2]  # 4 micro-batches of 4 x 2 processes, 2 a step
    assert all(r["processes"] == 2 for r in logged)
