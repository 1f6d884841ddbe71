"""The per-tile planner (download/plan.py): reference scene first, nearest-date Landsat, one item per
acquisition, cloud over the tile from the item's mask, reasons for tiles without a triplet, chunking."""

from __future__ import annotations

import copy
import datetime as dt
from pathlib import Path

import numpy as np
import pystac
import pytest
from odc.geo.geobox import GeoBox
from odc.geo.geom import box

from msc_france.cog import write_cog
from msc_france.download import plan as plan_module
from msc_france.download.candidates import Candidate, candidate, one_per_acquisition
from msc_france.download.plan import SensorCandidates, plan_tiles
from msc_france.download.tile_cloud import tile_cloud
from msc_france.grid import TileGrid, TileId
from msc_france.regions import Region
from tests.data.pc_items import sentinel2_item

GRID = TileGrid.create(1920, {"s2": 10, "l8": 30})
TILES = [TileId(c, r) for r in range(500, 504) for c in range(300, 304)]  # 4 x 4 tiles
REGION = Region("test", "test", box(*GRID.tile_bounds(TILES[0]), "EPSG:2154").to_crs("EPSG:4326"))
D0 = dt.date(2023, 7, 1)


def _bounds(tiles: list[TileId]) -> tuple[float, float, float, float]:
    boxes = [GRID.tile_bounds(t) for t in tiles]
    return (min(b.left for b in boxes), min(b.bottom for b in boxes),
            max(b.right for b in boxes), max(b.top for b in boxes))


def _cand(sensor: str, item_id: str, date: dt.date, cloud: float, tiles: list[TileId] | None = None,
          acquisition: str = "") -> Candidate:
    footprint = box(*_bounds(tiles or TILES), "EPSG:2154")
    return Candidate(sensor, None, item_id, date, cloud, footprint, acquisition or item_id, item_id)


def _plan(s2: list[Candidate], l8: list[Candidate], window: int = 30, **kwargs: object) -> plan_module.RegionPlan:
    sensors = {"s2": SensorCandidates("s2", s2, "reference"), "l8": SensorCandidates("l8", l8, "nearest")}
    return plan_tiles(REGION, GRID, TILES, sensors, window, **kwargs)  # type: ignore[arg-type]


def _row(plan: plan_module.RegionPlan, tile: TileId) -> dict[str, object]:
    return plan.tiles.set_index("tile").loc[str(tile)].to_dict()


def test_the_reference_scene_comes_first_and_fill_ins_stay_in_its_window() -> None:
    half = TILES[:8]  # the northern half
    s2 = [_cand("s2", "a-ref", D0, 10.0),  # 90 % clear everywhere
          _cand("s2", "b-clearer-half", D0 + dt.timedelta(days=3), 0.0, half),  # less cloudy, half the area
          _cand("s2", "c-far", D0 + dt.timedelta(days=90), 15.0)]  # outside the window
    plan = _plan(s2, [_cand("l8", "l", D0, 0.0)])
    north, south = _row(plan, TILES[0]), _row(plan, TILES[-1])
    assert north["s2_items"][0] == "b-clearer-half", "where b covers the tile it is the clearest"
    assert south["s2_items"][0] == "a-ref"
    assert list(south["s2_items"]) == ["a-ref"], "c would add clear area but is 90 days from the reference"
    assert plan.tiles["reference_date"].isin([D0.isoformat(), (D0 + dt.timedelta(days=3)).isoformat()]).all()
    # the reference is used first even when a fill-in is less cloudy over the tile
    left, bottom, right, top = GRID.tile_bounds(TILES[2])
    half_tile = Candidate("s2", None, "b-half", D0, 0.0, box(left, bottom, (left + right) / 2, top, "EPSG:2154"),
                          "b-half", "b-half")
    plan = _plan([_cand("s2", "a-ref", D0 + dt.timedelta(days=2), 30.0), half_tile], [_cand("l8", "l", D0, 0.0)])
    row = _row(plan, TILES[2])
    assert list(row["s2_items"]) == ["a-ref", "b-half"], "a: 70 % clear, the reference; b: 0 % cloud on half"
    assert row["reference_date"] == (D0 + dt.timedelta(days=2)).isoformat()
    assert list(row["s2_dates"]) == [(D0 + dt.timedelta(days=2)).isoformat(), D0.isoformat()]
    assert row["s2_clear"] == pytest.approx(1 - 0.3 * 0.5)


def test_landsat_is_the_nearest_date_to_the_reference_then_the_least_cloudy() -> None:
    s2 = [_cand("s2", "ref", D0, 0.0)]
    l8 = [_cand("l8", "near-cloudy", D0 + dt.timedelta(days=4), 30.0),
          _cand("l8", "far-clear", D0 - dt.timedelta(days=25), 0.0),
          _cand("l8", "outside", D0 + dt.timedelta(days=31), 0.0)]
    row = _row(_plan(s2, l8), TILES[5])
    assert list(row["l8_items"]) == ["near-cloudy", "far-clear"], "nearest first, then fills what clouds hide"
    assert list(row["l8_dates"]) == ["2023-07-05", "2023-06-06"], "a multi-date tile lists every date"
    assert "outside" not in row["l8_items"]


