"""Native pixel grids of the real products over a scene: Sentinel-2 on its MGRS tile grid, Landsat
on its UTM 30 m grid, ESA WorldCover on its 1/12000 degree grid, each as a window covering the scene.
"""

from __future__ import annotations

import math

from affine import Affine
from odc.geo.geobox import GeoBox

_MGRS_COLUMNS = ("ABCDEFGH", "JKLMNPQR", "STUVWXYZ")
_MGRS_ROWS = "ABCDEFGHJKLMNPQRSTUV"
_LATITUDE_BANDS = "CDEFGHJKLMNPQRSTUVWX"
WORLDCOVER_STEP = 1 / 12000  # degrees


def utm_epsg(lon: float) -> int:
    """EPSG code of the northern-hemisphere UTM zone containing longitude ``lon``."""
    return 32600 + int((lon + 180) // 6) + 1


def mgrs_tile(lon: float, lat: float, easting: float, northing: float) -> str:
    """MGRS 100 km square of a point, as Sentinel-2 names its tiles (e.g. ``31TCJ``)."""
    zone = int((lon + 180) // 6) + 1
    band = _LATITUDE_BANDS[int((lat + 80) // 8)]
    column = _MGRS_COLUMNS[(zone - 1) % 3][int(easting // 100_000) - 1]
    row = _MGRS_ROWS[(int(northing // 100_000) + (5 if zone % 2 == 0 else 0)) % 20]
    return f"{zone}{band}{column}{row}"


def _window(scene: GeoBox, crs: str, step: float, origin: tuple[float, float], margin: float) -> GeoBox:
    """A north-up grid of ``step`` pixels aligned on ``origin`` that covers ``scene`` plus ``margin``."""
    left, bottom, right, top = scene.extent.to_crs(crs).boundingbox
    x0 = origin[0] + math.floor((left - margin - origin[0]) / step) * step
    x1 = origin[0] + math.ceil((right + margin - origin[0]) / step) * step
    y0 = origin[1] + math.floor((bottom - margin - origin[1]) / step) * step
    y1 = origin[1] + math.ceil((top + margin - origin[1]) / step) * step
    return GeoBox((round((y1 - y0) / step), round((x1 - x0) / step)), Affine(step, 0, x0, 0, -step, y1), crs)


def sentinel2_grid(scene: GeoBox, lon: float, gsd: float) -> tuple[GeoBox, str]:
    """The window of the scene's MGRS tile grid at ``gsd`` (10, 20 or 60 m), and the tile name."""
    crs = f"EPSG:{utm_epsg(lon)}"
    centre = scene.extent.centroid.to_crs(crs).coords[0]
    lonlat = scene.extent.centroid.to_crs("EPSG:4326").coords[0]
    tile = mgrs_tile(lonlat[0], lonlat[1], *centre)
    # Sentinel-2 tiles start on the 100 km square's west edge and 100020 m above its south edge.
    origin = (math.floor(centre[0] / 100_000) * 100_000, math.floor(centre[1] / 100_000) * 100_000 + 100_020)
    aligned = _window(scene, crs, 60.0, origin, margin=240)
    k = round(60.0 / gsd)
    left, top = aligned.affine.c, aligned.affine.f
    return GeoBox((aligned.shape[0] * k, aligned.shape[1] * k), Affine(gsd, 0, left, 0, -gsd, top), crs), tile


def landsat_grid(scene: GeoBox, lon: float) -> GeoBox:
    """The window of the Landsat UTM 30 m grid (pixel corners on odd multiples of 15 m)."""
    return _window(scene, f"EPSG:{utm_epsg(lon)}", 30.0, (15.0, 15.0), margin=240)


def worldcover_grid(scene: GeoBox) -> GeoBox:
    """The window of the ESA WorldCover grid (EPSG:4326, 1/12000 degree)."""
    return _window(scene, "EPSG:4326", WORLDCOVER_STEP, (0.0, 0.0), margin=WORLDCOVER_STEP * 10)
