"""The store package: records round-trip through JSON, files are written whole or not at all, and a
store opened with ``open_store`` gives the same pixels, statistics and index as the arrays and the
index file themselves."""

from __future__ import annotations

import importlib
import json
import math
import subprocess
import sys
from pathlib import Path

import fsspec
import numpy as np
import pytest
import zarr

from msc_france.errors import UserError
from msc_france.grid import TileId
from msc_france.pairs import open_pairs
from msc_france.store import ModelCard, SensorCard, open_store, read_card
from msc_france.store.atomic import PARTIAL_GLOB, atomic_path, atomic_write
from msc_france.store.model_card import CARD, write_card
from msc_france.store.records import BandStatistics, BandSums, ShardRecord, TileRecord


# --- records -----------------------------------------------------------------------------------
def test_shard_record_round_trips_through_json() -> None:
    tile = TileRecord(3, 4, "s2", ("S2A_1", "S2B_2"), ("2023-06-01T10:30:00Z", None), "alpha",
                      "2023-06-01T10:30:00Z", 0.9, 0.05, {"cloud": 0.05, "snow": 0.0, "nodata": 0.05, "other": 0.0})
    record = ShardRecord("s2", (0, 1), {str(tile.tile): tile}, BandSums((4.0, 4.0), (1.0, 2.0), (0.5, 1.5)))
    back = ShardRecord.from_json(record.to_json())
    assert back == record and back.tiles["0003_0004"].tile == TileId(3, 4)
    assert json.loads(record.to_json())["tiles"]["0003_0004"]["tile"] == "0003_0004", "the record names its tile"


def test_a_record_of_another_shape_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="not a shard record"):
        ShardRecord.from_json(json.dumps({"group": "s2", "shard": [0, 0]}))
    with pytest.raises(ValueError, match="says tile"):
        TileRecord.from_json({"tile": "0004_0003", "col": 3, "row": 4, "sensor": "s2"})
    old = TileRecord.from_json({"col": 1, "row": 2, "sensor": "l8", "items": ["X"]})
    assert old.dates is None and math.isnan(old.valid_fraction), "records of earlier versions keep their gaps"


def test_band_sums_add_up_to_the_statistics_of_all_pixels() -> None:
    rng = np.random.default_rng(0)
    values = rng.normal(0.2, 0.05, (2, 1000))
    parts = [BandSums((500.0, 500.0), tuple(v.sum(axis=1)), tuple((v**2).sum(axis=1)))
             for v in (values[:, :500], values[:, 500:])]
    stats = BandStatistics.of(["B04", "B08"], parts[0] + parts[1])
    assert [s.mean for s in stats.bands.values()] == pytest.approx(values.mean(axis=1).tolist())
    assert [s.std for s in stats.bands.values()] == pytest.approx(values.std(axis=1).tolist())
    assert BandStatistics.from_json(json.loads(json.dumps(stats.to_json()))) == stats
    assert BandStatistics.of(["B04"], BandSums((0.0,), (0.0,), (0.0,))).bands == {}, "no valid pixel, no figure"


def test_model_card_round_trips_and_a_damaged_one_is_one_line(tmp_path: Path) -> None:
    card = ModelCard("vit_tiny_patch16_224", "rgb", 64, 16, 192, 40, "demo", "pretrain-demo", 0.1, "dense",
                     {"s2": SensorCard("backbone-s2.safetensors", ("B04", "B03", "B02"), 1e-4, -0.1, 0,
                                       (0.1, 0.1, 0.1), (0.05, 0.05, 0.05))})
    write_card(tmp_path, card)
    assert read_card(tmp_path) == card and card.method == "DINO + MSAD"
    assert json.loads((tmp_path / CARD).read_text())["sensors"]["s2"]["in_chans"] == 3, "timm users read in_chans"
    (tmp_path / CARD).write_text('{"arch": "vit"')  # cut short by something else than our writer
    with pytest.raises(UserError, match="is damaged") as error:
        read_card(tmp_path)
    assert "\n" not in str(error.value)


