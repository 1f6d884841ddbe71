"""The demo world's mosaic graph as the Géoplateforme publishes it: a WFS 2.0 feature type
``ORTHOIMAGERY.ORTHOPHOTOS.GRAPHE-MOSAIQUAGE:graphe_bdortho`` whose polygons carry the day of
flight (``date_vol``), served by MapServer (Debian's ``cgi-mapserver``; ``make install`` installs it
where it can) through the standard CGI interface.

The graph splits the world into north-south flight strips flown on successive days of the
campaign, as a real orthophoto mosaic is made of several flights. Around the scene it covers
metropolitan France with campaign blocks (50 km squares of Lambert-93 clipped to France, the scene
cut out), each département flown in one year of 2021-2023, each block on one day of May to
September; a few blocks are left out (not flown yet). The blocks are drawn from a fixed seed: the
graph is one France-wide product, whatever the world.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
import subprocess
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np
import shapely
from shapely.geometry import mapping

from msc_france.regions import resolve_region

NAMESPACE = "ORTHOIMAGERY.ORTHOPHOTOS.GRAPHE-MOSAIQUAGE"
FEATURE_TYPE = "graphe_bdortho"
TYPENAME = f"{NAMESPACE}:{FEATURE_TYPE}"
DATE_FIELD = "date_vol"
STRIPS = 3  # flight strips across the world
STRIP_DAYS = (0, 3, 4)  # days after the campaign's first flight
GRAPH_FILE = "graphe_bdortho.geojson"
MAP_FILE = "mapserver.map"
CONFIG_FILE = "mapserver.conf"
BLOCK = 50_000.0  # metres: the side of a campaign block
BLOCK_SEED = 2154
BLOCK_YEARS = (2021, 2022, 2023)
NOT_FLOWN = 0.06  # share of the blocks left out
DEPARTEMENTS = (*(f"{i:02d}" for i in range(1, 96) if i != 20), "2A", "2B")


def mapserv_binary() -> str | None:
    """MapServer's CGI program, or None where it is not installed."""
    return shutil.which("mapserv")


def write_graph(folder: Path, bounds: tuple[float, float, float, float], first_flight: dt.date) -> None:
    """The mosaic graph: ``STRIPS`` strips west to east, each with its day of flight."""
    left, bottom, right, top = bounds
    width = (right - left) / STRIPS
    features = [{
        "type": "Feature",
        "properties": {DATE_FIELD: (first_flight + dt.timedelta(days=STRIP_DAYS[i])).isoformat(), "dep": "31",
                       "id_cliche": f"demo-{i}"},
        "geometry": {"type": "Polygon", "coordinates": [[
            [left + i * width, bottom], [left + (i + 1) * width, bottom], [left + (i + 1) * width, top],
            [left + i * width, top], [left + i * width, bottom]]]},
    } for i in range(STRIPS)]
    features += france_blocks(shapely.box(*bounds))
    (folder / GRAPH_FILE).write_text(json.dumps({
        "type": "FeatureCollection", "crs": {"type": "name", "properties": {"name": "urn:ogc:def:crs:EPSG::2154"}},
        "features": features}))
    (folder / MAP_FILE).write_text(_mapfile(GRAPH_FILE))
    (folder / CONFIG_FILE).write_text(
        f'CONFIG\n  ENV\n    MS_MAP_NO_PATH "1"\n    MS_MAPFILE "{MAP_FILE}"\n  END\nEND\n')


def france_blocks(scene: shapely.Polygon) -> list[dict[str, Any]]:
    """The campaign blocks over France (Lambert-93 features), ``scene`` cut out of them."""
    france = resolve_region("France").geometry.to_crs("EPSG:2154").geom
    centres = np.array([resolve_region(code).geometry.to_crs("EPSG:2154").geom.centroid.coords[0]
                        for code in DEPARTEMENTS])
    rng = np.random.default_rng(BLOCK_SEED)
    years = rng.choice(BLOCK_YEARS, len(DEPARTEMENTS))
    left, bottom, right, top = france.bounds
    features = []
    for x in np.arange(left // BLOCK * BLOCK, right, BLOCK):
        for y in np.arange(bottom // BLOCK * BLOCK, top, BLOCK):
            block = shapely.box(x, y, x + BLOCK, y + BLOCK).intersection(france).difference(scene)
            day, flown = int(rng.integers(0, 153)), rng.random() >= NOT_FLOWN
            if block.is_empty or not flown:
                continue
            dep = int(np.argmin(np.hypot(*(centres - block.centroid.coords[0]).T)))
            flight = dt.date(int(years[dep]), 5, 1) + dt.timedelta(days=day)
            features.append({"type": "Feature", "geometry": mapping(block),
                             "properties": {DATE_FIELD: flight.isoformat(), "dep": DEPARTEMENTS[dep],
                                            "id_cliche": f"fr-{int(x // BLOCK)}-{int(y // BLOCK)}"}})
    return features


def _mapfile(graph: str) -> str:
    return f"""MAP
  NAME "graphe"
  EXTENT 0 6000000 1300000 7200000
  PROJECTION "init=epsg:2154" END
  WEB
    METADATA
      "wfs_title" "msc-france demo Géoplateforme (WFS)"
      "wfs_srs" "EPSG:2154"
      "wfs_enable_request" "*"
      "wfs_namespace_prefix" "{NAMESPACE}"
      "wfs_getfeature_formatlist" "geojson"
    END
  END
  OUTPUTFORMAT NAME "geojson" DRIVER "OGR/GEOJSON" MIMETYPE "application/json" FORMATOPTION "STORAGE=stream" END
  LAYER
    NAME "{FEATURE_TYPE}"
    TYPE POLYGON
    STATUS ON
    CONNECTIONTYPE OGR
    CONNECTION "{graph}"
    PROJECTION "init=epsg:2154" END
    METADATA "wfs_title" "graphe de mosaïquage" "gml_include_items" "all" "wfs_srs" "EPSG:2154" END
  END
END
"""


def cgi_app(folder: Path) -> Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]:
    """A WSGI application running MapServer's CGI program once per request, as a web server does."""
    binary = mapserv_binary()
    folder = folder.resolve()

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if binary is None:
            start_response("503 Service Unavailable", [("Content-Type", "text/plain")])
            return [b"MapServer (mapserv) is not installed: apt-get install cgi-mapserver"]
        env = {"MAPSERVER_CONFIG_FILE": str(folder / CONFIG_FILE), "REQUEST_METHOD": "GET",
               "QUERY_STRING": environ.get("QUERY_STRING", ""), "SERVER_NAME": environ.get("SERVER_NAME", "127.0.0.1"),
               "SERVER_PORT": str(environ.get("SERVER_PORT", "80")), "SCRIPT_NAME": environ.get("SCRIPT_NAME", "")}
        output = subprocess.run([binary], env=env, cwd=folder, capture_output=True, timeout=60, check=False).stdout
        head, _, body = output.partition(b"\r\n\r\n") if b"\r\n\r\n" in output else output.partition(b"\n\n")
        headers = [tuple(part.strip() for part in line.split(":", 1))
                   for line in head.decode().splitlines() if ":" in line]
        status = next((v for k, v in headers if k.lower() == "status"), "200 OK")
        start_response(status, [(k, v) for k, v in headers if k.lower() != "status"])
        return [body]

    return app
