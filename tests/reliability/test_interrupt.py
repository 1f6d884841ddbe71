"""Ctrl-C in every stage: it stops within seconds, prints one line naming what was kept and how to resume,
exits 130, prints no traceback (the Dask and DataLoader workers, which the terminal signals too, stay
quiet), leaves nothing under its final name that is incomplete, and the rerun resumes from what was
kept. The download: queued fetches dropped, running ones stopped at their next request or retry wait;
the tiles: futures cancelled, the cluster closed, shards without a completion record rebuilt; the
pretraining: the last checkpoint kept; any other stage: one generic line."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import rasterio

from msc_france.pretrain.checkpoint import load_checkpoint
from msc_france.pretrain.trainer import PretrainRequest, run_pretrain
from msc_france.store.atomic import PARTIAL_GLOB
from msc_france.store.done import all_done
from tests.faultproxy import FaultProxy
from tests.pretrain_fixtures import write_preset
from tests.reliability.test_pretrain_faults import _loader_workers
from tests.reliability.test_pretrain_faults import _records as _metrics
from tests.reliability.test_tiles_faults import (  # noqa: F401 - downloaded and store are fixtures
    _alive,
    _copy_data,
    _records,
    _same_arrays,
    downloaded,
    store,
)
from tests.test_download import (  # noqa: F401 - proxied_api and reference are fixtures
    _catalog_file,
    _region,
    _tifs,
    proxied_api,
    reference,
)

World = tuple[Path, dict]
REPO = Path(__file__).parents[2]


@pytest.fixture(autouse=True)
def _ctrl_c_reaches_the_commands() -> Iterator[None]:
    """The commands under test start with SIGINT's default action, as from a terminal. A test run started in the
    background by a shell without job control (``make test &`` in a script) ignores SIGINT, and an ignored signal
    stays ignored across ``exec``: its commands would finish as if no Ctrl-C came. A handled one is reset."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


def _interrupted(process: subprocess.Popen[str], times: int = 1, timeout: float = 60) -> tuple[str, str]:
    """SIGINT to the process group of ``process`` (a terminal's Ctrl-C), ``times`` times half a second apart
    while it runs (an impatient user), then its output; fails unless it was still running, exits 130 within
    ``timeout`` with no traceback and exactly one line ``interrupted...`` on stderr (progress bars aside),
    which is returned with the whole stderr."""
    assert process.poll() is None, "still running when the signal is sent"
    sent = time.monotonic()
    os.killpg(process.pid, signal.SIGINT)
    for _ in range(times - 1):
        time.sleep(0.5)
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGINT)
    try:
        _, stderr = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.communicate()
        raise
    print(f"\nCtrl-C: stopped in {time.monotonic() - sent:.1f} s")  # a figure for docs/reliability.md, not a test
    assert process.returncode == 130, stderr[-2000:]
    assert "Traceback" not in stderr, stderr[-3000:]
    lines = [line for line in stderr.replace("\r", "\n").splitlines() if line.startswith("interrupted")]
    assert len(lines) == 1, stderr[-2000:]
    return lines[0], stderr


def test_ctrl_c_stops_the_download_in_seconds_and_the_rerun_resumes(
    tmp_path: Path, proxied_api: str, fault_proxy: FaultProxy, tiny_world: World,  # noqa: F811
    reference: Path,  # noqa: F811
) -> None:
    fault_proxy.add("cogs/", "slow", times=100_000, delay=0.1)  # every range request waits: still running
    data = tmp_path / "d"
    command = [sys.executable, "-m", "msc_france", "download", "--region", _region(tiny_world), "--catalog",
               str(_catalog_file(tmp_path, proxied_api)), "--recipe", "demo", "--data", str(data),
               "--concurrency", "2"]
    whole = _tifs(reference)
    masks = sum(1 for name in whole if Path(name).name.lower() in ("scl.tif", "qa_pixel.tif"))  # fetched first
    assert 0 < masks < len(whole) - 3
    process = subprocess.Popen(command, start_new_session=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True)
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline and len(_tifs(data)) < masks + 2 and process.poll() is None:
        time.sleep(0.02)
    before = len(_tifs(data))
    assert 0 < before < len(whole), "the signal arrives with fetches still pending"
    line, _ = _interrupted(process)
    kept = _tifs(data / "catalogs")
    assert line == f"interrupted: {len(kept)} of {len(whole)} files kept; rerun the same command to resume", line
    assert len(kept) <= before + 2, "the queued fetches were dropped: only the 2 running ones could complete"
    assert all(whole[name] == digest for name, digest in kept.items()), "every file under its final name is whole"
    for path in data.rglob("*.tif"):
        with rasterio.open(path) as ds:
            ds.read()
    fault_proxy.clear()
    again = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr[-2000:]
    assert f"skipped {len(kept)} complete" in " ".join(again.stdout.split()), again.stdout
    assert _tifs(data / "catalogs") == _tifs(reference)
    assert not list(data.rglob("*.partial"))
    print(f"Ctrl-C: {before} files when sent, {len(kept)} kept")


