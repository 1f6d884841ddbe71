"""The Lambert-93 France tile grid: tile ids, bounds, per-sensor pixel grids, nesting, regions."""

from __future__ import annotations

import itertools
import json
from fractions import Fraction

import numpy as np
import pytest
import shapely
from affine import Affine
from odc.geo.geom import Geometry, box
from pyproj import Transformer

from msc_france.config import load_recipe
from msc_france.errors import UserError
from msc_france.grid import CRS, EXTENT_SIZE, ORIGIN, TileGrid, TileId, tiles_between

RECIPES = ("demo", "msc-france")
TO_L93 = Transformer.from_crs("EPSG:4326", "EPSG:2154", always_xy=True)
TO_LONLAT = Transformer.from_crs("EPSG:2154", "EPSG:4326", always_xy=True)

# third-party noise (odc-geo on affine 3 and shapely 2.1), not ours to fix here
pytestmark = [
    pytest.mark.filterwarnings("ignore:Use `@` matmul:PendingDeprecationWarning"),
    pytest.mark.filterwarnings("ignore:The 'shapely.ops.transform:DeprecationWarning"),
]


@pytest.fixture(scope="module", params=RECIPES)
def grid(request: pytest.FixtureRequest) -> TileGrid:
    return load_recipe(request.param).tile_grid


@pytest.fixture(scope="module")
def msc() -> TileGrid:
    return load_recipe("msc-france").tile_grid


def random_tiles(grid: TileGrid, n: int, seed: int = 2154) -> list[TileId]:
    rows, cols = grid.shape
    rng = np.random.default_rng(seed)
    picked = zip(rng.integers(0, cols, n).tolist(), rng.integers(0, rows, n).tolist(), strict=True)
    corners = [(0, 0), (cols - 1, 0), (0, rows - 1), (cols - 1, rows - 1)]
    return [TileId(c, r) for c, r in [*corners, *picked]]


# --- tile ids ------------------------------------------------------------------------------------
def test_tile_id_text() -> None:
    assert str(TileId(297, 481)) == "0297_0481"
    assert str(TileId(0, 7)) == "0000_0007"
    assert TileId.parse("0297_0481") == TileId(297, 481)
    assert TileId.parse("  0001_0002\n") == TileId(1, 2)
    assert TileId.parse("12345_0002") == TileId(12345, 2)


@pytest.mark.parametrize("bad", ["297_481", "0297-0481", "abcd_efgh", "", "0297_0481_0001", "-001_0002"])
def test_tile_id_parse_rejects(bad: str) -> None:
    with pytest.raises(UserError, match="tile id"):
        TileId.parse(bad)


def test_tile_id_round_trip(grid: TileGrid) -> None:
    for tile in random_tiles(grid, 300):
        assert TileId.parse(str(tile)) == tile


# --- bounds ----------------------------------------------------------------------------------------
def test_shape_covers_extent(grid: TileGrid) -> None:
    rows, cols = grid.shape
    assert cols * grid.footprint >= EXTENT_SIZE[0] > (cols - 1) * grid.footprint
    assert rows * grid.footprint >= EXTENT_SIZE[1] > (rows - 1) * grid.footprint


def test_tile_at_center_round_trip(grid: TileGrid) -> None:
    for tile in random_tiles(grid, 1000, seed=1):
        b = grid.tile_bounds(tile)
        assert grid.tile_at((b.left + b.right) / 2, (b.bottom + b.top) / 2) == tile
        # points just inside the corners belong to the tile as well
        assert grid.tile_at(b.left + 1e-3, b.top - 1e-3) == tile
        assert grid.tile_at(b.right - 1e-3, b.bottom + 1e-3) == tile


def test_bounds_are_footprint_sized_and_shared(grid: TileGrid) -> None:
    rows, cols = grid.shape
    for tile in random_tiles(grid, 300, seed=2):
        b = grid.tile_bounds(tile)
        assert b.crs == CRS
        assert b.right - b.left == grid.footprint
        assert b.top - b.bottom == grid.footprint
        assert b.left == ORIGIN[0] + tile.col * grid.footprint
        assert b.top == ORIGIN[1] - tile.row * grid.footprint
        if tile.col + 1 < cols:
            east = grid.tile_bounds(TileId(tile.col + 1, tile.row))
            assert east.left == b.right and (east.bottom, east.top) == (b.bottom, b.top)
            # a point on the shared edge goes to the east tile (half-open tiles, no gaps or overlaps)
            assert grid.tile_at(b.right, (b.top + b.bottom) / 2) == TileId(tile.col + 1, tile.row)
        if tile.row + 1 < rows:
            south = grid.tile_bounds(TileId(tile.col, tile.row + 1))
            assert south.top == b.bottom and (south.left, south.right) == (b.left, b.right)
            assert grid.tile_at((b.left + b.right) / 2, b.bottom) == TileId(tile.col, tile.row + 1)


