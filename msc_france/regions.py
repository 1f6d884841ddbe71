"""Regions: what ``--region`` accepts, resolved to a lon/lat geometry and a safe folder name.

``resolve_region(text)`` understands, in this order:

1. a GeoJSON (``.geojson``, ``.json``) or GeoPackage (``.gpkg``) file: the union of its polygons;
2. ``demo``: the footprint of the demo world's scene; ``France``: metropolitan France with Corsica,
   the union of the départements' boxes (no finer outline is stored offline);
3. a box ``minlon,minlat,maxlon,maxlat`` in degrees (spaces allowed);
4. a metropolitan département code (``31``, ``2A``, ``01`` or ``1``);
5. a name: a city (a city-core box), a metropolitan région or département. Case, accents, spaces,
   hyphens and apostrophes are ignored, and ``St``/``Ste`` stand for ``Saint``/``Sainte``.
   Paris is both a city and a département: the name gives the city core, the code ``75`` the
   département.

Named places are boxes from ``msc_france/data/regions.json`` (see its provenance, and
``tools/make_regions.py`` which generates it). Everything is offline.
"""

from __future__ import annotations

import difflib
import functools
import json
import math
import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import shapely
from odc.geo.geom import Geometry, box
from shapely.geometry import shape
from shapely.geometry.base import BaseGeometry

from msc_france.config import DemoWorldConfig, load_catalog
from msc_france.errors import UserError
from msc_france.grid import CRS as GRID_CRS
from msc_france.grid import TileGrid, TileId

DATA_FILE = Path(__file__).resolve().parent / "data" / "regions.json"
LONLAT = "EPSG:4326"
# Metropolitan France with Corsica, west, south, east, north in degrees. A box must overlap it by at
# least MIN_INSIDE of its area; a file's geometry must intersect it.
FRANCE_BBOX: tuple[float, float, float, float] = (-5.3, 41.3, 9.7, 51.2)
MIN_INSIDE = 0.5
# City core: a square of 2 x CITY_HALF_SIDE metres (20 km) in Lambert-93, centred on the town hall.
# That covers the dense core of every city listed (Toulouse, Bordeaux, Grenoble...) and keeps a
# region to about 100-150 tiles of 1920 m; use the département, a box or a file for more.
CITY_HALF_SIDE = 10_000.0
FILE_SUFFIXES = (".geojson", ".json", ".gpkg")

BOX_FORM = "give minlon,minlat,maxlon,maxlat in degrees, e.g. 1.30,43.50,1.55,43.70"
GENERIC_HINT = (
    "give a city, région, département name or code, minlon,minlat,maxlon,maxlat or a GeoJSON/GeoPackage file"
)
_NUMBER = r"\s*[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?\s*"
_BOX = re.compile(rf"^{_NUMBER},{_NUMBER},{_NUMBER},{_NUMBER}$")
_CODE = re.compile(r"^(?:\d{1,3}|2[abAB])$")


@dataclass(frozen=True)
class Region:
    """A place to process: display name, folder-safe slug, geometry in EPSG:4326."""

    name: str
    slug: str
    geometry: Geometry


# --- text helpers --------------------------------------------------------------------------------
def _ascii(text: str) -> str:
    text = text.replace("œ", "oe").replace("Œ", "OE").replace("æ", "ae").replace("Æ", "AE")
    return unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii").lower()


def normalise(text: str) -> str:
    """Matching key: ``"Côtes-d'Armor"``, ``"cotes d armor"`` -> ``"cotesdarmor"``."""
    tokens = re.split(r"[^a-z0-9]+", _ascii(text))
    tokens = [{"st": "saint", "ste": "sainte"}.get(t, t) for t in tokens]
    return "".join(tokens)


def slugify(text: str) -> str:
    """A folder name: lowercase ascii letters, digits and single hyphens (never ``/`` or ``..``)."""
    slug = re.sub(r"[^a-z0-9]+", "-", _ascii(text)).strip("-")
    return slug or "region"


# --- named places --------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Place:
    name: str
    slug: str
    bbox: tuple[float, float, float, float] | None = None  # west, south, east, north
    centre: tuple[float, float] | None = None  # lon, lat (cities)

    def region(self) -> Region:
        if self.centre is not None:
            return Region(self.name, self.slug, city_core(*self.centre))
        assert self.bbox is not None
        return Region(self.name, self.slug, box(*self.bbox, crs=LONLAT))


