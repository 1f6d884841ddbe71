"""The training loader's tile reader (``msc_france/store/tile_reader.py``): the same values as
zarr-python's reads, unwritten tiles as the fill value, a damaged shard index refused, any other
layout read by zarr-python; and the in-place normalisation, equal to its expression to the bit."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

import msc_france.store.tile_reader as tile_reader
from msc_france.errors import UserError
from msc_france.grid import TileId
from msc_france.store import open_store
from msc_france.store.records import Normalisation
from msc_france.store.tile_reader import TileReader, layout_of, local_path
from tests.data.tile_store import split_tiles


def test_every_tile_of_every_array_reads_as_zarr_python_reads_it(tile_store: str) -> None:
    store = open_store(tile_store)
    reader = TileReader(store)
    tiles = split_tiles("train")
    assert len(tiles) == 32 and set(store.groups) == {"s2", "l8", "vhr"}
    for group in store.groups:
        for name in ("data", "valid"):
            assert reader._array(group, name) is not None, f"{group}/{name} takes the fast path"
            for tile in tiles:
                fast = reader.read(group, tile.col, tile.row, name)
                slow = store.read_tile(group, tile.col, tile.row, name)
                assert fast.dtype == slow.dtype and fast.shape == slow.shape
                np.testing.assert_array_equal(fast, slow)
            assert reader.read(group, tiles[0].col, tiles[0].row, name).any(), "a written tile is not all fill"


def test_unwritten_tiles_read_as_the_fill_value(tile_store: str) -> None:
    store = open_store(tile_store)
    reader = TileReader(store)
    written = set(split_tiles("train"))
    first = split_tiles("train")[0]
    array = reader._array("s2", "data")
    assert array is not None
    k = array.layout.per_shard[-1]
    shard = (first.col // k, first.row // k)
    in_shard = [TileId(shard[0] * k + i % k, shard[1] * k + i // k) for i in range(k * k)]
    beside = next(t for t in in_shard if t not in written)
    assert (Path(tile_store) / "s2" / "data" / "c" / "0" / str(shard[1]) / str(shard[0])).is_file(), "a written shard"
    assert not (Path(tile_store) / "s2" / "data" / "c" / "0" / "0" / "0").exists(), "a shard never written"
    for tile in (beside, TileId(0, 0)):
        for group in store.groups:
            dn = reader.read(group, tile.col, tile.row)
            np.testing.assert_array_equal(dn, store.read_tile(group, tile.col, tile.row))
            assert (dn == store.layer(group).nodata).all()
            assert not reader.read(group, tile.col, tile.row, "valid").any()


def test_a_shard_index_that_fails_its_checksum_is_refused(tile_store: str, tmp_path: Path) -> None:
    copy = tmp_path / "copy.zarr"
    shutil.copytree(tile_store, copy)
    tile = split_tiles("train")[0]
    shard = next(p for p in (copy / "s2" / "data" / "c").rglob("*") if p.is_file())
    raw = bytearray(shard.read_bytes())
    raw[-10] ^= 0xFF  # inside the index, before its crc32c
    shard.write_bytes(bytes(raw))
    reader = TileReader(open_store(str(copy)))
    with pytest.raises(UserError, match="fails its checksum"):
        reader.read("s2", tile.col, tile.row)


def test_another_layout_is_read_by_zarr_python(tile_store: str, monkeypatch: pytest.MonkeyPatch) -> None:
    metadata = json.loads((Path(tile_store) / "s2" / "data" / "zarr.json").read_text())
    assert layout_of(metadata) is not None, "the premise: the tiles stage's layout is served"
    for change in ({"index_location": "start"}, {"codecs": [{"name": "bytes"}, {"name": "gzip"}]}):
        other = json.loads(json.dumps(metadata))
        other["codecs"][0]["configuration"].update(change)
        assert layout_of(other) is None, change
    monkeypatch.setattr(tile_reader, "layout_of", lambda metadata: None)
    store = open_store(tile_store)
    reader = TileReader(store)
    tile = split_tiles("train")[3]
    np.testing.assert_array_equal(reader.read("vhr", tile.col, tile.row), store.read_tile("vhr", tile.col, tile.row))
    assert reader._array("vhr", "data") is None


def test_only_a_local_store_is_read_directly() -> None:
    assert local_path("data/demo.zarr") == Path("data/demo.zarr")
    assert local_path("file:///srv/demo.zarr") == Path("/srv/demo.zarr")
    assert local_path("s3://bucket/demo.zarr") is None


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_normalise_in_place_equals_its_expression_to_the_bit(dtype: type[np.integer]) -> None:
    norm = Normalisation(("a", "b", "c"), 1e-4 if dtype == np.uint16 else 1 / 255, -0.1 if dtype == np.uint16 else 0.0,
                         0, (0.08, 0.11, 0.3), (0.031, 0.047, 0.12))
    dn = np.random.default_rng(0).integers(0, np.iinfo(dtype).max, (3, 40, 40), endpoint=True).astype(dtype)
    dn[:, :3] = 0
    mean = np.asarray(norm.mean, dtype=np.float32)[:, None, None]
    std = np.asarray(norm.std, dtype=np.float32)[:, None, None]
    expected = (dn.astype(np.float32) * np.float32(norm.scale) + np.float32(norm.offset) - mean) / std
    expected[dn == 0] = 0.0
    out = norm.normalise(dn)
    assert out.dtype == np.float32 and np.array_equal(out, expected)
    assert (out[:, :3] == 0).all() and (out[:, 3:] != 0).mean() > 0.99
    assert np.array_equal(norm.normalise(dn), out), "a second call (cached mean and std) gives the same"
    batch = np.full((2, *dn.shape), np.nan, dtype=np.float32)
    assert np.shares_memory(norm.normalise(dn, out=batch[1]), batch)
    assert np.array_equal(batch[1], out) and np.isnan(batch[0]).all(), "written in its place in the batch only"
