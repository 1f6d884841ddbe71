"""Whole-tile reads for a reader of many tiles from a store that no writer touches meanwhile (the
training loader, ``TileDataset``).

A tile is one inner chunk of a shard (``docs/store.md``), so on a local store it is read as the Zarr v3
sharding format lays it out: the shard's index (read once per shard and kept, its crc32c checked),
then one ``pread`` of the chunk and one zstd decode (numcodecs) into the output array. zarr-python
goes through its event loop and reads the shard index again on every call: the loader gives 6-8x its
samples per CPU-second on the demo store, and 1.3-1.8x TensorStore's (``bench/loader.py``,
``docs/pretrain.md``, "Loader"). Hand-written because no library we measured reads one chunk at that
cost; it serves only the exact layout the tiles stage writes (:func:`layout_of` checks the array's
metadata), and anything else (another codec chain, a store behind a URL) is read by
:meth:`TileStore.read_tile`. A shard rewritten while a reader is open would be read with its old
index: open a new reader after the store changes.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import google_crc32c
import numcodecs
import numpy as np

from msc_france.errors import UserError
from msc_france.store.reader import TileStore

EMPTY = 2**64 - 1  # offset and size of a chunk the shard does not hold (it reads as the fill value)


@dataclass(frozen=True)
class ShardLayout:
    """What reading one chunk of a sharded array needs: chunk and shard shapes, type, fill value."""

    dtype: np.dtype[Any]
    chunk: tuple[int, ...]
    shard: tuple[int, ...]
    fill: int | float

    @property
    def per_shard(self) -> tuple[int, ...]:
        return tuple(s // c for s, c in zip(self.shard, self.chunk, strict=True))


def _little_endian_bytes(codec: dict[str, Any]) -> bool:
    return codec.get("name") == "bytes" and (codec.get("configuration") or {}).get("endian", "little") == "little"


def layout_of(metadata: dict[str, Any]) -> ShardLayout | None:
    """The layout of an array's Zarr v3 metadata (``zarr.json``) when it is the tiles stage's: regular
    shards of ``/``-separated default keys, inner chunks ``bytes`` (little-endian) then ``zstd``, the index
    ``bytes`` then ``crc32c`` at the shard's end; None for any other."""
    try:
        (codec,) = metadata["codecs"]
        config = codec["configuration"]
        inner, index = config["codecs"], config["index_codecs"]
        keys = metadata["chunk_key_encoding"]
        supported = (codec["name"] == "sharding_indexed" and config.get("index_location", "end") == "end"
                     and len(inner) == 2 and _little_endian_bytes(inner[0]) and inner[1]["name"] == "zstd"
                     and len(index) == 2 and _little_endian_bytes(index[0]) and index[1]["name"] == "crc32c"
                     and metadata["chunk_grid"]["name"] == "regular" and keys["name"] == "default"
                     and (keys.get("configuration") or {}).get("separator") == "/")
        if not supported:
            return None
        layout = ShardLayout(np.dtype(metadata["data_type"]).newbyteorder("<"), tuple(config["chunk_shape"]),
                             tuple(metadata["chunk_grid"]["configuration"]["chunk_shape"]), metadata["fill_value"])
    except (KeyError, TypeError, ValueError):
        return None
    return layout if all(s % c == 0 for s, c in zip(layout.shard, layout.chunk, strict=True)) else None


class ShardedArray:
    """Chunks of one local sharded array, each read with one ``pread``; shard indexes kept once read."""

    def __init__(self, folder: Path, layout: ShardLayout) -> None:
        self.folder, self.layout = folder, layout
        self._per_shard = layout.per_shard
        self._zstd = numcodecs.Zstd()
        self._shards: dict[tuple[int, ...], tuple[str, np.ndarray | None]] = {}  # shard -> its file, its index

    def _shard(self, shard: tuple[int, ...]) -> tuple[str, np.ndarray | None]:
        """The shard's file and its (chunks..., 2) offsets and sizes (None when the shard is not written)."""
        if shard not in self._shards:
            path = self.folder.joinpath("c", *map(str, shard))
            entries = int(np.prod(self._per_shard))
            try:
                with path.open("rb") as file:
                    file.seek(-(entries * 16 + 4), os.SEEK_END)
                    raw = file.read()
            except FileNotFoundError:
                self._shards[shard] = (str(path), None)
                return self._shards[shard]
            if google_crc32c.value(raw[:-4]) != int.from_bytes(raw[-4:], "little"):
                raise UserError(f"the shard index of {path} fails its checksum; the store is damaged, "
                                "build it again with `msc-france tiles`")
            self._shards[shard] = (str(path), np.frombuffer(raw[:-4], "<u8").reshape(*self._per_shard, 2))
        return self._shards[shard]

    def chunk(self, coords: tuple[int, ...], out: np.ndarray | None = None) -> np.ndarray:
        """The chunk at chunk-grid coordinates ``coords``, decoded (the fill value where none is stored)
        into ``out`` when given (C-contiguous, of the chunk's shape and type), else into a new array."""
        path, index = self._shard(tuple(c // k for c, k in zip(coords, self._per_shard, strict=True)))
        if out is None:
            out = np.empty(self.layout.chunk, self.layout.dtype)
        if index is not None:
            offset, size = index[tuple(c % k for c, k in zip(coords, self._per_shard, strict=True))]
        if index is None or offset == EMPTY:
            out.fill(self.layout.fill)
            return out
        fd = os.open(path, os.O_RDONLY)
        try:
            data = os.pread(fd, int(size), int(offset))
        finally:
            os.close(fd)
        self._zstd.decode(data, out=out)
        return out


def local_path(url: str) -> Path | None:
    """The folder of a store on the local file system (a path or a ``file://`` URL), else None."""
    if url.startswith("file://"):
        return Path(url.removeprefix("file://"))
    return None if "://" in url else Path(url)


class TileReader:
    """One tile of one array at a time, ``(band, px, px)`` for ``data`` and ``(px, px)`` for ``valid``,
    the values :meth:`TileStore.read_tile` gives (unwritten tiles as the fill value)."""

    def __init__(self, store: TileStore) -> None:
        self.store = store
        self.folder = local_path(store.url)
        self._arrays: dict[tuple[str, str], ShardedArray | None] = {}

    def _array(self, group: str, name: str) -> ShardedArray | None:
        key = (group, name)
        if key not in self._arrays:
            self._arrays[key] = self._open(group, name)
        return self._arrays[key]

    def _open(self, group: str, name: str) -> ShardedArray | None:
        """The fast reader of ``group/name``: None for a store behind a URL, or another layout."""
        array = self.store.array(group, name)  # a missing group or array is the store's one-line error
        layout = layout_of(array.metadata.to_dict())
        px = self.store.tile_px(group)
        one_tile = layout is not None and layout.chunk == (*array.shape[:-2], px, px)
        if self.folder is None or layout is None or not one_tile:
            return None
        return ShardedArray(self.folder / group / name, layout)

    def read(self, group: str, col: int, row: int, name: str = "data", out: np.ndarray | None = None) -> np.ndarray:
        """The tile (``col``, ``row``) of ``group/name``, as stored (DN); written into ``out`` when given
        (C-contiguous, the tile's shape and stored type: a sample's place in a batch)."""
        array = self._array(group, name)
        if array is None:
            tile = self.store.read_tile(group, col, row, name)
            if out is None:
                return tile
            np.copyto(out, tile)
            return out
        return array.chunk((0,) * (len(array.layout.chunk) - 2) + (row, col), out)
