"""VHR from OGC services (the IGN Géoplateforme's BD ORTHO, key-free) through GDAL's WMS and WMTS
drivers, fetched window by window in Lambert-93 at the recipe's VHR GSD.

* **Windows**: blocks of grid tiles of at most ``window_px`` pixels a side (aligned on the France
  grid), so memory is bounded by one window whatever the region's size; each window is a local COG
  plus a record, written last, so a rerun resumes window by window.
* **Bands**: R, G, B from the true-colour layer (through the WMTS in Lambert-93 when the source names
  one), NIR from band 1 of the infrared-colour layer (NIR, R, G).
* **Coverage** is measured from the layer's transparency (PNG) or its white background (JPEG).
* **Date**: the days of flight over the window from the mosaic-graph WFS (``graphe_bdortho``,
  ``date_vol``) through GDAL's WFS driver; where it has none or fails, the newest dated campaign
  layer (``ORTHOIMAGERY.ORTHOPHOTOS{year}``) listed in the WMS capabilities that covers the window
  gives the campaign year. What was used is recorded.
* **Retries**: GDAL retries 429 and 5xx itself (``GDAL_HTTP_MAX_RETRY``, never sooner than
  ``retry_delay``, the Géoplateforme's 5 s block), then the whole window is retried.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

import numpy as np
import pyogrio
import rasterio
import shapely
from affine import Affine
from odc.geo.geobox import GeoBox
from odc.geo.geom import BoundingBox, Geometry
from pyogrio.errors import DataLayerError, DataSourceError, FieldError
from rasterio.enums import Resampling
from rasterio.errors import NotGeoreferencedWarning, RasterioIOError
from rasterio.windows import from_bounds

from msc_france.cog import write_cog
from msc_france.config import Recipe, WmsSource
from msc_france.download.candidates import Candidate
from msc_france.download.fetch import AssetJob, Fetched, describe, local_state
from msc_france.download.http import FetchError
from msc_france.download.local_catalog import FILE_EXT, PROJ_EXT, RASTER_EXT, local_asset, write_json
from msc_france.download.plan import SensorCandidates
from msc_france.grid import CRS, EXTENT_SIZE, ORIGIN, TileGrid, TileId, tiles_between
from msc_france.redact import redact, redact_text
from msc_france.sensors import SENSORS

RECORD = "window.json"
PROBE_PX = 64  # pixels a side of the coverage probe of a dated layer
WHITE = 255


def service_id(source: WmsSource) -> str:
    """The plan's name for a WMS/WMTS source (its window items are named by window)."""
    return f"wms-{source.layer.lower().replace('.', '-')}"


def wms_sensor(key: str, source: WmsSource, region_l93: Geometry) -> tuple[SensorCandidates, str]:
    """The candidates of a WMS source for planning: the flights of its mosaic graph over the region (one
    candidate per graph area, with its day of flight), or, where the catalog names no WFS or it fails,
    the whole service (its coverage and dates measured window by window when fetched); and a note."""
    name = service_id(source)
    wfs = source.dates_wfs
    if wfs is None:
        return SensorCandidates(key, [], "cover", whole_service=name), ""
    graph, problem = _graph(source, region_l93.boundingbox)
    if graph is None or graph.empty:
        note = problem or f"the WFS {wfs.typename} has no flight over the region"
        return SensorCandidates(key, [], "cover", whole_service=name), note
    candidates = [
        Candidate(key, None, name, dt.date.fromisoformat(str(day)[:10]), 0.0, Geometry(geom, CRS), f"{name}:{i}")
        for i, (day, geom) in enumerate(zip(graph[wfs.field], graph.geometry, strict=True))
        if geom is not None and not geom.is_empty
    ]
    return SensorCandidates(key, candidates, "cover"), f"VHR coverage and days of flight from the WFS {wfs.typename}"


def _graph(source: WmsSource, box: BoundingBox) -> tuple[Any, str]:
    """The source's mosaic-graph features over ``box`` (a GeoDataFrame in Lambert-93), or None and why."""
    wfs = source.dates_wfs
    if wfs is None:
        return None, ""
    name = f"WFS:{wfs.url}{'' if '?' in wfs.url else '?'}"
    pyogrio.set_gdal_config_options({"GDAL_HTTP_MAX_RETRY": str(source.retries),
                                     "GDAL_HTTP_RETRY_DELAY": str(source.retry_delay)})
    try:
        return pyogrio.read_dataframe(name, layer=wfs.typename, columns=[wfs.field], bbox=tuple(box)), ""
    except (DataSourceError, DataLayerError, FieldError) as exc:
        return None, f"the WFS {wfs.typename} failed ({_reason(exc)})"


