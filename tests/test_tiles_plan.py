"""The tiles stage follows the download's plan per tile (``plan.parquet``): each tile's items in its order,
only its items, every date used recorded; without a plan, the mosaic of before (least cloudy first)."""

from __future__ import annotations

import contextlib
import io
import itertools
from pathlib import Path

import numpy as np
import pytest
import rasterio
import shapely
from rich.console import Console

from msc_france.grid import TileId
from msc_france.pairs import open_pairs
from msc_france.store.done import all_done
from msc_france.store.index import read_index
from msc_france.store.layout import layers, shard_box, shard_of, shard_tiles
from msc_france.store.records import TileRecord
from msc_france.tiles.run import TilesRequest, run_tiles
from msc_france.tiles.sources import SourceItem, read_items
from msc_france.tiles.tileplan import RegionOrders, TileOrders
from msc_france.tiles.warp import CLEAR, CLOUD, GDAL_OPTIONS, NODATA, _item_bands, _open, _quality, render
from tests.tileplan_fixtures import (
    GRID,
    NE,
    NW,
    RECIPE,
    SE,
    SW,
    A,
    B,
    C,
    quarter,
    write_download,
    write_plan,
)

# NW: B before A although A is less cloudy; NE: the reverse; SW: C (holes, a cloud) filled in by A; SE: B only.
PLAN = {NW: (B, A), NE: (A, B), SW: (C, A), SE: (B,)}


def _tiles(data: Path, console: Console) -> str:
    summary = run_tiles(TilesRequest(data=data, workers=1), console)
    assert summary.tiles == 4 and summary.written == len(layers(RECIPE))
    return summary.store


def _s2(store: str, tile: TileId) -> tuple[np.ndarray, np.ndarray]:
    """The tile's Sentinel-2 first band and valid mask."""
    ds = open_pairs(store).tile(str(tile))["s2"]
    return ds["data"].values[0], ds["valid"].values.astype(bool)


def _local(tile: TileId, which: str) -> tuple[slice, slice]:
    """A quarter of ``tile`` in the tile's own pixels."""
    rows, cols = quarter(tile, which)
    top, left = quarter(tile, "nw")
    return slice(rows.start - top.start, rows.stop - top.start), slice(cols.start - left.start, cols.stop - left.start)