def test_ctrl_c_stops_the_tiles_in_seconds_and_the_rerun_skips_the_kept_shards(
    downloaded: Path, store: str, tmp_path: Path,  # noqa: F811
) -> None:
    data = _copy_data(downloaded, tmp_path)
    built = data / "demo.zarr"
    total = len(all_done(store))
    assert total > 3, "shards enough to stop part-way"
    marker = tmp_path / "task"  # the first 2 tasks run, the others block until their worker is closed
    command = ["tiles", "--data", str(data), "--workers", "2"]
    process = subprocess.Popen([sys.executable, "-m", "tests.reliability.blocking_tiles", str(marker), "2", *command],
                               cwd=REPO, start_new_session=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True)
    blocked = Path(f"{marker}.blocked")
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and process.poll() is None and not (
            blocked.exists() and built.is_dir() and len(_records(str(built))) >= 2):
        time.sleep(0.05)
    assert blocked.exists() and len(_records(str(built))) == 2, "2 shards complete, a task still running"
    line, _ = _interrupted(process, times=2)  # twice: the workers ignore both (unlike asyncio's second Ctrl-C)
    kept = _records(str(built))
    assert line == f"interrupted: {len(kept)} of {total} shards kept; rerun the same command to resume", line
    assert len(kept) == 2
    assert not _alive(int(blocked.read_text())), "the worker of the running task was closed"
    again = subprocess.run([sys.executable, "-m", "msc_france", *command], cwd=REPO, capture_output=True, text=True,
                           timeout=300, check=False)
    assert again.returncode == 0, again.stderr[-2000:]
    out = " ".join(again.stdout.split())
    assert f"{total - len(kept)} shard tasks written, {len(kept)} already complete" in out, out
    assert {name: record for name, record in _records(str(built)).items() if name in kept} == kept
    assert _same_arrays(store, str(built))