def city_core(lon: float, lat: float, half_side: float = CITY_HALF_SIDE) -> Geometry:
    """The Lambert-93 square of side ``2 * half_side`` metres centred on ``(lon, lat)``, in lon/lat."""
    x, y = Geometry(shapely.Point(lon, lat), LONLAT).to_crs(GRID_CRS).points[0]
    square = box(x - half_side, y - half_side, x + half_side, y + half_side, crs=GRID_CRS)
    return square.segmented(half_side / 50).to_crs(LONLAT)


@functools.cache
def _places() -> tuple[dict[str, _Place], dict[str, _Place], tuple[_Place, ...]]:
    """(places by normalised name, départements by code, all places in help order)."""
    data = json.loads(DATA_FILE.read_text(encoding="utf-8"))
    regions = sorted(
        (_Place(r["name"], slugify(r["name"]), tuple(r["bbox"])) for r in data["regions"]),
        key=lambda p: normalise(p.name),
    )
    deps = [
        _Place(f"{d['name']} ({d['code']})", slugify(f"{d['code']} {d['name']}"), tuple(d["bbox"]))
        for d in data["departements"]
    ]
    cities = [_Place(c["name"], slugify(c["name"]), centre=tuple(c["centre"])) for c in data["cities"]]
    by_name: dict[str, _Place] = {}
    # Later kinds win a shared name: the city of Paris over the département of Paris.
    for place, plain in [*((p, p.name) for p in regions),
                         *((p, d["name"]) for p, d in zip(deps, data["departements"], strict=True)),
                         *((p, p.name) for p in cities)]:
        by_name[normalise(plain)] = place
    for place in deps:  # "Haute-Garonne (31)", as list_regions shows it, resolves too
        by_name.setdefault(normalise(place.name), place)
    by_code = {d["code"]: p for p, d in zip(deps, data["departements"], strict=True)}
    return by_name, by_code, (*cities, *regions, *deps)


def list_regions() -> list[str]:
    """Display names of the named regions, for help text: ``demo``, ``France``, cities, régions, départements."""
    return ["demo", "France", *(p.name for p in _places()[2])]


# --- resolution ----------------------------------------------------------------------------------
def resolve_region(text: str, world: DemoWorldConfig | None = None) -> Region:
    """A region from a name, a code, a box or a file (see the module docstring); UserError otherwise."""
    raw = text.strip()
    if not raw:
        raise UserError(f"empty region; {GENERIC_HINT}")
    if raw.lower().endswith(FILE_SUFFIXES) or "/" in raw or "\\" in raw:
        return _region_from_file(Path(raw))
    if raw.lower() == "demo":
        return _demo_region(world)
    if "," in raw and any(c.isdigit() for c in raw):
        return _region_from_box(raw)
    if _CODE.match(raw):
        return _departement_by_code(raw)
    by_name, _, _ = _places()
    key = normalise(raw)
    if key == "france":
        return _france()
    if key in by_name:
        return by_name[key].region()
    return _unknown(raw, by_name)


def _unknown(raw: str, by_name: dict[str, _Place]) -> Region:
    key = normalise(raw)
    close = difflib.get_close_matches(key, list(by_name), n=3, cutoff=0.75) if key else []
    names = list(dict.fromkeys(by_name[k].name for k in close))
    if names:
        suggestion = names[0] if len(names) == 1 else ", ".join(names[:-1]) + " or " + names[-1]
        raise UserError(
            f"unknown region {_one_line(raw)!r}; did you mean {suggestion}? "
            "(or give minlon,minlat,maxlon,maxlat or a GeoJSON/GeoPackage file)"
        )
    raise UserError(f"unknown region {_one_line(raw)!r}; {GENERIC_HINT}")


def _one_line(text: str) -> str:
    return " ".join(text.split())[:80]


def _demo_region(world: DemoWorldConfig | None) -> Region:
    """The scene of ``world`` (default: the demo catalog's world)."""
    from msc_france.demo.world import scene_geobox  # the demo package is heavier; only when asked

    cfg = world or load_catalog("demo").world
    if cfg is None:
        raise UserError("catalog 'demo' has no world section; the demo region needs it")
    left, bottom, right, top = scene_geobox(cfg).extent.boundingbox
    # Inset by 1 m: the round trip through lon/lat must not graze the tiles around the scene.
    inset = box(left + 1, bottom + 1, right - 1, top - 1, crs=GRID_CRS)
    return Region("demo", "demo", inset.segmented(min(cfg.size, cfg.height or cfg.size) / 96).to_crs(LONLAT))


