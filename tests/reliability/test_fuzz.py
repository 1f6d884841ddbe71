"""Untrusted input, fuzzed (hypothesis): recipe and catalog YAML, region strings and ``--bbox`` boxes,
STAC items from an API, tile store paths. Each call returns a result or raises a one-line
:class:`UserError`; never another exception, never a write outside its temporary folder.

The ``ci`` profile (default, ``make test``) runs a few dozen examples per property, derandomized; the
``deep`` profile runs thousands: ``HYPOTHESIS_PROFILE=deep .venv/bin/python -m pytest
tests/reliability/test_fuzz.py`` (docs/reliability.md, Fuzzing). Inputs that once broke a property
are kept as ``@example`` regressions."""

from __future__ import annotations

import copy
import json
import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import pystac
import yaml
from hypothesis import example, given
from hypothesis import strategies as st

from msc_france.config import CATALOGS_DIR, PIPELINES_DIR, load_catalog, load_recipe
from msc_france.download.candidates import Candidate, candidate
from msc_france.download.validate import checked
from msc_france.errors import UserError
from msc_france.grid import parse_lonlat_box
from msc_france.regions import resolve_region
from msc_france.store.reader import open_store
from msc_france.tiles.run import check_store_path
from tests.data.pc_items import landsat_item, sentinel2_item

T = TypeVar("T")
START = Path.cwd()


# --- the property ----------------------------------------------------------------------------------
def _listing(folder: Path) -> set[str]:
    return set(os.listdir(folder))


@contextmanager
def sandbox() -> Iterator[Path]:
    """A fresh temporary folder as the working directory; the starting folder must be left unchanged."""
    before = _listing(START)
    old = os.getcwd()
    with tempfile.TemporaryDirectory(prefix="msc-fuzz-") as tmp:
        os.chdir(tmp)
        try:
            yield Path(tmp)
        finally:
            os.chdir(old)
    assert _listing(START) == before, f"written outside the sandbox: {_listing(START) ^ before}"


def result_or_one_line(call: Callable[[], T]) -> T | UserError:
    """What ``call`` returns, or the UserError it raises, checked to be one non-empty line; any other
    exception fails the test."""
    try:
        return call()
    except UserError as exc:
        message = str(exc)
        assert message.strip(), "an empty error message"
        assert len(message.splitlines()) == 1, f"a multi-line error message: {message!r}"
        return exc


# --- mutated documents -----------------------------------------------------------------------------
WEIRD: st.SearchStrategy[Any] = st.one_of(
    st.none(), st.booleans(),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
    st.sampled_from(["", " ", "s2", "l8", "vhr", "labels", "B04", "../x", "é", "名前", "1e400", "\n", "a\nb",
                     "stac", "wms", "demo", "demo://", "http://", "2021-13-45", "2023-06-01", "-0", "~"]),
    st.lists(st.one_of(st.integers(-5, 5), st.text(max_size=4)), max_size=3),
    st.dictionaries(st.one_of(st.text(max_size=4), st.integers(-3, 3)), st.integers(-3, 3), max_size=3),
)


