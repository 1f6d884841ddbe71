"""A shard task that kills its own Dask worker (``kill -9``) once: after the shard's data are written
and before its completion record, the worst moment. Imported by the workers by name, so the test
process can hand it to ``run_tiles`` in place of ``process_shard`` (bound to a marker file with
``functools.partial``). The first task to create the marker file dies, after writing its pid to
``MARKER.killed`` (at the kill point, so the test can tell the kill happened); every other task runs
normally."""

from __future__ import annotations

import functools
import os
import signal
import time
from typing import Any

from msc_france.tiles import shard


def _die_instead_of_recording(marker: str, *args: Any, **kwargs: Any) -> None:
    with open(f"{marker}.killed", "w") as handle:
        handle.write(str(os.getpid()))
    os.kill(os.getpid(), signal.SIGKILL)


def process_shard_killing_once(*args: Any, marker: str, **kwargs: Any) -> dict[str, Any]:
    """``process_shard``, except that the first call to create ``marker`` dies before recording its
    shard as complete."""
    try:
        os.close(os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
    except FileExistsError:
        return shard.process_shard(*args, **kwargs)
    shard.write_done = functools.partial(_die_instead_of_recording, marker)  # this worker process dies with it
    return shard.process_shard(*args, **kwargs)


def process_shard_blocking_after(*args: Any, marker: str, runs: int, **kwargs: Any) -> dict[str, Any]:
    """``process_shard`` for the first ``runs`` calls (counted with files ``marker.N``); every later call
    writes ``marker.blocked`` and never returns (a long task that only closing its worker stops)."""
    slot = 0
    while True:
        try:
            os.close(os.open(f"{marker}.{slot}", os.O_CREAT | os.O_EXCL | os.O_WRONLY))
            break
        except FileExistsError:
            slot += 1
    if slot < runs:
        return shard.process_shard(*args, **kwargs)
    with open(f"{marker}.blocked", "w") as handle:
        handle.write(str(os.getpid()))
    while True:
        time.sleep(1)
