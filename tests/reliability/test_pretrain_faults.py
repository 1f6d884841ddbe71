"""Faults of the pretraining stage: ``kill -9`` mid-run then resume (the same as an uninterrupted
run), ``kill -9`` of one data-loading worker, a full disk, a second run in the same run folder, a checkpoint that
would run code when unpickled."""

from __future__ import annotations

import contextlib
import json
import multiprocessing
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
import torch

from msc_france.errors import UserError
from msc_france.lock import exclusive
from msc_france.pretrain.checkpoint import load_checkpoint
from msc_france.pretrain.trainer import PretrainRequest, _in_worker_ipc, run_pretrain
from msc_france.store.atomic import PARTIAL_GLOB
from tests.pretrain_fixtures import write_preset
from tests.reliability.conftest import pages, resize


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
    for a, b in zip(reference, again, strict=True):
        for key in ("loss", "dino", "msad", "lr"):
            assert a[key] == pytest.approx(b[key], rel=1e-5, abs=1e-6), (a["step"], key)
    ours, theirs = load_checkpoint(run / "checkpoint.pt")["model"], load_checkpoint(whole.checkpoint)["model"]
    for key in theirs:
        torch.testing.assert_close(ours[key], theirs[key], rtol=1e-5, atol=1e-5)  # 1e-6 failed on near-zero weights


def _loader_workers(pid: int) -> list[psutil.Process]:
    """The DataLoader workers below process ``pid`` (torch names them ``pt_data_worker``)."""
    found = []
    for child in psutil.Process(pid).children(recursive=True):
        with contextlib.suppress(psutil.NoSuchProcess):
            if child.name() == "pt_data_worker":
                found.append(child)
    return found


def test_a_killed_loader_worker_is_one_line_and_resume_finishes(tile_store: str, tmp_path: Path) -> None:
    # 12 epochs of 4 steps: the kill lands well before the end even on a loaded machine
    preset = write_preset(tmp_path, data={"workers": 2}, optim={"epochs": 12}, runtime={"checkpoint_every": 1})
    command = [sys.executable, "-m", "msc_france", "pretrain", "--config", str(preset), "--data", str(tmp_path),
               "--store", tile_store, "--run-name", "worker"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    run = tmp_path / "runs" / "worker"
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and process.poll() is None and not (run / "checkpoint.pt").exists():
        time.sleep(0.01)
    workers: list[psutil.Process] = []
    while time.monotonic() < deadline and process.poll() is None and len(workers) < 2:
        workers = _loader_workers(process.pid)
    assert len(workers) == 2, "two loader workers while training"
    workers[0].kill()
    _, stderr = process.communicate(timeout=240)
    assert process.returncode == 2 and "Traceback" not in stderr, stderr
    message = stderr.strip().splitlines()[-1]
    # torch's words when it saw the death first; "its connection closed" when the kill cut a batch's hand-over
    assert message.startswith("error: a data-loading worker stopped (") and "resume=1" in message
    kept = int(load_checkpoint(run / "checkpoint.pt")["step"])
    assert 1 <= kept < 48 and f"the checkpoint of step {kept} is kept" in message
    resumed = run_pretrain(PretrainRequest(config=preset, data=tmp_path, run="worker", store=tile_store, resume=True,
                                           quiet=True))
    assert resumed.steps == 48


def test_a_full_disk_is_a_one_line_error_and_resume_finishes(tile_store: str, tmp_path: Path, small_fs: Path) -> None:
    preset = write_preset(tmp_path, optim={"epochs": 2}, runtime={"checkpoint_every": 1})  # 8 steps
    resize(small_fs, 1 << 30)
    first = run_pretrain(PretrainRequest(config=preset, data=small_fs, run="full", store=tile_store, max_steps=2,
                                         quiet=True))
    run = small_fs / "runs" / "full"
    assert first.steps == 2
    resize(small_fs, pages(small_fs) + pages(run / "checkpoint.pt") // 2)  # the next checkpoint does not fit
    command = [sys.executable, "-m", "msc_france", "pretrain", "--config", str(preset), "--data", str(small_fs),
               "--store", tile_store, "--run-name", "full", "--resume"]
    full = subprocess.run(command, capture_output=True, text=True, timeout=240, check=False,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert full.returncode == 2 and "Traceback" not in full.stderr, full.stderr[-2000:]
    message = full.stderr.strip().splitlines()[-1]
    assert message.startswith("error: no space left on device") and "rerun the same command" in message
    assert int(load_checkpoint(run / "checkpoint.pt")["step"]) == 2, "the last checkpoint is whole"
    assert not list(run.glob(PARTIAL_GLOB)), "no half-written checkpoint left behind"
    resize(small_fs, 1 << 30)
    resumed = run_pretrain(PretrainRequest(config=preset, data=small_fs, run="full", store=tile_store, resume=True,
                                           quiet=True))
    assert resumed.steps == 8


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


def test_a_cut_hand_over_is_told_from_a_data_error() -> None:
    """A worker killed mid-batch breaks multiprocessing's connection (ConnectionResetError, EOFError in
    the main process): that is a dead worker; the same error from a data read is not."""
    reader, writer = multiprocessing.Pipe(duplex=False)
    writer.close()
    with pytest.raises(EOFError) as cut:
        reader.recv_bytes()
    assert _in_worker_ipc(cut.value)
    with pytest.raises(ConnectionResetError) as data_error:
        raise ConnectionResetError("the object store closed the connection")
    assert not _in_worker_ipc(data_error.value)
