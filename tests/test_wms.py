"""VHR through OGC services as a real user fetches it from the IGN Géoplateforme: the tiny demo
world's orthophoto behind MapProxy (WMS 1.3.0 and WMTS in Lambert-93), read through GDAL window by
window: values, NIR, campaign date, coverage, HTTP 429 through the fault proxy, resume, and peak
memory with the region's size doubled.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import numpy as np
import pystac
import pytest
import rasterio
from odc.geo.geom import Geometry, box
from rasterio.enums import Resampling

from msc_france.config import WmsSource, WmtsEndpoint, load_catalog, load_recipe
from msc_france.demo import ogc, wfs
from msc_france.demo.server import DemoServer
from msc_france.demo.wfs import mapserv_binary
from msc_france.download.http import FetchError
from msc_france.download.wms import (
    VhrWindow,
    WindowResult,
    fetch_window,
    fetch_windows,
    layer_set,
    vhr_windows,
    window_item,
)
from tests.faultproxy import fault_proxy

World = tuple[Path, dict[str, Any]]
ROOT = Path(__file__).resolve().parents[1]


def _source(server: DemoServer, **update: Any) -> WmsSource:
    """The demo catalog's VHR source on the served tiny world, the mosaic-graph WFS included."""
    source = load_catalog("demo").sources["vhr"]
    assert isinstance(source, WmsSource) and source.dates_wfs is not None
    wfs = source.dates_wfs.model_copy(update={"url": server.resolve(source.dates_wfs.url)})
    return source.model_copy(update={"url": server.resolve(source.url), "dates_wfs": wfs, **update})


def _needs_mapserver() -> None:
    if mapserv_binary() is None:
        pytest.skip("MapServer is not installed (make install does it as root; else apt-get install cgi-mapserver)")


def _windows(world: World, window_px: int, recipe: str = "demo") -> list[VhrWindow]:
    grid = load_recipe(recipe).tile_grid
    tiles = grid.tiles_in(Geometry(box(*world[1]["scene"]["bounds"], "EPSG:2154").geom, "EPSG:2154"))
    return vhr_windows(grid, tiles, window_px)


def _source_pixels(world: World, result: WindowResult) -> tuple[np.ndarray, np.ndarray]:
    """The fetched window and the world's R, G, B, NIR COG averaged onto the same grid."""
    cog = next((world[0] / "cogs" / "demo-vhr").rglob("image.tif"))
    with rasterio.open(result.fetched.job.path) as fetched, rasterio.open(cog) as truth:
        data = fetched.read()
        window = rasterio.windows.from_bounds(*fetched.bounds, transform=truth.transform)
        reference = truth.read(window=window, out_shape=data.shape, resampling=Resampling.average)
    return data, reference


def _get(url: str) -> tuple[int, bytes, str]:
    try:
        with urllib.request.urlopen(url, timeout=30) as response:
            return response.status, response.read(), response.headers.get("Content-Type", "")
    except urllib.error.HTTPError as error:
        return error.code, error.read(), error.headers.get("Content-Type", "")


def test_demo_services_speak_the_geoplateforme_layers(served_world: DemoServer, tiny_world: World) -> None:
    wms = served_world.resolve("demo://wms-r")
    status, body, _ = _get(f"{wms}?SERVICE=WMS&VERSION=1.3.0&REQUEST=GetCapabilities")
    assert status == 200
    for layer in (ogc.RGB_LAYER, ogc.IRC_LAYER, ogc.L93_LAYER, "ORTHOIMAGERY.ORTHOPHOTOS2022"):
        assert f"<Name>{layer}</Name>".encode() in body
    assert b"EPSG:2154" in body
    left, bottom, right, top = tiny_world[1]["scene"]["bounds"]
    getmap = (f"{wms}?SERVICE=WMS&VERSION=1.3.0&REQUEST=GetMap&LAYERS={ogc.RGB_LAYER}&STYLES=&CRS=EPSG:2154"
              f"&BBOX={left},{bottom},{right},{top}")
    for fmt, magic in (("image/png", b"\x89PNG"), ("image/jpeg", b"\xff\xd8")):
        status, body, kind = _get(f"{getmap}&WIDTH=240&HEIGHT=240&FORMAT={fmt}")
        assert status == 200 and kind == fmt and body.startswith(magic)
    status, body, _ = _get(f"{getmap}&WIDTH={ogc.MAX_SIDE + 1}&HEIGHT={ogc.MAX_SIDE + 1}&FORMAT=image/png")
    assert status != 200 or b"ServiceException" in body, "a GetMap over the size limit is refused"
    assert not body.startswith(b"\x89PNG")
    wmts = served_world.resolve("demo://wmts")
    status, body, _ = _get(f"{wmts}?SERVICE=WMTS&REQUEST=GetCapabilities")
    assert status == 200 and f"<ows:Identifier>{ogc.L93_LAYER}</ows:Identifier>".encode() in body
    assert f"<ows:Identifier>{ogc.MATRIX_SET}</ows:Identifier>".encode() in body


