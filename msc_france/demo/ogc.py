"""The demo world's orthophotos served the way the IGN Géoplateforme serves them: MapProxy (real OGC
server software from PyPI) answers WMS 1.3.0 and WMTS in Lambert-93 from tile caches pre-rendered
here from the world's VHR COGs.

Layers, as named by the Géoplateforme:

* ``HR.ORTHOIMAGERY.ORTHOPHOTOS``: the latest orthophoto, true colour (R, G, B);
* ``ORTHOIMAGERY.ORTHOPHOTOS.IRC``: the same in infrared colour (NIR, R, G);
* ``ORTHOIMAGERY.ORTHOPHOTOS{YEAR}``: the campaign of that year, true colour;
* ``HR.ORTHOIMAGERY.ORTHOPHOTOS.L93``: true colour, for the WMTS in the Lambert-93 matrix set;
* under ``/wfs``, the mosaic graph with the days of flight (:mod:`msc_france.demo.wfs`, MapServer).

WMS GetMap is limited to :data:`MAX_SIDE` pixels a side, like the Géoplateforme. Outside the world
the caches hold no tile, so the services answer transparent (PNG) or white (JPEG) pixels.

Run as ``python -m msc_france.demo.ogc WORLD PORT`` (waitress); the tile caches live in
``WORLD/ogc/`` and are rendered by :func:`render_caches` when the world is generated.
"""

from __future__ import annotations

import datetime as dt
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
import yaml
from PIL import Image
from rasterio.enums import Resampling

from msc_france.demo.wfs import cgi_app, write_graph
from msc_france.store.atomic import atomic_write

RGB_LAYER = "HR.ORTHOIMAGERY.ORTHOPHOTOS"
IRC_LAYER = "ORTHOIMAGERY.ORTHOPHOTOS.IRC"
L93_LAYER = "HR.ORTHOIMAGERY.ORTHOPHOTOS.L93"
DATED_LAYER = "ORTHOIMAGERY.ORTHOPHOTOS{year}"
MATRIX_SET = "LAMB93"
MAX_SIDE = 10_000  # pixels a side of one GetMap, as on the Géoplateforme
TILE = 256
TILE_EXT = "mixed"  # MapProxy's file name extension in a cache of format "mixed" (JPEG or PNG)
LEVELS = 6  # tile-cache levels: the native GSD and five halvings
COMPOSITIONS = {"rgb": (1, 2, 3), "irc": (4, 1, 2)}  # bands of the world's R, G, B, NIR COG
DONE = "done.json"
OGC_DIR = "ogc"


@dataclass(frozen=True)
class Campaign:
    """One orthophoto campaign of the world: its date and its R, G, B, NIR COG."""

    date: str  # ISO date of the flights
    cog: Path


def campaigns(world: Path) -> list[Campaign]:
    """The world's orthophoto campaigns, oldest first, from its STAC items."""
    found = []
    for item_file in sorted((world / "stac" / "items" / "demo-vhr").glob("*.json")):
        item = json.loads(item_file.read_text())
        found.append(Campaign(item["properties"]["datetime"][:10], world / item["assets"]["image"]["href"]))
    return sorted(found, key=lambda c: c.date)


def mapproxy_config(world: Path, bounds: tuple[float, float, float, float], gsd: float,
                    dated: list[Campaign]) -> dict[str, Any]:
    """The MapProxy configuration for the world's campaigns (the latest one is the current layer)."""
    latest = dated[-1]
    caches = {
        f"{kind}_{c.date[:4]}": {
            "grids": [MATRIX_SET], "sources": [], "format": "mixed", "request_format": "image/png",
            "cache": {"type": "file", "directory": cache_dir(world, kind, c).name, "directory_layout": "tms"},
        }
        for c in dated for kind in COMPOSITIONS
    }
    year = latest.date[:4]
    layers = [
        {"name": RGB_LAYER, "title": "Orthophotos (latest campaign)", "sources": [f"rgb_{year}"]},
        {"name": IRC_LAYER, "title": "Orthophotos infrared colour (NIR, R, G)", "sources": [f"irc_{year}"]},
        {"name": L93_LAYER, "title": "Orthophotos in Lambert-93 tiles", "sources": [f"rgb_{year}"]},
        *({"name": DATED_LAYER.format(year=c.date[:4]), "title": f"Orthophotos {c.date[:4]}",
           "sources": [f"rgb_{c.date[:4]}"]} for c in dated),
    ]
    return {
        "services": {
            "wms": {"versions": ["1.3.0", "1.1.1"], "srs": ["EPSG:2154"],
                    "image_formats": ["image/jpeg", "image/png"], "max_output_pixels": [MAX_SIDE, MAX_SIDE],
                    "md": {"title": "msc-france demo Géoplateforme (WMS-R)"}},
            "wmts": {"restful": True, "kvp": True, "md": {"title": "msc-france demo Géoplateforme (WMTS)"}},
        },
        "layers": layers,
        "caches": caches,
        "grids": {MATRIX_SET: {"srs": "EPSG:2154", "bbox": list(bounds), "bbox_srs": "EPSG:2154", "origin": "nw",
                               "res": [gsd * 2**k for k in reversed(range(LEVELS))], "tile_size": [TILE, TILE]}},
        "globals": {"image": {"resampling_method": "bilinear"}, "cache": {"base_dir": "."}},  # relative to the config
    }