def test_an_empty_landsat_window_is_the_reason_of_every_tile() -> None:
    plan = _plan([_cand("s2", "ref", D0, 0.0)], [_cand("l8", "late", D0 + dt.timedelta(days=45), 0.0)])
    assert plan.triplets == 0 and plan.coverable == len(TILES)
    assert plan.reasons().to_dict() == {"no Landsat scene within ±30 days of the Sentinel-2 reference": len(TILES)}
    assert _plan([_cand("s2", "ref", D0, 0.0)], [_cand("l8", "late", D0 + dt.timedelta(days=45), 0.0)],
                 window=45).triplets == len(TILES)


def test_cloud_measured_over_a_tile_replaces_the_scene_figure() -> None:
    s2 = [_cand("s2", "a-5pc", D0, 5.0), _cand("s2", "b-20pc", D0 + dt.timedelta(days=5), 20.0)]
    l8 = [_cand("l8", "l", D0, 0.0)]
    assert set(_plan(s2, l8).tiles["s2_items"].map(lambda i: i[0])) == {"a-5pc"}, "by scene cloud: a everywhere"
    cloudy_tile = str(TILES[6])
    plan = _plan(s2, l8, measured={("a-5pc", cloudy_tile): 100.0, ("b-20pc", cloudy_tile): 2.0})
    firsts = dict(zip(plan.tiles["tile"], plan.tiles["s2_items"].map(lambda i: i[0]), strict=True))
    assert firsts[cloudy_tile] == "b-20pc", "a is 5 % cloudy as a scene but 100 % over this tile"
    assert {t: f for t, f in firsts.items() if t != cloudy_tile} == {t: "a-5pc" for t in firsts if t != cloudy_tile}


def test_one_item_per_acquisition_keeps_the_newest_processing() -> None:
    raw = sentinel2_item(3, processing_baseline="05.09")
    again = copy.deepcopy(raw)
    again["id"] = raw["id"][:-15] + "20990101T000000"  # a later processing run of the same datatake
    again["properties"]["s2:processing_baseline"] = "05.10"
    other_tile = sentinel2_item(3, mgrs_tile="31TDJ")  # the same datatake over another MGRS tile
    candidates = [candidate("s2", pystac.Item.from_dict(r)) for r in (raw, again, other_tile)]
    assert candidates[0].cloud == candidates[1].cloud and candidates[0].acquisition == candidates[1].acquisition
    kept, dropped = one_per_acquisition(candidates)
    assert sorted(c.item_id for c in kept) == sorted([again["id"], other_tile["id"]])
    assert [c.item_id for c in dropped] == [raw["id"]]


def test_tile_cloud_counts_invalid_data_pixels_inside_each_tile(tmp_path: Path) -> None:
    left, bottom, right, top = _bounds(TILES)
    # SCL codes: 4 vegetation, 9 cloud high probability, 0 no data, 3 cloud shadows
    codes = np.full((int((top - bottom) / 20), int((right - left) / 20)), 4, dtype=np.uint8)
    px = round(1920 / 20)
    codes[:px, :px] = 9  # tile 0 all cloud
    codes[:px, px:px + px // 2] = 0  # tile 1: half nodata ...
    codes[:px // 4, px + px // 2:2 * px] = 3  # ... and a quarter of the rest shadow
    path = tmp_path / "SCL.tif"
    write_cog(path, codes[None], GeoBox.from_bbox((left, bottom, right, top), "EPSG:2154", resolution=20), 0,
              "nearest", ["SCL"])
    measured = tile_cloud(path, "s2", GRID, TILES)
    assert measured[str(TILES[0])] == pytest.approx(100.0, abs=3)
    assert measured[str(TILES[1])] == pytest.approx(25.0, abs=3), "of the data pixels only"
    assert measured[str(TILES[2])] == pytest.approx(0.0, abs=3)


def test_chunked_planning_equals_one_chunk(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(0)
    s2 = [_cand("s2", f"s2-{i}", D0 + dt.timedelta(days=int(rng.integers(0, 60))), float(rng.uniform(0, 60)),
                [TILES[j] for j in sorted(rng.choice(len(TILES), 6, replace=False))]) for i in range(12)]
    l8 = [_cand("l8", f"l8-{i}", D0 + dt.timedelta(days=int(rng.integers(-20, 80))), float(rng.uniform(0, 60)))
          for i in range(5)]
    whole = _plan(s2, l8)
    monkeypatch.setattr(plan_module, "CHUNK", 3)
    chunked = _plan(s2, l8)
    assert whole.tiles.drop(columns=[]).astype(str).equals(chunked.tiles.astype(str))
    assert whole.coverable == chunked.coverable and whole.triplets > 0


def test_a_sliver_left_by_the_nearest_scene_is_filled_by_the_next() -> None:
    left, bottom, right, top = _bounds(TILES)
    near = Candidate("l8", None, "near-sliver", D0 + dt.timedelta(days=1), 0.0,
                     box(left + 10, bottom, right, top, "EPSG:2154"), "near-sliver", "near-sliver")  # 10 m short
    plan = _plan([_cand("s2", "ref", D0, 0.0)], [near, _cand("l8", "further", D0 + dt.timedelta(days=9), 0.0)])
    west = _row(plan, TILES[0])  # the western column of tiles: the nearest scene misses a 10 m strip
    assert list(west["l8_items"]) == ["near-sliver", "further"] and west["l8_cover"] == pytest.approx(1.0)
    assert west["triplet"], "clear enough with the first, but not covered without the second"
    assert list(_row(plan, TILES[1])["l8_items"]) == ["near-sliver"], "where it covers all, it is enough"
