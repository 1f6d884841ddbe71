"""bench/pretrain_throughput.py on the tests' store: every run, the summary and ratio, the profile files,
and a store too small for one batch refused in one line instead of a loader that never yields."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.pretrain_fixtures import write_preset

ROOT = Path(__file__).resolve().parents[1]


def bench(*args: str) -> subprocess.CompletedProcess[str]:
    """The benchmark in one torch thread (its tiny steps gain nothing from more, and stall beside other jobs)."""
    return subprocess.run([sys.executable, str(ROOT / "bench" / "pretrain_throughput.py"), "--peak-tflops", "1",
                           *args], capture_output=True, text=True, timeout=600, cwd=ROOT,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})


def test_throughput_bench_prints_the_ratio_and_writes_the_profiles(tile_store: str, tmp_path: Path) -> None:
    preset = write_preset(tmp_path, crops={"global_size": 32, "local_size": 16, "local_number": 1},
                          optim={"batch_size": 4})
    done = bench("--config", str(preset), "--store", tile_store, "--steps", "1", "--profile", str(tmp_path / "p"),
                 "--profile-steps", "1")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert any(line.split()[:3] == ["vit_tiny_patch16", "msc-france", "off"] for line in lines)
    assert any(line.split()[:3] == ["vit_tiny_patch16", "reference", "off"] for line in lines)
    assert any(line.startswith("ratio: vit_tiny_patch16: msc-france / reference loop images/s: ") and
               line.endswith("x eager") for line in lines)
    for loop in ("msc-france", "reference"):
        label = tmp_path / "p" / f"vit_tiny_patch16-{loop}-eager"
        assert label.with_suffix(".json.gz").stat().st_size > 0
        table = label.with_suffix(".txt").read_text()
        assert "Self CPU" in table and "aten::" in table


def test_throughput_bench_refuses_an_epoch_shorter_than_a_batch(tile_store: str, tmp_path: Path) -> None:
    done = bench("--config", str(write_preset(tmp_path)), "--store", tile_store, "--batch", "64")
    assert done.returncode == 1
    assert "fewer than one batch of 64: give a larger --tile-repeat" in done.stderr


def test_flop_count_grows_by_one_backbone_pass_a_sensor_of_msad() -> None:
    """bench/pretrain_flops.py's count: MSAD over three sensors costs 1.5x MSAD over two (three passes
    against two), not 3x (six passes, one a pair side, against two)."""
    from bench.pretrain_flops import gflop_a_sample
    from msc_france.pretrain.config import PretrainConfig
    from tests.pretrain_fixtures import TINY

    def gflop(sensors: list[str], msad_weight: float) -> float:
        config = PretrainConfig.model_validate({**TINY, "data": {**TINY.get("data", {}), "sensors": sensors},
                                                "loss": {**TINY["loss"], "msad_weight": msad_weight}})
        return gflop_a_sample(config, batch_size=2)

    dino = gflop(["s2", "l8", "vhr"], 0.0)
    two, three = gflop(["s2", "vhr"], 1.0) - dino, gflop(["s2", "l8", "vhr"], 1.0) - dino
    assert two > 0 and 1.4 < three / two < 1.7, (dino, two, three)
