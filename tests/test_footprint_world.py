"""The footprint world: items-only Sentinel-2, Landsat and WorldCover footprints over France for one
season, served by the demo STAC API, and the France-wide mosaic graph on the demo WFS."""

from __future__ import annotations

import collections
import datetime as dt
import itertools
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import shapely
from odc.geo.geom import BoundingBox, Geometry
from pystac_client import Client

from msc_france.config import FOOTPRINT_SEASON, WmsSource, load_catalog
from msc_france.demo.footprint_items import COLLECTIONS
from msc_france.demo.footprints import Footprints, footprints
from msc_france.demo.server import DemoServer
from msc_france.demo.wfs import france_blocks, mapserv_binary
from msc_france.download.wms import flight_dates
from msc_france.regions import resolve_region

World = tuple[Path, dict[str, Any]]


@pytest.fixture(scope="module")
def prints() -> Footprints:
    return footprints(FOOTPRINT_SEASON, 2154)


def _utm(geom: shapely.Geometry, epsg: int) -> shapely.Geometry:
    return Geometry(geom, "EPSG:4326").to_crs(f"EPSG:{epsg}").geom


def test_sentinel2_tiles_span_three_utm_zones(prints: Footprints) -> None:
    assert {s.tile[:2] for s in prints.s2} == {"30", "31", "32"}
    assert {s.tile[2] for s in prints.s2} == {"T", "U"}
    assert "31TCJ" in {s.tile for s in prints.s2}, "Toulouse's tile, lettered by the MGRS rules"
    assert {s.platform for s in prints.s2} == {"Sentinel-2A", "Sentinel-2B"}


def test_neighbouring_mgrs_tiles_overlap_by_9_8_km(prints: Footprints) -> None:
    largest = {}
    for s in prints.s2:
        if s.tile in ("31TCJ", "31TDJ", "31TCK") and s.footprint.area > getattr(largest.get(s.tile), "area", 0):
            largest[s.tile] = s.footprint
    west, east, north = (_utm(largest[t], 32631) for t in ("31TCJ", "31TDJ", "31TCK"))
    left, _, right, _ = west.intersection(east).bounds
    _, bottom, _, top = west.intersection(north).bounds
    assert right - left == pytest.approx(9800, abs=30)
    assert top - bottom == pytest.approx(9800, abs=30)
    assert west.area == pytest.approx(109_800 ** 2, rel=1e-3)


def test_tiles_at_the_swath_edge_are_partial(prints: Footprints) -> None:
    full = {}
    for s in prints.s2:
        full[s.tile] = max(full.get(s.tile, 0.0), s.footprint.area)
    partial = [s for s in prints.s2 if s.footprint.area < 0.8 * full[s.tile]]
    assert 0.1 < len(partial) / len(prints.s2) < 0.7
    assert all(s.nodata_percentage > 20 for s in partial)


def test_some_datatakes_are_delivered_twice(prints: Footprints) -> None:
    groups = collections.defaultdict(list)
    for s in prints.s2:
        groups[(s.tile, s.platform, s.datatake)].append(s)
    pairs = [g for g in groups.values() if len(g) == 2]
    assert 0.01 < len(pairs) / len(groups) < 0.06 and all(len(g) <= 2 for g in groups.values())
    for first, second in pairs:
        assert first.cloud_cover == second.cloud_cover and first.footprint.equals(second.footprint)
        assert first.processed != second.processed
    assert any(a.baseline != b.baseline for a, b in pairs)


def test_every_place_is_seen_by_sentinel2_several_times_a_month(prints: Footprints) -> None:
    france = resolve_region("France").geometry.geom
    rng = np.random.default_rng(0)
    points = [p for p in shapely.points(rng.uniform(-5, 9.5, 400), rng.uniform(41.5, 51, 400)) if france.contains(p)]
    tree = shapely.STRtree([s.footprint for s in prints.s2])
    for point in points[:40]:
        dates = {prints.s2[i].datatake for i in tree.query(point, predicate="intersects")}
        per_month = collections.Counter(d.month for d in dates)
        assert min(per_month.get(m, 0) for m in range(4, 10)) >= 5, f"{point} {per_month}"