# --- windows -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class VhrWindow:
    """A block of grid tiles fetched as one local COG."""

    window_id: str
    bounds: tuple[float, float, float, float]  # Lambert-93 left, bottom, right, top
    tiles: int

    @property
    def box(self) -> BoundingBox:
        return BoundingBox(*self.bounds, crs=CRS)


def vhr_windows(grid: TileGrid, tiles: Sequence[TileId], window_px: int) -> list[VhrWindow]:
    """The region's tiles grouped in blocks of ``window_px // tile_px`` tiles a side on the grid."""
    side = window_side(grid, window_px)
    blocks: dict[tuple[int, int], list[TileId]] = {}
    for tile in tiles:
        blocks.setdefault((tile.col // side, tile.row // side), []).append(tile)
    windows = []
    for members in sorted(blocks.values(), key=lambda m: (m[0].row // side, m[0].col // side)):
        box = tiles_between(grid, members)
        windows.append(VhrWindow(window_id(members[0], side), box.bbox, len(members)))
    return windows


def window_side(grid: TileGrid, window_px: int) -> int:
    """Tiles along one side of a VHR window."""
    return max(1, window_px // grid.tile_px("vhr"))


def window_id(tile: TileId, side: int) -> str:
    """The id (and local item id) of the window that holds ``tile``."""
    return f"vhr-{tile.col // side * side:04d}_{tile.row // side * side:04d}-{side}"


# --- GDAL descriptions ---------------------------------------------------------------------------
def gdal_wms_xml(source: WmsSource, layer: str) -> str:
    """A GDAL WMS description of ``layer`` over the France grid extent at the source's native GSD.

    No ``<Cache/>``: GDAL would write tiles outside the data folder. Blocks stay under the
    service's size limit per GetMap."""
    width = int(EXTENT_SIZE[0] / source.native_gsd)
    height = int(EXTENT_SIZE[1] / source.native_gsd)
    url = source.url if source.url.endswith("?") else f"{source.url}?"
    block = min(512, source.max_side)
    png = source.format == "image/png"
    return (
        "<GDAL_WMS><Service name=\"WMS\"><Version>1.3.0</Version>"
        f"<ServerUrl>{escape(url)}</ServerUrl><CRS>EPSG:2154</CRS>"
        f"<ImageFormat>{escape(source.format)}</ImageFormat><Layers>{escape(layer)}</Layers>"
        f"<Transparent>{'TRUE' if png else 'FALSE'}</Transparent></Service>"
        f"<DataWindow><UpperLeftX>{ORIGIN[0]}</UpperLeftX><UpperLeftY>{ORIGIN[1]}</UpperLeftY>"
        f"<LowerRightX>{ORIGIN[0] + EXTENT_SIZE[0]}</LowerRightX>"
        f"<LowerRightY>{ORIGIN[1] - EXTENT_SIZE[1]}</LowerRightY>"
        f"<SizeX>{width}</SizeX><SizeY>{height}</SizeY></DataWindow>"
        f"<BandsCount>{4 if png else 3}</BandsCount><BlockSizeX>{block}</BlockSizeX><BlockSizeY>{block}</BlockSizeY>"
        "<OverviewCount>20</OverviewCount><MaxConnections>4</MaxConnections>"
        "<ZeroBlockHttpCodes>204,404</ZeroBlockHttpCodes></GDAL_WMS>"
    )


def gdal_wmts_name(url: str, layer: str, matrix_set: str) -> str:
    """GDAL's WMTS connection string for ``layer`` in ``matrix_set``."""
    base = url if "?" in url else f"{url}?SERVICE=WMTS&REQUEST=GetCapabilities"
    return f"WMTS:{base},layer={layer},tilematrixset={matrix_set}"


def gdal_env(source: WmsSource) -> dict[str, str | int]:
    """GDAL settings of one fetch: bounded block cache, GDAL's own HTTP retries."""
    return {
        "GDAL_CACHEMAX": source.cache_mb * 2**20,
        "GDAL_HTTP_MAX_RETRY": str(source.retries),
        "GDAL_HTTP_RETRY_DELAY": str(source.retry_delay),
        "GDAL_HTTP_RETRY_CODES": "429,500,502,503,504",
        "GDAL_DISABLE_READDIR_ON_OPEN": "EMPTY_DIR",
    }


# --- reading -------------------------------------------------------------------------------------
def _read(name: str, box: BoundingBox, shape: tuple[int, int], bands: Sequence[int]) -> np.ndarray:
    """Bands of a GDAL raster over ``box`` resampled to ``shape`` (average), as uint8."""
    with rasterio.open(name) as dataset:
        window = from_bounds(*box, transform=dataset.transform)
        data: np.ndarray = dataset.read(list(bands), window=window, out_shape=(len(bands), *shape), boundless=False,
                                        resampling=Resampling.average)
        return data


def _covered(data: np.ndarray, png: bool) -> np.ndarray:
    """Where the layer has imagery: opaque (PNG alpha, last band) or not background white (JPEG)."""
    covered: np.ndarray = data[-1] >= 128 if png else ~(data == WHITE).all(axis=0)
    return covered


@dataclass(frozen=True)
class LayerSet:
    """The layers a fetch reads: true colour, infrared colour and dated campaigns (newest first)."""

    rgb: str  # a GDAL dataset name (WMS description or WMTS connection)
    irc: str | None
    dated: tuple[tuple[int, str, str], ...]  # (year, layer name, GDAL dataset name)


def layer_set(source: WmsSource) -> LayerSet:
    """Where each band and the dates come from, with the dated layers the capabilities list."""
    rgb = (gdal_wmts_name(source.wmts.url, source.wmts.layer, source.wmts.matrix_set) if source.wmts
           else gdal_wms_xml(source, source.layer))
    irc = gdal_wms_xml(source, source.nir_layer) if source.nir_layer else None
    return LayerSet(rgb, irc, tuple((year, name, gdal_wms_xml(source, name)) for year, name in dated_layers(source)))


def dated_layers(source: WmsSource) -> list[tuple[int, str]]:
    """(year, layer) of the dated campaign layers that the WMS capabilities list, newest first."""
    if not source.dated_layer:
        return []
    pattern = re.compile("^" + re.escape(source.dated_layer).replace(re.escape("{year}"), r"(\d{4})") + "$")
    separator = "&" if "?" in source.url else "?"
    capabilities = f"WMS:{source.url}{separator}SERVICE=WMS&VERSION=1.3.0&REQUEST=GetCapabilities"
    try:
        with rasterio.Env(**gdal_env(source)), warnings.catch_warnings():
            warnings.simplefilter("ignore", NotGeoreferencedWarning)  # a listing of layers, not a raster
            listing = rasterio.open(capabilities)
            with listing:
                names = [dict(p.split("=", 1) for p in sub.split("?", 1)[1].split("&") if "=" in p).get("LAYERS", "")
                         for sub in listing.subdatasets]
    except RasterioIOError as exc:
        raise FetchError(f"{redact(source.url)}: cannot read the WMS capabilities ({_reason(exc)})") from None
    years = {int(m.group(1)): name for name in names if (m := pattern.match(name))}
    return sorted(years.items(), reverse=True)


def _reason(exc: Exception) -> str:
    return redact_text(" ".join(str(exc).split()))[:200]


# --- one window ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class WindowRecord:
    """What one fetched window holds: written beside its COG, last, so it marks the window complete."""

    window_id: str
    bounds: tuple[float, float, float, float]
    coverage: float  # share of the window with imagery
    year: int | None  # campaign year, None where neither the mosaic graph nor a dated layer dates the window
    date_source: str  # the WFS or layer the date was read from, or why there is none
    layers: tuple[str, ...]  # the layers the bands were read from
    bands: tuple[str, ...]
    flights: tuple[tuple[str, float], ...] = ()  # (day of flight, share of the window), largest share first

    @classmethod
    def read(cls, path: Path) -> WindowRecord | None:
        try:
            data = json.loads(path.read_text())
            return cls(**{**data, "bounds": tuple(data["bounds"]), "layers": tuple(data["layers"]),
                          "bands": tuple(data["bands"]), "flights": tuple(tuple(f) for f in data.get("flights", ()))})
        except (OSError, ValueError, TypeError, KeyError):
            return None

    def write(self, path: Path) -> None:
        write_json(path, asdict(self))

    @property
    def datetime(self) -> dt.datetime | None:
        """The day of flight of most of the window, where the mosaic graph gives days."""
        return dt.datetime.fromisoformat(self.flights[0][0]).replace(tzinfo=dt.UTC) if self.flights else None

    @property
    def start(self) -> dt.datetime | None:
        if self.flights:
            return dt.datetime.fromisoformat(min(day for day, _ in self.flights)).replace(tzinfo=dt.UTC)
        return dt.datetime(self.year, 1, 1, tzinfo=dt.UTC) if self.year else None

    @property
    def end(self) -> dt.datetime | None:
        if self.flights:
            last = dt.datetime.fromisoformat(max(day for day, _ in self.flights)).replace(tzinfo=dt.UTC)
            return last + dt.timedelta(days=1, seconds=-1)
        return dt.datetime(self.year, 12, 31, 23, 59, 59, tzinfo=dt.UTC) if self.year else None


@dataclass(frozen=True)
class WindowResult:
    record: WindowRecord
    fetched: Fetched


def _job(window: VhrWindow, source: WmsSource, recipe: Recipe, root: Path) -> AssetJob:
    names = tuple(recipe.sensors["vhr"].bands)
    return AssetJob("vhr", window.window_id, "image", source.url, tuple(range(1, len(names) + 1)), names,
                    recipe.tile_grid.gsd("vhr"), "average", root / "vhr" / window.window_id / "image.tif", CRS)


def fetch_window(window: VhrWindow, source: WmsSource, recipe: Recipe, root: Path, layers: LayerSet,
                 sleep: Callable[[float], None] = time.sleep) -> WindowResult:
    """Fetch one window unless complete; retried whole ``source.window_attempts`` times."""
    job = _job(window, source, recipe, root)
    record_path = job.path.parent / RECORD
    record = WindowRecord.read(record_path)
    state = local_state(job.path, None)  # no catalog record here: every block must read back
    if record is not None and record.bounds == window.bounds and state == "complete":
        return WindowResult(record, describe(job, skipped=True))
    problem = ""
    for attempt in range(source.window_attempts):
        try:
            record = _fetch_window(window, job, source, layers)
            record.write(record_path)
            return WindowResult(record, describe(job, skipped=False, refetched=state == "damaged"))
        except RasterioIOError as exc:
            problem = _reason(exc)
            if attempt + 1 < source.window_attempts:
                sleep(source.retry_delay * 2**attempt)
    raise FetchError(f"{window.window_id}: {problem} (after {source.window_attempts} attempts)")


def _fetch_window(window: VhrWindow, job: AssetJob, source: WmsSource, layers: LayerSet) -> WindowRecord:
    gsd = job.target_gsd
    box = window.box
    shape = (round(box.span_y / gsd), round(box.span_x / gsd))
    png = source.format == "image/png" or source.wmts is not None
    wanted = job.band_names
    with rasterio.Env(**gdal_env(source)):
        rgb = _read(layers.rgb, box, shape, (1, 2, 3, 4) if png else (1, 2, 3))
        covered = _covered(rgb, png)
        planes = {"red": rgb[0], "green": rgb[1], "blue": rgb[2]}
        used = [source.wmts.layer if source.wmts else source.layer]
        if "nir" in wanted:
            if layers.irc is None:
                raise FetchError(f"the recipe asks for nir but the VHR source {redact(source.url)} has no nir_layer")
            irc_png = source.format == "image/png"
            irc = _read(layers.irc, box, shape, (1, 2, 3, 4) if irc_png else (1, 2, 3))
            planes["nir"] = irc[0]
            covered &= _covered(irc, irc_png)
            del irc
            used.append(source.nir_layer or "")
        del rgb
    flights, date_source = flight_dates(source, box)
    year: int | None
    if flights:
        year = int(flights[0][0][:4])
    else:
        with rasterio.Env(**gdal_env(source)):
            year, layer_source = _campaign(layers, box, png)
        date_source = f"{date_source}; {layer_source}" if date_source else layer_source
    data = np.stack([np.where(covered, np.maximum(planes[name], 1), 0).astype(np.uint8) for name in wanted])
    geobox = GeoBox(shape, Affine(gsd, 0, box.left, 0, -gsd, box.top), CRS)
    write_cog(job.path, data, geobox, 0, "average", list(wanted))
    return WindowRecord(window.window_id, window.bounds, round(float(covered.mean()), 6), year, date_source,
                        tuple(used), tuple(wanted), flights)


def flight_dates(source: WmsSource, box: BoundingBox) -> tuple[tuple[tuple[str, float], ...], str]:
    """(day of flight, share of ``box``) from the source's mosaic-graph WFS, largest share first, and
    where they came from; no days (and why) where the source names no WFS or it fails."""
    graph, problem = _graph(source, box)
    if graph is None or source.dates_wfs is None:
        return (), problem
    wfs = source.dates_wfs
    clipped = graph.geometry.intersection(shapely.box(*box)).area / (box.span_x * box.span_y)
    shares = clipped.groupby(graph[wfs.field].astype(str).str[:10]).sum()
    flights = tuple((str(day), round(float(share), 6)) for day, share in shares.sort_values(ascending=False).items()
                    if share > 0)
    return flights, f"WFS {wfs.typename} {wfs.field}" if flights else f"the WFS {wfs.typename} has no flight there"


def _campaign(layers: LayerSet, box: BoundingBox, png: bool) -> tuple[int | None, str]:
    """The newest dated layer with imagery over ``box`` (a coarse probe), and which layer said so."""
    for year, layer, gdal_name in layers.dated:
        probe = _read(gdal_name, box, (PROBE_PX, PROBE_PX), (1, 2, 3, 4) if png else (1, 2, 3))
        if _covered(probe, png).any():
            return year, layer
    return None, "no dated layer covers the window" if layers.dated else "the source names no dated layer"


def fetch_windows(windows: Sequence[VhrWindow], source: WmsSource, recipe: Recipe, root: Path,
                  on_done: Callable[[VhrWindow, WindowResult | None, str | None], None]) -> None:
    """Fetch windows one after the other (GDAL fetches each window's blocks in parallel)."""
    if not windows:
        return
    try:
        layers = layer_set(source)
    except FetchError as exc:
        for window in windows:
            on_done(window, None, str(exc))
        return
    for window in windows:
        try:
            on_done(window, fetch_window(window, source, recipe, root, layers), None)
        except (FetchError, OSError, RuntimeError) as exc:
            on_done(window, None, _reason(exc))


def window_item(result: WindowResult, root: Path, api_url: str) -> dict[str, Any]:
    """The local STAC item of one fetched window: its days of flight (or campaign year) as its dates,
    and what was read."""
    record, fetched = result.record, result.fetched
    footprint = Geometry(BoundingBox(*record.bounds, crs=CRS).polygon.geom, CRS).to_crs("EPSG:4326")
    assert record.start is not None and record.end is not None
    encoding = SENSORS["vhr"].encoding
    asset = local_asset(fetched, root, ["data"], f"{api_url} layers {', '.join(record.layers)}")
    asset["raster:bands"] = [{"scale": encoding.scale, "offset": encoding.offset, "nodata": encoding.nodata,
                              "data_type": encoding.dtype, "name": name} for name in record.bands]
    return {
        "type": "Feature",
        "stac_version": "1.0.0",
        "stac_extensions": [FILE_EXT, PROJ_EXT, RASTER_EXT],
        "id": record.window_id,
        "collection": "vhr",
        "geometry": footprint.json,
        "bbox": list(footprint.boundingbox),
        "properties": {
            "datetime": record.datetime.isoformat().replace("+00:00", "Z") if record.datetime else None,
            "start_datetime": record.start.isoformat().replace("+00:00", "Z"),
            "end_datetime": record.end.isoformat().replace("+00:00", "Z"),
            "gsd": fetched.job.target_gsd,
            "msc:sensor": "vhr",
            "msc:source_item": record.window_id,
            "msc:source_api": api_url,
            "msc:source_layers": list(record.layers),
            "msc:date_source": record.date_source,
            "msc:flights": [list(f) for f in record.flights],
            "msc:coverage": record.coverage,
        },
        "links": [],
        "assets": {"image": asset},
    }