def _paths(node: object, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    """Every key path into nested dicts and lists."""
    items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
    for key, value in items:
        yield (*prefix, key)
        yield from _paths(value, (*prefix, key))


@st.composite
def mutated(draw: st.DrawFn, base: object, max_mutations: int = 3) -> object:
    """``base`` with 1 to ``max_mutations`` values replaced by odd ones, keys deleted or keys added."""
    doc = copy.deepcopy(base)
    for _ in range(draw(st.integers(1, max_mutations))):
        paths = list(_paths(doc))
        if not paths:
            break
        path = draw(st.sampled_from(paths))
        parent = doc
        for part in path[:-1]:
            parent = parent[part]
        key = path[-1]
        action = draw(st.sampled_from(["replace", "replace", "delete", "add"]))
        if action == "replace":
            parent[key] = draw(WEIRD)
        elif action == "delete":
            del parent[key]
        elif isinstance(parent, dict):
            parent[draw(st.one_of(st.text(max_size=8), st.integers(-3, 3)))] = draw(WEIRD)
        else:
            parent.append(draw(WEIRD))
    return doc


def _dump(doc: object) -> str:
    return yaml.safe_dump(doc, allow_unicode=True, sort_keys=False)


def _raw(path: Path) -> object:
    return yaml.safe_load(path.read_text())


RECIPES = [_raw(PIPELINES_DIR / f"{name}.yaml") for name in ("demo", "msc-france")]
CATALOGS = [_raw(CATALOGS_DIR / f"{name}.yaml") for name in ("demo", "planetary-computer", "demo-france")]
TEXT = st.one_of(st.text(max_size=200), st.binary(max_size=200))


def _write(folder: Path, content: str | bytes, name: str = "fuzzed.yaml") -> Path:
    path = folder / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    return path


# --- recipe and catalog YAML -------------------------------------------------------------------------
@given(doc=st.one_of(*(mutated(r) for r in RECIPES)))
def test_fuzzed_recipe_yaml(doc: object) -> None:
    with sandbox() as tmp:
        result_or_one_line(lambda: load_recipe(str(_write(tmp, _dump(doc)))))


@given(text=TEXT)
@example(text="name: x\ngrid: {footprint: 1920, gsd: {s2: 10}}\nsensors: {s2: {bands: [B04]}}\n")
@example(text=b"\xff\xfe")
@example(text="[1, 2")
def test_fuzzed_recipe_text(text: str | bytes) -> None:
    with sandbox() as tmp:
        result_or_one_line(lambda: load_recipe(str(_write(tmp, text))))


@given(doc=st.one_of(*(mutated(c) for c in CATALOGS)))
def test_fuzzed_catalog_yaml(doc: object) -> None:
    with sandbox() as tmp:
        result_or_one_line(lambda: load_catalog(str(_write(tmp, _dump(doc)))))


@given(text=TEXT)
@example(text="name: x\nsources: {}\nworld: demo\n")
@example(text="name: x\nsources: {}\nworld: no-such-catalog\n")
def test_fuzzed_catalog_text(text: str | bytes) -> None:
    with sandbox() as tmp:
        result_or_one_line(lambda: load_catalog(str(_write(tmp, text))))


# --- regions and boxes -------------------------------------------------------------------------------
NUMBER_TEXT = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.floats(min_value=-10, max_value=50).map(lambda v: f"{v:.3f}"),
    st.sampled_from(["", " ", "nan", "inf", "-inf", "1e400", "1_0", "0x10", "四", "٣", "+1", "--1", " 2 "]),
)
BOX_TEXT = st.lists(NUMBER_TEXT, min_size=0, max_size=6).map(",".join)
REGION_TEXT = st.one_of(
    st.text(max_size=40), BOX_TEXT,
    st.sampled_from(["demo", "france", "FRANCE", "31", "2A", "2b", "20", "971", "00", "Haute-Garonne", "toulouse",
                     "x.geojson", "x.gpkg", "a/b", "C:\\x", ".", "..", "/", "\x00", "é" * 300]),
)


@given(text=REGION_TEXT)
@example(text="1.2,43.4,1.5,43.6")
@example(text="nan,43,1,44")
def test_fuzzed_region_strings(text: str) -> None:
    with sandbox():
        result_or_one_line(lambda: resolve_region(text))


@given(text=st.one_of(BOX_TEXT, st.text(max_size=40)))
@example(text="1.2,43.4,1.5,43.6")
@example(text="1,2,3")
def test_fuzzed_grid_bbox(text: str) -> None:
    with sandbox():
        result_or_one_line(lambda: parse_lonlat_box(text, "--bbox"))


@given(geojson=mutated({"type": "FeatureCollection", "features": [{"type": "Feature", "properties": {},
                        "geometry": {"type": "Polygon",
                                     "coordinates": [[[1.2, 43.4], [1.5, 43.4], [1.5, 43.6], [1.2, 43.4]]]}}]}))
@example(geojson={"type": "Polygon", "coordinates": [[["1E400", 43.4], [1.5, 43.4], [1.5, 43.6], [1.2, 43.4]]]})
@example(geojson={"type": "Polygon", "coordinates": [[[float("nan"), 43.4], [1.5, 43.4], [1.5, 43.6], [1.2, 43.4]]]})
@example(geojson={"type": "FeatureCollection", "features": 1})  # TypeError
def test_fuzzed_region_geojson(geojson: object) -> None:
    with sandbox() as tmp:
        path = _write(tmp, json.dumps(geojson), "region.geojson")
        result_or_one_line(lambda: resolve_region(str(path)))


# --- STAC items --------------------------------------------------------------------------------------
ITEMS = [sentinel2_item(0), landsat_item(0)]
ASSETS = {"sentinel-2-l2a": ("B04", "SCL"), "landsat-c2-l2": ("red", "qa_pixel")}


