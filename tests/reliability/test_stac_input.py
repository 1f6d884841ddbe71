"""Answers of a STAC API taken as untrusted input: an empty page, malformed items (with an id that
would escape the data folder), items without ``proj:`` fields, footprints that miss the region."""

from __future__ import annotations

import copy
import io
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from msc_france.demo.server import DemoServer
from msc_france.download.run import run_download
from msc_france.errors import UserError
from msc_france.lock import exclusive
from msc_france.regions import resolve_region
from tests.reliability.stac_stub import stac_stub, world_items
from tests.test_download import _request, _tifs, reference  # noqa: F401 - reference is a fixture

World = tuple[Path, dict[str, Any]]


def _console() -> tuple[Console, io.StringIO]:
    text = io.StringIO()
    return Console(file=text, width=300), text


def _by_collection(world: World, server: DemoServer) -> dict[str, list[dict[str, Any]]]:
    names = ("sentinel-2-l2a", "landsat-c2-l2", "demo-vhr", "esa-worldcover")
    return {name: world_items(world[0], server.files_url, name) for name in names}


def _malformed(good: dict[str, Any]) -> list[Any]:
    escape = dict(copy.deepcopy(good), id="../../../escape")
    no_geometry = dict(copy.deepcopy(good), id="no-geometry", geometry=None)
    bad_date = copy.deepcopy(good)
    bad_date.update(id="bad-date")
    bad_date["properties"]["datetime"] = "yesterday"
    no_asset = dict(copy.deepcopy(good), id="no-asset", assets={})
    return ["not an item", escape, no_geometry, bad_date, no_asset]


def test_an_empty_page_is_a_one_line_error_and_writes_nothing(tmp_path: Path, tiny_world: World,
                                                              served_world: DemoServer) -> None:
    with stac_stub(lambda collection: [[]]) as url, pytest.raises(UserError) as error:
        run_download(_request(tmp_path, url, tiny_world, tmp_path / "d"), _console()[0])
    assert "no Sentinel-2 L2A item over" in str(error.value) and "\n" not in str(error.value)
    assert not (tmp_path / "d" / "catalogs").exists()


def test_malformed_items_are_left_out_and_never_escape(tmp_path: Path, tiny_world: World, served_world: DemoServer,
                                                      reference: Path) -> None:  # noqa: F811
    items = _by_collection(tiny_world, served_world)
    console, text = _console()
    with stac_stub(lambda collection: [_malformed(items[collection][0]) + items[collection]]) as url:
        summary = run_download(_request(tmp_path, url, tiny_world, tmp_path / "d"), console)
    assert summary.failed == []
    said = " ".join(text.getvalue().split())
    assert said.count("left out 5 unusable") == 3, said  # S2, Landsat, WorldCover: the VHR is a WMS
    assert "'../../../escape': its id is not a safe folder name" in said and "'no-asset': no asset" in said
    assert _tifs(tmp_path / "d" / "catalogs") == _tifs(reference), "the good items give the same files"
    written = [p for p in tmp_path.rglob("*") if "escape" in p.name]
    assert written == [], written


def _without_proj(item: dict[str, Any]) -> dict[str, Any]:
    item = copy.deepcopy(item)
    for fields in (item["properties"], *item["assets"].values()):
        for key in [k for k in fields if k.startswith("proj:")]:
            del fields[key]
    return item


def test_assets_without_proj_fields_use_the_files_own_grid(tmp_path: Path, tiny_world: World,
                                                            served_world: DemoServer, reference: Path) -> None:  # noqa: F811
    items = _by_collection(tiny_world, served_world)
    assert any(k.startswith("proj:") for k in items["sentinel-2-l2a"][0]["properties"]), "the fixture had proj:"
    with stac_stub(lambda collection: [[_without_proj(i) for i in items[collection]]]) as url:
        summary = run_download(_request(tmp_path, url, tiny_world, tmp_path / "d"), _console()[0])
    assert summary.failed == []
    assert _tifs(tmp_path / "d" / "catalogs") == _tifs(reference)
    assert all(f.crs.startswith("EPSG:") for f in summary.fetched), "the local catalog records the file's CRS"


def _moved(item: dict[str, Any], degrees: float) -> dict[str, Any]:
    """``item`` with its footprint (not its files) moved east by ``degrees``."""
    item = copy.deepcopy(item)
    item["id"] = f"{item['id']}-far"
    item["geometry"]["coordinates"] = [[[x + degrees, y] for x, y in ring] for ring in item["geometry"]["coordinates"]]
    west, south, east, north = item["bbox"]
    item["bbox"] = [west + degrees, south, east + degrees, north]
    return item


def test_footprints_that_miss_the_region_are_never_planned(tmp_path: Path, tiny_world: World,
                                                           served_world: DemoServer) -> None:
    items = _by_collection(tiny_world, served_world)
    far = {c: [_moved(i, 2.0) for i in found] for c, found in items.items()}
    with stac_stub(lambda collection: [far[collection] + items[collection]]) as url:
        summary = run_download(_request(tmp_path, url, tiny_world, tmp_path / "a", dry_run=True), _console()[0])
    assert summary.plan is not None
    planned = {c.item_id for key in summary.plan.sensors for c in summary.plan.used(key)}
    assert planned and not [i for i in planned if i.endswith("-far")]
    assert not [c for s in summary.plan.sensors.values() for c in s.candidates if c.item_id.endswith("-far")]
    with stac_stub(lambda collection: [far[collection]]) as url, \
            pytest.raises(UserError, match="no Sentinel-2 L2A item over"):
        run_download(_request(tmp_path, url, tiny_world, tmp_path / "b"), _console()[0])
    assert not (tmp_path / "b" / "catalogs").exists()



def test_a_second_download_of_the_same_region_is_refused(tmp_path: Path, tiny_world: World,
                                                          served_world: DemoServer) -> None:
    request = _request(tmp_path, served_world.stac_url, tiny_world, tmp_path / "d")
    lock = tmp_path / "d" / "catalogs" / resolve_region(request.region).slug / ".download.lock"
    with exclusive(lock, "the first download"), pytest.raises(UserError) as error:
        run_download(request, _console()[0])
    assert "is in use by process" in str(error.value) and str(lock) in str(error.value)
    assert not list((tmp_path / "d").rglob("*.tif")), "the second run fetched nothing"
