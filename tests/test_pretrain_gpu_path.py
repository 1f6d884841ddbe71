"""The trainer's GPU paths on CPU: the device's runtime choices, and a short run with ``runtime.compile``
(inductor) and bf16 autocast that trains, checkpoints, resumes and exports a backbone timm reloads."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from torch._dynamo.utils import counters

from msc_france.pretrain import runtime as runtime_module
from msc_france.pretrain.backbone import import_timm
from msc_france.pretrain.checkpoint import load_checkpoint
from msc_france.pretrain.config import RuntimeConfig, load_pretrain_config
from msc_france.pretrain.meta_arch import XStars
from msc_france.pretrain.peak import peak_dtype
from msc_france.pretrain.runtime import runtime_choices
from msc_france.pretrain.trainer import PretrainRequest, run_pretrain
from tests.pretrain_fixtures import write_preset

# The tiny preset with the fewest graphs to compile (inductor's C++ kernels dominate the test's time):
# one sensor, DINO alone, global crops only: one training graph and one no-grad graph per backbone call.
SENSORS = {"s2": 3}
SMALL = {"data": {"sensors": list(SENSORS), "workers": 0}, "crops": {"local_number": 0},
         "loss": {"msad_weight": 0.0}, "optim": {"epochs": 2, "warmup_epochs": 0.5, "base_lr": 0.1}}


def records(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def test_runtime_choices_come_from_the_device(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(runtime_module, "cuda_bf16", lambda: True)  # an Ampere or later GPU
    cuda, cpu = torch.device("cuda"), torch.device("cpu")
    on_gpu = runtime_choices(cuda, RuntimeConfig())
    assert on_gpu.autocast_dtype == torch.bfloat16 and on_gpu.fused_adamw and on_gpu.pin_memory and on_gpu.tf32
    assert on_gpu.backend == "nccl"
    on_cpu = runtime_choices(cpu, RuntimeConfig())
    assert on_cpu.autocast_dtype is None  # bf16 on CPU is opt-in
    assert not (on_cpu.fused_adamw or on_cpu.pin_memory or on_cpu.tf32) and on_cpu.backend == "gloo"
    assert runtime_choices(cpu, RuntimeConfig(bf16_cpu=True)).autocast_dtype == torch.bfloat16
    assert runtime_choices(cpu, RuntimeConfig(bf16=False, bf16_cpu=True)).autocast_dtype is None
    assert runtime_choices(cuda, RuntimeConfig(bf16=False)).autocast_dtype is None
    with runtime_choices(cpu, RuntimeConfig(bf16_cpu=True)).autocast(cpu):
        assert (torch.ones(2, 2) @ torch.ones(2, 2)).dtype == torch.bfloat16
    assert peak_dtype(cuda) == torch.bfloat16 and peak_dtype(cpu) == torch.float32  # the MFU's denominator


def test_a_gpu_without_bf16_trains_in_fp32(monkeypatch: pytest.MonkeyPatch) -> None:
    cuda = torch.device("cuda")
    monkeypatch.setattr(runtime_module, "cuda_bf16", lambda: True)
    assert runtime_choices(cuda, RuntimeConfig()).autocast_dtype == torch.bfloat16  # the premise: bf16 asked
    monkeypatch.setattr(runtime_module, "cuda_bf16", lambda: False)  # e.g. a V100 or a T4
    assert runtime_choices(cuda, RuntimeConfig()).autocast_dtype is None
    assert runtime_choices(cuda, RuntimeConfig()).fused_adamw and peak_dtype(cuda) == torch.float32


@pytest.fixture(scope="module")
def compiled_run(tile_store: str, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, int]:
    """A compiled bf16 run stopped at step 3 and resumed to the end (8 steps); the graphs dynamo captured."""
    folder = tmp_path_factory.mktemp("compiled")
    preset = write_preset(folder, name="compiled", **SMALL,
                          runtime={"compile": True, "bf16": True, "bf16_cpu": True, "checkpoint_every": 3})
    counters.clear()
    first = run_pretrain(PretrainRequest(config=preset, data=folder, run="c", store=tile_store, max_steps=3,
                                         quiet=True))
    assert first.steps == 3
    run_pretrain(PretrainRequest(config=preset, data=folder, run="c", store=tile_store, resume=True, quiet=True))
    return folder, preset, int(counters["stats"]["unique_graphs"])


def test_compiled_bf16_run_trains_resumes_and_keeps_plain_keys(compiled_run: tuple[Path, Path, int],
                                                               tile_store: str) -> None:
    folder, preset, graphs = compiled_run
    assert graphs > 0  # dynamo did compile the backbones
    logged = records(folder / "runs" / "c")
    assert [r["step"] for r in logged] == list(range(1, 9))  # 3 steps, then resumed to the end
    assert all(math.isfinite(r["loss"]) for r in logged)
    losses = [r["loss"] for r in logged]
    assert sum(losses[4:]) / 4 < sum(losses[:4]) / 4 - 0.3  # the second epoch's DINO loss is well below the first's
    state = load_checkpoint(folder / "runs" / "c" / "checkpoint.pt")
    assert state["step"] == 8
    expected = XStars(load_pretrain_config(preset), SENSORS).state_dict().keys()
    assert state["model"].keys() == expected  # no "_orig_mod." from compile
    # bf16 autocast did run: the first step's loss is near, not equal to, an fp32 eager run's.
    eager = write_preset(folder, name="eager", **SMALL, runtime={"max_steps": 1, "bf16_cpu": False})
    run_pretrain(PretrainRequest(config=eager, data=folder, run="e", store=tile_store, quiet=True))
    fp32 = records(folder / "runs" / "e")[0]["loss"]
    assert logged[0]["loss"] != fp32 and logged[0]["loss"] == pytest.approx(fp32, rel=0.05)


def test_compiled_run_exports_a_backbone_timm_reloads_strictly(compiled_run: tuple[Path, Path, int]) -> None:
    folder, preset, _ = compiled_run
    export = folder / "runs" / "c" / "export"
    weights = load_file(str(export / "backbone-s2.safetensors"))
    assert weights and not any("_orig_mod" in key for key in weights)
    card = json.loads((export / "model_card.json").read_text())
    timm_model = import_timm().create_model(card["arch"], pretrained=False, num_classes=0, in_chans=3,
                                            img_size=card["img_size"], dynamic_img_size=True)
    timm_model.load_state_dict(weights, strict=True)
    model = XStars(load_pretrain_config(preset), SENSORS)
    model.load_state_dict(load_checkpoint(folder / "runs" / "c" / "checkpoint.pt")["model"])
    images = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(timm_model.eval().forward_features(images),
                                   model.eval().teacher.backbone(images, "s2"))
