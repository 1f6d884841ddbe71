"""Completion records: a shard of a group is complete when its :class:`ShardRecord` exists beside the
store (``STORE.tiles.done/GROUP/CCCC_RRRR.json``), written after the shard's data are flushed to disk,
and its objects are still as it lists them (:func:`msc_france.store.durable.intact`)."""

from __future__ import annotations

from typing import Any

import fsspec

from msc_france.errors import UserError
from msc_france.store.atomic import atomic_write
from msc_france.store.layout import done_path, done_root
from msc_france.store.records import ShardRecord


def _load(fs: fsspec.AbstractFileSystem, path: str) -> ShardRecord:
    """One completion record; an unreadable one is a one-line error (they are written atomically,
    so only outside damage makes one)."""
    try:
        return ShardRecord.from_json(fs.cat_file(path).decode())
    except ValueError:  # JSON, UTF-8 and shape errors; raised below, unchained, to pass through Dask as it is
        pass
    raise UserError(f"the completion record {path} is damaged; delete it and rerun (its shard is redone)")


def read_done(store: str, group: str, shard: tuple[int, int],
              storage_options: dict[str, Any] | None = None) -> ShardRecord | None:
    """The completion record of a shard, or None if it was not completed."""
    fs, path = fsspec.core.url_to_fs(done_path(store, group, shard), **(storage_options or {}))
    if not fs.exists(path):
        return None
    return _load(fs, path)


def write_done(store: str, record: ShardRecord, storage_options: dict[str, Any] | None = None) -> None:
    """Record a shard as complete (after its data), whole or not at all."""
    atomic_write(done_path(store, record.group, record.shard), record.to_json(), storage_options)


def all_done(store: str, storage_options: dict[str, Any] | None = None) -> list[ShardRecord]:
    """Every completion record of the store (all groups, all regions)."""
    fs, path = fsspec.core.url_to_fs(done_root(store), **(storage_options or {}))
    if not fs.exists(path):
        return []
    return [_load(fs, name) for name in sorted(fs.glob(f"{path}/*/*.json"))]


def forget_done(store: str, group: str, storage_options: dict[str, Any] | None = None) -> None:
    """Remove the completion records of ``group``: it is being created anew (the store was deleted,
    or the group's creation was cut short), so none of its shards is complete."""
    fs, path = fsspec.core.url_to_fs(f"{done_root(store)}/{group}", **(storage_options or {}))
    if fs.exists(path):
        fs.rm(path, recursive=True)
