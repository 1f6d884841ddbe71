"""The demo world generator: deterministic, physically plausible, products shaped like the real ones."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rasterio
from pyproj import Transformer

from msc_france.demo.render import ORTHO_TONE
from msc_france.demo.server import STATE_FILE
from msc_france.demo.world import generate_world
from msc_france.sensors import LANDSAT8, SENTINEL2, VHR, s2_encoding
from tests.conftest import tiny_world_config

World = tuple[Path, dict[str, Any]]


def _items(root: Path, collection: str) -> list[dict[str, Any]]:
    return [json.loads(p.read_text()) for p in sorted((root / "stac" / "items" / collection).glob("*.json"))]


def _item_on(root: Path, collection: str, date: str) -> dict[str, Any]:
    return next(i for i in _items(root, collection) if i["properties"]["datetime"].startswith(date))


SERVER_FILES = {"server.log", "ogc.log", STATE_FILE}  # written while the world is served, not generated


def _digests(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*")) if p.is_file() and p.name not in SERVER_FILES
    }


def _read(root: Path, item: dict[str, Any], asset: str, band: int = 1) -> tuple[np.ndarray, Any]:
    with rasterio.open(root / item["assets"][asset]["href"]) as ds:
        return ds.read(band), ds.transform


def _sample(root: Path, item: dict[str, Any], asset: str, x: float, y: float, crs: str, band: int = 1) -> int:
    with rasterio.open(root / item["assets"][asset]["href"]) as ds:
        px, py = Transformer.from_crs(crs, ds.crs, always_xy=True).transform(x, y)
        return int(next(ds.sample([(px, py)], indexes=band))[0])


def test_same_seed_same_bytes(tiny_world: World, tmp_path: Path) -> None:
    root, manifest = tiny_world
    again = generate_world(tiny_world_config(), tmp_path / "again", show_progress=False)
    assert again == manifest
    assert _digests(tmp_path / "again") == _digests(root)


def test_other_seed_other_world(tiny_world: World, tmp_path: Path) -> None:
    root, _ = tiny_world
    generate_world(tiny_world_config(seed=7), tmp_path / "other", show_progress=False)
    ours, theirs = _digests(root), _digests(tmp_path / "other")
    assert ours.keys() == theirs.keys()
    assert ours["truth/worldcover.tif"] != theirs["truth/worldcover.tif"]


def test_rerun_skips_complete_world(tiny_world: World) -> None:
    root, manifest = tiny_world
    before = {p: p.stat().st_mtime_ns for p in root.rglob("*.tif")}
    assert generate_world(tiny_world_config(), root, show_progress=False) == manifest
    assert {p: p.stat().st_mtime_ns for p in root.rglob("*.tif")} == before


def test_interrupted_generation_resumes_to_same_bytes(tiny_world: World, tmp_path: Path) -> None:
    root, _ = tiny_world
    target = tmp_path / "resumed"
    generate_world(tiny_world_config(), target, show_progress=False)
    # Simulate a kill after two scenes: the manifest, later items and their files are gone.
    (target / "world.json").unlink()
    for item_file in sorted((target / "stac" / "items" / "landsat-c2-l2").glob("*.json"))[2:]:
        item_file.unlink()
    for cog in (target / "cogs" / "landsat-c2-l2").rglob("red.tif"):
        cog.unlink()
    generate_world(tiny_world_config(), target, show_progress=False)
    assert _digests(target) == _digests(root)


def test_products_are_cogs_on_native_grids(tiny_world: World) -> None:
    root, _ = tiny_world
    s2 = _items(root, "sentinel-2-l2a")[0]
    for band in SENTINEL2.bands:
        asset = s2["assets"][band.asset]
        with rasterio.open(root / asset["href"]) as ds:
            assert ds.crs.to_epsg() == 32631
            assert ds.res == (band.gsd, band.gsd)
            assert ds.profile["tiled"] and ds.profile["compress"] == "deflate"
            assert list(ds.transform)[:6] == asset["proj:transform"]
            assert [ds.height, ds.width] == asset["proj:shape"]
        # Sentinel-2 pixels sit on the MGRS tile grid of 31TCJ (upper-left 300000, 4900020).
        assert (asset["proj:transform"][2] - 300000) % 60 == 0
        assert (4900020 - asset["proj:transform"][5]) % 60 == 0
    landsat = _items(root, "landsat-c2-l2")[0]
    transform = landsat["properties"]["proj:transform"]
    assert (transform[2] - 15) % 30 == 0 and (transform[5] - 15) % 30 == 0
    vhr = _items(root, "demo-vhr")[0]
    with rasterio.open(root / vhr["assets"]["image"]["href"]) as ds:
        assert ds.crs.to_epsg() == 2154 and ds.count == 4 and ds.dtypes[0] == "uint8"
        assert ds.overviews(1), "the VHR COG has overviews"
    labels = _items(root, "esa-worldcover")[0]
    with rasterio.open(root / labels["assets"]["map"]["href"]) as ds:
        assert ds.crs.to_epsg() == 4326
        assert set(np.unique(ds.read(1))) <= {0, 10, 20, 30, 40, 50, 60, 80}


def test_items_have_planetary_computer_structure(tiny_world: World) -> None:
    root, manifest = tiny_world
    s2 = _items(root, "sentinel-2-l2a")
    assert {i["properties"]["s2:processing_baseline"] for i in s2} == {"03.01", "05.09"}
    for item in s2:
        assert set(SENTINEL2.band_names) | {"SCL"} <= set(item["assets"])
        assert item["properties"]["proj:epsg"] == 32631 and item["properties"]["s2:mgrs_tile"] == "31TCJ"
        assert item["id"].startswith(("S2A_MSIL2A_", "S2B_MSIL2A_")) and "_T31TCJ_" in item["id"]
    landsat = _items(root, "landsat-c2-l2")
    assert {i["properties"]["platform"] for i in landsat} == {"landsat-8", "landsat-9"}
    for item in landsat:
        for band in LANDSAT8.bands:
            enc = LANDSAT8.encoding_for(item["properties"], item["assets"][band.asset])
            assert (enc.scale, enc.offset, enc.nodata) == (2.75e-5, -0.2, 0)
    vhr = _items(root, "demo-vhr")[0]
    assert vhr["properties"]["proj:code"] == "EPSG:2154"
    assert [b["name"] for b in vhr["assets"]["image"]["eo:bands"]] == list(VHR.band_names)
    west, south, east, north = manifest["scene"]["bbox_lonlat"]
    for collection in ("sentinel-2-l2a", "landsat-c2-l2", "demo-vhr", "esa-worldcover"):
        for item in _items(root, collection):
            bw, bs, be, bn = item["bbox"]
            assert bw <= west and bs <= south and be >= east and bn >= north, f"{item['id']} covers the scene"


def test_cloud_codes_match_cloud_cover(tiny_world: World) -> None:
    root, _ = tiny_world
    cloudy = _item_on(root, "sentinel-2-l2a", "2023-04-12")  # 35 % asked
    clear = _item_on(root, "sentinel-2-l2a", "2023-07-16")  # 0 % asked
    scl, _ = _read(root, cloudy, "SCL")
    assert np.isin(scl, [8, 9, 10]).any() and (scl == 3).any()
    assert 10 < cloudy["properties"]["eo:cloud_cover"] < 70
    assert clear["properties"]["eo:cloud_cover"] == 0
    scl_clear, _ = _read(root, clear, "SCL")
    assert not np.isin(scl_clear, [3, 8, 9, 10]).any()
    assert {4, 5} <= set(np.unique(scl_clear)), "vegetation and non-vegetated land are classified"
    cloudy_l8 = _item_on(root, "landsat-c2-l2", "2023-05-02")  # 25 % asked
    qa, _ = _read(root, cloudy_l8, "qa_pixel")
    assert LANDSAT8.mask is not None
    assert LANDSAT8.mask.cloudy(qa).any() and (qa == 21824).any()  # high-confidence clouds and clear land
    assert cloudy_l8["properties"]["eo:cloud_cover"] > 5


def test_swath_edge_is_nodata(tiny_world: World) -> None:
    root, _ = tiny_world
    edge = _item_on(root, "sentinel-2-l2a", "2023-06-21")  # 25 % beyond the swath edge
    b04, _ = _read(root, edge, "B04")
    scl, _ = _read(root, edge, "SCL")
    assert (b04 == 0).mean() > 0.2 and (scl == 0).mean() > 0.2
    assert edge["properties"]["s2:nodata_pixel_percentage"] > 20


def test_physically_plausible_reflectance(tiny_world: World) -> None:
    """Both processing baselines decode to the same reflectance scale; water is dark in NIR."""
    root, manifest = tiny_world
    lake_x, lake_y = manifest["features"]["lake_center"]
    for date in ("2021-07-18", "2023-07-16"):
        item = _item_on(root, "sentinel-2-l2a", date)
        enc = SENTINEL2.encoding_for(item["properties"])
        assert enc == s2_encoding(item["properties"]["s2:processing_baseline"])
        nir = float(enc.decode(np.array([_sample(root, item, "B08", lake_x, lake_y, "EPSG:2154")]))[0])
        assert 0.0 <= nir < 0.05, f"lake NIR reflectance {nir} on {date}"
        b04, _ = _read(root, item, "B04")
        b08, _ = _read(root, item, "B08")
        red, nir_all = enc.decode(b04), enc.decode(b08)
        ndvi = (nir_all - red) / (nir_all + red)
        assert np.nanpercentile(ndvi, 90) > 0.6, "summer vegetation is green"
        assert 0.0 < np.nanmedian(red) < 0.2
    vhr = _items(root, "demo-vhr")[0]
    assert "scale" not in vhr["assets"]["image"]["raster:bands"][3], "display values, no reflectance scale"
    nir_dn, _ = _read(root, vhr, "image", band=4)
    lake_dn = _sample(root, vhr, "image", lake_x, lake_y, "EPSG:2154", band=4)
    assert 0 < lake_dn < 0.5 * np.median(nir_dn[nir_dn > 0]), "water is dark in the orthophoto's NIR"


def test_orthophoto_tone_curve_is_monotone_and_keeps_nodata() -> None:
    reflectance = np.array([np.nan, -0.01, 0.0, 0.01, 0.05, 0.1, 0.2, 0.32, 0.5], dtype=np.float32)
    dn = ORTHO_TONE.encode(reflectance, band=0)  # white point 0.32
    assert dn.dtype == np.uint8 and dn[0] == 0, "no data stays 0"
    assert (dn[1:] >= 1).all() and (np.diff(dn[1:].astype(int)) >= 0).all()
    assert dn[-2] == dn[-1] == 255, "the white point and above are saturated"
    assert 100 < dn[4] < 140, "gamma lifts the dark end: 0.05 reflectance is a mid-tone"


def test_vegetation_changes_with_season(tiny_world: World) -> None:
    root, _ = tiny_world

    def ndvi(date: str) -> np.ndarray:
        item = _item_on(root, "landsat-c2-l2", date)
        red, _ = _read(root, item, "red")
        nir, _ = _read(root, item, "nir08")
        r, n = LANDSAT8.encoding.decode(red), LANDSAT8.encoding.decode(nir)
        return (n - r) / (n + r)

    may, july = ndvi("2023-05-02"), ndvi("2023-07-05")
    both = np.isfinite(may) & np.isfinite(july)
    assert np.abs(may[both] - july[both]).mean() > 0.05


@pytest.mark.parametrize("feature", ["road_crossing", "lake_center"])
def test_features_are_inside_the_scene(tiny_world: World, feature: str) -> None:
    _, manifest = tiny_world
    left, bottom, right, top = manifest["scene"]["bounds"]
    x, y = manifest["features"][feature]
    assert left < x < right and bottom < y < top
