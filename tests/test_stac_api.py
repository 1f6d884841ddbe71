"""The demo world as a real STAC API on loopback: pystac-client searches, COG windows over HTTP."""

from __future__ import annotations

import urllib.request
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rasterio
from pystac_client import Client
from rasterio.windows import Window

from msc_france.config import load_catalog
from msc_france.demo.server import DemoServer, running_server
from msc_france.demo.smoke import read_window, search_sources

World = tuple[Path, dict[str, Any]]


def test_collections_served(served_world: DemoServer) -> None:
    client = Client.open(served_world.stac_url)
    assert {c.id for c in client.get_collections()} == {
        "sentinel-2-l2a", "landsat-c2-l2", "demo-vhr", "esa-worldcover",
        "sentinel-2-l2a-france", "landsat-c2-l2-france", "esa-worldcover-france",  # the footprint world
    }


def test_search_bbox_datetime_collections(served_world: DemoServer, tiny_world: World) -> None:
    bbox = tiny_world[1]["scene"]["bbox_lonlat"]
    client = Client.open(served_world.stac_url)
    summer = client.search(collections=["sentinel-2-l2a"], bbox=bbox, datetime="2023-06-01/2023-08-31")
    assert sorted(i.properties["datetime"][:10] for i in summer.items()) == ["2023-06-21", "2023-07-16"]
    every = client.search(collections=["sentinel-2-l2a", "landsat-c2-l2", "demo-vhr"], bbox=bbox)
    found = {i.collection_id for i in every.items()}
    assert found == {"sentinel-2-l2a", "landsat-c2-l2", "demo-vhr"}
    paris = client.search(collections=["sentinel-2-l2a"], bbox=[2.30, 48.80, 2.40, 48.90])
    assert list(paris.items()) == []


def test_search_follows_pages(served_world: DemoServer, tiny_world: World) -> None:
    bbox = tiny_world[1]["scene"]["bbox_lonlat"]
    search = Client.open(served_world.stac_url).search(collections=["sentinel-2-l2a"], bbox=bbox, limit=2)
    pages = list(search.pages())
    assert len(pages) == 3 and sum(len(p.items) for p in pages) == 5


def test_catalog_sources_resolve_to_items(served_world: DemoServer, tiny_world: World) -> None:
    results = {r.source: r for r in search_sources(load_catalog("demo"), served_world,
                                                   tiny_world[1]["scene"]["bbox_lonlat"])}
    assert results["s2"].items == 5
    assert results["l8"].items == 3, "the platform filter keeps landsat-8 only"
    assert results["labels"].items == 1
    assert "vhr" not in results, "the demo catalog's VHR is a WMS, as the real catalog's (tests/test_wms.py)"


def test_cog_window_over_http_matches_local_file(served_world: DemoServer, tiny_world: World) -> None:
    root = tiny_world[0]
    item = next(Client.open(served_world.stac_url).search(collections=["demo-vhr"]).items())
    href = item.assets["image"].href
    assert href.startswith(served_world.files_url)
    window = Window(100, 120, 64, 48)
    with rasterio.open(href) as remote, rasterio.open(root / href.removeprefix(served_world.files_url + "/")) as local:
        assert np.array_equal(remote.read(window=window), local.read(window=window))
        assert remote.crs.to_epsg() == 2154
    assert read_window(href).shape == (64, 64)


def test_file_server_answers_range_requests(served_world: DemoServer) -> None:
    request = urllib.request.Request(f"{served_world.files_url}/world.json", headers={"Range": "bytes=0-9"})
    with urllib.request.urlopen(request) as response:
        assert response.status == 206
        assert response.headers["Content-Range"].startswith("bytes 0-9/")
        assert len(response.read()) == 10


def test_running_server_is_recorded(served_world: DemoServer, tiny_world: World) -> None:
    assert running_server(tiny_world[0]) == served_world


@pytest.mark.parametrize("path", ["/conformance", "/collections/sentinel-2-l2a/items"])
def test_api_endpoints_answer(served_world: DemoServer, path: str) -> None:
    with urllib.request.urlopen(served_world.stac_url + path) as response:
        assert response.status == 200