def test_tiles_outside_grid_rejected(grid: TileGrid) -> None:
    rows, cols = grid.shape
    for tile in (TileId(cols, 0), TileId(0, rows), TileId(-1, 0), TileId(0, -1)):
        with pytest.raises(UserError, match="outside"):
            grid.tile_bounds(tile)
        with pytest.raises(UserError, match="outside"):
            grid.tile_geobox(tile, grid.sensors[0])


def test_tiles_between(msc: TileGrid) -> None:
    tiles = [TileId(10, 20), TileId(12, 21), TileId(11, 25)]
    b = tiles_between(msc, tiles)
    assert (b.left, b.right) == (msc.tile_bounds(TileId(10, 0)).left, msc.tile_bounds(TileId(12, 0)).right)
    assert (b.top, b.bottom) == (msc.tile_bounds(TileId(0, 20)).top, msc.tile_bounds(TileId(0, 25)).bottom)
    with pytest.raises(UserError):
        tiles_between(msc, [])


# --- per-sensor pixel grids ----------------------------------------------------------------------
def test_recipe_tile_sizes() -> None:
    assert {s: load_recipe("msc-france").tile_grid.tile_px(s) for s in ("s2", "l8", "vhr")} == {
        "s2": 192, "l8": 64, "vhr": 1280,
    }
    assert {s: load_recipe("demo").tile_grid.tile_px(s) for s in ("s2", "l8", "vhr")} == {
        "s2": 48, "l8": 16, "vhr": 120,
    }


def test_tile_geobox_matches_bounds(grid: TileGrid) -> None:
    for tile in random_tiles(grid, 40, seed=3):
        bounds = grid.tile_bounds(tile)
        boxes = {s: grid.tile_geobox(tile, s) for s in grid.sensors}
        for sensor, gbox in boxes.items():
            px = grid.tile_px(sensor)
            assert gbox.shape == (px, px)
            assert gbox.crs == CRS and gbox.crs.epsg == 2154
            assert gbox.resolution.x == grid.gsd(sensor) and gbox.resolution.y == -grid.gsd(sensor)
            assert tuple(gbox.boundingbox) == tuple(bounds), (sensor, tile)
        assert len({tuple(g.boundingbox) for g in boxes.values()}) == 1


def test_tile_geobox_is_slice_of_mosaic(grid: TileGrid) -> None:
    for sensor in grid.sensors:
        mosaic = grid.geobox(sensor)
        px = grid.tile_px(sensor)
        rows, cols = grid.shape
        assert mosaic.shape == (rows * px, cols * px)
        assert mosaic.affine == Affine(grid.gsd(sensor), 0, ORIGIN[0], 0, -grid.gsd(sensor), ORIGIN[1])
        for tile in random_tiles(grid, 25, seed=4):
            gbox = grid.tile_geobox(tile, sensor)
            r0, c0 = tile.row * px, tile.col * px
            assert gbox.affine == mosaic.affine @ Affine.translation(c0, r0)
            assert gbox.affine @ (0, 0) == mosaic.affine @ (c0, r0)
            assert gbox == mosaic[r0 : r0 + px, c0 : c0 + px]


# --- nesting between sensors --------------------------------------------------------------------
def test_ratio(msc: TileGrid) -> None:
    assert msc.ratio("s2", "l8") == 3
    assert msc.ratio("vhr", "l8") == 20
    assert msc.ratio("s2", "s2") == 1
    with pytest.raises(UserError, match="do not nest"):
        msc.ratio("vhr", "s2")  # 10 m / 1.5 m
    with pytest.raises(UserError):
        msc.ratio("l8", "s2")  # coarse inside fine
    demo = load_recipe("demo").tile_grid
    assert demo.ratio("s2", "l8") == 3
    with pytest.raises(UserError):
        demo.ratio("vhr", "s2")  # 10 m / 4 m