def cache_dir(world: Path, kind: str, campaign: Campaign) -> Path:
    return world / OGC_DIR / f"{kind}-{campaign.date[:4]}"


def config_path(world: Path) -> Path:
    return world / OGC_DIR / "mapproxy.yaml"


def _save_tile(data: np.ndarray, path: Path) -> None:
    """A tile from 3 bands of 8-bit DN (0 is no data): JPEG where opaque, else PNG with alpha (the
    cache's ``mixed`` format, as MapProxy stores it)."""
    covered = (data != 0).any(axis=0)
    path.parent.mkdir(parents=True, exist_ok=True)
    if covered.all():
        Image.fromarray(np.dstack(list(data)), "RGB").save(path, format="JPEG", quality=90)
    else:
        alpha = np.where(covered, 255, 0).astype(np.uint8)
        Image.fromarray(np.dstack([*data, alpha]), "RGBA").save(path, format="PNG", compress_level=1)


def _level_image(src: rasterio.io.DatasetReader, grid_bounds: tuple[float, float, float, float], res: float,
                 cols: int, rows: int) -> np.ndarray:
    """The source's bands on one level's whole tile matrix (zeros outside the source)."""
    left, _, _, top = grid_bounds
    out = np.zeros((src.count, rows * TILE, cols * TILE), np.uint8)
    height, width = round(src.height * abs(src.transform.e) / res), round(src.width * src.transform.a / res)
    data = src.read(out_shape=(src.count, height, width), resampling=Resampling.average)
    row0, col0 = round((top - src.bounds.top) / res), round((src.bounds.left - left) / res)
    out[:, row0:row0 + height, col0:col0 + width] = data
    return out


def render_caches(world: Path) -> Path:
    """Write the tile caches and MapProxy's configuration for ``world`` (once); returns the config."""
    from mapproxy.grid.tile_grid import tile_grid

    done = world / OGC_DIR / DONE
    if done.exists():
        return config_path(world)
    dated = campaigns(world)
    if not dated:
        raise ValueError(f"{world} has no orthophoto (demo-vhr) items")
    with rasterio.open(dated[-1].cog) as src:
        bounds, gsd = tuple(src.bounds), abs(src.transform.a)
    config = mapproxy_config(world, bounds, gsd, dated)
    grid_conf = config["grids"][MATRIX_SET]
    grid = tile_grid(srs="EPSG:2154", bbox=grid_conf["bbox"], res=grid_conf["res"], origin="nw", tile_size=(TILE, TILE))
    for campaign in dated:
        with rasterio.open(campaign.cog) as src:
            for level, ((cols, rows), res) in enumerate(zip(grid.grid_sizes.values(), grid_conf["res"], strict=True)):
                image = _level_image(src, bounds, res, cols, rows)
                for x in range(cols):
                    for y in range(rows):
                        left, _, _, top = grid.tile_bbox((x, y, level))
                        r0, c0 = round((bounds[3] - top) / res), round((left - bounds[0]) / res)
                        block = image[:, r0:r0 + TILE, c0:c0 + TILE]
                        for kind, bands in COMPOSITIONS.items():
                            tile = block[[b - 1 for b in bands]]
                            if tile.any():
                                folder = cache_dir(world, kind, campaign) / str(level) / str(x)
                                _save_tile(tile, folder / f"{y}.{TILE_EXT}")
    config_path(world).write_text(yaml.safe_dump(config, sort_keys=False))
    write_graph(world / OGC_DIR, bounds, dt.date.fromisoformat(dated[-1].date))
    atomic_write(done, json.dumps({"campaigns": [c.date for c in dated]}))
    return config_path(world)


def serve(world: Path, port: int) -> None:
    """Serve MapProxy (WMS, WMTS) and, under ``/wfs``, MapServer (WFS) for ``world`` on loopback
    until killed."""
    from mapproxy.wsgiapp import make_wsgi_app
    from waitress import serve as waitress_serve
    from werkzeug.middleware.dispatcher import DispatcherMiddleware

    app = DispatcherMiddleware(make_wsgi_app(str(render_caches(world))), {"/wfs": cgi_app(world / OGC_DIR)})
    waitress_serve(app, host="127.0.0.1", port=port, threads=8, _quiet=True)


if __name__ == "__main__":
    serve(Path(sys.argv[1]), int(sys.argv[2]))
