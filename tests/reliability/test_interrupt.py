"""Ctrl-C during the download: it stops within seconds (queued fetches dropped, running ones stopped
at their next request), prints one line naming what was kept and how to resume, exits 130, leaves no
file under its final name that is incomplete, and the rerun completes, skipping the kept files."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import rasterio

from tests.faultproxy import FaultProxy
from tests.test_download import (  # noqa: F401 - proxied_api and reference are fixtures
    _catalog_file,
    _region,
    _tifs,
    proxied_api,
    reference,
)

World = tuple[Path, dict]


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
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline and len(_tifs(data)) < masks + 2 and process.poll() is None:
        time.sleep(0.02)
    before = len(_tifs(data))
    assert process.poll() is None, "still running when the signal is sent"
    assert 0 < before < len(whole), "the signal arrives with fetches still pending"
    sent = time.monotonic()
    os.kill(process.pid, signal.SIGINT)
    _, stderr = process.communicate(timeout=60)
    took = time.monotonic() - sent
    assert took < 15, f"Ctrl-C took {took:.1f} s"
    assert process.returncode == 130, stderr[-2000:]
    assert "Traceback" not in stderr, stderr[-2000:]
    lines = [line for line in stderr.replace("\r", "\n").splitlines() if line.startswith("interrupted")]
    kept = _tifs(data / "catalogs")
    assert len(lines) == 1, stderr[-2000:]
    assert lines[0] == f"interrupted: {len(kept)} of {len(whole)} files kept; rerun the same command to resume", \
        lines[0]
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
    print(f"\nCtrl-C: {before} files when sent, {len(kept)} kept, stopped in {took:.2f} s")
