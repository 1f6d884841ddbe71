"""Bytes the download stage fetches, against the bytes of the COG blocks its windows need, and against
GDAL's own /vsicurl reading the same windows in the same run (the baseline).

    .venv/bin/python bench/download_bytes.py [--size 1920]

Every request goes through a counting proxy (tests/faultproxy.py with no faults) in front of the demo
world's file server, so both readers are measured the same way.
"""

from __future__ import annotations

import argparse
import math
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pystac
import rasterio
from rasterio.windows import from_bounds
from rich.console import Console

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from msc_france.config import load_catalog
from msc_france.demo.server import free_port, rustac_binary, serve_world, served_item_files, stop_process, wait_ready
from msc_france.demo.world import generate_world
from msc_france.download.run import DownloadRequest, run_download
from tests.faultproxy import fault_proxy


def needed_bytes(source: Path, local: Path) -> int:
    """Sum of the source COG's blocks (at the overview the download used) under the local window."""
    with rasterio.open(local) as out:
        bounds, res = out.bounds, out.res[0]
    with rasterio.open(source) as full:
        levels = [1, *full.overviews(1)]
        level = next(i for i, f in enumerate(levels) if math.isclose(full.res[0] * f, res, rel_tol=1e-3))
    options = {"overview_level": level - 1} if level else {}
    with rasterio.open(source, **options) as ds:
        window = from_bounds(*bounds, transform=ds.transform).round_offsets().round_lengths()
        bh, bw = ds.block_shapes[0]
        total = 0
        for band in range(1, ds.count + 1):
            for row in range(int(window.row_off) // bh, math.ceil((window.row_off + window.height) / bh)):
                for col in range(int(window.col_off) // bw, math.ceil((window.col_off + window.width) / bw)):
                    size = ds.get_tag_item(f"BLOCK_SIZE_{col}_{row}", "TIFF", bidx=band)
                    total += int(size or 0)
                if ds.profile.get("interleave") == "pixel":
                    break
            if ds.profile.get("interleave") == "pixel":
                break
        return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--size", type=float, default=1920.0, help="demo world side in metres")
    args = parser.parse_args()
    console = Console()
    work = Path(tempfile.mkdtemp(prefix="bench-download-"))
    world_cfg = load_catalog("demo").world.model_copy(update={"size": args.size, "height": None})  # type: ignore[union-attr]
    world = work / "world"
    manifest = generate_world(world_cfg, world, show_progress=False)
    west, south, east, north = manifest["scene"]["bbox_lonlat"]
    region = f"{west + 0.0003},{south + 0.0003},{east - 0.0003},{north - 0.0003}"
    with serve_world(world) as server, fault_proxy(server.files_url) as proxy:
        sources = served_item_files(world, proxy.url, work)
        port = free_port()
        api = subprocess.Popen([rustac_binary(), "serve", "--addr", f"127.0.0.1:{port}", *map(str, sources)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            wait_ready(f"http://127.0.0.1:{port}/collections", api, "STAC API")
            catalog = work / "catalog.yaml"
            text = (Path(__file__).resolve().parents[1] / "catalogs" / "demo.yaml").read_text()
            for service in ("demo://wms-r", "demo://wfs"):  # the VHR from the world's WMS, as in `make download`
                text = text.replace(service, server.resolve(service))
            catalog.write_text(text.replace("demo://", f"http://127.0.0.1:{port}").split("\nworld:")[0] + "\n")
            proxy.clear()
            quiet = Console(file=open(os.devnull, "w"))  # noqa: SIM115
            summary = run_download(DownloadRequest(region=region, catalog=str(catalog), recipe="demo",
                                                   data=work / "data"), quiet)
            ours = sum(e["bytes_sent"] for e in proxy.log())
            ours_requests = len(proxy.log())
            root = next((work / "data" / "catalogs").iterdir())
            needed = 0
            windows = []
            for item in pystac.Catalog.from_file(str(root / "catalog.json")).get_items(recursive=True):
                for asset in item.assets.values():
                    source = asset.extra_fields.get("msc:source_href", "")
                    if not source.startswith(proxy.url):  # the COGs only: the VHR comes from the WMS
                        continue
                    rel = source.split("/", 3)[3]
                    local = Path(asset.get_absolute_href())
                    needed += needed_bytes(world / rel, local)
                    windows.append((proxy.href(rel), local))
            proxy.clear()
            with rasterio.Env(GDAL_DISABLE_READDIR_ON_OPEN="EMPTY_DIR", CPL_VSIL_CURL_NON_CACHED="/vsicurl/"):
                for href, local in windows:
                    with rasterio.open(local) as out:
                        bounds, res = out.bounds, out.res[0]
                    with rasterio.open(href) as ds:
                        factor = [1, *ds.overviews(1)]
                        level = next(i for i, f in enumerate(factor) if math.isclose(ds.res[0] * f, res, rel_tol=1e-3))
                    with rasterio.open(href, **({"overview_level": level - 1} if level else {})) as ds:
                        ds.read(window=from_bounds(*bounds, transform=ds.transform))
            gdal = sum(e["bytes_sent"] for e in proxy.log())
            gdal_requests = len(proxy.log())
        finally:
            stop_process(api)
    mb = 1e6
    console.print(f"demo world {args.size:g} m, region {region}, recipe demo: {len(windows)} windows, "
                  f"{len(summary.failed)} failures")
    console.print(f"needed COG blocks     {needed / mb:8.2f} MB")
    console.print(f"msc-france download   {ours / mb:8.2f} MB in {ours_requests} requests  "
                  f"ratio to needed {ours / needed:.2f}")
    console.print(f"GDAL /vsicurl         {gdal / mb:8.2f} MB in {gdal_requests} requests  "
                  f"ratio to needed {gdal / needed:.2f}")
    console.print(f"msc-france / GDAL     {ours / gdal:.2f}")


if __name__ == "__main__":
    main()
