"""Fixtures of the reliability suite: one local Dask cluster (worker processes with nannies) shared by
the tiles runs of every module, so that each run does not pay for starting one; a small filesystem
that a test can fill (a tmpfs, root only: skipped for other developers, a failure as root or on CI,
so that no row of the matrix passes CI unrun)."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from dask.distributed import Client, LocalCluster


@pytest.fixture(scope="session")
def cluster() -> Iterator[str]:
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                      silence_logs=50) as local:
        yield local.scheduler_address


@pytest.fixture
def small_fs(tmp_path: Path) -> Iterator[Path]:
    """A tmpfs mounted for the test (root only), unmounted after it; :func:`resize` fills or empties it."""
    if os.geteuid() != 0 and not os.environ.get("CI"):
        pytest.skip("a full disk is simulated with a small tmpfs, which needs root to mount")
    mount = tmp_path / "small"
    mount.mkdir()
    made = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64m", "tmpfs", str(mount)],
                          capture_output=True, text=True, check=False)
    if made.returncode:  # as root or on CI the test must run: a skip there would pass a row unchecked
        pytest.fail(f"cannot mount a tmpfs here ({made.stderr.strip() or 'not root'}): the full-disk tests need "
                    "root and mount (in a container: --privileged or --cap-add SYS_ADMIN)")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def settle(cluster: str, timeout: float = 60) -> None:
    """Wait until no worker of ``cluster`` holds a task (a failed run's released tasks run to their end)."""
    with Client(cluster) as client:  # type: ignore[no-untyped-call]
        deadline = time.monotonic() + timeout
        while any(client.run(lambda dask_worker: len(dask_worker.state.tasks)).values()):
            assert time.monotonic() < deadline, "the cluster never became idle"
            time.sleep(0.1)


def resize(mount: Path, size: int) -> None:
    """Give the tmpfs at ``mount`` ``size`` bytes (less than it holds makes it full)."""
    subprocess.run(["mount", "-o", f"remount,size={size}", str(mount)], check=True)


def pages(path: Path) -> int:
    """Bytes that the files under ``path`` take on a tmpfs (whole pages)."""
    files = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]
    return sum(-(-p.stat().st_size // 4096) * 4096 for p in files)
