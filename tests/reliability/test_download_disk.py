"""A full disk during the download: one line, nothing half-written left looking complete, and the
rerun with space back ends with the same files as an uninterrupted download."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from msc_france.demo.server import DemoServer
from tests.reliability.conftest import pages, resize
from tests.test_download import _catalog_file, _region, _tifs, reference  # noqa: F401 - reference is a fixture

World = tuple[Path, dict]


def test_a_full_disk_fails_the_download_on_one_line_and_the_rerun_completes(
    tmp_path: Path, served_world: DemoServer, tiny_world: World, reference: Path, small_fs: Path,  # noqa: F811
) -> None:
    resize(small_fs, pages(reference) // 2)  # half the files fit
    command = [sys.executable, "-m", "msc_france", "download", "--region", _region(tiny_world), "--catalog",
               str(_catalog_file(tmp_path, served_world.stac_url)), "--recipe", "demo", "--data", str(small_fs),
               "--concurrency", "1"]
    full = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert full.returncode == 2 and "Traceback" not in full.stderr, full.stderr[-2000:]
    message = full.stderr.strip().splitlines()[-1]
    assert message.startswith("error: no space left on device") and "rerun the same command" in message
    kept, whole = _tifs(small_fs / "catalogs"), _tifs(reference)
    assert 0 < len(kept) < len(whole), "some files were written before the disk filled"
    assert all(whole[name] == digest for name, digest in kept.items()), "every file that looks complete is"
    resize(small_fs, 4 * pages(reference) + (64 << 20))
    again = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr[-2000:]
    assert f"skipped {len(kept)}" in " ".join(again.stdout.split()), "the files that fitted are kept"
    assert _tifs(small_fs / "catalogs") == _tifs(reference)
    assert not list(small_fs.rglob("*.partial"))