def test_wms_window_has_rgb_nir_date_and_coverage(served_world: DemoServer, tiny_world: World, tmp_path: Path) -> None:
    source = _source(served_world, dates_wfs=None)  # the campaign year from the dated layers
    window = _windows(tiny_world, source.window_px)[0]
    result = fetch_window(window, source, load_recipe("demo"), tmp_path, layer_set(source))
    record = result.record
    assert record.year == 2022 and record.date_source == "ORTHOIMAGERY.ORTHOPHOTOS2022" and record.flights == ()
    assert record.layers == (ogc.RGB_LAYER, ogc.IRC_LAYER) and record.bands == ("red", "green", "blue", "nir")
    assert record.coverage == 1.0
    data, reference = _source_pixels(tiny_world, result)
    error = np.abs(data.astype(int) - reference).mean(axis=(1, 2))
    assert (error < 6).all(), f"mean DN error per band {error} (JPEG tiles in the cache)"
    assert np.corrcoef(data[3].ravel(), reference[3].ravel())[0, 1] > 0.95, "NIR is band 1 of the IRC layer"
    assert np.corrcoef(data[3].ravel(), reference[0].ravel())[0, 1] < 0.9, "NIR is not the red band"
    item = pystac.Item.from_dict(window_item(result, tmp_path, source.url))
    assert item.datetime is None and item.common_metadata.start_datetime.year == 2022
    assert item.common_metadata.end_datetime.year == 2022 and item.properties["msc:coverage"] == 1.0


def test_days_of_flight_come_from_the_mosaic_graph_wfs(served_world: DemoServer, tiny_world: World,
                                                       tmp_path: Path) -> None:
    _needs_mapserver()
    source = _source(served_world)
    windows = _windows(tiny_world, 128)  # one tile each: 480 m, across strips of 320 m flown on days 0, 3, 4
    results: list[WindowResult] = []
    fetch_windows(windows, source, load_recipe("demo"), tmp_path, lambda w, r, p: results.append(r))
    west = next(r.record for r in results if r.fetched.job.item_id == windows[0].window_id)
    east = next(r.record for r in results if r.fetched.job.item_id == windows[1].window_id)
    assert west.flights == (("2022-06-20", pytest.approx(2 / 3, abs=1e-3)),
                            ("2022-06-23", pytest.approx(1 / 3, abs=1e-3)))
    assert east.flights[0][0] == "2022-06-24" and east.flights[1][0] == "2022-06-23"
    assert west.date_source == f"WFS {wfs.TYPENAME} date_vol"
    item = pystac.Item.from_dict(window_item(results[0], tmp_path, source.url))
    assert item.datetime is not None and item.datetime.date().isoformat() == "2022-06-20"
    assert item.common_metadata.start_datetime.date().isoformat() == "2022-06-20"
    assert item.common_metadata.end_datetime.date().isoformat() == "2022-06-23"
    assert item.properties["msc:flights"][0][0] == "2022-06-20"


def test_a_failing_wfs_falls_back_to_the_campaign_year(served_world: DemoServer, tiny_world: World,
                                                       tmp_path: Path) -> None:
    source = _source(served_world, retries=0)
    source = source.model_copy(update={"dates_wfs": source.dates_wfs.model_copy(update={"url": "http://127.0.0.1:9/wfs"})})
    result = fetch_window(_windows(tiny_world, 128)[0], source, load_recipe("demo"), tmp_path, layer_set(source))
    assert result.record.flights == () and result.record.year == 2022
    assert result.record.date_source.startswith(f"the WFS {wfs.TYPENAME} failed")
    assert result.record.date_source.endswith("; ORTHOIMAGERY.ORTHOPHOTOS2022"), "what was used is recorded"


