"""Faults of the pretraining stage: ``kill -9`` mid-run then resume (the same as an uninterrupted
run), a second run in the same run folder, a checkpoint that would run code when unpickled."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from msc_france.errors import UserError
from msc_france.lock import exclusive
from msc_france.pretrain.checkpoint import load_checkpoint
from msc_france.pretrain.trainer import PretrainRequest, run_pretrain
from tests.pretrain_fixtures import write_preset


def _records(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines() if line.strip()]


def test_kill_9_mid_run_then_resume_equals_an_uninterrupted_run(tile_store: str, tmp_path: Path) -> None:
    preset = write_preset(tmp_path, optim={"epochs": 2}, runtime={"checkpoint_every": 1})  # 8 steps
    whole = run_pretrain(PretrainRequest(config=preset, data=tmp_path, run="whole", store=tile_store, quiet=True))
    assert whole.steps == 8
    command = [sys.executable, "-m", "msc_france", "pretrain", "--config", str(preset), "--data", str(tmp_path),
               "--store", tile_store, "--run-name", "killed"]
    env = {**os.environ, "OMP_NUM_THREADS": str(torch.get_num_threads())}
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    run = tmp_path / "runs" / "killed"
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and process.poll() is None and not (
            (run / "checkpoint.pt").exists() and _records(run)):
        time.sleep(0.01)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    killed_at = int(load_checkpoint(run / "checkpoint.pt")["step"])
    assert 1 <= killed_at < 8, "killed part-way, with a checkpoint kept"
    resumed = run_pretrain(PretrainRequest(config=preset, data=tmp_path, run="killed", store=tile_store, resume=True,
                                           quiet=True))
    assert resumed.steps == 8
    reference, again = _records(tmp_path / "runs" / "whole"), _records(run)
    assert [r["step"] for r in again] == list(range(1, 9))
    for a, b in zip(reference, again):
        for key in ("loss", "dino", "msad", "lr"):
            assert a[key] == pytest.approx(b[key], rel=1e-5, abs=1e-6), (a["step"], key)
    ours, theirs = load_checkpoint(run / "checkpoint.pt")["model"], load_checkpoint(whole.checkpoint)["model"]
    for key in theirs:
        torch.testing.assert_close(ours[key], theirs[key], rtol=1e-5, atol=1e-6)


def test_a_second_run_in_the_same_run_folder_is_refused(tile_store: str, tmp_path: Path) -> None:
    preset = write_preset(tmp_path)
    lock = tmp_path / "runs" / ".busy.lock"
    with exclusive(lock, "the first run"), pytest.raises(UserError) as error:
        run_pretrain(PretrainRequest(config=preset, data=tmp_path, run="busy", store=tile_store, quiet=True))
    message = str(error.value)
    assert message.startswith("run busy is in use by process") and str(lock) in message and "\n" not in message
    assert not (tmp_path / "runs" / "busy").exists(), "nothing written by the refused run"


class _RunsCode:
    """Unpickling this writes a file: what a malicious checkpoint would do."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str, str]]:
        return (Path.write_text, (self.marker, "code ran"))  # type: ignore[return-value]


def test_a_checkpoint_that_runs_code_is_refused_without_running_it(tmp_path: Path) -> None:
    path, marker = tmp_path / "evil.pt", tmp_path / "ran"
    torch.save({"model": {}, "payload": _RunsCode(marker)}, path)
    with pytest.raises(UserError, match="is not a readable checkpoint"):
        load_checkpoint(path)
    assert not marker.exists()