# --- atomic writes -----------------------------------------------------------------------------
def test_atomic_write_replaces_whole_and_leaves_nothing_on_error(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "file.json"
    atomic_write(target, "first")
    atomic_write(target, b"second")
    assert target.read_text() == "second" and [p.name for p in target.parent.iterdir()] == ["file.json"]
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half")
        assert tmp.name.startswith(".file.json.") and tmp.match(PARTIAL_GLOB), "the premise: one naming scheme"
        raise RuntimeError("killed while writing")
    assert target.read_text() == "second", "the old content stays"
    assert [p.name for p in target.parent.iterdir()] == ["file.json"], "no leftover"


def test_atomic_write_to_a_url_puts_one_object() -> None:
    atomic_write("memory://msc-atomic/a/b.json", "{}")
    fs = fsspec.filesystem("memory")
    assert fs.cat_file("/msc-atomic/a/b.json") == b"{}"
    fs.rm("/msc-atomic", recursive=True)


# --- reading -----------------------------------------------------------------------------------
def test_open_store_reads_what_the_arrays_and_the_index_hold(tile_store: str) -> None:
    store = open_store(tile_store)
    assert store.groups == ["s2", "l8", "vhr"] and store.meta.recipe == "demo" and store.meta.version == 1
    index = store.index()
    col, row = int(index["col"].iloc[0]), int(index["row"].iloc[0])
    raw = zarr.open_group(tile_store, mode="r")
    for group in store.groups:
        px = store.tile_px(group)
        expected = raw[group]["data"][:, row * px:(row + 1) * px, col * px:(col + 1) * px]
        assert np.array_equal(store.read_tile(group, col, row), expected)
        assert store.read_tile(group, col, row, "valid").all()
        paired = open_pairs(tile_store)[str(TileId(col, row))][group]["data"].values
        assert np.array_equal(paired, expected), "open_pairs and the loader read the same pixels"
    layer = store.layer("s2")
    assert layer.bands == tuple(raw["s2"]["data"].attrs["bands"]) and layer.dtype == "uint16"
    norm = store.normalisation("s2", ["B04"])
    stats = raw["s2"].attrs["statistics"]["B04"]
    assert norm.mean == (pytest.approx(stats["mean"]),) and norm.scale == layer.scale


def test_open_store_errors_are_one_line(tile_store: str, tmp_path: Path) -> None:
    with pytest.raises(UserError, match="no tile store at"):
        open_store(str(tmp_path / "missing.zarr"))
    zarr.open_group(str(tmp_path / "other.zarr"), mode="w", zarr_format=3)
    with pytest.raises(UserError, match="is not an msc-france tile store"):
        open_store(str(tmp_path / "other.zarr"))
    store = open_store(tile_store)
    with pytest.raises(UserError, match="has no labels group"):
        store.read_tile("labels", 0, 0)
    with pytest.raises(UserError, match="has no band 'B99' in s2"):
        store.normalisation("s2", ["B99"])


def test_the_package_names_resolve_lazily_and_writing_a_file_pulls_no_reader() -> None:
    """``msc_france.store.NAME`` is each submodule's object; importing ``store.atomic`` (every writer
    of the project does) loads neither the reader nor xarray/zarr."""
    import msc_france.store as store

    assert sorted(store.__all__) == sorted(store._MODULE_OF)
    for name in store.__all__:
        module = importlib.import_module(f"msc_france.store.{store._MODULE_OF[name]}")
        assert getattr(store, name) is getattr(module, name)
    probe = ("import sys, msc_france.store.atomic; "
             "print(sorted({'xarray', 'zarr', 'msc_france.store.reader'} & set(sys.modules)))")
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, check=True)
    assert result.stdout.strip() == "[]"