@pytest.mark.parametrize("fine, coarse, k", [("s2", "l8", 3), ("vhr", "l8", 20)])
def test_nested_slices_cover_coarse_pixel(msc: TileGrid, fine: str, coarse: str, k: int) -> None:
    tile = TileId(340, 290)
    g_coarse, g_fine = msc.tile_geobox(tile, coarse), msc.tile_geobox(tile, fine)
    n = msc.tile_px(coarse)
    rng = np.random.default_rng(5)
    pixels = [(0, 0), (n - 1, n - 1), (0, n - 1), *rng.integers(0, n, (40, 2)).tolist()]
    for row, col in pixels:
        rs, cs = msc.nested_slices(coarse, row, col, fine)
        assert rs.stop - rs.start == k and cs.stop - cs.start == k
        assert rs.start >= 0 and rs.stop <= msc.tile_px(fine) and cs.stop <= msc.tile_px(fine)
        # same ground: corners through the affines, and the sliced GeoBoxes
        assert g_fine.affine @ (cs.start, rs.start) == g_coarse.affine @ (col, row)
        assert g_fine.affine @ (cs.stop, rs.stop) == g_coarse.affine @ (col + 1, row + 1)
        assert tuple(g_fine[rs, cs].boundingbox) == tuple(g_coarse[row : row + 1, col : col + 1].boundingbox)


def test_nested_slices_refuse_non_nesting(msc: TileGrid) -> None:
    with pytest.raises(UserError):
        msc.nested_slices("s2", 0, 0, "vhr")


def test_pixel_to_pixel_examples(msc: TileGrid) -> None:
    rows, cols = msc.pixel_to_pixel("s2", np.array([5]), np.array([7]), "l8")
    assert (rows[0], cols[0]) == (1, 2)
    rows, cols = msc.pixel_to_pixel("l8", np.array([1]), np.array([2]), "s2")
    assert (rows[0], cols[0]) == (4, 7)  # the centre pixel of the 3x3 block
    rows, cols = msc.pixel_to_pixel("s2", np.array([0, 2, 3]), np.array([191, 189, 188]), "l8")
    assert rows.tolist() == [0, 0, 1] and cols.tolist() == [63, 63, 62]