@pytest.fixture(scope="module")
def planned(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    """The store of the fixture's download with :data:`PLAN`, and what the run printed."""
    data = tmp_path_factory.mktemp("planned") / "data"
    write_plan(write_download(data), PLAN)
    out = io.StringIO()
    return _tiles(data, Console(file=out, width=200)), out.getvalue()


def test_the_plan_orders_each_tile(planned: tuple[str, str]) -> None:
    store, _ = planned
    assert A.cloud < B.cloud, "the premise: least cloudy first would take A"
    nw, nw_valid = _s2(store, NW)
    assert (nw == B.dn).all() and nw_valid.all(), "NW lists B first: B's clear pixels, not A's"
    ne, ne_valid = _s2(store, NE)
    assert (ne == A.dn).all() and ne_valid.all(), "NE lists A first"


def test_an_item_the_plan_does_not_list_is_not_used(planned: tuple[str, str]) -> None:
    store, _ = planned
    se, valid = _s2(store, SE)
    cloud = _local(SE, "nw")
    assert (se == B.dn).all(), "B's cloudy data stay where A (not listed) is clear"
    assert not valid[cloud].any() and valid.sum() == valid.size * 3 // 4
    row = read_index(store).set_index("tile").loc[str(SE)]
    assert row["s2_items"] == B.item_id and row["s2_cloud"] == pytest.approx(0.25)


def test_a_tile_of_two_dates_records_both_in_order(planned: tuple[str, str]) -> None:
    store, _ = planned
    sw, valid = _s2(store, SW)
    assert valid.all()
    assert (sw[_local(SW, "se")] == C.dn).all(), "C first where it is clear"
    for hole in ("nw", "sw", "ne"):  # no data, no data, cloud
        assert (sw[_local(SW, hole)] == A.dn).all(), f"A fills C's {hole} quarter"
    row = read_index(store).set_index("tile").loc[str(SW)]
    assert row["s2_items"] == f"{C.item_id},{A.item_id}"
    assert row["s2_dates"] == f"{C.datetime},{A.datetime}" and row["s2_datetime"] == C.datetime
    assert C.datetime != A.datetime, "the premise: two dates"
    record = next(r for r in _records(store) if r.tile == SW and r.sensor == "s2")
    assert record.dates == (C.datetime, A.datetime) and record.datetime == C.datetime


def _records(store: str) -> list[TileRecord]:
    return [r for done in all_done(store, {}) for r in done.tiles.values()]


def test_a_plan_says_what_it_does_not_order(planned: tuple[str, str]) -> None:
    _, printed = planned
    assert "planned: plan.parquet orders no l8, vhr, labels items: least cloudy first" in printed
    assert "no plan.parquet" not in printed


def test_without_a_plan_least_cloudy_first_and_said_once(tmp_path: Path) -> None:
    write_download(tmp_path / "data")
    out = io.StringIO()
    store = _tiles(tmp_path / "data", Console(file=out, width=200))
    assert out.getvalue().count("no plan.parquet (downloaded by an earlier version)") == 1
    index = read_index(store).set_index("tile")
    for tile in (NW, NE, SE):
        data, valid = _s2(store, tile)
        assert (data == A.dn).all() and valid.all() and index.loc[str(tile), "s2_items"] == A.item_id
    data, _ = _s2(store, SW)
    assert (data == A.dn).all(), "A, the least cloudy, is clear everywhere"


def _before_plans(items: list[SourceItem], target) -> tuple[np.ndarray, ...]:  # noqa: ANN001
    """The mosaic of the commit before plans (9eae29e), kept here as the reference: items in the order
    given, clear pixels first, cloudy data only where no item had data before."""
    layer = next(layer for layer in layers(RECIPE) if layer.group == "s2")
    shape = target.shape
    data = np.full((len(layer.bands), *shape), layer.nodata, dtype=layer.dtype)
    valid, has_data = np.zeros(shape, bool), np.zeros(shape, bool)
    first, cause = np.full(shape, -1, np.int16), np.full(shape, NODATA, np.uint8)
    area = shapely.box(*target.boundingbox)
    used = [i for i in items if shapely.from_wkt(i.footprint_wkt).intersects(area)]
    with rasterio.Env(**GDAL_OPTIONS):
        for k, item in enumerate(used):
            with contextlib.ExitStack() as files:
                opened = _open(layer, item, files)
                bands, present = _item_bands(layer, item, target, opened)
                quality = _quality(layer, target, opened)
            here = np.where(present, quality, np.uint8(NODATA))
            take = (here == CLEAR) & ~valid
            put = take | (present & ~has_data)
            np.copyto(data, bands, where=put)
            np.copyto(first, k, where=put)
            np.copyto(cause, here, where=put)
            valid |= take
            has_data |= present
    return data, valid, has_data, first, cause


def test_without_ranks_the_render_is_byte_identical_to_before(tmp_path: Path) -> None:
    """Every order of every choice of the items, over the whole shard (holes and clouds overlapping)."""
    items = read_items(write_download(tmp_path / "data"))
    layer = next(layer for layer in layers(RECIPE) if layer.group == "s2")
    k = shard_tiles(RECIPE)
    target = GRID.geobox("s2")[shard_box(GRID, layer, shard_of(NW, k), k)]
    causes = set()
    for order in itertools.chain.from_iterable(itertools.permutations(items, n) for n in (1, 2, 3)):
        rendered = render(layer, list(order), target)
        expected = _before_plans(list(order), target)
        found = (rendered.data, rendered.valid, rendered.has_data, rendered.first_item, rendered.cause)
        assert all(e.dtype == f.dtype and e.tobytes() == f.tobytes() for e, f in zip(expected, found, strict=True))
        causes |= set(np.unique(rendered.cause).tolist())
    assert {CLEAR, CLOUD, NODATA} <= causes, "the premise: clear, cloudy and empty pixels were mosaicked"


def test_a_tile_in_two_plans_takes_the_later_region_first_then_fill_ins() -> None:
    def plan(region: str, ids: tuple[str, ...]) -> RegionOrders:
        return RegionOrders(region, frozenset({"s2"}), {("s2", NW): ids})

    orders = TileOrders.combine([plan("alpha", ("X", "Y")), plan("beta", ("Z", "X"))])
    assert orders.orders[("s2", NW)] == ("beta/Z", "beta/X", "alpha/Y")
    assert orders.for_shard("s2", [NW, NE]).tiles == {NW: ("beta/Z", "beta/X", "alpha/Y"), NE: None}


def test_scene_quarters_are_what_they_say() -> None:
    """The fixture's premise: quarters tile the 2 x 2 tiles without overlap."""
    cover = np.zeros((96, 96), int)
    for tile, which in itertools.product((NW, NE, SW, SE), ("nw", "ne", "sw", "se")):
        cover[quarter(tile, which)] += 1
    assert (cover == 1).all()
