"""Files written whole or not at all: one temporary-name scheme for every writer of the project.

A file is written under ``.NAME.<pid>-<random>.partial`` beside its final name, flushed to disk,
renamed, and the folder flushed after the rename, so that after a crash or a power loss the final
name holds either the old content or the new one, never a part. Leftovers of killed writers match
:data:`PARTIAL_GLOB`. Object stores put whole objects, so a URL is written in one request.

Hand-written: the maintained atomic-file packages neither flush the folder after the rename nor
take fsspec URLs (``atomicwrites`` is archived).
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

PARTIAL_SUFFIX = ".partial"
PARTIAL_GLOB = f".*{PARTIAL_SUFFIX}"  # every leftover of an interrupted write (see :func:`partial_name`)


def partial_name(path: Path) -> Path:
    """The temporary name ``path`` is written under: hidden, unique to this writer, ``.partial``."""
    return path.with_name(f".{path.name}.{os.getpid()}-{secrets.token_hex(4)}{PARTIAL_SUFFIX}")


def is_url(target: str | os.PathLike[str]) -> bool:
    """True for an fsspec URL other than ``file://`` (s3://, gs://, memory://...)."""
    text = os.fspath(target)
    return "://" in text and not text.startswith("file://")


def local_path(target: str | os.PathLike[str]) -> Path:
    return Path(os.fspath(target).removeprefix("file://"))


def fsync_path(path: Path) -> None:
    """Flush a file's or a folder's content to disk (folders: their entries, after a rename)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """A temporary name to write ``path`` under (by any writer: GDAL, pyarrow, torch); when the block
    completes it is flushed and renamed to ``path``, and on error removed."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = partial_name(path)
    try:
        yield tmp
        fsync_path(tmp)
        os.replace(tmp, path)
        fsync_path(path.parent)
    finally:
        tmp.unlink(missing_ok=True)


def atomic_write(target: str | os.PathLike[str], content: bytes | str,
                 storage_options: dict[str, Any] | None = None) -> None:
    """Write ``content`` (text as UTF-8) to a local path or an fsspec URL, whole or not at all."""
    data = content.encode() if isinstance(content, str) else content
    if is_url(target):
        import fsspec

        fs, path = fsspec.core.url_to_fs(os.fspath(target), **(storage_options or {}))
        fs.pipe_file(path, data)
        return
    with atomic_path(local_path(target)) as tmp:
        tmp.write_bytes(data)
