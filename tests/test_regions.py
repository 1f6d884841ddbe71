"""Regions: named places from the offline data file, codes, boxes, GeoJSON/GeoPackage files, tiles."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import shapely
from pyproj import Transformer

from msc_france.config import load_catalog, load_recipe
from msc_france.demo.world import scene_geobox
from msc_france.errors import UserError
from msc_france.grid import TileId
from msc_france.regions import (
    CITY_HALF_SIDE,
    DATA_FILE,
    FRANCE_BBOX,
    Region,
    list_regions,
    region_tiles,
    resolve_region,
    slugify,
)
from msc_france.store.index import tile_split

pytestmark = [
    pytest.mark.filterwarnings("ignore:Use `@` matmul:PendingDeprecationWarning"),
    pytest.mark.filterwarnings("ignore:The 'shapely.ops.transform:DeprecationWarning"),
]

SLUG = re.compile(r"^[a-z0-9]+(-[a-z0-9]+)*$")
TO_L93 = Transformer.from_crs("EPSG:4326", "EPSG:2154", always_xy=True)
METRO_REGIONS = {
    "Auvergne-Rhône-Alpes", "Bourgogne-Franche-Comté", "Bretagne", "Centre-Val de Loire", "Corse", "Grand Est",
    "Hauts-de-France", "Île-de-France", "Normandie", "Nouvelle-Aquitaine", "Occitanie", "Pays de la Loire",
    "Provence-Alpes-Côte d'Azur",
}
REQUIRED_CITIES = {
    "Bordeaux", "Grenoble", "Toulouse", "Paris", "Lyon", "Marseille", "Lille", "Nice", "Nantes", "Strasbourg",
    "Montpellier", "Rennes", "Rouen", "Toulon", "Saint-Étienne", "Tours", "Clermont-Ferrand", "Orléans", "Dijon",
    "Angers", "Metz", "Nancy", "Brest", "Le Havre", "Reims", "Caen", "Perpignan", "Avignon", "Limoges", "Amiens",
    "Besançon", "Pau", "Poitiers", "Bayonne", "Annecy", "Le Mans", "Mulhouse",
}


def bounds(region: Region) -> tuple[float, float, float, float]:
    return tuple(region.geometry.boundingbox)


def assert_one_line_error(text: str, *needles: str) -> str:
    with pytest.raises(UserError) as info:
        resolve_region(text)
    message = str(info.value)
    assert "\n" not in message and "\r" not in message, message
    for needle in needles:
        assert needle in message, message
    return message


# --- the data file -------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def data() -> dict:
    return json.loads(DATA_FILE.read_text(encoding="utf-8"))


def inside_france(bbox: list[float]) -> bool:
    w, s, e, n = bbox
    fw, fs, fe, fn = FRANCE_BBOX
    return fw <= w < e <= fe and fs <= s < n <= fn


def test_data_file_lists_13_regions_96_departements_and_the_cities(data: dict) -> None:
    assert {r["name"] for r in data["regions"]} == METRO_REGIONS
    codes = {d["code"] for d in data["departements"]}
    assert len(data["departements"]) == 96
    assert codes == {f"{i:02d}" for i in range(1, 96) if i != 20} | {"2A", "2B"}
    assert {c["name"] for c in data["cities"]} >= REQUIRED_CITIES
    assert data["provenance"] and data["licence"]


def test_every_box_is_non_empty_and_inside_metropolitan_france(data: dict) -> None:
    for entry in [*data["regions"], *data["departements"]]:
        assert inside_france(entry["bbox"]), entry
        w, s, e, n = entry["bbox"]
        assert (e - w) * (n - s) > 0.01, entry  # the smallest, Paris, is about 0.25 x 0.10 degree
    for city in data["cities"]:
        lon, lat = city["centre"]
        fw, fs, fe, fn = FRANCE_BBOX
        assert fw < lon < fe and fs < lat < fn, city


def test_each_departement_box_meets_its_region_box(data: dict) -> None:
    regions = {r["code"]: shapely.box(*r["bbox"]) for r in data["regions"]}
    for dep in data["departements"]:
        assert dep["region"] in regions, dep
        dep_box = shapely.box(*dep["bbox"])
        assert dep_box.intersects(regions[dep["region"]]), dep
        # régions are built from their départements: the box holds it whole
        assert regions[dep["region"]].contains(dep_box), dep
    assert {d["region"] for d in data["departements"]} == set(regions)


def test_each_city_centre_lies_in_its_departement_box(data: dict) -> None:
    deps = {d["code"]: shapely.box(*d["bbox"]) for d in data["departements"]}
    for city in data["cities"]:
        assert deps[city["departement"]].contains(shapely.Point(city["centre"])), city


def test_known_places_are_where_they_should_be(data: dict) -> None:
    # Spot checks against well-known coordinates (Toulouse Capitole, Pointe de Corsen, Lavezzi islands).
    cities = {c["name"]: c["centre"] for c in data["cities"]}
    assert cities["Toulouse"] == pytest.approx([1.443, 43.604], abs=0.01)
    deps = {d["code"]: d["bbox"] for d in data["departements"]}
    assert deps["29"][0] == pytest.approx(-5.14, abs=0.05)  # Ouessant, the westernmost point
    assert deps["2A"][1] == pytest.approx(41.33, abs=0.05)  # the southernmost point


# --- names and codes -----------------------------------------------------------------------------
@pytest.mark.parametrize("text", ["Île-de-France", "ile de france", "ÎLE DE FRANCE", "Ile-De-France", " iledefrance "])
def test_region_names_ignore_case_accents_and_separators(text: str) -> None:
    region = resolve_region(text)
    assert (region.name, region.slug) == ("Île-de-France", "ile-de-france")
    assert bounds(region) == pytest.approx((1.44, 48.12, 3.56, 49.25))


@pytest.mark.parametrize(
    ("text", "slug"),
    [
        ("cotes-d-armor", "22-cotes-d-armor"), ("Côtes-d'Armor", "22-cotes-d-armor"),
        ("Haute Garonne", "31-haute-garonne"), ("haute-garonne", "31-haute-garonne"),
        ("Provence Alpes Cote d Azur", "provence-alpes-cote-d-azur"), ("st etienne", "saint-etienne"),
        ("Saint-Étienne", "saint-etienne"), ("territoire de belfort", "90-territoire-de-belfort"),
        ("Corse", "corse"), ("corse du sud", "2a-corse-du-sud"),
    ],
)
def test_named_places(text: str, slug: str) -> None:
    assert resolve_region(text).slug == slug


@pytest.mark.parametrize(
    ("code", "name"),
    [("2A", "Corse-du-Sud (2A)"), ("2a", "Corse-du-Sud (2A)"), ("2B", "Haute-Corse (2B)"),
     ("31", "Haute-Garonne (31)"), ("1", "Ain (01)"), ("01", "Ain (01)"), (" 95 ", "Val-d'Oise (95)")],
)
def test_departement_codes(code: str, name: str) -> None:
    assert resolve_region(code).name == name


@pytest.mark.parametrize(("code", "needle"), [("20", "2A"), ("99", "01 to 95"), ("971", "overseas"), ("0", "01 to 95")])
def test_bad_departement_codes(code: str, needle: str) -> None:
    assert_one_line_error(code, needle)


def test_paris_the_name_is_the_city_and_75_the_departement() -> None:
    city, dep = resolve_region("Paris"), resolve_region("75")
    assert (city.slug, dep.slug) == ("paris", "75-paris")
    assert city.geometry.geom.contains(shapely.Point(2.35, 48.86))
    assert bounds(dep) == pytest.approx((2.22, 48.81, 2.47, 48.91))


def test_city_core_is_a_20_km_lambert93_square_around_the_town_hall() -> None:
    region = resolve_region("toulouse")
    assert (region.name, region.slug) == ("Toulouse", "toulouse")
    l93 = region.geometry.to_crs("EPSG:2154")
    left, bottom, right, top = l93.boundingbox
    assert right - left == pytest.approx(2 * CITY_HALF_SIDE, abs=1)
    assert top - bottom == pytest.approx(2 * CITY_HALF_SIDE, abs=1)
    assert l93.area == pytest.approx((2 * CITY_HALF_SIDE) ** 2, rel=1e-4)
    cx, cy = TO_L93.transform(1.443, 43.604)
    assert ((left + right) / 2, (bottom + top) / 2) == pytest.approx((cx, cy), abs=200)


def test_every_listed_name_resolves_to_a_distinct_safe_slug(data: dict) -> None:
    names = list_regions()
    assert names[0] == "demo"
    assert {"Bordeaux", "Grenoble", "Toulouse", "Occitanie", "Haute-Garonne (31)"} <= set(names)
    assert names[1] == "France"
    assert len(names) == len(set(names)) == 2 + 13 + 96 + len(data["cities"])
    regions = [resolve_region(n) for n in names[1:]]
    slugs = [r.slug for r in regions]
    assert len(set(slugs)) == len(slugs)
    assert all(SLUG.match(s) for s in slugs), [s for s in slugs if not SLUG.match(s)]
    for name, region in zip(names[1:], regions, strict=True):
        assert region.name == name and region.geometry.crs == "EPSG:4326" and region.geometry.area > 0, name


def test_unknown_name_suggests_close_matches_on_one_line() -> None:
    message = assert_one_line_error("tolouse", "unknown region 'tolouse'", "did you mean Toulouse?")
    assert message == (
        "unknown region 'tolouse'; did you mean Toulouse? (or give minlon,minlat,maxlon,maxlat or a "
        "GeoJSON/GeoPackage file)"
    )
    assert "did you mean" in assert_one_line_error("bretagn", "Bretagne")
    assert_one_line_error("Paris, France", "unknown region 'Paris, France'")  # a comma alone is not a box


def test_unknown_name_without_close_match_gives_the_generic_hint() -> None:
    message = assert_one_line_error("atlantis", "unknown region 'atlantis'", "minlon,minlat,maxlon,maxlat",
                                    "GeoJSON/GeoPackage")
    assert "did you mean" not in message
    # newlines in the input stay out of the message
    assert_one_line_error("atlantis\nlost", "unknown region 'atlantis lost'")
    assert_one_line_error("lost/\nlines.geojson", "no such file", "\\n")


# --- boxes ---------------------------------------------------------------------------------------
def test_box_with_spaces() -> None:
    region = resolve_region(" 1.30, 43.50 ,1.55,43.70 ")
    assert bounds(region) == pytest.approx((1.30, 43.50, 1.55, 43.70))
    assert region.slug == "box-1p3-43p5-1p55-43p7" and SLUG.match(region.slug)
    assert resolve_region("-1.5,47,-1.2,47.3").slug == "box-m1p5-47-m1p2-47p3"


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("1.55,43.5,1.30,43.7", "inverted (minlon > maxlon)"),
        ("1.30,43.7,1.55,43.5", "inverted (minlat > maxlat)"),
        ("1.30,43.5,1.30,43.7", "empty"),
        ("1.30,43.5,1.55,43.5", "empty"),
        ("-80,40,-70,45", "outside metropolitan France"),
        ("43.5,1.3,43.7,1.55", "outside metropolitan France"),  # lat/lon swapped
        ("-20,40,0,50", "mostly outside"),
        ("564000,6266000,570000,6272000", "not in degrees"),
        ("1.3,43.5,1.55", "bad box"),
        ("1.3,43.5,east,43.7", "bad box"),
        ("nan,43.5,1.55,43.7", "bad box"),
    ],
)
def test_bad_boxes(text: str, needle: str) -> None:
    message = assert_one_line_error(text, needle)
    assert "minlon,minlat,maxlon,maxlat" in message


# --- files ---------------------------------------------------------------------------------------
def square(x: float, y: float, half: float) -> dict:
    ring = [[x - half, y - half], [x + half, y - half], [x + half, y + half], [x - half, y + half]]
    ring.append(ring[0])
    return {"type": "Polygon", "coordinates": [ring]}


def write_json(path: Path, obj: dict) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj))
    return path


def test_geojson_feature_collection_is_the_union_of_its_polygons(tmp_path: Path) -> None:
    fc = {"type": "FeatureCollection", "features": [
        {"type": "Feature", "properties": {}, "geometry": square(1.40, 43.60, 0.05)},
        {"type": "Feature", "properties": {}, "geometry": square(1.60, 43.60, 0.05)},
        {"type": "Feature", "properties": {}, "geometry": {"type": "Point", "coordinates": [1.5, 43.6]}},
        {"type": "Feature", "properties": {}, "geometry": None},
    ]}
    region = resolve_region(str(write_json(tmp_path / "Deux Carrés.geojson", fc)))
    assert (region.name, region.slug) == ("Deux Carrés", "deux-carres")
    assert region.geometry.crs == "EPSG:4326"
    assert region.geometry.area == pytest.approx(2 * 0.1 * 0.1)
    assert bounds(region) == pytest.approx((1.35, 43.55, 1.65, 43.65))
    tiles = region_tiles(region, load_recipe("msc-france").tile_grid)
    assert 2 * 20 < len(tiles) < 2 * 60  # two ~8 x 11 km squares of 1.92 km tiles, no tiles between them


@pytest.mark.parametrize("wrap", ["feature", "geometry", "collection"])
def test_geojson_feature_and_bare_geometry(tmp_path: Path, wrap: str) -> None:
    geom = square(2.0, 47.0, 0.1)
    obj = {"feature": {"type": "Feature", "properties": {}, "geometry": geom}, "geometry": geom,
           "collection": {"type": "GeometryCollection", "geometries": [geom, {"type": "Point", "coordinates": [0, 0]}]}}
    region = resolve_region(str(write_json(tmp_path / f"{wrap}.json", obj[wrap])))
    assert bounds(region) == pytest.approx((1.9, 46.9, 2.1, 47.1))


def test_geojson_with_a_legacy_crs_member_is_reprojected(tmp_path: Path) -> None:
    x, y = TO_L93.transform(1.443, 43.604)
    obj = {"type": "Feature", "properties": {}, "geometry": square(x, y, 5000),
           "crs": {"type": "name", "properties": {"name": "urn:ogc:def:crs:EPSG::2154"}}}
    region = resolve_region(str(write_json(tmp_path / "l93.geojson", obj)))
    assert region.geometry.crs == "EPSG:4326"
    assert region.geometry.geom.contains(shapely.Point(1.443, 43.604))
    assert region.geometry.to_crs("EPSG:2154").area == pytest.approx(1e8, rel=1e-3)


def test_bad_region_files(tmp_path: Path) -> None:
    assert_one_line_error(str(tmp_path / "missing.geojson"), "no such file")
    (tmp_path / "broken.geojson").write_text('{"type": "FeatureCollection", "features": [')
    assert_one_line_error(str(tmp_path / "broken.geojson"), "not valid JSON")
    (tmp_path / "latin1.geojson").write_bytes('{"name": "Béziers"}'.encode("latin-1"))
    assert_one_line_error(str(tmp_path / "latin1.geojson"), "UTF-8")
    write_json(tmp_path / "list.json", [1, 2])  # type: ignore[arg-type]
    assert_one_line_error(str(tmp_path / "list.json"), "not GeoJSON")
    points = {"type": "MultiPoint", "coordinates": [[1.4, 43.6], [1.5, 43.7]]}
    assert_one_line_error(str(write_json(tmp_path / "points.geojson", points)), "no polygons (found MultiPoint)")
    empty = {"type": "FeatureCollection", "features": []}
    assert_one_line_error(str(write_json(tmp_path / "empty.geojson", empty)), "no polygons")
    far = square(-74.0, 40.7, 0.1)
    assert_one_line_error(str(write_json(tmp_path / "nyc.geojson", far)), "outside metropolitan France")
    bad = {"type": "Polygon", "coordinates": [[[1, 2]]]}
    assert_one_line_error(str(write_json(tmp_path / "bad.geojson", bad)), "not valid GeoJSON")
    (tmp_path / "notes.txt").write_text("Toulouse")
    assert_one_line_error(str(tmp_path / "notes.txt"), "unsupported region file")


def test_file_slug_never_escapes_a_folder(tmp_path: Path) -> None:
    (tmp_path / "a" / "b").mkdir(parents=True)
    write_json(tmp_path / "etc" / "passwd.geojson", square(1.5, 43.6, 0.05))
    region = resolve_region(str(tmp_path / "a" / "b" / ".." / ".." / "etc" / "passwd.geojson"))
    assert region.slug == "passwd"
    odd = write_json(tmp_path / "..Mon Périmètre ../v2.GEOJSON", square(1.5, 43.6, 0.05))
    for slug in (region.slug, resolve_region(str(odd)).slug, slugify("../../etc/passwd"), slugify("..."), slugify("")):
        assert "/" not in slug and ".." not in slug and SLUG.match(slug), slug


def test_geopackage_in_lambert93(tmp_path: Path) -> None:
    pyogrio = pytest.importorskip("pyogrio")
    import numpy as np

    x, y = TO_L93.transform(5.7363, 45.1866)  # Grenoble
    polys = [shapely.box(x - 4000, y - 4000, x, y), shapely.box(x, y - 4000, x + 4000, y)]  # adjacent halves
    path = tmp_path / "grenoble-zone.gpkg"
    pyogrio.raw.write(path, geometry=np.array(shapely.to_wkb(polys), dtype=object), field_data=[], fields=[],
                      driver="GPKG", geometry_type="Polygon", crs="EPSG:2154", layer="zone")
    region = resolve_region(str(path))
    assert (region.name, region.slug) == ("grenoble-zone", "grenoble-zone")
    assert region.geometry.crs == "EPSG:4326"
    assert region.geometry.geom.geom_type == "Polygon"  # the two halves are merged
    assert region.geometry.to_crs("EPSG:2154").area == pytest.approx(8000 * 4000, rel=1e-3)
    assert region.geometry.geom.contains(shapely.Point(5.70, 45.17))


def test_unreadable_geopackage(tmp_path: Path) -> None:
    pytest.importorskip("pyogrio")
    (tmp_path / "junk.gpkg").write_text("not a database")
    assert_one_line_error(str(tmp_path / "junk.gpkg"), "junk.gpkg", "not a readable GeoPackage")


# --- demo, tiles and estimates -------------------------------------------------------------------
def test_demo_region_covers_exactly_the_demo_scene_tiles() -> None:
    region = resolve_region("demo")
    assert (region.name, region.slug) == ("demo", "demo")
    grid = load_recipe("demo").tile_grid
    tiles = region_tiles(region, grid)
    world = load_catalog("demo").world
    assert world is not None and (world.size, world.height) == (9600, 14880)
    assert len(tiles) == 620  # 20 x 31 tiles of 480 m
    cols = sorted({t.col for t in tiles})
    rows = sorted({t.row for t in tiles})
    assert (len(cols), len(rows)) == (20, 31) and (cols[-1] - cols[0], rows[-1] - rows[0]) == (19, 30)
    left, bottom, right, top = scene_geobox(world).extent.boundingbox
    assert scene_geobox(world).shape == (7440, 4800)  # rows, columns of the 2 m truth
    assert tiles[0] == grid.tile_at(left + 1, top - 1) and tiles[-1] == grid.tile_at(right - 1, bottom + 1)
    assert region.geometry.geom.contains(shapely.Point(*world.center))
    # the recipe's evaluation area: the southern 11 rows, whole, 220 tiles
    splits = load_recipe("demo").splits
    south_rows = {grid.tile_at(left + 1, bottom + 1 + 480 * k).row for k in range(11)}
    held = [t for t in tiles if t.row in south_rows]
    assert len(held) == 220 and all(tile_split(grid, t, splits) == "test" for t in held)
    assert sum(tile_split(grid, t, splits) == "train" for t in tiles) >= 250  # the north trains as before


def test_toulouse_tile_count() -> None:
    recipe = load_recipe("msc-france")
    tiles = region_tiles(resolve_region("Toulouse"), recipe.tile_grid)
    assert 50 <= len(tiles) <= 500
    assert all(isinstance(t, TileId) for t in tiles) and tiles == sorted(tiles, key=lambda t: (t.row, t.col))


def test_france_is_the_union_of_the_departements_boxes() -> None:
    region = resolve_region("france")
    assert (region.name, region.slug) == ("France", "france") and region.geometry.crs == "EPSG:4326"
    geom = region.geometry.geom
    for lon, lat in [(-4.49, 48.39), (7.75, 48.58), (8.74, 41.93), (7.27, 43.70), (2.35, 48.86)]:  # Brest ... Paris
        assert geom.contains(shapely.Point(lon, lat)), (lon, lat)
    assert not geom.contains(shapely.Point(-4.0, 45.0))  # the Bay of Biscay, inside FRANCE_BBOX
