"""The tile index: splits, records -> GeoDataFrame, GeoParquet round trip, index path."""

from __future__ import annotations

import math
from collections import Counter
from pathlib import Path
from typing import Any

import fsspec
import geopandas as gpd
import pandas as pd
import pytest
import shapely

from msc_france.config import SplitConfig
from msc_france.grid import TileGrid, TileId
from msc_france.store.index import SPLITS, build_index, read_index, split_of, write_index
from msc_france.store.layout import index_path
from msc_france.store.records import TileRecord

GRID = TileGrid.create(480, {"s2": 10, "l8": 30, "vhr": 1.5, "labels": 10})


def record(col: int, row: int, sensor: str, valid: float = 1.0, *, region: str = "alpha",
           datetime: str | None = "2023-06-01T10:30:00Z", items: list[str] | None = None,
           dates: list[str | None] | None = None, cloud: float = 0.0) -> dict:
    items = [f"{sensor}-{col}-{row}"] if items is None else items
    return {
        "tile": str(TileId(col, row)), "col": col, "row": row, "sensor": sensor, "region": region,
        "datetime": datetime, "items": items, "dates": [datetime] * len(items) if dates is None else dates,
        "valid_fraction": valid, "cloud_fraction": cloud,
    }


# --- splits ------------------------------------------------------------------------------------
def test_split_is_deterministic_and_a_known_name() -> None:
    first = [split_of(c, r) for c in range(0, 60, 3) for r in range(0, 60, 5)]
    again = [split_of(c, r) for c in range(0, 60, 3) for r in range(0, 60, 5)]
    assert first == again
    assert set(first) <= set(SPLITS)
    assert math.isclose(sum(SPLITS.values()), 1.0)


def test_split_shared_within_a_block_and_independent_of_other_tiles() -> None:
    for bc, br in [(0, 0), (3, 7), (50, 12), (120, 90)]:
        splits = {split_of(bc * 4 + dc, br * 4 + dr) for dc in range(4) for dr in range(4)}
        assert len(splits) == 1, (bc, br, splits)
    # A different block size groups differently: 8 x 8 blocks are uniform too.
    assert len({split_of(16 + dc, 8 + dr, block=8) for dc in range(8) for dr in range(8)}) == 1
    # The split of a tile is a function of its block only: same answer for tiles of one block,
    # whether or not we ask about other tiles in between.
    assert split_of(5, 9) == split_of(4, 8) == split_of(7, 11)


def test_split_depends_on_seed() -> None:
    tiles = [(c, r) for c in range(0, 40, 4) for r in range(0, 40, 4)]
    assert [split_of(c, r, seed=0) for c, r in tiles] != [split_of(c, r, seed=1) for c, r in tiles]


def test_split_shares_over_an_area() -> None:
    counts = Counter(split_of(c, r) for c in range(40) for r in range(40))
    assert set(counts) == {"train", "val", "test"}
    assert 0.65 <= counts["train"] / 1600 <= 0.95


def test_split_rejects_bad_block() -> None:
    with pytest.raises(ValueError):
        split_of(1, 1, block=0)


# --- build_index -------------------------------------------------------------------------------
def _build(records: list[dict], grid: TileGrid, **options: Any) -> gpd.GeoDataFrame:
    """The index of records given as the JSON of completion records."""
    return build_index([TileRecord.from_json(r) for r in records], grid, **options)


@pytest.fixture()
def records() -> list[dict]:
    return [
        # tile (3, 4): all good, labels poor (labels do not count)
        record(3, 4, "s2", 0.99, items=["S2A_1", "S2B_2"], dates=["2023-06-01T10:30:00Z", "2023-05-22T10:40:00Z"]),
        record(3, 4, "l8", 0.97, datetime="2023-06-03T10:00:00Z"),
        record(3, 4, "vhr", 1.0),
        record(3, 4, "labels", 0.10, datetime=None),
        # tile (2, 5): l8 poor, vhr missing
        record(2, 5, "s2", 0.96),
        record(2, 5, "l8", 0.81, cloud=0.19),
        # tile (5, 4): s2 from two regions; the later record wins
        record(5, 4, "s2", 0.50, region="alpha"),
        record(5, 4, "l8", 0.99, region="beta"),
        record(5, 4, "vhr", 0.99, region="beta"),
        record(5, 4, "s2", 0.98, region="beta", items=["S2B_later"]),
    ]