def _france() -> Region:
    """Metropolitan France with Corsica: the union of the départements' boxes."""
    _, by_code, _ = _places()
    union = shapely.union_all([shapely.box(*p.bbox) for p in by_code.values() if p.bbox is not None])
    return Region("France", "france", Geometry(union, crs=LONLAT))


def _departement_by_code(raw: str) -> Region:
    code = raw.upper().zfill(2)
    if code == "20":
        raise UserError("there is no département 20: Corsica is 2A (Corse-du-Sud) and 2B (Haute-Corse)")
    _, by_code, _ = _places()
    if code not in by_code:
        why = " (overseas départements are outside the France grid)" if code.startswith("97") else ""
        raise UserError(f"unknown département code {raw!r}{why}; metropolitan codes are 01 to 95, 2A and 2B")
    return by_code[code].region()


def _number_slug(value: float) -> str:
    text = f"{value:.4f}".rstrip("0").rstrip(".")
    return text.replace("-", "m").replace(".", "p")


def _region_from_box(raw: str) -> Region:
    shown = _one_line(raw)
    if not _BOX.match(raw):
        raise UserError(f"bad box {shown!r}; {BOX_FORM}")
    west, south, east, north = (float(v) for v in raw.split(","))
    if not all(math.isfinite(v) for v in (west, south, east, north)):
        raise UserError(f"bad box {shown!r}: values must be finite; {BOX_FORM}")
    if not (-180 <= west <= 180 and -180 <= east <= 180 and -90 <= south <= 90 and -90 <= north <= 90):
        raise UserError(f"box {shown!r} is not in degrees (Lambert-93 metres?); {BOX_FORM}")
    if west > east or south > north:
        which = "minlon > maxlon" if west > east else "minlat > maxlat"
        raise UserError(f"box {shown!r} is inverted ({which}); {BOX_FORM}")
    if west == east or south == north:
        raise UserError(f"box {shown!r} is empty (zero width or height); {BOX_FORM}")
    fw, fs, fe, fn = FRANCE_BBOX
    overlap = max(0.0, min(east, fe) - max(west, fw)) * max(0.0, min(north, fn) - max(south, fs))
    share = overlap / ((east - west) * (north - south))
    france = f"metropolitan France ({fw},{fs},{fe},{fn})"
    if share == 0:
        raise UserError(f"box {shown!r} is outside {france}; {BOX_FORM} (lon first, then lat)")
    if share < MIN_INSIDE:
        raise UserError(f"box {shown!r} lies mostly outside {france} ({share:.0%} inside); {BOX_FORM}")
    name = f"box {west:g},{south:g},{east:g},{north:g}"
    slug = "box-" + "-".join(_number_slug(v) for v in (west, south, east, north))
    return Region(name, slug, box(west, south, east, north, crs=LONLAT))


# --- files ---------------------------------------------------------------------------------------
def _show(path: Path) -> str:
    """A path for a one-line message (control characters escaped)."""
    text = str(path)
    return text if text.isprintable() else ascii(text)


def _polygons(geom: BaseGeometry | None) -> list[BaseGeometry]:
    """The polygonal parts of a geometry (collections are opened, points and lines dropped)."""
    if geom is None or geom.is_empty:
        return []
    if geom.geom_type in ("Polygon", "MultiPolygon"):
        return [geom] if geom.is_valid else _polygons(shapely.make_valid(geom))
    if isinstance(geom, shapely.GeometryCollection):
        return [p for part in geom.geoms for p in _polygons(part)]
    return []