def test_cloud_cover_is_mostly_clear_with_cloudy_spells(prints: Footprints) -> None:
    cover = np.array([s.cloud_cover for s in prints.s2])
    assert np.median(cover) < 15 and (cover > 60).mean() > 0.05
    by_date = collections.defaultdict(list)
    for s in prints.s2:
        by_date[s.datatake].append(s.cloud_cover)
    assert max(np.mean(v) for v in by_date.values()) > 50 > 5 > min(np.mean(v) for v in by_date.values())


def test_landsat_paths_rows_and_platforms(prints: Footprints) -> None:
    scenes = {(s.path, s.row) for s in prints.landsat}
    assert (198, 30) in scenes and {p for p, _ in scenes} >= set(range(194, 204))
    assert {s.platform for s in prints.landsat} == {"landsat-8", "landsat-9"}
    toulouse = sorted((s.when.date(), s.platform) for s in prints.landsat if (s.path, s.row) == (198, 30))
    assert (dt.date(2023, 7, 5), "landsat-8") in toulouse and (dt.date(2023, 7, 13), "landsat-9") in toulouse
    assert {(b[0] - a[0]).days for a, b in itertools.pairwise(toulouse)} == {8}
    assert len(prints.worldcover) > 10


def test_footprint_items_are_served(served_world: DemoServer, prints: Footprints) -> None:
    client = Client.open(served_world.stac_url)
    assert set(COLLECTIONS.values()) <= {c.id for c in client.get_collections()}
    france = list(resolve_region("France").geometry.boundingbox)
    search = client.search(collections=[COLLECTIONS["s2"]], bbox=france, datetime="2023-06-01/2023-06-10", limit=250)
    pages = list(search.pages())
    expected = [s for s in prints.s2 if dt.date(2023, 6, 1) <= s.datatake.date() <= dt.date(2023, 6, 10)]
    assert len(pages) > 1 and sum(len(p.items) for p in pages) == len(expected)
    item = pages[0].items[0]
    assert item.id.startswith(("S2A_MSIL2A_2023060", "S2B_MSIL2A_2023060")) and "SCL" in item.assets
    assert item.properties["proj:code"].startswith("EPSG:326")
    toulouse = list(client.search(collections=[COLLECTIONS["l8"]], bbox=[1.3, 43.5, 1.4, 43.6]).items())
    assert {i.properties["platform"] for i in toulouse} == {"landsat-8", "landsat-9"}
    assert {i.properties["landsat:wrs_path"] for i in toulouse} >= {"198"}


def test_demo_france_catalog_shares_the_demo_world() -> None:
    france, demo = load_catalog("demo-france"), load_catalog("demo")
    assert france.world == demo.world and france.world is not None
    assert france.dates is not None and france.dates.start == france.world.footprints.start


def test_mosaic_graph_covers_france_around_the_scene(served_world: DemoServer, tiny_world: World) -> None:
    if mapserv_binary() is None:
        pytest.skip("MapServer is not installed")
    source = load_catalog("demo").sources["vhr"]
    assert isinstance(source, WmsSource) and source.dates_wfs is not None
    source = source.model_copy(update={"dates_wfs": source.dates_wfs.model_copy(
        update={"url": served_world.resolve("demo://wfs")})})
    scene = BoundingBox(*tiny_world[1]["scene"]["bounds"])
    inside, _ = flight_dates(source, scene)
    assert {day for day, _ in inside} == {"2022-06-20", "2022-06-23", "2022-06-24"}
    assert sum(share for _, share in inside) == pytest.approx(1.0, abs=1e-3)
    paris, why = flight_dates(source, BoundingBox(650_000, 6_860_000, 652_000, 6_862_000))
    assert paris and paris[0][0][:4] in {"2021", "2022", "2023"}, why


def test_some_of_france_is_not_flown_yet() -> None:
    france = resolve_region("France").geometry.to_crs("EPSG:2154").geom
    blocks = shapely.union_all([shapely.geometry.shape(f["geometry"]) for f in france_blocks(shapely.box(0, 0, 1, 1))])
    assert 0.02 < france.difference(blocks).area / france.area < 0.15
