"""Validated configuration files: dataset recipes (``pipelines/``) and STAC sources (``catalogs/``).

A wrong key or value fails with one line naming the file, the key and what is allowed.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PositiveInt,
    ValidationError,
    field_validator,
    model_validator,
)

from msc_france.errors import UserError
from msc_france.grid import TileGrid
from msc_france.names import RULE, is_safe_name
from msc_france.sensors import SENSORS

PACKAGE_DIR = Path(__file__).resolve().parent


def _shipped(name: str) -> Path:
    """The folder of the shipped YAML files ``name``: inside the package where a wheel installed them,
    else at the top of the source checkout (pyproject.toml maps one to the other)."""
    inside = PACKAGE_DIR / name
    return inside if inside.is_dir() else PACKAGE_DIR.parent / name


PIPELINES_DIR = _shipped("pipelines")
CATALOGS_DIR = _shipped("catalogs")


class Strict(BaseModel):
    """Base: unknown keys are errors, values are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True)


def _safe_name(value: str) -> str:
    if not is_safe_name(value):
        raise ValueError(f"{value!r} is not a safe folder name: use {RULE}")
    return value


SafeName = Annotated[str, AfterValidator(_safe_name)]  # a name that becomes a file or folder name


def _service_url(value: str) -> str:
    if not value.startswith(("http://", "https://", "demo://")):
        raise ValueError(f"url {value!r} must start with http://, https:// or demo://")
    return value


ServiceUrl = Annotated[str, AfterValidator(_service_url)]  # a web service, or demo:// for the demo world


# --- dataset recipes ----------------------------------------------------------------------------
class GridConfig(Strict):
    footprint: float = Field(gt=0, description="tile side in metres")
    gsd: dict[str, float] = Field(description="target GSD per sensor, metres")

    @field_validator("gsd")
    @classmethod
    def _known_sensors(cls, value: dict[str, float]) -> dict[str, float]:
        unknown = sorted(set(value) - set(SENSORS))
        if unknown:
            raise ValueError(f"unknown sensor {unknown[0]!r} (allowed: {', '.join(SENSORS)})")
        return value


class SensorSelection(Strict):
    bands: list[str] = Field(min_length=1)


class SplitConfig(Strict):
    """How the tile index splits tiles into train, val and test (``docs/store.md``)."""

    block: int = Field(default=4, ge=1, description="tiles per side of a split block (drawn by hash)")
    test_area: tuple[float, float, float, float] | None = Field(
        default=None, description="Lambert-93 box (west, south, east, north, metres): every tile whose centre "
        "lies inside is test, never train or val: an evaluation area held out whole")

    @field_validator("test_area")
    @classmethod
    def _ordered(cls, value: tuple[float, float, float, float] | None) -> tuple[float, float, float, float] | None:
        if value is not None and not (value[0] < value[2] and value[1] < value[3]):
            raise ValueError("test_area must be west, south, east, north with west < east and south < north")
        return value


class Recipe(Strict):
    """What dataset to build: the grid and, per sensor, the bands to keep."""

    name: SafeName
    description: str = ""
    grid: GridConfig
    sensors: dict[str, SensorSelection]
    labels: bool = False
    splits: SplitConfig = SplitConfig()

    @model_validator(mode="after")
    def _consistent(self) -> Recipe:
        for key, selection in self.sensors.items():
            if key not in SENSORS:
                raise ValueError(f"sensors: unknown sensor {key!r} (allowed: {', '.join(SENSORS)})")
            if key not in self.grid.gsd:
                raise ValueError(f"sensors.{key}: no GSD for it in grid.gsd")
            allowed = SENSORS[key].band_names
            for band in selection.bands:
                if band not in allowed:
                    raise ValueError(f"sensors.{key}.bands: unknown band {band!r} (allowed: {', '.join(allowed)})")
        TileGrid.create(self.grid.footprint, self.grid.gsd)
        return self

    @property
    def tile_grid(self) -> TileGrid:
        return TileGrid.create(self.grid.footprint, {k: self.grid.gsd[k] for k in self.sensors})


