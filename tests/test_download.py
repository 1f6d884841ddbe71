"""The download stage against the demo world's STAC API and COG server, with a fault-injecting proxy
in front of the COGs: plan, windowed fetch, local catalog, retries, re-signing, resume after kill -9.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import itertools
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pystac
import pytest
import rasterio
import yaml
from rich.console import Console

from msc_france.config import load_recipe
from msc_france.demo.server import DemoServer, free_port, rustac_binary, served_item_files, stop_process, wait_ready
from msc_france.download import run as download_run
from msc_france.download.http import RangeClient, RetryPolicy, Transfer, http_client, no_signing
from msc_france.download.run import DownloadRequest, run_download
from msc_france.errors import UserError
from msc_france.provenance import RecipeRecord, catalog_record
from tests.conftest import served_url
from tests.faultproxy import FaultProxy

World = tuple[Path, dict[str, Any]]
QUIET = Console(file=open(os.devnull, "w"))  # noqa: SIM115


def _region(tiny_world: World) -> str:
    """The tiny scene as a lon/lat box, 20 m inside its edges."""
    west, south, east, north = tiny_world[1]["scene"]["bbox_lonlat"]
    d = 0.00025
    return f"{west + d},{south + d},{east - d},{north - d}"


def _catalog_file(tmp_path: Path, stac_url: str, wms_url: str | None = None, name: str = "demo") -> Path:
    """The demo catalog (or ``name``) on the given STAC API, its VHR on the served world's WMS (or ``wms_url``)."""
    catalog = yaml.safe_load((Path(download_run.__file__).parents[2] / "catalogs" / f"{name}.yaml").read_text())
    catalog.pop("world")
    for source in catalog["sources"].values():
        source["url"] = stac_url if source["type"] == "stac" else wms_url or served_url(source["url"])
        if "dates_wfs" in source:
            source["dates_wfs"]["url"] = served_url(source["dates_wfs"]["url"])
    path = tmp_path / "catalog.yaml"
    path.write_text(yaml.safe_dump(catalog))
    return path


def recipe_file(folder: Path, name: str, **bands: list[str]) -> Path:
    """The demo recipe under another name, with other bands for the sensors given."""
    recipe = load_recipe("demo").model_dump(mode="json")
    recipe["name"] = name
    for key, names in bands.items():
        recipe["sensors"][key]["bands"] = names
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(recipe))
    return path


def _request(tmp_path: Path, stac_url: str, tiny_world: World, data: Path, **options: Any) -> DownloadRequest:
    return DownloadRequest(region=_region(tiny_world), catalog=str(_catalog_file(tmp_path, stac_url)),
                           **{"recipe": "demo", "data": data, **options})


def _tifs(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(root.rglob("*.tif"))}


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory, served_world: DemoServer, tiny_world: World) -> Path:
    """An uninterrupted download, the yardstick for the others."""
    tmp = tmp_path_factory.mktemp("reference")
    summary = run_download(_request(tmp, served_world.stac_url, tiny_world, tmp / "data"), QUIET)
    assert summary.failed == []
    return tmp / "data" / "catalogs"


