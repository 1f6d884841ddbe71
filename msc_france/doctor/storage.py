"""The doctor's checks of the data folder (exists, writable, free space) and of the tile store's read
throughput, in samples per second of the trainer's own dataset."""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path

from msc_france.doctor.record import Check
from msc_france.errors import UserError
from msc_france.pretrain.dataset import TileDataset
from msc_france.store import open_store, stores_in

LOW_SPACE_GIB = 10.0  # the demo needs about 2 GiB; a region's store needs far more (msc-france plan)
READ_SAMPLES = 32
READ_SECONDS = 5.0


def _existing_parent(path: Path) -> Path:
    parent = path.absolute()
    while not parent.exists():
        parent = parent.parent
    return parent


def check_data_folder(data: Path) -> Check:
    """The data folder is a writable folder (or can be created) with room to spare. Only a temporary
    file inside it is written, and removed."""
    name = "data folder"
    if data.exists() and not data.is_dir():
        return Check(name, "FAIL", f"{data} is a file, not a folder: give --data a folder")
    if not data.exists():
        parent = _existing_parent(data)
        if not parent.is_dir():
            return Check(name, "FAIL", f"{data} cannot be created: {parent} is a file; give --data another folder")
        return Check(name, "WARN", f"{data} does not exist yet: create it (mkdir -p {data}) or give --data; "
                                   f"{shutil.disk_usage(parent).free / 2**30:.1f} GiB free on {parent}")
    try:
        with tempfile.TemporaryFile(dir=data):
            pass
    except OSError as exc:
        return Check(name, "FAIL", f"{data} is not writable ({exc.strerror}): fix its permissions or give --data")
    free = shutil.disk_usage(data).free / 2**30
    if free < LOW_SPACE_GIB:
        return Check(name, "WARN", f"{data}: only {free:.1f} GiB free; free space or give --data on a larger disk")
    return Check(name, "OK", f"{data}: writable, {free:.1f} GiB free")


def check_store_read(data: Path, store: str | None) -> Check:
    """Samples per second of ``TileDataset`` (every sensor, every split) on ``store``, else on the first
    tile store under ``data``; a WARN line when there is none."""
    name = "store read"
    found = [store] if store else (stores_in(data) if data.is_dir() else [])
    if not found:
        return Check(name, "WARN", f"no tile store found under {data}: build one (make tiles) or give --store")
    path = found[0]
    try:
        sensors = list(open_store(path).grid.sensors)
        dataset = TileDataset(path, dict.fromkeys(sensors), "all", min_valid=0.0)
        started, count = time.perf_counter(), 0
        while count < min(READ_SAMPLES, len(dataset)) and time.perf_counter() - started < READ_SECONDS:
            dataset[count]
            count += 1
        elapsed = time.perf_counter() - started
    except UserError as exc:
        return Check(name, "FAIL", str(exc))
    except Exception as exc:  # noqa: BLE001 - an unreadable store is the finding, whatever the library raises
        return Check(name, "FAIL", f"cannot read {path} ({type(exc).__name__}: {exc}); rebuild it with make tiles")
    return Check(name, "OK", f"{count / elapsed:.1f} samples/s ({count} of {len(dataset)} tiles, "
                             f"{', '.join(sensors)}; one process) from {path}")
