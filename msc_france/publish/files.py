"""Atomic writes: a file is written under a temporary name in its folder, flushed to disk, then renamed
over the target, so a reader sees the old file or the new one, never half of one."""

from __future__ import annotations

import hashlib
import os
import uuid
from collections.abc import Callable
from pathlib import Path


def write_text(path: Path, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    write_with(path, lambda temp: temp.write_bytes(text.encode("utf-8")))


def write_with(path: Path, writer: Callable[[Path], object]) -> None:
    """Let ``writer`` write a temporary file beside ``path``, flush it to disk and rename it to ``path``
    (then flush the folder, so the rename survives a crash); the temporary file never outlives a failure."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.partial")
    try:
        writer(temp)
        with temp.open("rb") as handle:
            os.fsync(handle.fileno())
        os.replace(temp, path)
    finally:
        temp.unlink(missing_ok=True)
    folder = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(folder)
    finally:
        os.close(folder)


def sha256(path: Path) -> str:
    """The SHA-256 of a file's bytes, hex."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