def _pretrain(preset: Path, data: Path, tiles: str, run: str) -> subprocess.Popen[str]:
    """``msc-france pretrain`` as a terminal starts it (its own process group), one thread per process."""
    command = [sys.executable, "-m", "msc_france", "pretrain", "--config", str(preset), "--data", str(data),
               "--store", tiles, "--run-name", run]
    return subprocess.Popen(command, env={**os.environ, "OMP_NUM_THREADS": "1"}, start_new_session=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_ctrl_c_stops_the_pretraining_in_seconds_and_resume_continues_from_the_kept_checkpoint(
    tile_store: str, tmp_path: Path,
) -> None:
    # 12 epochs of 4 steps, a checkpoint at each: the signal lands well before the end, with 2 loader workers
    preset = write_preset(tmp_path, data={"workers": 2}, optim={"epochs": 12}, runtime={"checkpoint_every": 1})
    process = _pretrain(preset, tmp_path, tile_store, "ctrl-c")
    run = tmp_path / "runs" / "ctrl-c"
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and process.poll() is None and not (
            (run / "checkpoint.pt").exists() and len(_loader_workers(process.pid)) == 2):
        time.sleep(0.05)
    assert (run / "checkpoint.pt").exists() and len(_loader_workers(process.pid)) == 2, \
        "training, with a checkpoint and 2 loader workers (which the signal reaches too)"
    line, _ = _interrupted(process)
    kept = int(load_checkpoint(run / "checkpoint.pt")["step"])
    assert 1 <= kept < 48, "stopped part-way, with a checkpoint kept"
    assert line == (f"interrupted: checkpoint of step {kept} kept; rerun the same command with --resume "
                    "(make: resume=1) to continue"), line
    assert not list(run.glob(PARTIAL_GLOB)), "no checkpoint left half-written"
    # the same preset without loader workers (not part of a checkpoint's signature), to resume quicker
    again = write_preset(tmp_path, "resume", optim={"epochs": 12}, runtime={"checkpoint_every": 1})
    resumed = run_pretrain(PretrainRequest(config=again, data=tmp_path, run="ctrl-c", store=tile_store, resume=True,
                                           max_steps=kept + 1, quiet=True))
    assert resumed.steps == kept + 1
    assert [r["step"] for r in _metrics(run)] == list(range(1, kept + 2)), "resumed at the kept step"


def test_one_ctrl_c_checkpoints_the_step_it_lands_in_so_no_step_is_redone(tile_store: str, tmp_path: Path) -> None:
    # no checkpoint before the last step: before, Ctrl-C here lost every step done; now the first press
    # stops at the end of the current step, after a checkpoint of it
    preset = write_preset(tmp_path, optim={"epochs": 12}, runtime={"checkpoint_every": 1000, "log_every": 1})
    process = _pretrain(preset, tmp_path, tile_store, "one-press")
    run = tmp_path / "runs" / "one-press"
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and process.poll() is None and not (
            (run / "metrics.jsonl").exists() and _metrics(run)):
        time.sleep(0.05)
    done_before = len(_metrics(run)) if (run / "metrics.jsonl").exists() else 0
    assert done_before >= 1 and not (run / "checkpoint.pt").exists(), "steps done, none checkpointed yet"
    line, _ = _interrupted(process)
    kept = int(load_checkpoint(run / "checkpoint.pt")["step"])
    assert done_before <= kept < 48, "the step it was in is kept, and it stopped part-way"
    assert line == (f"interrupted: checkpoint of step {kept} kept; rerun the same command with --resume "
                    "(make: resume=1) to continue"), line
    assert [r["step"] for r in _metrics(run)] == list(range(1, kept + 1)), "every step done is logged once"
    resumed = run_pretrain(PretrainRequest(config=preset, data=tmp_path, run="one-press", store=tile_store,
                                           resume=True, max_steps=kept + 1, quiet=True))
    assert resumed.steps == kept + 1
    assert [r["step"] for r in _metrics(run)] == list(range(1, kept + 2)), "resumed after the kept step"


def test_ctrl_c_cuts_a_long_retry_after_wait_short(
    tmp_path: Path, proxied_api: str, fault_proxy: FaultProxy, tiny_world: World,  # noqa: F811
) -> None:
    fault_proxy.add("cogs/", 429, times=100_000, retry_after=600)  # every read is told to come back in 10 minutes
    data = tmp_path / "d"
    command = [sys.executable, "-m", "msc_france", "download", "--region", _region(tiny_world), "--catalog",
               str(_catalog_file(tmp_path, proxied_api)), "--recipe", "demo", "--data", str(data),
               "--concurrency", "2"]
    process = subprocess.Popen(command, start_new_session=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and process.poll() is None and len(
            [e for e in fault_proxy.log() if e["status"] == 429]) < 2:
        time.sleep(0.05)
    assert len([e for e in fault_proxy.log() if e["status"] == 429]) >= 2, "both fetch threads are waiting"
    line, _ = _interrupted(process)  # not 10 minutes later
    assert line.startswith("interrupted: 0 of ") and line.endswith("kept; rerun the same command to resume"), line
    assert not _tifs(data), "nothing under a final name"


def test_ctrl_c_elsewhere_is_one_generic_line(tmp_path: Path) -> None:
    data = tmp_path / "d"
    process = subprocess.Popen([sys.executable, "-m", "msc_france", "demo", "generate", "--data", str(data)],
                               start_new_session=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    world = data / "demo-world"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and process.poll() is None and not (world / ".digest").exists():
        time.sleep(0.05)
    assert (world / ".digest").exists() and not (world / "world.json").exists(), "generating, not done"
    line, stderr = _interrupted(process)
    assert line == "interrupted; rerun the same command to resume", line
    assert stderr.replace("\r", "\n").strip().splitlines()[-1] == line and "Aborted" not in stderr