def _geojson_geometries(path: Path) -> tuple[list[BaseGeometry | None], str]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise UserError(f"{_show(path)}: is not UTF-8 text; save it as UTF-8 GeoJSON") from None
    except json.JSONDecodeError as exc:
        raise UserError(f"{_show(path)}: is not valid JSON (line {exc.lineno}); expected GeoJSON") from None
    if not isinstance(data, dict) or "type" not in data:
        raise UserError(f"{_show(path)}: is not GeoJSON (expected a FeatureCollection, Feature or geometry object)")
    crs = LONLAT
    named = (data.get("crs") or {}).get("properties", {}).get("name") if isinstance(data.get("crs"), dict) else None
    if isinstance(named, str):  # pre-RFC 7946 files may name their CRS; RFC 7946 means lon/lat
        crs = named
    kind = data["type"]
    if kind == "FeatureCollection":
        features = data.get("features") or []
        if not isinstance(features, list):  # found by fuzzing: a TypeError before
            raise UserError(f"{_show(path)}: its features are not a list; expected a GeoJSON FeatureCollection")
        items = [f.get("geometry") if isinstance(f, dict) else None for f in features]
    elif kind == "Feature":
        items = [data.get("geometry")]
    else:
        items = [data]
    geoms: list[BaseGeometry | None] = []
    for i, item in enumerate(items):
        if item is None:
            geoms.append(None)
            continue
        try:
            geoms.append(shape(item))
        except Exception as exc:  # noqa: BLE001 - any malformed geometry is the user's to fix
            reason = _one_line(str(exc)) or type(exc).__name__
            raise UserError(f"{_show(path)}: geometry {i + 1} is not valid GeoJSON ({reason})") from None
    return geoms, crs


def _gpkg_layers(path: Path) -> list[tuple[list[BaseGeometry | None], str]]:
    try:
        import pyogrio
        import pyogrio.raw
        from pyogrio.errors import DataSourceError
    except ImportError:  # pragma: no cover - pyogrio is a dependency
        raise UserError(f"{_show(path)}: reading GeoPackage needs pyogrio (pip install pyogrio)") from None
    try:
        layers = pyogrio.list_layers(path)
        out = []
        for name, geometry_type in layers:
            if geometry_type is None:
                continue
            meta, _, wkb, _ = pyogrio.raw.read(path, layer=name, read_geometry=True, columns=[])
            geoms = [None if g is None else shapely.from_wkb(g) for g in wkb]
            out.append((geoms, meta.get("crs") or LONLAT))
        return out
    except DataSourceError as exc:
        raise UserError(f"{_show(path)}: not a readable GeoPackage ({_one_line(str(exc))})") from None
    except shapely.errors.GEOSException as exc:
        raise UserError(f"{_show(path)}: unreadable geometry ({_one_line(str(exc))})") from None


def _region_from_file(path: Path) -> Region:
    suffix = path.suffix.lower()
    if suffix not in FILE_SUFFIXES:
        raise UserError(f"{_show(path)}: unsupported region file; give a .geojson, .json or .gpkg file")
    if not path.is_file():
        raise UserError(f"{_show(path)}: no such file")
    layers = _gpkg_layers(path) if suffix == ".gpkg" else [_geojson_geometries(path)]
    parts: list[BaseGeometry] = []
    found: set[str] = set()
    for geoms, crs in layers:
        for i, geom in enumerate(geoms):  # GEOS fails on NaN or infinite coordinates (found by fuzzing)
            if geom is not None and not np.all(np.isfinite(shapely.get_coordinates(geom))):
                raise UserError(f"{_show(path)}: geometry {i + 1} has a coordinate that is not a finite number; "
                                "give longitudes and latitudes in degrees")
        polys = [p for g in geoms for p in _polygons(g)]
        found.update(g.geom_type for g in geoms if g is not None and not g.is_empty)
        if not polys:
            continue
        try:
            merged = Geometry(shapely.union_all(polys), crs=crs)
            parts.append(merged.to_crs(LONLAT).geom)
        except Exception as exc:  # noqa: BLE001 - bad CRS names, failed transforms
            reason = _one_line(str(exc))
            raise UserError(f"{_show(path)}: cannot reproject from {crs!r} to lon/lat ({reason})") from None
    if not parts:
        what = f" (found {', '.join(sorted(found))})" if found else ""
        raise UserError(f"{_show(path)}: no polygons{what}; a region file must hold polygons or multipolygons")
    union = shapely.union_all(parts)
    if not union.is_valid:
        union = shapely.make_valid(union)
    if union.is_empty or not np.all(np.isfinite(union.bounds)):
        raise UserError(f"{_show(path)}: its polygons are empty")
    if not union.intersects(shapely.box(*FRANCE_BBOX)):
        raise UserError(f"{_show(path)}: its polygons are outside metropolitan France {FRANCE_BBOX}; wrong CRS?")
    return Region(" ".join(path.stem.split()), slugify(path.stem), Geometry(union, crs=LONLAT))


# --- tiles ---------------------------------------------------------------------------------------
def region_tiles(region: Region, grid: TileGrid) -> list[TileId]:
    """Tiles of ``grid`` whose footprint intersects the region, sorted by row then column."""
    return grid.tiles_in(region.geometry)