def test_wmts_window_matches_the_source(served_world: DemoServer, tiny_world: World, tmp_path: Path) -> None:
    source = _source(served_world, wmts=WmtsEndpoint(url=served_world.resolve("demo://wmts"), layer=ogc.L93_LAYER,
                                                    matrix_set=ogc.MATRIX_SET))
    window = _windows(tiny_world, source.window_px)[0]
    result = fetch_window(window, source, load_recipe("demo"), tmp_path, layer_set(source))
    assert result.record.layers[0] == ogc.L93_LAYER and result.record.year == 2022
    data, reference = _source_pixels(tiny_world, result)
    assert (np.abs(data.astype(int) - reference).mean(axis=(1, 2)) < 6).all()


@pytest.mark.parametrize("fmt", ["image/png", "image/jpeg"])
def test_window_outside_the_service_has_no_coverage(served_world: DemoServer, tiny_world: World, tmp_path: Path,
                                                    fmt: str) -> None:
    source = _source(served_world, format=fmt)
    inside = _windows(tiny_world, 128)[0]
    covered = fetch_window(inside, source, load_recipe("demo"), tmp_path, layer_set(source))
    assert covered.record.coverage == 1.0, f"{fmt}: imagery everywhere in the world"
    left, bottom, right, top = inside.bounds
    # 600 km west: the Bay of Biscay, outside the imagery and the France-wide mosaic graph alike
    far = VhrWindow("vhr-far", (left - 600_000, bottom, right - 600_000, top), 1)
    result = fetch_window(far, source, load_recipe("demo"), tmp_path, layer_set(source))
    assert result.record.coverage == 0.0 and result.record.year is None
    with rasterio.open(result.fetched.job.path) as fetched:
        assert fetched.nodata == 0 and not fetched.read().any(), "no imagery is no data, not black pixels"


def test_windows_resume_one_by_one(served_world: DemoServer, tiny_world: World, tmp_path: Path) -> None:
    source = _source(served_world)
    windows = _windows(tiny_world, 128)
    assert len(windows) == 4, "one tile per window over the 2 x 2 tiles of the tiny world"
    recipe = load_recipe("demo")
    first: list[WindowResult] = []
    fetch_windows(windows, source, recipe, tmp_path, lambda w, r, p: first.append(r))
    assert all(r is not None and not r.fetched.skipped for r in first)
    (first[2].fetched.job.path.parent / "window.json").unlink()  # as if killed before its record
    again: list[WindowResult] = []
    fetch_windows(windows, source, recipe, tmp_path, lambda w, r, p: again.append(r))
    assert [r.fetched.skipped for r in again] == [True, True, False, True]
    assert [r.fetched.checksum for r in again] == [r.fetched.checksum for r in first]


def _gaps_after_429(log: list[dict[str, Any]]) -> list[float]:
    """Seconds between each 429 and the next request for the same URL."""
    gaps = []
    for i, entry in enumerate(log):
        if entry["status"] == 429:
            later = [e for e in log[i + 1:] if e["query"] == entry["query"] and e["path"] == entry["path"]]
            assert later, "every 429 was retried"
            gaps.append(later[0]["mono_start"] - entry["mono_end"])
    return gaps


def test_429_is_retried_never_sooner_than_the_block(served_world: DemoServer, tiny_world: World,
                                                    tmp_path: Path) -> None:
    with fault_proxy(served_world.ogc_url) as proxy:
        source = _source(served_world, url=proxy.href("wms"), retry_delay=1.0)
        proxy.add("/wms", "429", times=3, retry_after=1)
        window = _windows(tiny_world, source.window_px)[0]
        result = fetch_window(window, source, load_recipe("demo"), tmp_path, layer_set(source))
        log = proxy.log()
    assert result.record.coverage == 1.0 and result.record.year == 2022
    assert sum(e["status"] == 429 for e in log) == 3, "the faults fired"
    gaps = _gaps_after_429(log)
    assert len(gaps) == 3 and min(gaps) >= 0.95, f"retried after {gaps} s, Retry-After was 1 s"


