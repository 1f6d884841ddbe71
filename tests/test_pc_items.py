"""Parsing of Planetary Computer items (generated with the exact structure the PC serves) by the
download stage: declared CRS (``proj:epsg`` and ``proj:code``), encodings per processing baseline,
Landsat ``raster:bands``, and provenance without tokens in the local items."""

from __future__ import annotations

from pathlib import Path

import pystac
import pytest

from msc_france.download.candidates import candidate
from msc_france.download.fetch import AssetJob, Fetched, declared_crs
from msc_france.download.local_catalog import local_item
from tests.data.pc_items import landsat_item, sentinel2_item


def _fetched(tmp_path: Path, key: str, sensor: str, href: str) -> Fetched:
    job = AssetJob(sensor, "x", key, href, (1,), (key,), 10.0, "average", tmp_path / f"{key}.tif")
    return Fetched(job, 10, "1220" + "0" * 64, "EPSG:32631", [10, 0, 0, 0, -10, 0], (1, 1), False, "uint16")


def test_declared_crs_from_proj_epsg_and_proj_code() -> None:
    s2 = sentinel2_item(0, epsg=32630)
    assert declared_crs(s2, "B04") == "EPSG:32630"
    assert declared_crs(landsat_item(0, epsg=32631), "red") == "EPSG:32631"
    with_code = sentinel2_item(1)
    with_code["properties"].pop("proj:epsg")
    with_code["assets"]["B04"]["proj:code"] = "epsg:2154"
    assert declared_crs(with_code, "B04") == "EPSG:2154"
    with_code["assets"]["B04"].pop("proj:code")
    assert declared_crs(with_code, "B04") is None, "an asset with no proj: information"


@pytest.mark.parametrize("baseline, offset", [("03.01", 0.0), ("04.00", -0.1), ("05.10", -0.1)])
def test_local_item_records_the_baseline_encoding(tmp_path: Path, baseline: str, offset: float) -> None:
    raw = sentinel2_item(0, processing_baseline=baseline)
    signed = raw["assets"]["B04"]["href"] + "?st=2026&se=2026&sp=rl&sig=SECRET"
    item = pystac.Item.from_dict(raw)
    entry = candidate("s2", item)
    local = local_item(entry, [_fetched(tmp_path, "B04", "s2", signed)], tmp_path, "https://pc/api?token=x",
                       lambda href: href.split("?")[0])
    band = local["assets"]["B04"]["raster:bands"][0]
    assert (band["scale"], band["offset"], band["nodata"]) == (1e-4, offset, 0)
    assert local["properties"]["s2:processing_baseline"] == baseline
    assert "sig=" not in str(local) and "SECRET" not in str(local)
    assert local["properties"]["eo:cloud_cover"] == raw["properties"]["eo:cloud_cover"]


def test_local_item_keeps_landsat_scale_offset(tmp_path: Path) -> None:
    raw = landsat_item(0)
    item = pystac.Item.from_dict(raw)
    entry = candidate("l8", item)
    local = local_item(entry, [_fetched(tmp_path, "red", "l8", raw["assets"]["red"]["href"]),
                               _fetched(tmp_path, "qa_pixel", "l8", raw["assets"]["qa_pixel"]["href"])],
                       tmp_path, "https://pc/api", lambda href: href)
    band = local["assets"]["red"]["raster:bands"][0]
    assert (band["scale"], band["offset"], band["nodata"]) == (2.75e-05, -0.2, 0)
    assert "raster:bands" not in local["assets"]["qa_pixel"], "bit masks carry no reflectance scale"
    assert local["properties"]["platform"] == "landsat-8"
