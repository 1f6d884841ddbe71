"""Where sun-synchronous satellites look, simply but plausibly: descending ground tracks, swaths, the
Sentinel-2 MGRS tiling and the Landsat WRS-2 scenes, in lon/lat (EPSG:4326).

A descending ground track is integrated from the orbit's inclination and period and the Earth's
rotation; every track of one satellite is the same curve shifted in longitude, so a track is named
by its longitude at :data:`REF_LAT`.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np
import shapely
from pyproj import Geod, Transformer
from shapely.geometry.base import BaseGeometry

GEOD = Geod(ellps="WGS84")
REF_LAT = 46.0  # tracks are named by their longitude at this latitude (the middle of France)
SIDEREAL_DAY_S = 86164.1
LATS = np.arange(56.0, 36.0 - 1e-9, -0.1)  # track samples, north to south (descending)


@dataclass(frozen=True)
class Orbit:
    """A sun-synchronous orbit: inclination (degrees) and period (seconds)."""

    inclination: float
    period_s: float


SENTINEL2_ORBIT = Orbit(98.62, 10 * 86400 / 143)  # 143 orbits in the 10-day repeat cycle
LANDSAT_ORBIT = Orbit(98.2, 16 * 86400 / 233)  # 233 orbits (WRS-2 paths) in the 16-day repeat cycle


@dataclass(frozen=True)
class Track:
    """A descending ground track: lon offset from the track's longitude at REF_LAT, and seconds after
    crossing REF_LAT, at each latitude of :data:`LATS`."""

    dlon: np.ndarray
    seconds: np.ndarray

    def at(self, lon_ref: float, lat: float) -> tuple[float, float]:
        """(longitude, seconds after REF_LAT) of the track named ``lon_ref`` at ``lat``."""
        dlon = float(np.interp(lat, LATS[::-1], self.dlon[::-1]))
        return lon_ref + dlon, float(np.interp(lat, LATS[::-1], self.seconds[::-1]))

    def line(self, lon_ref: float) -> np.ndarray:
        """(n, 2) lon/lat points of the track named ``lon_ref``, north to south."""
        return np.column_stack([lon_ref + self.dlon, LATS])


@functools.cache
def track(orbit: Orbit) -> Track:
    """The descending ground track of ``orbit`` (spherical Earth, circular orbit)."""
    n = 2 * math.pi / orbit.period_s
    omega = 2 * math.pi / SIDEREAL_DAY_S
    cos_i = math.cos(math.radians(orbit.inclination))
    phi = np.radians(LATS)
    dphi_dt = -n * np.sqrt(1 - (cos_i / np.cos(phi)) ** 2)
    dlon_dt = n * cos_i / np.cos(phi) ** 2 - omega
    step = np.diff(phi)

    def mid(a: np.ndarray) -> np.ndarray:
        middle: np.ndarray = (a[1:] + a[:-1]) / 2
        return middle

    dlon = np.concatenate([[0.0], np.cumsum(mid(dlon_dt / dphi_dt) * step)])
    seconds = np.concatenate([[0.0], np.cumsum(step / mid(dphi_dt))])
    ref = math.radians(REF_LAT)
    at_ref = np.interp(ref, phi[::-1], dlon[::-1]), np.interp(ref, phi[::-1], seconds[::-1])
    return Track(np.degrees(dlon - at_ref[0]), seconds - at_ref[1])


def swath(orbit: Orbit, lon_ref: float, width_m: float) -> BaseGeometry:
    """The strip of ``width_m`` centred on the track named ``lon_ref``."""
    points = track(orbit).line(lon_ref)
    heading, _, _ = GEOD.inv(points[:-1, 0], points[:-1, 1], points[1:, 0], points[1:, 1])
    heading = np.append(heading, heading[-1])
    edges = [GEOD.fwd(points[:, 0], points[:, 1], heading + side, np.full(len(points), width_m / 2))[:2]
             for side in (90.0, -90.0)]
    ring = np.concatenate([np.column_stack(edges[0]), np.column_stack(edges[1])[::-1]])
    return shapely.Polygon(ring)


def scene(orbit: Orbit, lon_ref: float, lat: float, along_m: float, across_m: float) -> BaseGeometry:
    """A rectangle of ``along_m`` x ``across_m`` centred on the track named ``lon_ref`` at ``lat``,
    its sides along and across the track."""
    lon, _ = track(orbit).at(lon_ref, lat)
    south = track(orbit).at(lon_ref, lat - 0.1)[0]
    heading = GEOD.inv(lon, lat, south, lat - 0.1)[0]
    corners = []
    for along, across in ((1, 1), (1, -1), (-1, -1), (-1, 1)):
        x, y, _ = GEOD.fwd(lon, lat, heading + (0 if along > 0 else 180), along_m / 2)
        x, y, _ = GEOD.fwd(x, y, heading + 90 * across, across_m / 2)
        corners.append((x, y))
    return shapely.Polygon(corners)


# --- Sentinel-2 MGRS tiles -------------------------------------------------------------------------
MGRS_COLUMNS = ("ABCDEFGH", "JKLMNPQR", "STUVWXYZ")  # 100 km column letters, by (zone - 1) % 3
MGRS_ROWS = "ABCDEFGHJKLMNPQRSTUV"  # 100 km row letters, from northing 0 (odd zones; even ones start at F)
MGRS_SIDE = 109_800.0  # a Sentinel-2 tile: 109.8 km on the 100 km grid, so neighbours overlap by 9.8 km
MGRS_BANDS = {"T": (40.0, 48.0), "U": (48.0, 56.0)}


@dataclass(frozen=True)
class MgrsTile:
    """One Sentinel-2 tile: its name (``31TCJ``), UTM EPSG code and lon/lat square."""

    name: str
    epsg: int
    footprint: BaseGeometry


def mgrs_square(zone: int, easting: float, northing: float) -> str:
    """The MGRS 100 km square letters of the square whose south-west corner is (easting, northing)."""
    column = MGRS_COLUMNS[(zone - 1) % 3][int(easting // 100_000) - 1]
    row = MGRS_ROWS[(int(northing // 100_000) + (0 if zone % 2 else 5)) % 20]
    return column + row


def mgrs_tiles(zones: tuple[int, ...], area: BaseGeometry) -> list[MgrsTile]:
    """The tiles of UTM ``zones`` (latitude bands T and U) whose square meets ``area`` (lon/lat)."""
    tiles = []
    for zone in zones:
        epsg = 32600 + zone
        to_lonlat = Transformer.from_crs(epsg, 4326, always_xy=True)
        west = -180.0 + 6 * (zone - 1)
        for easting in range(100_000, 900_000, 100_000):
            for northing in range(4_400_000, 6_300_000, 100_000):
                if not _meets_zone(to_lonlat, easting, northing, west):
                    continue
                centre = to_lonlat.transform(easting + 50_000, northing + 50_000)
                band = next((b for b, (s, n) in MGRS_BANDS.items() if s <= centre[1] < n), None)
                if band is None:
                    continue
                left, top = easting - 40.0, northing + 100_020.0
                square = _densified(left, top - MGRS_SIDE, left + MGRS_SIDE, top)
                footprint = shapely.Polygon(np.column_stack(to_lonlat.transform(square[:, 0], square[:, 1])))
                if footprint.intersects(area):
                    tiles.append(MgrsTile(f"{zone}{band}{mgrs_square(zone, easting, northing)}", epsg, footprint))
    return tiles


def _meets_zone(to_lonlat: Transformer, easting: float, northing: float, west: float) -> bool:
    """Whether the 100 km square reaches into the zone's 6 degrees of longitude."""
    lon, _ = to_lonlat.transform([easting, easting + 100_000], [northing + 50_000] * 2)
    return bool(lon[0] < west + 6 and lon[1] >= west)


def _densified(left: float, bottom: float, right: float, top: float, per_side: int = 4) -> np.ndarray:
    """The corners of a box with ``per_side - 1`` points between them, counter-clockwise."""
    t = np.linspace(0, 1, per_side, endpoint=False)
    xs = np.concatenate([left + (right - left) * t, np.full(per_side, right), right - (right - left) * t,
                         np.full(per_side, left)])
    ys = np.concatenate([np.full(per_side, bottom), bottom + (top - bottom) * t, np.full(per_side, top),
                         top - (top - bottom) * t])
    return np.column_stack([xs, ys])


# --- Landsat WRS-2 ---------------------------------------------------------------------------------
WRS_ROWS_PER_ORBIT = 248
WRS_EQUATOR_ROW = 60  # descending node


def wrs_row_lat(row: int) -> float:
    """Latitude of the centre of WRS-2 row ``row`` (northern hemisphere, descending)."""
    u = math.radians((WRS_EQUATOR_ROW - row) * 360 / WRS_ROWS_PER_ORBIT)
    return math.degrees(math.asin(math.sin(math.radians(LANDSAT_ORBIT.inclination)) * math.sin(u)))