@pytest.fixture
def proxied_api(fault_proxy: FaultProxy, tiny_world: World, tmp_path: Path) -> Iterator[str]:
    """A second STAC API over the tiny world whose asset hrefs go through the fault proxy."""
    sources = served_item_files(tiny_world[0], fault_proxy.url, tmp_path)
    port = free_port()
    process = subprocess.Popen([rustac_binary(), "serve", "--addr", f"127.0.0.1:{port}", *map(str, sources)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_ready(f"http://127.0.0.1:{port}/collections", process, "STAC API")
        yield f"http://127.0.0.1:{port}"
    finally:
        stop_process(process)


def test_local_catalog_has_every_sensor(reference: Path) -> None:
    root = next(reference.iterdir())
    catalog = pystac.Catalog.from_file(str(root / "catalog.json"))
    items = list(catalog.get_items(recursive=True))
    assert {i.properties["msc:sensor"] for i in items} == {"s2", "l8", "vhr", "labels"}
    for item in items:
        for asset in item.assets.values():
            path = Path(asset.get_absolute_href())
            assert path.exists()
            assert asset.extra_fields["file:size"] == path.stat().st_size
            assert asset.extra_fields["file:checksum"] == "1220" + hashlib.sha256(path.read_bytes()).hexdigest()
            assert asset.extra_fields["msc:source_href"].startswith("http://127.0.0.1:")
    s2 = next(i for i in items if i.properties["msc:sensor"] == "s2")
    assert set(s2.assets) == {"B02", "B03", "B04", "B08", "SCL"}, "only the recipe's bands and the mask"
    baseline = s2.properties["s2:processing_baseline"]
    assert s2.assets["B04"].extra_fields["raster:bands"][0]["offset"] == (-0.1 if baseline >= "04.00" else 0.0)
    with rasterio.open(s2.assets["B04"].get_absolute_href()) as ds:
        assert ds.crs.to_epsg() == 32631 and ds.res == (10.0, 10.0), "native grid, no resampling"
    vhr = next(i for i in items if i.properties["msc:sensor"] == "vhr")
    with rasterio.open(vhr.assets["image"].get_absolute_href()) as ds:
        assert ds.res == (4.0, 4.0), "the 2 m source was read from its 4 m overview for the 4 m recipe"
        assert ds.count == 4


def test_local_catalog_records_the_recipe(reference: Path) -> None:
    """What the download used travels with it: the recipe (all of it) and the catalog, in catalog.json."""
    root = next(reference.iterdir())
    raw = json.loads((root / "catalog.json").read_text())["msc:download"]
    assert raw["catalog"] == "demo" and raw["recipe"]["grid"] == {"footprint": 480.0, "gsd": {"s2": 10.0, "l8": 30.0,
                                                                                                "vhr": 4.0}}
    record = catalog_record(root)
    assert record == RecipeRecord(recipe=load_recipe("demo"), catalog="demo")


def test_download_refuses_a_folder_of_another_recipe(reference: Path, served_world: DemoServer, tiny_world: World,
                                                     tmp_path: Path) -> None:
    """Files of another recipe (other bands, GSD) would be taken for complete ones: one line instead."""
    root = next(reference.iterdir())
    more_bands = recipe_file(tmp_path, "demo-rededge", s2=["B02", "B03", "B04", "B05", "B08"])
    with pytest.raises(UserError, match=r"was downloaded with recipe demo .* not demo-rededge .*; delete "):
        run_download(_request(tmp_path, served_world.stac_url, tiny_world, reference.parent, recipe=str(more_bands)),
                     QUIET)
    assert catalog_record(root).recipe.name == "demo"


def test_windows_cover_the_region_only(reference: Path, tiny_world: World) -> None:
    """The fetched Sentinel-2 window is the region's tiles plus a margin, not the whole scene."""
    root = next(reference.iterdir())
    b04 = next(root.glob("s2/*/B04.tif"))
    with rasterio.open(b04) as ds:
        width_m, height_m = ds.width * 10, ds.height * 10
    assert width_m <= 960 + 2 * 40 + 60 and height_m <= 960 + 2 * 40 + 60


def test_rerun_fetches_nothing(reference: Path, served_world: DemoServer, tiny_world: World) -> None:
    data = reference.parent
    before = _tifs(reference)
    summary = run_download(_request(data.parent, served_world.stac_url, tiny_world, data), QUIET)
    assert summary.transfer.bytes == 0 and summary.transfer.requests == 0
    assert len(summary.skipped) == len(summary.fetched) > 0
    assert _tifs(reference) == before


def test_dry_run_fetches_nothing(tmp_path: Path, served_world: DemoServer, tiny_world: World) -> None:
    summary = run_download(_request(tmp_path, served_world.stac_url, tiny_world, tmp_path / "d", dry_run=True), QUIET)
    assert summary.plan is not None and set(summary.plan.sensors) == {"s2", "l8", "vhr", "labels"}
    written = sorted(p.name for p in (tmp_path / "d" / "catalogs").rglob("*")
                     if p.is_file() and not p.name.startswith("."))
    assert written == ["plan.parquet", "plan.png"], "the plan and its map, nothing else"
    assert not summary.fetched and summary.transfer.requests == 0


def test_plan_pairs_landsat_nearest_within_window(tmp_path: Path, served_world: DemoServer, tiny_world: World) -> None:
    summary = run_download(_request(tmp_path, served_world.stac_url, tiny_world, tmp_path / "d", dry_run=True,
                                    window_days=15), QUIET)
    plan = summary.plan
    assert plan is not None
    landsat = {c.item_id: c for c in plan.sensors["l8"].candidates}
    assert all(c.item and c.item.properties["platform"] == "landsat-8" for c in landsat.values())
    checked = 0
    for reference, items in zip(plan.tiles["reference_date"], plan.tiles["l8_items"], strict=True):
        ref = dt.date.fromisoformat(reference)
        assert all(abs((landsat[i].date - ref).days) <= 15 for i in items)
        if items:  # the first is the nearest in date of the scenes within the window
            nearest = min(abs((c.date - ref).days) for c in landsat.values() if abs((c.date - ref).days) <= 15)
            assert abs((landsat[items[0]].date - ref).days) == nearest
            checked += 1
    assert checked > 0, "some tile got a Landsat scene"


def test_retries_honour_retry_after(fault_proxy: FaultProxy, tiny_world: World) -> None:
    waits: list[float] = []
    fault_proxy.add("image.tif", "429", times=2, retry_after=7)
    fault_proxy.add("image.tif", "503", times=2)
    reader = RangeClient(fault_proxy.href("cogs/demo-vhr/0/image.tif"), http_client(), no_signing,
                         RetryPolicy(sleep=waits.append, base_delay=0.01), Transfer())
    data = reader.read(0, 1000)
    assert data == (tiny_world[0] / "cogs/demo-vhr/0/image.tif").read_bytes()[:1000]
    assert len(waits) == 4 and min(waits[:2]) >= 7, "never sooner than Retry-After"


def test_truncated_bodies_are_fetched_again(fault_proxy: FaultProxy, tiny_world: World) -> None:
    fault_proxy.add("image.tif", "truncate", times=2, keep_bytes=100)
    transfer = Transfer()
    reader = RangeClient(fault_proxy.href("cogs/demo-vhr/0/image.tif"), http_client(), no_signing,
                         RetryPolicy(sleep=lambda s: None), transfer)
    assert reader.read(5000, 20000) == (tiny_world[0] / "cogs/demo-vhr/0/image.tif").read_bytes()[5000:25000]
    truncated = [e for e in fault_proxy.log() if e["outcome"] == "truncated"]
    assert truncated and transfer.retries == len(truncated)


def test_gives_up_with_a_reason(fault_proxy: FaultProxy) -> None:
    fault_proxy.add("image.tif", "503", times=50)
    reader = RangeClient(fault_proxy.href("cogs/demo-vhr/0/image.tif"), http_client(), no_signing,
                         RetryPolicy(attempts=3, sleep=lambda s: None), Transfer())
    with pytest.raises(Exception, match=r"gave up after 3 attempts \(HTTP 503"):
        reader.read(0, 10)


def test_expired_token_is_resigned_and_never_written(
    tmp_path: Path, proxied_api: str, fault_proxy: FaultProxy, tiny_world: World, reference: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    tokens = itertools.count()

    def sign(href: str) -> str:  # the first token is already expired, later ones are fresh
        return f"{href}?se=2026-11-22&sp=r&sig={'stale' if next(tokens) == 0 else 'fresh'}TOKEN"

    monkeypatch.setattr(download_run, "_signer", lambda source: sign)
    fault_proxy.add("cogs/", "403", require_sig="freshTOKEN")
    summary = run_download(_request(tmp_path, proxied_api, tiny_world, tmp_path / "d", concurrency=1), QUIET)
    assert summary.failed == [] and summary.transfer.resigned >= 1
    assert any(entry["status"] == 403 for entry in fault_proxy.log())
    assert _tifs(tmp_path / "d" / "catalogs") == _tifs(reference)
    for path in (tmp_path / "d").rglob("*"):
        if path.is_file():
            content = path.read_bytes()
            assert b"TOKEN" not in content and b"sig=" not in content, f"a token leaked into {path}"


def test_failures_are_summarised(tmp_path: Path, proxied_api: str, fault_proxy: FaultProxy, tiny_world: World,
                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(download_run, "RetryPolicy", lambda: RetryPolicy(attempts=2, sleep=lambda s: None))
    fault_proxy.add("/B04.tif", "503", times=1000)
    summary = run_download(_request(tmp_path, proxied_api, tiny_world, tmp_path / "d"), QUIET)
    assert summary.failed and all("B04" in name and "HTTP 503" in reason for name, reason in summary.failed)
    assert not list((tmp_path / "d").rglob("B04.tif")), "no file for a failed fetch"
    assert not list((tmp_path / "d").rglob("*.partial"))


def test_kill_and_resume_gives_identical_files(
    tmp_path: Path, proxied_api: str, fault_proxy: FaultProxy, tiny_world: World, reference: Path,
) -> None:
    fault_proxy.add("cogs/", "slow", times=10_000, delay=0.05)
    catalog = _catalog_file(tmp_path, proxied_api)
    command = [sys.executable, "-m", "msc_france", "download", "--region", _region(tiny_world), "--catalog",
               str(catalog), "--recipe", "demo", "--data", str(tmp_path / "d"), "--concurrency", "1"]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and len(_tifs(tmp_path / "d")) < 3 and process.poll() is None:
        time.sleep(0.02)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    partial_count = len(_tifs(tmp_path / "d"))
    assert 0 < partial_count < len(_tifs(reference)), "killed part-way"
    fault_proxy.clear()
    resumed = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    assert f"skipped {partial_count}" in " ".join(resumed.stdout.split())
    assert _tifs(tmp_path / "d" / "catalogs") == _tifs(reference)
    assert not list((tmp_path / "d").rglob("*.partial"))
    catalogs = tmp_path / "d" / "catalogs"
    catalog_json = json.loads(catalogs.joinpath(next(catalogs.iterdir()).name, "catalog.json").read_text())
    assert {link["rel"] for link in catalog_json["links"]} >= {"root", "child"}


@pytest.mark.parametrize("region, message", [
    ("atlantis", "unknown region 'atlantis'"),
    ("2,50,1,49", "inverted"),
    ("-40,10,-39,11", "outside metropolitan France"),
])
def test_region_errors_are_one_line(region: str, message: str) -> None:
    result = subprocess.run([sys.executable, "-m", "msc_france", "download", "--region", region, "--catalog", "demo"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert message in result.stderr and result.stderr.strip().count("\n") == 0
    assert "Traceback" not in result.stderr


def test_declared_crs_must_match_the_file(tmp_path: Path, served_world: DemoServer, tiny_world: World) -> None:
    from odc.geo.geom import BoundingBox

    from msc_france.download.fetch import AssetJob, fetch_asset
    from msc_france.download.http import FetchError, HttpOpener

    left, bottom, right, top = tiny_world[1]["scene"]["bounds"]
    job = AssetJob("vhr", "x", "image", f"{served_world.files_url}/cogs/demo-vhr/0/image.tif", (1,), ("red",),
                   4.0, "average", tmp_path / "image.tif", declared_crs="EPSG:32631")
    opener = HttpOpener(http_client(), no_signing, RetryPolicy(), Transfer())
    with pytest.raises(FetchError, match="says EPSG:32631 but the file is EPSG:2154"):
        fetch_asset(job, BoundingBox(left, bottom, right, top, "EPSG:2154"), opener)
    assert not job.path.exists()


def test_an_empty_landsat_window_stops_before_fetching(tmp_path: Path, served_world: DemoServer,
                                                       tiny_world: World) -> None:
    # the tiny world's Landsat-8 scenes are 11 days or more from its clearest Sentinel-2 scene
    with pytest.raises(UserError, match=r"gets a Landsat item \(no Landsat scene within ±1 days of the Sentinel-2 "
                                        r"reference\); widen the pairing window"):
        run_download(_request(tmp_path, served_world.stac_url, tiny_world, tmp_path / "d", window_days=1), QUIET)
    assert not list((tmp_path / "d").rglob("*.tif"))
    summary = run_download(_request(tmp_path, served_world.stac_url, tiny_world, tmp_path / "d", window_days=11,
                                    dry_run=True), QUIET)
    assert summary.plan is not None and summary.plan.triplets == len(summary.plan.tiles), "11 days reach one"


def test_the_plan_uses_the_cloud_measured_over_each_tile(reference: Path, served_world: DemoServer,
                                                        tiny_world: World, tmp_path: Path) -> None:
    summary = run_download(_request(tmp_path, served_world.stac_url, tiny_world, reference.parent), QUIET)
    plan = summary.plan
    assert plan is not None and summary.tile_cloud, "the masks were read"
    scene = {c.item_id: c.cloud for c in plan.sensors["s2"].candidates}
    for tile, items, clear in zip(plan.tiles["tile"], plan.tiles["s2_items"], plan.tiles["s2_clear"], strict=True):
        measured = [(i, summary.tile_cloud[(i, tile)]) for i in scene if (i, tile) in summary.tile_cloud]
        assert measured and items[0] == min(measured, key=lambda m: (m[1], scene[m[0]], m[0]))[0]
        assert clear == pytest.approx(1 - summary.tile_cloud[(items[0], tile)] / 100) or len(items) > 1
    written = pd.read_parquet(reference / next(reference.iterdir()).name / "plan.parquet")
    assert list(written["tile"]) == list(plan.tiles["tile"]) and written["triplet"].all()
    assert [list(i) for i in written["s2_items"]] == [list(i) for i in plan.tiles["s2_items"]]


def test_a_departement_plan_against_the_footprint_world(tmp_path: Path, served_world: DemoServer) -> None:
    catalog = _catalog_file(tmp_path, served_world.stac_url, name="demo-france")
    request = DownloadRequest(region="Haute-Garonne", catalog=str(catalog), recipe="msc-france", data=tmp_path / "d",
                              dry_run=True)
    plan = run_download(request, QUIET).plan
    assert plan is not None and len(plan.tiles) > 3000
    assert plan.coverable > 0.9 * len(plan.tiles) and plan.triplets >= 0.99 * plan.coverable
    assert sum(len(d) for d in plan.duplicates.values()) > 0, "the footprint world's duplicated datatakes are dropped"
    kept = {c.acquisition for c in plan.sensors["s2"].candidates}
    assert len(kept) == len(plan.sensors["s2"].candidates), "one item per acquisition"
    assert plan.tiles["s2_items"].map(len).max() >= 1 and plan.tiles["reference_date"].notna().mean() > 0.99
    assert (tmp_path / "d" / "catalogs" / plan.region.slug / "plan.parquet").exists()


def _checksums(root: Path) -> dict[str, str]:
    """``file:checksum`` of every asset of the local catalog under ``root``, by asset file."""
    sums: dict[str, str] = {}
    for item_file in root.glob("*/*/*.json"):
        for asset in json.loads(item_file.read_text()).get("assets", {}).values():
            sums[str((item_file.parent / asset["href"]).resolve().relative_to(root.resolve()))] = asset["file:checksum"]
    return sums


def test_a_damaged_download_is_fetched_again(tmp_path: Path, served_world: DemoServer, tiny_world: World,
                                             reference: Path) -> None:
    import shutil

    from msc_france.download.fetch import local_state

    data = tmp_path / "d"
    shutil.copytree(reference, data / "catalogs")
    root = next((data / "catalogs").iterdir())
    truncated, emptied, zeroed = sorted(root.glob("s2/*/B0*.tif"))[:3]
    head = len(truncated.read_bytes()) // 2
    truncated.write_bytes(truncated.read_bytes()[:head])
    emptied.write_bytes(b"")
    zeroed.write_bytes(bytes(zeroed.stat().st_size))  # a power loss: the size kept, the bytes never written
    with rasterio.open(truncated) as ds:  # the premise: its header is intact, its pixels are not
        assert ds.count >= 1
        with pytest.raises(rasterio.errors.RasterioIOError):
            ds.read()
    assert local_state(truncated, None) == local_state(emptied, None) == "damaged", "caught even with no record"
    command = [sys.executable, "-m", "msc_france", "download", "--region", _region(tiny_world), "--catalog",
               str(_catalog_file(tmp_path, served_world.stac_url)), "--recipe", "demo", "--data", str(data),
               "--concurrency", "1"]
    rerun = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    line = " ".join(rerun.stdout.split())
    assert "re-fetched 3 damaged" in line and "failed 0" in line, line
    assert f"skipped {len(_tifs(reference)) - 3} complete" in line, line
    assert _tifs(data / "catalogs") == _tifs(reference)
    assert _checksums(root) == _checksums(next(reference.iterdir())), "the catalog records the good files"
    again = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert "re-fetched 0 damaged" in " ".join(again.stdout.split()), again.stdout


@pytest.mark.parametrize("case", ["unreachable", "no items"])
def test_secrets_in_catalog_urls_are_never_printed(tmp_path: Path, served_world: DemoServer, tiny_world: World,
                                                   case: str) -> None:
    if case == "unreachable":  # the error names the API it could not open
        url, dates = f"http://reader:PASSWORD@127.0.0.1:{free_port()}/?token=SECRET&sig=SIGNATURE", []
    else:  # the error names the API that has nothing between the dates
        url, dates = f"{served_world.stac_url}?token=SECRET&api_key=SIGNATURE", ["--start", "1990-01-01",
                                                                                  "--end", "1990-02-01"]
    result = subprocess.run(
        [sys.executable, "-m", "msc_france", "download", "--region", _region(tiny_world), "--catalog",
         str(_catalog_file(tmp_path, url)), "--recipe", "demo", "--data", str(tmp_path / "d"), "--dry-run", *dates],
        capture_output=True, text=True, timeout=300)
    output = result.stdout + result.stderr
    assert result.returncode == 2, output
    assert "127.0.0.1" in result.stderr and "token=***" in result.stderr, "the host is named, the key is not"
    for secret in ("SECRET", "SIGNATURE", "PASSWORD"):
        assert secret not in output