def test_429_that_never_ends_fails_the_windows_in_one_line(served_world: DemoServer, tiny_world: World,
                                                           tmp_path: Path) -> None:
    failures: list[str] = []
    with fault_proxy(served_world.ogc_url) as proxy:
        proxy.add("/wms", "429", times=10_000, retry_after=1)
        source = _source(served_world, url=proxy.href("wms"), retries=1, retry_delay=0.1, window_attempts=1)
        fetch_windows(_windows(tiny_world, 128), source, load_recipe("demo"), tmp_path,
                      lambda w, r, p: failures.append(p or ""))
    assert len(failures) == 4 and all("429" in f and "\n" not in f for f in failures), failures
    assert not list(tmp_path.rglob("window.json")), "no window is marked complete"


PEAK_SCRIPT = textwrap.dedent("""
    import json, resource, sys
    from pathlib import Path
    from msc_france.config import WmsSource, load_recipe
    from msc_france.download.wms import VhrWindow, fetch_windows
    source = WmsSource.model_validate_json(sys.argv[1])
    windows = [VhrWindow(w["window_id"], tuple(w["bounds"]), w["tiles"]) for w in json.loads(sys.argv[2])]
    done = []
    fetch_windows(windows, source, load_recipe(sys.argv[3]), Path(sys.argv[4]),
                  lambda w, r, p: done.append(r is not None and r.record.coverage == 1.0))
    print(json.dumps({"peak_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, "complete": sum(done)}))
""")


def test_peak_memory_does_not_grow_with_the_region(served_world: DemoServer, tiny_world: World,
                                                   tmp_path: Path) -> None:
    recipe = tmp_path / "fine.yaml"
    recipe.write_text(load_recipe("demo").model_copy(update={"name": "fine"}).model_dump_json()
                      .replace('"vhr":4.0', '"vhr":0.25'))  # 1920 px tiles: a region of 2 x 2 tiles is 3840 px
    assert load_recipe(str(recipe)).tile_grid.tile_px("vhr") == 1920
    source = _source(served_world, window_px=1920)
    windows = _windows(tiny_world, 1920, str(recipe))
    half = [w for w in windows if w.bounds[3] == max(x.bounds[3] for x in windows)]
    assert len(windows) == 4 and len(half) == 2, "the whole region is twice the half region"
    peaks = {}
    for name, chosen in (("half", half), ("whole", windows)):
        run = subprocess.run(
            [sys.executable, "-c", PEAK_SCRIPT, source.model_dump_json(),
             json.dumps([{"window_id": w.window_id, "bounds": w.bounds, "tiles": w.tiles} for w in chosen]),
             str(recipe), str(tmp_path / name)],
            capture_output=True, text=True, cwd=ROOT, timeout=300, check=True,
        )
        peaks[name] = json.loads(run.stdout.strip().splitlines()[-1])
        assert peaks[name]["complete"] == len(chosen), "every window was fetched and covered"
    # A whole-region read holds RGBA + IRC + output planes: 12 bytes a pixel, 88 MB more for the whole.
    region_growth_mb = 3840 * 1920 * 12 / 1e6
    growth_mb = (peaks["whole"]["peak_kb"] - peaks["half"]["peak_kb"]) / 1e3
    print(f"peak RSS: half {peaks['half']['peak_kb'] / 1e3:.0f} MB, whole {peaks['whole']['peak_kb'] / 1e3:.0f} MB")
    assert growth_mb < 0.25 * region_growth_mb, f"peak grew {growth_mb:.0f} MB when the region doubled"


def test_capabilities_that_fail_fail_every_window(tmp_path: Path, tiny_world: World) -> None:
    source = WmsSource(type="wms", url="http://127.0.0.1:9/wms", layer=ogc.RGB_LAYER, native_gsd=2.0,
                       dated_layer="ORTHOIMAGERY.ORTHOPHOTOS{year}", retries=0)
    failures: list[str | None] = []
    fetch_windows(_windows(tiny_world, 128), source, load_recipe("demo"), tmp_path, lambda w, r, p: failures.append(p))
    assert len(failures) == 4 and all(p and "capabilities" in p for p in failures)
    with pytest.raises(FetchError):
        layer_set(source)