def _focused(item: dict[str, Any]) -> dict[str, Any]:
    """The parts of an item that planning reads (the many assets make every other path unlikely)."""
    return {k: item[k] for k in ("id", "geometry", "bbox", "properties", "type", "stac_version")}


@st.composite
def fuzzed_items(draw: st.DrawFn) -> tuple[object, tuple[str, ...]]:
    base = draw(st.sampled_from(ITEMS))
    assets = ASSETS[base["collection"]]
    if draw(st.booleans()):
        raw = copy.deepcopy(base)
        raw.update(draw(mutated(_focused(base))))
    else:
        raw = draw(mutated(base, max_mutations=5))
    return draw(st.one_of(st.just(raw), WEIRD)), assets


def _s2_with(**changes: object) -> tuple[object, tuple[str, ...]]:
    raw = copy.deepcopy(ITEMS[0])
    raw.update(changes)
    return raw, ASSETS["sentinel-2-l2a"]


@given(case=fuzzed_items())
@example(case=_s2_with(geometry={"type": "Polygon", "coordinates": "0"}))  # RecursionError in odc.geo
@example(case=_s2_with(geometry={"type": "Polygon", "coordinates": ""}))  # IndexError in shapely
@example(case=_s2_with(geometry={"type": "", "coordinates": []}))  # GeometryTypeError
@example(case=_s2_with(type=None))  # pystac's STACTypeError
@example(case=_s2_with(geometry={"type": "Polygon", "coordinates": [[[1, 43], [2, 43], [float("inf"), 44], [1, 43]]]}))
def test_fuzzed_stac_items(case: tuple[object, tuple[str, ...]]) -> None:
    raw, assets = case
    with sandbox():
        result = checked(raw, assets)  # never raises: an unusable item is a reason
        assert isinstance(result, (pystac.Item, str))
        if isinstance(result, pystac.Item):
            made = result_or_one_line(lambda: candidate("s2", result))
            assert isinstance(made, (Candidate, UserError))


# --- store paths -------------------------------------------------------------------------------------
STORE_TEXT = st.one_of(
    st.text(max_size=40).filter(lambda s: "://" not in s),
    st.sampled_from(["", ".", "x.zarr", "x.zarr/", "file://x.zarr", "memory://fuzz.zarr", "nosuch://x",
                     "a\nb.zarr", "\x00", "é.zarr", "x" * 300]),
)


@given(store=STORE_TEXT, layout=st.sampled_from(["nothing", "file", "folder", "zarr.json"]),
       meta=mutated({"zarr_format": 3, "node_type": "group",
                     "attributes": {"msc_france": {"version": 1}}}))
@example(store="x" * 300, layout="nothing", meta={})
@example(store="a\nb.zarr", layout="nothing", meta={})
@example(store="\x00", layout="nothing", meta={})
def test_fuzzed_open_store(store: str, layout: str, meta: object) -> None:
    with sandbox() as tmp:
        target = tmp / "s.zarr"
        if layout == "file":
            target.write_text("not a store")
        elif layout != "nothing":
            target.mkdir()
            if layout == "zarr.json":
                (target / "zarr.json").write_text(json.dumps(meta))
        result_or_one_line(lambda: open_store(store))
        result_or_one_line(lambda: open_store(str(target)))


def _inside(text: str) -> bool:
    """A relative local path that stays in the working directory (the check creates its parent)."""
    path = Path(text.removeprefix("file://"))
    return not path.is_absolute() and ".." not in path.parts


@given(store=STORE_TEXT.filter(_inside))
@example(store="a\nb.zarr")
@example(store="x" * 300)
@example(store="\x00")
def test_fuzzed_tiles_store_path(store: str) -> None:
    with sandbox() as tmp:
        (tmp / "file").write_text("x")
        result_or_one_line(lambda: check_store_path(store))
        result_or_one_line(lambda: check_store_path("file/" + store))


@example(store="/proc/x.zarr")
@example(store="/dev/null")
@example(store="/sys")
@given(store=st.sampled_from(["/proc/self/x.zarr", "/dev/x.zarr"]))
def test_system_store_paths_are_refused_without_writing(store: str) -> None:
    with sandbox():
        result = result_or_one_line(lambda: check_store_path(store))
        assert isinstance(result, UserError)