# --- STAC sources -------------------------------------------------------------------------------
class StacSource(Strict):
    """Items from a STAC API collection."""

    type: Literal["stac"]
    url: ServiceUrl = Field(description="STAC API root, or demo:// for the local demo world")
    collection: str
    platforms: list[str] = Field(default_factory=list, description="keep items whose platform is listed")
    signing: Literal["none", "planetary-computer"] = "none"
    asset: str | None = Field(default=None, description="asset key for single-asset sources (labels, VHR)")
    bands: dict[str, PositiveInt] | None = Field(
        default=None,
        description="VHR: recipe band name -> 1-based band index in the asset (default R, G, B, NIR = 1..4)")

    @field_validator("bands")
    @classmethod
    def _unique_indexes(cls, value: dict[str, int] | None) -> dict[str, int] | None:
        if value is not None and len(set(value.values())) != len(value):
            raise ValueError(f"two bands share an index in {value}; each band has its own")
        return value


class WmtsEndpoint(Strict):
    """A WMTS layer serving the same true-colour imagery in a Lambert-93 tile matrix set."""

    url: ServiceUrl = Field(description="WMTS root (KVP), or demo://wmts")
    layer: str
    matrix_set: str


class WfsDates(Strict):
    """Days of flight per area from a WFS feature type (the Géoplateforme's mosaic graph)."""

    url: ServiceUrl = Field(description="WFS root, or demo://wfs")
    typename: str = Field(description="feature type, e.g. ORTHOIMAGERY.ORTHOPHOTOS.GRAPHE-MOSAIQUAGE:graphe_bdortho")
    field: str = Field(default="date_vol", description="attribute holding the day of flight (YYYY-MM-DD)")


class WmsSource(Strict):
    """Orthophotos from an OGC WMS (IGN Géoplateforme BD ORTHO), fetched window by window in
    Lambert-93 through GDAL: R, G, B from ``layer`` (or ``wmts``), NIR from band 1 of ``nir_layer``,
    the day of flight from ``dates_wfs`` or else the campaign year from the dated layers ``dated_layer``."""

    type: Literal["wms"]
    url: ServiceUrl = Field(description="WMS root, or demo://wms-r for the demo world")
    layer: str = Field(description="true-colour layer (R, G, B)")
    nir_layer: str | None = Field(default=None, description="infrared-colour layer (NIR, R, G)")
    dated_layer: str | None = Field(default=None, description="campaign layers, {year} in the name")
    dates_wfs: WfsDates | None = Field(default=None, description="days of flight per area (a mosaic graph)")
    format: Literal["image/jpeg", "image/png"] = "image/png"
    native_gsd: float = Field(gt=0)
    max_side: int = Field(default=10_000, gt=0, description="the service's limit, pixels a side per GetMap")
    window_px: int = Field(default=2048, ge=64, description="fetch windows, pixels a side at the recipe's GSD")
    wmts: WmtsEndpoint | None = None
    retries: int = Field(default=6, ge=0, description="GDAL's HTTP retries per request (429, 5xx)")
    retry_delay: float = Field(default=5.0, ge=0, description="seconds before a retry (the service's block)")
    window_attempts: int = Field(default=3, ge=1, description="tries of a whole window")
    cache_mb: int = Field(default=64, gt=0, description="GDAL block cache of a fetch, MB")
    licence: str = ""


class WorldDates(Strict):
    """Acquisitions of one sensor in the demo world."""

    dates: list[dt.date] = Field(min_length=1)
    cloud_cover: list[float] = Field(description="target cloud percentage per date")
    platforms: list[str] = Field(default_factory=list, description="platform per date")
    processing_baselines: list[str] = Field(default_factory=list, description="S2 baseline per date")
    nodata_fraction: list[float] = Field(default_factory=list, description="share beyond the swath edge per date")

    @model_validator(mode="after")
    def _aligned(self) -> WorldDates:
        n = len(self.dates)
        for name in ("cloud_cover", "platforms", "processing_baselines", "nodata_fraction"):
            values = getattr(self, name)
            if values and len(values) != n:
                raise ValueError(f"{name} has {len(values)} values for {n} dates")
        return self