def test_index_columns_and_order(records: list[dict]) -> None:
    gdf = _build(records, GRID)
    assert list(gdf.columns) == [
        "tile", "col", "row", "region", "geometry",
        "s2_datetime", "s2_items", "s2_dates", "s2_valid", "s2_cloud",
        "l8_datetime", "l8_items", "l8_dates", "l8_valid", "l8_cloud",
        "vhr_datetime", "vhr_items", "vhr_dates", "vhr_valid", "vhr_cloud",
        "labels_datetime", "labels_items", "labels_dates", "labels_valid", "labels_cloud",
        "quality_ok", "quality_reason", "split",
    ]
    assert list(gdf["tile"]) == ["0003_0004", "0005_0004", "0002_0005"]  # row, then col
    assert list(gdf["col"]) == [3, 5, 2] and list(gdf["row"]) == [4, 4, 5]
    assert gdf.crs is not None and gdf.crs.to_epsg() == 2154


def test_index_values(records: list[dict]) -> None:
    gdf = _build(records, GRID).set_index("tile")
    first = gdf.loc["0003_0004"]
    assert first["s2_items"] == "S2A_1,S2B_2"
    assert first["s2_dates"] == "2023-06-01T10:30:00Z,2023-05-22T10:40:00Z", "every date, in priority order"
    assert first["s2_datetime"] == "2023-06-01T10:30:00Z", "the first item's"
    assert first["labels_dates"] == "", "an item without a date is an empty entry"
    assert first["l8_datetime"] == "2023-06-03T10:00:00Z"
    assert first["s2_valid"] == pytest.approx(0.99)
    assert pd.isna(first["labels_datetime"])
    assert gdf.loc["0002_0005", "l8_cloud"] == pytest.approx(0.19)
    # Missing sensor: empty values.
    assert pd.isna(gdf.loc["0002_0005", "vhr_items"]) and pd.isna(gdf.loc["0002_0005", "vhr_dates"])
    assert math.isnan(gdf.loc["0002_0005", "vhr_valid"])
    assert math.isnan(gdf.loc["0002_0005", "labels_valid"])


def test_index_quality_rule(records: list[dict]) -> None:
    gdf = _build(records, GRID).set_index("tile")
    # Labels valid 0.10 do not fail a tile.
    assert bool(gdf.loc["0003_0004", "quality_ok"]) is True
    assert gdf.loc["0003_0004", "quality_reason"] == "ok"
    # Every failing sensor is listed, in sensor order; labels missing is no failure.
    assert bool(gdf.loc["0002_0005", "quality_ok"]) is False
    assert gdf.loc["0002_0005", "quality_reason"] == "l8 valid 0.81 < 0.95; vhr missing"
    # The later s2 record (0.98) replaced the earlier one (0.50).
    assert bool(gdf.loc["0005_0004", "quality_ok"]) is True
    assert gdf.loc["0005_0004", "s2_valid"] == pytest.approx(0.98)
    assert gdf.loc["0005_0004", "s2_items"] == "S2B_later"
    assert gdf.loc["0005_0004", "region"] == "beta"
    assert gdf.loc["0003_0004", "region"] == "alpha"
    assert gdf["quality_ok"].dtype == bool


def test_records_written_before_dates_were_kept_have_none() -> None:
    """A store grown from completion records of an earlier version: no dates, the rest as before."""
    old = record(0, 0, "s2", items=["S2A_1", "S2B_2"])
    del old["dates"]
    row = _build([old, record(1, 0, "s2")], GRID).set_index("tile")
    assert pd.isna(row.loc["0000_0000", "s2_dates"]) and row.loc["0000_0000", "s2_datetime"] == "2023-06-01T10:30:00Z"
    assert row.loc["0001_0000", "s2_dates"] == "2023-06-01T10:30:00Z", "the premise: a kept date is written"


def test_index_regions_joined_and_threshold_text() -> None:
    recs = [record(1, 1, "s2", 0.949, region="beta"), record(1, 1, "l8", 0.5, region="alpha")]
    row = _build(recs, GRID, min_valid=0.95).iloc[0]
    assert row["region"] == "alpha,beta"
    # 0.949 is not printed as 0.95 < 0.95.
    assert row["quality_reason"] == "s2 valid 0.949 < 0.95; l8 valid 0.50 < 0.95"
    relaxed = _build(recs, GRID, min_valid=0.4).iloc[0]
    assert bool(relaxed["quality_ok"]) is True and relaxed["quality_reason"] == "ok"


def test_index_only_sensors_in_records() -> None:
    gdf = _build([record(0, 0, "s2"), record(1, 0, "labels", 0.2)], GRID)
    assert [c for c in gdf.columns if c.endswith("_valid")] == ["s2_valid", "labels_valid"]
    assert list(gdf["quality_reason"]) == ["ok", "s2 missing"]


def test_index_reason_says_why_pixels_are_not_valid() -> None:
    snowy = record(0, 0, "s2", 0.62) | {"invalid_fractions": {"cloud": 0.30, "snow": 0.05, "nodata": 0.03,
                                                               "other": 0.001}}
    uncovered = record(0, 0, "l8", 0.0, items=[]) | {"invalid_fractions": {"nodata": 1.0}}
    recs = [snowy, uncovered, record(0, 0, "vhr", 0.97)]
    row = _build(recs, GRID).iloc[0]
    assert bool(row["quality_ok"]) is False
    # Shares under half a percent (other 0.001) are left out.
    assert row["quality_reason"] == ("s2 valid 0.62 < 0.95 (cloud 0.30, snow 0.05, nodata 0.03); "
                                     "l8 valid 0.00 < 0.95 (nodata 1.00)")


