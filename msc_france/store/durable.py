"""A shard's objects made durable and checkable: flushed to disk before its completion record is
written, so that a power loss cannot keep the record and drop the data, and measured (size, SHA-256)
into the record, so that a rerun trusts a record only while its objects are as they were written.

Each object is read once to be measured (just written: from the page cache). Objects in a bucket are
whole once their PUT is answered; only local files are flushed.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

import fsspec
import zarr

from msc_france.checksum import sha256_of
from msc_france.store.atomic import fsync_path, is_url, local_path
from msc_france.store.records import StoredObject


def shard_keys(arrays: Sequence[zarr.Array[Any]], box: tuple[slice, slice]) -> list[str]:
    """The store keys of the shard whose pixel rows and columns are ``box`` in each of ``arrays``
    (a shard spans every band)."""
    keys = []
    for array in arrays:
        shape = array.shards or array.chunks
        coords = (0,) * (array.ndim - 2) + (box[0].start // shape[-2], box[1].start // shape[-1])
        keys.append(f"{array.path}/{array.metadata.encode_chunk_key(coords)}")
    return keys


@contextmanager
def _opened(store: str, key: str, storage_options: dict[str, Any] | None) -> Iterator[IO[bytes]]:
    if is_url(store):
        fs, root = fsspec.core.url_to_fs(store, **(storage_options or {}))
        with fs.open(f"{root}/{key}", "rb") as remote:
            yield remote
        return
    with (local_path(store) / key).open("rb") as handle:
        yield handle


def seal(store: str, keys: Sequence[str], storage_options: dict[str, Any] | None = None) -> tuple[StoredObject, ...]:
    """Measure the objects ``keys`` of ``store`` and, on a local store, flush them and their folders to
    disk. An object zarr did not write (a shard of fill values only) is left out."""
    sealed = []
    folders: set[Path] = set()
    for key in keys:
        try:
            with _opened(store, key, storage_options) as handle:
                digest, size = sha256_of(handle)
                if not is_url(store):
                    os.fsync(handle.fileno())
        except FileNotFoundError:
            continue
        sealed.append(StoredObject(key, size, digest))
        if not is_url(store):
            base = local_path(store)
            folders.update(p for p in (base / key).parents if p.is_relative_to(base))
    for folder in sorted(folders, key=lambda p: -len(p.parts)):  # new folders' entries, deepest first
        fsync_path(folder)
    return tuple(sealed)


def intact(store: str, objects: Sequence[StoredObject], storage_options: dict[str, Any] | None = None) -> bool:
    """True when every object is in ``store`` with the size and SHA-256 recorded."""
    for recorded in objects:
        try:
            with _opened(store, recorded.key, storage_options) as handle:
                if sha256_of(handle) != (recorded.sha256, recorded.size):
                    return False
        except FileNotFoundError:
            return False
    return True
