"""A shard task that kills its own Dask worker (``kill -9``) once: after the shard's data are written
and flushed, before its completion record reaches the client (which writes it), the worst moment.
Imported by the workers by name, so the test process can hand it to ``run_tiles`` in place of
``process_shard`` (bound to a marker file with ``functools.partial``). The first task to create the
marker file dies, after writing its pid to ``MARKER.killed`` (at the kill point, so the test can
tell the kill happened); every other task runs normally."""

from __future__ import annotations

import os
import signal
from typing import Any

from msc_france.store.records import ShardRecord
from msc_france.tiles import shard


def process_shard_killing_once(*args: Any, marker: str, **kwargs: Any) -> ShardRecord:
    """``process_shard``, except that the first call to create ``marker`` dies once its shard is
    written, before returning the shard's completion record."""
    record = shard.process_shard(*args, **kwargs)
    try:
        os.close(os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
    except FileExistsError:
        return record
    with open(f"{marker}.killed", "w") as handle:
        handle.write(str(os.getpid()))
    os.kill(os.getpid(), signal.SIGKILL)
    raise AssertionError("unreachable: the worker was killed")
