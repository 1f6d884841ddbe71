"""One writer at a time: an exclusive ``flock`` on a lock file beside what is written (a tile store,
a training run). The kernel drops the lock when its holder dies, even by ``kill -9``, so a lock file
left behind is never stale: the next run simply takes it. The file itself is never deleted (deleting
a locked file would let two runs lock two different files)."""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path

from msc_france.errors import UserError


def _holder(path: Path) -> str:
    """What the lock file says about its holder (its pid), for the message."""
    with contextlib.suppress(OSError, ValueError):
        return f"process {int(path.read_text().strip())}"
    return "another process"


@contextlib.contextmanager
def exclusive(path: Path, what: str) -> Iterator[None]:
    """Hold an exclusive lock on ``path`` (created if needed) for the block; if another process
    holds it, a one-line :class:`UserError` naming ``what`` and the lock file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise UserError(f"{what} is in use by {_holder(path)} (lock {path}); wait for that run to finish "
                            "or stop it, then rerun") from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        yield
    finally:
        os.close(fd)  # releases the lock