def test_index_geometry_and_split(records: list[dict]) -> None:
    gdf = _build(records, GRID, splits=SplitConfig(block=2))
    for _, row in gdf.iterrows():
        b = GRID.tile_bounds(TileId(row["col"], row["row"]))
        expected = shapely.box(b.left, b.bottom, b.right, b.top)
        assert row.geometry.equals(expected)
        assert row.geometry.area == pytest.approx(480.0 * 480.0)
        assert row["split"] == split_of(row["col"], row["row"], block=2)


def test_a_test_area_holds_out_every_tile_whose_centre_is_inside() -> None:
    tiles = [(col, row) for col in range(12) for row in range(12)]
    recs = [record(col, row, "s2") for col, row in tiles]
    first = GRID.tile_bounds(TileId(0, 0))
    # a box over the centres of columns 2..5 of every row: 4 x 12 tiles, whatever their blocks draw
    west, east = first.left + 2 * 480 + 100, first.left + 6 * 480 - 100
    south, north = min(first.bottom, first.top) - 20 * 480, max(first.bottom, first.top) + 20 * 480
    gdf = _build(recs, GRID, splits=SplitConfig(test_area=(west, south, east, north)))
    inside = gdf["col"].between(2, 5)
    assert (gdf.loc[inside, "split"] == "test").all() and inside.sum() == 48
    # the premise: by their blocks alone, some of those tiles would have been train
    assert any(split_of(c, r) == "train" for c, r in tiles if 2 <= c <= 5)
    assert (gdf.loc[~inside, "split"] == [split_of(c, r) for c, r in zip(gdf.loc[~inside, "col"],
                                                                         gdf.loc[~inside, "row"], strict=True)]).all()


def test_a_test_area_must_be_a_box() -> None:
    with pytest.raises(ValueError, match="west < east and south < north"):
        SplitConfig(test_area=(10, 0, 0, 10))


def test_index_rejects_inconsistent_tile_id() -> None:
    bad = record(3, 4, "s2")
    bad["tile"] = "0004_0003"
    with pytest.raises(ValueError):
        _build([bad], GRID)


def test_empty_index() -> None:
    gdf = _build([], GRID)
    assert len(gdf) == 0
    assert {"tile", "geometry", "quality_ok", "split"} <= set(gdf.columns)
    assert gdf.crs.to_epsg() == 2154


# --- files -------------------------------------------------------------------------------------
def test_write_read_round_trip(tmp_path: Path, records: list[dict]) -> None:
    gdf = _build(records, GRID)
    path = tmp_path / "sub" / "store.tiles.parquet"
    assert write_index(gdf, str(tmp_path / "sub" / "store.zarr")) == str(path)
    assert path.is_file()
    assert sorted(p.name for p in path.parent.iterdir()) == ["store.tiles.parquet"]  # no temp left
    back = read_index(str(tmp_path / "sub" / "store.zarr"))
    assert back.crs.to_epsg() == 2154
    assert list(back.columns) == list(gdf.columns)
    assert back.drop(columns="geometry").equals(gdf.drop(columns="geometry"))
    assert all(a.equals(b) for a, b in zip(back.geometry, gdf.geometry, strict=True))
    # Overwriting in place works and leaves no temporary file either.
    write_index(gdf.iloc[:1], str(tmp_path / "sub" / "store.zarr"))
    assert len(read_index(str(tmp_path / "sub" / "store.zarr"))) == 1
    assert sorted(p.name for p in path.parent.iterdir()) == ["store.tiles.parquet"]


def test_write_read_url(records: list[dict]) -> None:
    gdf = _build(records, GRID)
    url = "memory://msc-test-index/store.zarr"
    assert write_index(gdf, url) == "memory://msc-test-index/store.tiles.parquet"
    back = read_index(url)
    assert list(back["tile"]) == list(gdf["tile"])
    assert back.crs.to_epsg() == 2154
    fsspec.filesystem("memory").rm("/msc-test-index", recursive=True)


def test_index_path() -> None:
    assert index_path("/data/france.zarr") == "/data/france.tiles.parquet"
    assert index_path("/data/france.zarr/") == "/data/france.tiles.parquet"
    assert index_path("out/store") == "out/store.tiles.parquet"
    assert index_path("s3://bucket/x.zarr") == "s3://bucket/x.tiles.parquet"
    assert index_path("s3://bucket/deep/x.zarr/") == "s3://bucket/deep/x.tiles.parquet"
