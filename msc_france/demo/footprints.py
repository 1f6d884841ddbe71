"""The footprint world: where and when Sentinel-2, Landsat 8/9 and WorldCover would have items over
metropolitan France for one season, as typed records (no rasters: nothing is fetched from them).

* Sentinel-2A and 2B: 143 relative orbits in a 10-day cycle, half a cycle apart; a datatake's
  290 km swath yields an item for each MGRS tile (UTM zones 30-32) it meets, clipped to the swath.
  A few percent of the items are delivered twice (another processing time, sometimes another
  processing baseline), as on the Planetary Computer.
* Landsat 8 and 9: WRS-2 scenes on a 16-day repeat, Landsat 9 eight days after Landsat 8; the
  path to the west of a path is flown 7 days later.
* WorldCover: the 3 x 3 degree tiles.
* Cloud cover: a seeded weather field, smooth in space (neighbouring scenes of one date agree) and
  with cloudy spells in time, clearer in mid-summer and in the south.

Everything is deterministic from the seed.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
from dataclasses import dataclass

import numpy as np
import shapely
from shapely.geometry.base import BaseGeometry

from msc_france.config import DateRange
from msc_france.demo.orbits import (
    LANDSAT_ORBIT,
    REF_LAT,
    SENTINEL2_ORBIT,
    MgrsTile,
    Orbit,
    mgrs_tiles,
    scene,
    swath,
    track,
    wrs_row_lat,
)
from msc_france.regions import resolve_region

UTM_ZONES = (30, 31, 32)
S2_SWATH_M = 290_000.0
S2_DATATAKE_LAT = 52.0  # a datatake over France starts as the satellite crosses this latitude
S2_BASELINE, S2_REPROCESSED_BASELINE = "05.09", "05.10"
S2_DUPLICATES = 0.03  # share of items delivered twice
S2_MIN_SHARE = 0.002  # a tile clipped to less than this share of its area has no item
# Anchor: Sentinel-2A on relative orbit 51 over the demo scene (Toulouse) on 2023-06-21 at 10:50:31.
S2_ANCHOR = dt.datetime(2023, 6, 21, 10, 50, 31)
S2_ANCHOR_POINT = (1.365, 43.53)
S2_ANCHOR_ORBIT = 51
S2_PLATFORMS = {"Sentinel-2A": (dt.timedelta(0), 41_756), "Sentinel-2B": (dt.timedelta(days=5), 32_850)}
S2_ORBITS = 143
LANDSAT_SCENE_M = (180_000.0, 185_000.0)  # along, across the track
LANDSAT_PATHS, LANDSAT_ROWS = range(190, 210), range(23, 34)
# Anchor: Landsat 8 over path 198 row 30 on 2023-07-05 at 10:35:12; Landsat 9 eight days later.
LANDSAT_ANCHOR = dt.datetime(2023, 7, 5, 10, 35, 12)
LANDSAT_ANCHOR_SCENE = (198, 30, 1.0)  # path, row, longitude of the scene centre
LANDSAT_PLATFORMS = {"landsat-8": 0, "landsat-9": 8}  # days after the anchor
LANDSAT_CYCLE, LANDSAT_PATHS_PER_CYCLE, LANDSAT_NEXT_PATH_DAYS = 16, 233, 7
WORLDCOVER_STEP = 3  # degrees


@dataclass(frozen=True)
class S2Scene:
    """A Sentinel-2 L2A product of one MGRS tile in one datatake."""

    tile: str
    epsg: int
    platform: str
    relative_orbit: int
    absolute_orbit: int
    datatake: dt.datetime  # sensing start of the datatake, shared by its tiles
    processed: dt.datetime
    baseline: str
    cloud_cover: float
    nodata_percentage: float  # of the tile outside the swath
    footprint: BaseGeometry  # lon/lat: the tile clipped to the swath


@dataclass(frozen=True)
class LandsatScene:
    """A Landsat Collection 2 Level-2 scene of one WRS-2 path/row."""

    platform: str
    path: int
    row: int
    when: dt.datetime
    epsg: int
    cloud_cover: float
    footprint: BaseGeometry


@dataclass(frozen=True)
class WorldCoverTile:
    """A 3 x 3 degree WorldCover tile, named by its south-west corner."""

    lat: int
    lon: int
    footprint: BaseGeometry


@dataclass(frozen=True)
class Footprints:
    s2: tuple[S2Scene, ...]
    landsat: tuple[LandsatScene, ...]
    worldcover: tuple[WorldCoverTile, ...]


class Weather:
    """Cloud cover (percent) by day and place: a regime per day (AR(1): spells of a few days) plus a
    smooth field of random waves (300-900 km) per day, clearer in mid-summer and to the south."""

    def __init__(self, seed: int, season: DateRange) -> None:
        self.seed, self.start = seed, season.start
        days = (season.end - season.start).days + 1
        noise = np.random.default_rng([seed, 31]).normal(size=days)
        regime = np.zeros(days)
        for i in range(days):
            regime[i] = 0.75 * (regime[i - 1] if i else 0.0) + 0.66 * noise[i]
        self.regime = regime

    def cover(self, day: dt.date, lon: float, lat: float) -> float:
        t = (day - self.start).days
        rng = np.random.default_rng([self.seed, 32, t])
        angle, length, phase = rng.uniform(0, math.pi, 5), rng.uniform(300, 900, 5), rng.uniform(0, 2 * math.pi, 5)
        x, y = lon * 111.3 * math.cos(math.radians(REF_LAT)), lat * 111.3
        waves = np.cos(2 * math.pi * (x * np.cos(angle) + y * np.sin(angle)) / length + phase).sum() / math.sqrt(5)
        summer = math.sin(math.pi * (day.timetuple().tm_yday - 91) / 183)
        z = 0.9 * self.regime[t] + 0.8 * waves + 0.12 * (lat - REF_LAT) - 1.1 - 0.6 * summer
        return 100.0 / (1.0 + math.exp(-2.2 * z))


def _wrap(lon: float) -> float:
    return (lon + 180.0) % 360.0 - 180.0


def _lon_ref(orbit: Orbit, lon: float, lat: float) -> float:
    """The name (longitude at REF_LAT) of the track of ``orbit`` through (lon, lat)."""
    return lon - track(orbit).at(0.0, lat)[0]


def _meets(geometry: BaseGeometry, area: BaseGeometry) -> bool:
    return bool(geometry.intersects(area))


def sentinel2(season: DateRange, france: BaseGeometry, weather: Weather, seed: int) -> list[S2Scene]:
    """Every S2 tile product over ``france`` in ``season``, datatake by datatake."""
    tiles = mgrs_tiles(UTM_ZONES, france)
    tree = shapely.STRtree([t.footprint for t in tiles])
    period = dt.timedelta(seconds=SENTINEL2_ORBIT.period_s)
    step = 360.0 * SENTINEL2_ORBIT.period_s / 86400.0  # westward shift of the track from one orbit to the next
    anchor_lon = _lon_ref(SENTINEL2_ORBIT, *S2_ANCHOR_POINT)
    at_ref = S2_ANCHOR - dt.timedelta(seconds=track(SENTINEL2_ORBIT).at(anchor_lon, S2_ANCHOR_POINT[1])[1])
    rng = np.random.default_rng([seed, 30])
    west, _, east, _ = france.bounds
    out: list[S2Scene] = []
    for platform, (offset, absolute) in S2_PLATFORMS.items():
        epoch = at_ref + offset
        first = math.ceil((dt.datetime.combine(season.start, dt.time()) - epoch) / period)
        last = math.floor((dt.datetime.combine(season.end + dt.timedelta(days=1), dt.time()) - epoch) / period)
        for k in range(first, last + 1):
            lon_ref = _wrap(anchor_lon - k * step)
            if not west - 8 < lon_ref < east + 8:
                continue
            strip = swath(SENTINEL2_ORBIT, lon_ref, S2_SWATH_M)
            if not _meets(strip, france):
                continue
            datatake = epoch + k * period + dt.timedelta(
                seconds=track(SENTINEL2_ORBIT).at(lon_ref, S2_DATATAKE_LAT)[1])
            datatake = datatake.replace(microsecond=0)
            processed = datatake + dt.timedelta(minutes=int(rng.integers(90, 300)))
            relative = (S2_ANCHOR_ORBIT - 1 + k) % S2_ORBITS + 1
            for index in sorted(tree.query(strip, predicate="intersects")):
                tile: MgrsTile = tiles[index]
                clipped = tile.footprint.intersection(strip)
                if clipped.area < S2_MIN_SHARE * tile.footprint.area or not _meets(tile.footprint, france):
                    continue
                centre = clipped.centroid
                scene_ = S2Scene(tile.name, tile.epsg, platform, relative, absolute + k, datatake, processed,
                                 S2_BASELINE, round(weather.cover(datatake.date(), centre.x, centre.y), 6),
                                 round(100 * (1 - clipped.area / tile.footprint.area), 6), clipped)
                out.append(scene_)
                if rng.random() < S2_DUPLICATES:
                    again = processed + dt.timedelta(days=int(rng.integers(2, 40)), minutes=int(rng.integers(0, 600)))
                    baseline = S2_REPROCESSED_BASELINE if rng.random() < 0.5 else S2_BASELINE
                    out.append(dataclasses.replace(scene_, processed=again, baseline=baseline))
    return out


def landsat(season: DateRange, france: BaseGeometry, weather: Weather) -> list[LandsatScene]:
    """Every Landsat 8/9 scene over ``france`` in ``season``."""
    path0, row0, lon0 = LANDSAT_ANCHOR_SCENE
    anchor_lat = wrs_row_lat(row0)
    anchor_lon = _lon_ref(LANDSAT_ORBIT, lon0, anchor_lat)
    at_ref = LANDSAT_ANCHOR - dt.timedelta(seconds=track(LANDSAT_ORBIT).at(anchor_lon, anchor_lat)[1])
    spacing = 360.0 / LANDSAT_PATHS_PER_CYCLE
    scenes = []
    for path in LANDSAT_PATHS:
        lon_ref = anchor_lon - (path - path0) * spacing
        for row in LANDSAT_ROWS:
            lat = wrs_row_lat(row)
            footprint = scene(LANDSAT_ORBIT, lon_ref, lat, *LANDSAT_SCENE_M)
            if _meets(footprint, france):
                lon, seconds = track(LANDSAT_ORBIT).at(lon_ref, lat)
                scenes.append((path, row, footprint, lon, dt.timedelta(seconds=seconds + (anchor_lon - lon_ref) * 240)))
    out = []
    for platform, offset in LANDSAT_PLATFORMS.items():
        for path, row, footprint, lon, shift in scenes:
            first_pass = (LANDSAT_ANCHOR.date() - season.start).days + offset + LANDSAT_NEXT_PATH_DAYS * (path - path0)
            day = season.start + dt.timedelta(days=first_pass % LANDSAT_CYCLE)
            while day <= season.end:
                when = (dt.datetime.combine(day, at_ref.time()) + shift).replace(microsecond=0)
                centre = footprint.centroid
                out.append(LandsatScene(platform, path, row, when, 32600 + int((lon + 180) // 6) + 1,
                                        round(weather.cover(day, centre.x, centre.y), 2), footprint))
                day += dt.timedelta(days=LANDSAT_CYCLE)
    return sorted(out, key=lambda s: (s.when, s.path, s.row))


def worldcover(france: BaseGeometry) -> list[WorldCoverTile]:
    """The WorldCover tiles over ``france``."""
    west, south, east, north = france.bounds
    out = []
    for lat in range(math.floor(south / WORLDCOVER_STEP) * WORLDCOVER_STEP, math.ceil(north), WORLDCOVER_STEP):
        for lon in range(math.floor(west / WORLDCOVER_STEP) * WORLDCOVER_STEP, math.ceil(east), WORLDCOVER_STEP):
            square = shapely.box(lon, lat, lon + WORLDCOVER_STEP, lat + WORLDCOVER_STEP)
            if _meets(square, france):
                out.append(WorldCoverTile(lat, lon, square))
    return out


def footprints(season: DateRange, seed: int) -> Footprints:
    """The footprint world of ``season`` over metropolitan France."""
    france = resolve_region("France").geometry.geom
    weather = Weather(seed, season)
    return Footprints(tuple(sentinel2(season, france, weather, seed)), tuple(landsat(season, france, weather)),
                      tuple(worldcover(france)))