class DateRange(Strict):
    start: dt.date
    end: dt.date


FOOTPRINT_SEASON = DateRange(start=dt.date(2023, 4, 1), end=dt.date(2023, 9, 30))


class DemoWorldConfig(Strict):
    """The synthetic France scene: where, how big, how sampled, which acquisitions."""

    seed: int = 2154
    center: tuple[float, float] = Field(description="lon, lat (EPSG:4326)")
    size: float = Field(gt=0, description="east-west side of the scene in Lambert-93 metres")
    height: float | None = Field(default=None, gt=0,
                                 description="north-south side in metres (default: size, a square scene)")
    truth_gsd: float = Field(gt=0, description="GSD of the land-cover truth and of the VHR images")
    s2: WorldDates
    l8: WorldDates
    vhr: WorldDates
    footprints: DateRange = Field(default=FOOTPRINT_SEASON,
                                  description="season of the items-only footprint world over France")


class Catalog(Strict):
    """Where each sensor's imagery (and the labels) come from."""

    name: str
    description: str = ""
    dates: DateRange | None = Field(default=None, description="default search dates")
    sources: dict[str, Annotated[StacSource | WmsSource, Field(discriminator="type")]]
    world: DemoWorldConfig | None = Field(
        default=None, description="the demo world, or the name of another catalog whose world this one shares")

    @field_validator("world", mode="before")
    @classmethod
    def _shared_world(cls, value: object) -> object:
        """``world: demo``: the world section of catalogs/demo.yaml, so both catalogs run on one world."""
        if not isinstance(value, str):
            return value
        path = resolve_config(value, CATALOGS_DIR, "catalog")
        raw = read_yaml(path)
        if not isinstance(raw, dict) or not isinstance(raw.get("world"), dict):
            raise ValueError(f"catalog {value!r} has no world section of its own to share")
        return raw["world"]

    @field_validator("sources")
    @classmethod
    def _known(cls, value: dict[str, Any]) -> dict[str, Any]:
        allowed = [*SENSORS, "labels"]
        unknown = sorted(set(value) - set(allowed))
        if unknown:
            raise ValueError(f"unknown source {unknown[0]!r} (allowed: {', '.join(allowed)})")
        return value

    @model_validator(mode="after")
    def _band_mappings(self) -> Catalog:
        for key, source in self.sources.items():
            mapping = getattr(source, "bands", None) or {}
            if mapping and key != "vhr":
                raise ValueError(
                    f"sources.{key}.bands: only the vhr source maps bands (the others have one asset a band)")
            allowed = SENSORS["vhr"].band_names
            unknown = sorted(set(mapping) - set(allowed))
            if unknown:
                raise ValueError(f"sources.vhr.bands: unknown band {unknown[0]!r} (allowed: {', '.join(allowed)})")
        return self


# --- loading ------------------------------------------------------------------------------------
Model = TypeVar("Model", bound=BaseModel)


_SOURCE_TYPES: dict[str, type[BaseModel]] = {"stac": StacSource, "wms": WmsSource}