def test_pixel_to_pixel_centres(grid: TileGrid) -> None:
    """Each source pixel centre lies in the destination pixel it maps to, for every sensor pair."""
    tile = TileId(*(s // 2 for s in reversed(grid.shape)))
    for src, dst in itertools.permutations(grid.sensors, 2):
        n = grid.tile_px(src)
        idx = np.arange(n)
        rows, cols = grid.pixel_to_pixel(src, idx, idx, dst)
        assert rows.dtype.kind == "i" and np.array_equal(rows, cols)
        assert rows.min() >= 0 and rows.max() < grid.tile_px(dst)
        # exact arithmetic: centre at (i + 1/2) * gsd_src, containing pixel floor(centre / gsd_dst)
        g_src, g_dst = Fraction(str(grid.gsd(src))), Fraction(str(grid.gsd(dst)))
        expected = [((i + Fraction(1, 2)) * g_src) // g_dst for i in range(n)]
        assert rows.tolist() == expected, (src, dst)
        # and geographically, through the two GeoBoxes
        a_src, a_dst = grid.tile_geobox(tile, src).affine, grid.tile_geobox(tile, dst).affine
        for i in (0, n // 3, n - 1):
            x, y = a_src @ (i + 0.5, i + 0.5)
            left, top = a_dst @ (cols[i], rows[i])
            right, bottom = a_dst @ (cols[i] + 1, rows[i] + 1)
            assert left <= x <= right and bottom <= y <= top


def test_footprint_must_divide() -> None:
    with pytest.raises(UserError, match="footprint") as info:
        TileGrid.create(1920, {"s2": 7})
    assert "1920" in str(info.value) and "s2" in str(info.value)
    for bad in ({"s2": 0}, {"s2": -10}, {"s2": 10, "l8": 25}):
        with pytest.raises(UserError):
            TileGrid.create(1920, bad)
    with pytest.raises(UserError, match="positive"):
        TileGrid.create(0, {"s2": 10})
    assert TileGrid.create(1920, {"vhr": 0.3}).tile_px("vhr") == 6400


def test_unknown_sensor(msc: TileGrid) -> None:
    with pytest.raises(UserError, match="s2, l8, vhr"):
        msc.gsd("s3")


# --- the French extent ---------------------------------------------------------------------------
CITIES = {
    "Paris": (2.35, 48.86),
    "Brest": (-4.49, 48.39),
    "Strasbourg": (7.75, 48.58),
    "Nice": (7.27, 43.70),
    "Ajaccio": (8.74, 41.92),
    "Bonifacio": (9.16, 41.39),
    "Dunkerque": (2.38, 51.03),
}


@pytest.mark.parametrize("city", list(CITIES))
def test_french_cities_inside(grid: TileGrid, city: str) -> None:
    x, y = TO_L93.transform(*CITIES[city])
    tile = grid.tile_at(x, y)
    b = grid.tile_bounds(tile)
    assert b.left <= x < b.right and b.bottom < y <= b.top


def test_cities_relative_positions(msc: TileGrid) -> None:
    tile = {c: msc.tile_at(*TO_L93.transform(*ll)) for c, ll in CITIES.items()}
    assert tile["Brest"].col < tile["Paris"].col < tile["Strasbourg"].col
    assert tile["Dunkerque"].row < tile["Paris"].row < tile["Nice"].row < tile["Bonifacio"].row


@pytest.mark.parametrize(
    "x, y", [(-500_000, 6_600_000), (700_000, 8_000_000), (700_000, 5_000_000), (2_000_000, 6_600_000)]
)
def test_far_points_outside(grid: TileGrid, x: float, y: float) -> None:
    with pytest.raises(UserError, match="outside"):
        grid.tile_at(x, y)


# --- regions -------------------------------------------------------------------------------------
def _lonlat_box_inside(grid: TileGrid, first: TileId, ncols: int, nrows: int, margin: float) -> Geometry:
    """A lon/lat box inside the block of tiles starting at ``first``, ``margin`` metres from its edges."""
    a = grid.tile_bounds(first)
    left, top = a.left + margin, a.top - margin
    right, bottom = a.left + ncols * grid.footprint - margin, a.top - nrows * grid.footprint + margin
    lon, lat = TO_LONLAT.transform([left, right, right, left], [top, top, bottom, bottom])
    return box(min(lon), min(lat), max(lon), max(lat), "EPSG:4326")


def test_tiles_in_exact_tile(grid: TileGrid) -> None:
    for tile in random_tiles(grid, 10, seed=6)[4:]:
        b = grid.tile_bounds(tile)
        assert grid.tiles_in(box(b.left, b.bottom, b.right, b.top, CRS)) == [tile]


def test_tiles_in_polygon_with_hole_and_island_matches_the_exact_predicates(msc: TileGrid) -> None:
    # the centre shortcut for tiles away from every edge must give what the exact test on every tile gives
    x, y = 600_000.0, 6_500_000.0
    ring = shapely.Point(x, y).buffer(20_000, quad_segs=8)
    hole = shapely.Point(x + 3_000, y).buffer(9_000, quad_segs=8)
    island = shapely.box(x + 2_000, y - 100, x + 2_300, y + 100)  # inside one tile of the hole, no tile edge
    region = shapely.MultiPolygon([shapely.Polygon(ring.exterior, [hole.exterior]), island])
    tiles = msc.tiles_in(Geometry(region, CRS))
    candidates = msc.tiles_in(box(*region.bounds, CRS))
    exact = [t for t in candidates if (b := shapely.box(*msc.tile_bounds(t))).intersects(region)
             and not b.touches(region)]
    assert tiles == exact
    assert msc.tile_at(x + 2_100, y) in tiles and msc.tile_at(x + 3_000, y + 4_000) not in tiles


def test_tiles_in_block_sorted(grid: TileGrid) -> None:
    first = TileId(1456, 1600) if grid.footprint < 1000 else TileId(363, 300)
    a = grid.tile_bounds(first)
    region = box(a.left, a.top - 2 * grid.footprint, a.left + 3 * grid.footprint, a.top, CRS)
    expected = [TileId(first.col + c, first.row + r) for r in range(2) for c in range(3)]
    assert grid.tiles_in(region) == expected
    # the same block as a lon/lat box (near the 3°E central meridian, 50 m inside the edges)
    assert grid.tiles_in(_lonlat_box_inside(grid, first, 3, 2, margin=50)) == expected


def test_tiles_in_lonlat_single_tile(grid: TileGrid) -> None:
    tile = TileId(364, 400) if grid.footprint > 1000 else TileId(1458, 1600)
    assert grid.tiles_in(_lonlat_box_inside(grid, tile, 1, 1, margin=50)) == [tile]
    x, y = TO_L93.transform(2.35, 48.86)
    lon, lat = 2.35, 48.86
    assert grid.tiles_in(box(lon - 1e-5, lat - 1e-5, lon + 1e-5, lat + 1e-5, "EPSG:4326")) == [grid.tile_at(x, y)]


@pytest.mark.parametrize(
    "bbox", [(12.0, 41.5, 12.8, 42.2), (-4.0, 40.0, -3.5, 40.5), (-40.0, 30.0, -39.0, 31.0)],
    ids=["Rome", "Madrid", "Atlantic"],
)
def test_tiles_in_outside_france(grid: TileGrid, bbox: tuple[float, float, float, float]) -> None:
    assert grid.tiles_in(box(*bbox, "EPSG:4326")) == []


def test_tiles_in_outside_extent_lambert(grid: TileGrid) -> None:
    assert grid.tiles_in(box(-600_000, 6_500_000, -400_000, 6_600_000, CRS)) == []
    assert grid.tiles_in(box(600_000, 7_300_000, 700_000, 7_400_000, CRS)) == []


def test_tiles_in_clipped_to_grid(msc: TileGrid) -> None:
    region = box(-10_000, 7_199_000, 5_000, 7_210_000, CRS)  # straddles the north-west corner
    assert msc.tiles_in(region) == [TileId(0, 0), TileId(1, 0), TileId(2, 0)]


def test_tile_ids_are_global(grid: TileGrid) -> None:
    big = box(1.0, 43.3, 1.6, 43.7, "EPSG:4326")
    small = box(1.30, 43.48, 1.42, 43.58, "EPSG:4326")
    tiles_big, tiles_small = grid.tiles_in(big), grid.tiles_in(small)
    assert 0 < len(tiles_small) < len(tiles_big)
    assert set(tiles_small) <= set(tiles_big)
    assert tiles_big == sorted(tiles_big, key=lambda t: (t.row, t.col))
    again = load_recipe("demo" if grid.footprint == 480 else "msc-france").tile_grid
    for tile in tiles_small:
        assert again.tile_bounds(tile) == grid.tile_bounds(tile)
    # a tile of the same id names the same ground whichever region found it
    x, y = TO_L93.transform(1.365, 43.53)
    assert grid.tile_at(x, y) in tiles_small


def test_demo_tiles_nest_in_msc_tiles(msc: TileGrid) -> None:
    demo = load_recipe("demo").tile_grid
    k = round(msc.footprint / demo.footprint)
    assert k == 4
    for tile in random_tiles(demo, 200, seed=7):
        if tile.col // k >= msc.shape[1] or tile.row // k >= msc.shape[0]:
            continue
        inner, outer = demo.tile_bounds(tile), msc.tile_bounds(TileId(tile.col // k, tile.row // k))
        assert outer.left <= inner.left < inner.right <= outer.right
        assert outer.bottom <= inner.bottom < inner.top <= outer.top


def test_tiles_in_lonlat_box_covers_its_southern_edge(msc: TileGrid) -> None:
    lon0, lat0, lon1, lat1 = 0.0, 45.0, 5.0, 45.05
    tiles = set(msc.tiles_in(box(lon0, lat0, lon1, lat1, "EPSG:4326")))
    lons = np.linspace(lon0 + 1e-3, lon1 - 1e-3, 400)
    xs, ys = TO_L93.transform(lons, np.full_like(lons, lat0 + 1e-4))
    inside = {msc.tile_at(x, y) for x, y in zip(xs, ys, strict=True)}  # tiles holding points of the region
    assert inside <= tiles, f"{len(inside - tiles)} tiles missing"


# --- description and equality ---------------------------------------------------------------------
def test_to_dict_round_trip(grid: TileGrid) -> None:
    data = grid.to_dict()
    assert data["crs"] == "EPSG:2154" and data["origin"] == list(ORIGIN) and data["footprint"] == grid.footprint
    assert TileGrid.from_dict(data) == grid
    assert TileGrid.from_dict(json.loads(json.dumps(data))) == grid
    assert hash(TileGrid.from_dict(data)) == hash(grid)


def test_from_dict_rejects_other_grids(msc: TileGrid) -> None:
    data = msc.to_dict()
    with pytest.raises(UserError):
        TileGrid.from_dict({**data, "crs": "EPSG:3857"})
    with pytest.raises(UserError):
        TileGrid.from_dict({**data, "origin": [0.0, 7_100_000.0]})


def test_different_grids_differ() -> None:
    a = TileGrid.create(1920, {"s2": 10, "l8": 30})
    assert a == TileGrid.create(1920.0, {"s2": 10.0, "l8": 30.0})
    assert a != TileGrid.create(3840, {"s2": 10, "l8": 30})
    assert a != TileGrid.create(1920, {"s2": 20, "l8": 30})
    assert a != TileGrid.create(1920, {"s2": 10})
    assert a.to_dict() != TileGrid.create(3840, {"s2": 10, "l8": 30}).to_dict()
    assert load_recipe("demo").tile_grid != load_recipe("msc-france").tile_grid


def test_grid_equality_ignores_sensor_order(msc: TileGrid) -> None:
    resorted = TileGrid.from_dict(json.loads(json.dumps(msc.to_dict(), sort_keys=True)))
    assert resorted.to_dict() == msc.to_dict()
    assert resorted == msc