def _models_in(annotation: object) -> list[type[BaseModel]]:
    """Pydantic models named by a (possibly nested, annotated) type annotation."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [m for arg in getattr(annotation, "__args__", ()) for m in _models_in(arg)]


def _allowed_keys(model: type[BaseModel], loc: tuple[Any, ...]) -> list[str]:
    """Field names of the sub-model that holds ``loc`` (for 'unknown key' errors)."""
    current: type[BaseModel] = model
    for part in loc[:-1]:
        if part in _SOURCE_TYPES:
            current = _SOURCE_TYPES[part]
            continue
        field_info = current.model_fields.get(part) if isinstance(part, str) else None
        if field_info is not None and _models_in(field_info.annotation):
            current = _models_in(field_info.annotation)[0]
    return list(current.model_fields)


def _one_line(path: Path, model: type[BaseModel], error: ValidationError) -> str:
    errors = error.errors()
    # A typo shows up as an unknown key and as a missing one: name the typo.
    first = next((e for e in errors if e["type"] == "extra_forbidden"), errors[0])
    loc = tuple(p for p in first["loc"] if p not in _SOURCE_TYPES)
    where = ".".join(str(p) for p in loc)
    if first["type"] == "extra_forbidden":
        allowed = _allowed_keys(model, tuple(first["loc"]))
        return f"{path}: unknown key {where!r} (allowed: {', '.join(allowed)})"
    message = " ".join(first["msg"].removeprefix("Value error, ").split())
    return f"{path}: {where}: {message}" if where else f"{path}: {message}"


class DuplicateKeyError(yaml.constructor.ConstructorError):
    """A key given twice in one mapping (PyYAML's safe loader would keep the last silently)."""


class UniqueKeyLoader(yaml.SafeLoader):
    """The safe loader, but a mapping that repeats a key is an error instead of the last one winning."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            try:
                repeated = key in seen
            except TypeError:  # an unhashable key: the base class reports it
                break
            if repeated:
                raise DuplicateKeyError(None, None, f"key {key!r} is given twice", key_node.start_mark)
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def read_yaml(path: Path) -> object:
    """The YAML document in ``path`` (safe loader, repeated keys refused); a one-line error otherwise."""
    try:
        return yaml.load(path.read_text(), Loader=UniqueKeyLoader)  # a SafeLoader subclass
    except FileNotFoundError:
        raise UserError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise UserError(f"{path}: is a folder, not a YAML file") from None
    except UnicodeDecodeError:
        raise UserError(f"{path}: is not UTF-8 text; save it as UTF-8") from None
    except OSError as exc:
        raise UserError(f"{path}: cannot be read ({exc.strerror or type(exc).__name__})") from None
    except DuplicateKeyError as exc:
        mark = exc.problem_mark
        where = f" line {mark.line + 1}:" if mark else ""
        raise UserError(f"{path}:{where} {exc.problem}; keep only one") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        raise UserError(f"{path}:{where} is not valid YAML") from None


def load_yaml(path: Path | str, model: type[Model]) -> Model:
    """Read and validate a YAML file with a safe loader that refuses repeated keys."""
    path = Path(path)
    data = read_yaml(path)
    if not isinstance(data, dict):
        raise UserError(f"{path}: expected a mapping of keys at the top level")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise UserError(_one_line(path, model, exc)) from None
    except UserError as exc:
        raise UserError(f"{path}: {exc}") from None


PRETRAIN_PREFIX = "pretrain-"  # pipelines/ holds dataset recipes and, under this prefix, pretraining presets


def resolve_config(name_or_path: str, folder: Path, kind: str, pretrain: bool = False) -> Path:
    """The YAML file of a named config in ``folder``, or the path given."""
    candidate = Path(name_or_path)
    if candidate.suffix in {".yaml", ".yml"}:
        return candidate
    path = folder / f"{name_or_path}.yaml"
    if not path.exists():
        known = sorted(p.stem for p in folder.glob("*.yaml") if p.stem.startswith(PRETRAIN_PREFIX) == pretrain)
        folder_note = f" ({name_or_path} is a folder, not a YAML file)" if candidate.is_dir() else ""
        raise UserError(f"unknown {kind} {name_or_path!r}{folder_note}; known: {', '.join(known)} "
                        "(or give a .yaml file)")
    return path


def load_recipe(name_or_path: str) -> Recipe:
    """A recipe by name (``demo``, ``msc-france``) or by YAML path."""
    return load_yaml(resolve_config(name_or_path, PIPELINES_DIR, "recipe"), Recipe)


def load_catalog(name_or_path: str) -> Catalog:
    """A catalog by name (``demo``, ``planetary-computer``) or by YAML path."""
    return load_yaml(resolve_config(name_or_path, CATALOGS_DIR, "catalog"), Catalog)
