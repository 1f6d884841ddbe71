"""Recipes and catalogs: the shipped files load, and every mistake is one line naming file, key and fix."""

from __future__ import annotations

import copy
import datetime as dt
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from msc_france.config import (
    CATALOGS_DIR,
    PIPELINES_DIR,
    Catalog,
    Recipe,
    StacSource,
    WmsSource,
    load_catalog,
    load_recipe,
    load_yaml,
)
from msc_france.errors import UserError
from msc_france.grid import TileGrid
from msc_france.sensors import SENSORS


def _shipped(folder: Path, name: str) -> dict[str, Any]:
    return yaml.safe_load((folder / f"{name}.yaml").read_text())


def write(tmp_path: Path, data: str | dict[str, Any], name: str = "config.yaml") -> Path:
    path = tmp_path / name
    path.write_text(data if isinstance(data, str) else yaml.safe_dump(data, sort_keys=False))
    return path


def error_of(loader: Callable[[str], object], path: Path | str) -> str:
    with pytest.raises(UserError) as info:
        loader(str(path))
    message = str(info.value)
    assert "\n" not in message and "\r" not in message, message
    assert message.strip() == message and message
    return message


@pytest.fixture
def recipe_data() -> dict[str, Any]:
    return copy.deepcopy(_shipped(PIPELINES_DIR, "msc-france"))


@pytest.fixture
def catalog_data() -> dict[str, Any]:
    return copy.deepcopy(_shipped(CATALOGS_DIR, "planetary-computer"))


@pytest.fixture
def demo_catalog_data() -> dict[str, Any]:
    return copy.deepcopy(_shipped(CATALOGS_DIR, "demo"))


# --- shipped files -------------------------------------------------------------------------------
def test_shipped_recipes_load() -> None:
    msc = load_recipe("msc-france")
    assert isinstance(msc, Recipe) and msc.name == "msc-france" and msc.labels is True
    assert msc.grid.footprint == 1920 and msc.grid.gsd == {"s2": 10, "l8": 30, "vhr": 1.5}
    assert msc.sensors["s2"].bands == ["B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B11", "B12"]
    assert msc.tile_grid == TileGrid.create(1920, {"s2": 10, "l8": 30, "vhr": 1.5})
    demo = load_recipe("demo")
    assert demo.name == "demo" and demo.grid.footprint == 480
    assert demo.tile_grid.sensors == ("s2", "l8", "vhr")
    for recipe in (msc, demo):
        for key, selection in recipe.sensors.items():
            assert set(selection.bands) <= set(SENSORS[key].band_names)
            assert recipe.tile_grid.tile_px(key) * recipe.grid.gsd[key] == recipe.grid.footprint


def test_recipe_by_path_equals_by_name() -> None:
    assert load_recipe(str(PIPELINES_DIR / "demo.yaml")) == load_recipe("demo")
    assert load_catalog(str(CATALOGS_DIR / "demo.yaml")) == load_catalog("demo")


def test_recipe_grid_only_keeps_selected_sensors(tmp_path: Path, recipe_data: dict[str, Any]) -> None:
    del recipe_data["sensors"]["vhr"]
    recipe = load_recipe(str(write(tmp_path, recipe_data)))
    assert recipe.tile_grid.sensors == ("s2", "l8")


def test_shipped_catalogs_load() -> None:
    pc = load_catalog("planetary-computer")
    assert isinstance(pc, Catalog) and pc.name == "planetary-computer" and pc.world is None
    assert set(pc.sources) == {"s2", "l8", "vhr", "labels"}
    assert isinstance(pc.sources["s2"], StacSource) and pc.sources["s2"].collection == "sentinel-2-l2a"
    assert pc.sources["l8"].collection == "landsat-c2-l2" and pc.sources["l8"].platforms == ["landsat-8"]
    assert all(pc.sources[k].signing == "planetary-computer" for k in ("s2", "l8", "labels"))
    assert isinstance(pc.sources["vhr"], WmsSource) and pc.sources["vhr"].native_gsd == 0.2
    demo = load_catalog("demo")
    assert {k: type(s) for k, s in demo.sources.items()} == {k: type(s) for k, s in pc.sources.items()}, \
        "the demo uses the real catalog's source types"
    assert all(s.url == "demo://" for k, s in demo.sources.items() if k != "vhr") and demo.sources["vhr"].url == "demo://wms-r"
    assert (demo.sources["vhr"].layer, demo.sources["vhr"].nir_layer, demo.sources["vhr"].dated_layer) == (
        pc.sources["vhr"].layer, pc.sources["vhr"].nir_layer, pc.sources["vhr"].dated_layer)
    assert demo.world is not None and demo.world.size == 9600
    assert demo.world.s2.dates[0] == dt.date(2021, 7, 18)
    assert len(demo.world.s2.processing_baselines) == len(demo.world.s2.dates)
    assert demo.world.center == (1.365, 43.53)


def test_world_names_another_catalog(tmp_path: Path, demo_catalog_data: dict[str, Any]) -> None:
    shared = {**demo_catalog_data, "world": "demo"}
    (tmp_path / "shared.yaml").write_text(yaml.safe_dump(shared))
    assert load_yaml(tmp_path / "shared.yaml", Catalog).world == load_catalog("demo").world
    for world, message in (("planetary-computer", "has no world section of its own"), ("nowhere", "unknown catalog")):
        (tmp_path / "bad.yaml").write_text(yaml.safe_dump({**demo_catalog_data, "world": world}))
        with pytest.raises(UserError, match=message):
            load_yaml(tmp_path / "bad.yaml", Catalog)


def test_models_are_immutable() -> None:
    recipe = load_recipe("demo")
    with pytest.raises(ValidationError, match="frozen"):
        recipe.name = "other"


# --- unknown keys ---------------------------------------------------------------------------------
@pytest.mark.parametrize("typo, real", [("labls", "labels"), ("descripton", "description")])
def test_top_level_typo(tmp_path: Path, recipe_data: dict[str, Any], typo: str, real: str) -> None:
    recipe_data.pop(real, None)
    recipe_data[typo] = "x"
    path = write(tmp_path, recipe_data)
    message = error_of(load_recipe, path)
    assert str(path) in message and repr(typo) in message and "allowed" in message
    allowed = message.split("allowed", 1)[1]
    for key in Recipe.model_fields:
        assert key in allowed


def test_nested_typo(tmp_path: Path, recipe_data: dict[str, Any]) -> None:
    recipe_data["grid"]["footprnt"] = 3840  # beside the real key, as when overriding by hand
    path = write(tmp_path, recipe_data)
    message = error_of(load_recipe, path)
    assert str(path) in message and "'grid.footprnt'" in message and "allowed" in message
    allowed = message.split("allowed", 1)[1]
    assert "footprint" in allowed and "gsd" in allowed
    assert "sensors" not in allowed  # the keys of *grid*, not of the top level


def test_typo_in_sensor_selection(tmp_path: Path, recipe_data: dict[str, Any]) -> None:
    recipe_data["sensors"]["l8"]["bnads"] = ["red"]
    message = error_of(load_recipe, write(tmp_path, recipe_data))
    assert "'sensors.l8.bnads'" in message and "allowed: bands" in message


def test_typo_in_catalog(tmp_path: Path, catalog_data: dict[str, Any], demo_catalog_data: dict[str, Any]) -> None:
    catalog_data["descripton"] = catalog_data.pop("description")
    path = write(tmp_path, catalog_data)
    message = error_of(load_catalog, path)
    assert str(path) in message and "'descripton'" in message and "allowed" in message
    for key in Catalog.model_fields:
        assert key in message
    demo_catalog_data["world"]["sed"] = demo_catalog_data["world"].pop("seed")
    message = error_of(load_catalog, write(tmp_path, demo_catalog_data, "demo.yaml"))
    assert "'world.sed'" in message and "truth_gsd" in message
    assert "sources" not in message.split("allowed")[1]


def _rename(data: dict[str, Any], dotted: str, new: str) -> None:
    *parents, last = dotted.split(".")
    for part in parents:
        data = data[part]
    data[new] = data.pop(last)


@pytest.mark.parametrize(
    "dotted, typo", [("name", "nmae"), ("grid.footprint", "footprnt"), ("sensors.l8.bands", "band")]
)
def test_misspelt_required_key(tmp_path: Path, recipe_data: dict[str, Any], dotted: str, typo: str) -> None:
    _rename(recipe_data, dotted, typo)
    path = write(tmp_path, recipe_data)
    message = error_of(load_recipe, path)
    assert str(path) in message and f"{typo}'" in message and "allowed" in message


def test_typo_in_stac_source_lists_source_keys(tmp_path: Path, catalog_data: dict[str, Any]) -> None:
    catalog_data["sources"]["s2"]["signng"] = catalog_data["sources"]["s2"].pop("signing")  # optional key
    message = error_of(load_catalog, write(tmp_path, catalog_data))
    # today: "unknown key 'sources.s2.StacSource.signng' (allowed: name, description, sources, world)"
    assert "'sources.s2.signng'" in message
    allowed = message.split("allowed", 1)[1]
    assert "signing" in allowed and "collection" in allowed and "world" not in allowed


def test_typo_in_wms_source_names_the_key(tmp_path: Path, catalog_data: dict[str, Any]) -> None:
    catalog_data["sources"]["vhr"]["layr"] = catalog_data["sources"]["vhr"].pop("layer")
    message = error_of(load_catalog, write(tmp_path, catalog_data))
    assert "layr" in message and "allowed" in message


# --- bad values -----------------------------------------------------------------------------------
def test_unknown_sensor_in_grid(tmp_path: Path, recipe_data: dict[str, Any]) -> None:
    recipe_data["grid"]["gsd"]["s3"] = 10
    path = write(tmp_path, recipe_data)
    message = error_of(load_recipe, path)
    assert str(path) in message and "grid.gsd" in message and "'s3'" in message
    assert "allowed: s2, l8, vhr" in message


def test_unknown_sensor_in_selection(tmp_path: Path, recipe_data: dict[str, Any]) -> None:
    recipe_data["sensors"]["sentinel2"] = recipe_data["sensors"].pop("s2")
    message = error_of(load_recipe, write(tmp_path, recipe_data))
    assert "'sentinel2'" in message and "allowed: s2, l8, vhr" in message


def test_selected_sensor_without_gsd(tmp_path: Path, recipe_data: dict[str, Any]) -> None:
    del recipe_data["grid"]["gsd"]["vhr"]
    message = error_of(load_recipe, write(tmp_path, recipe_data))
    assert "sensors.vhr" in message and "grid.gsd" in message


@pytest.mark.parametrize("sensor, band", [("s2", "B10"), ("l8", "nir"), ("vhr", "swir")])
def test_unknown_band(tmp_path: Path, recipe_data: dict[str, Any], sensor: str, band: str) -> None:
    recipe_data["sensors"][sensor]["bands"].append(band)
    path = write(tmp_path, recipe_data)
    message = error_of(load_recipe, path)
    assert str(path) in message and f"sensors.{sensor}.bands" in message and repr(band) in message
    allowed = message.split("allowed", 1)[1]
    for name in SENSORS[sensor].band_names:
        assert name in allowed


def test_empty_band_list(tmp_path: Path, recipe_data: dict[str, Any]) -> None:
    recipe_data["sensors"]["s2"]["bands"] = []
    message = error_of(load_recipe, write(tmp_path, recipe_data))
    assert "sensors.s2.bands" in message


@pytest.mark.parametrize("gsd", [7, 25, 0.7])
def test_gsd_not_dividing_footprint(tmp_path: Path, recipe_data: dict[str, Any], gsd: float) -> None:
    recipe_data["grid"]["gsd"]["s2"] = gsd
    path = write(tmp_path, recipe_data)
    message = error_of(load_recipe, path)
    assert str(path) in message and "footprint" in message and "1920" in message and f"{gsd:g}" in message


@pytest.mark.parametrize("footprint", [0, -1920])
def test_footprint_must_be_positive(tmp_path: Path, recipe_data: dict[str, Any], footprint: int) -> None:
    recipe_data["grid"]["footprint"] = footprint
    message = error_of(load_recipe, write(tmp_path, recipe_data))
    assert "grid.footprint" in message and "greater than 0" in message


def test_missing_required_key(tmp_path: Path, recipe_data: dict[str, Any]) -> None:
    del recipe_data["grid"]["footprint"]
    message = error_of(load_recipe, write(tmp_path, recipe_data))
    assert "grid.footprint" in message and "required" in message.lower()


def test_catalog_bad_url_scheme(tmp_path: Path, catalog_data: dict[str, Any]) -> None:
    catalog_data["sources"]["s2"]["url"] = "ftp://planetarycomputer.microsoft.com/api/stac/v1"
    path = write(tmp_path, catalog_data)
    message = error_of(load_catalog, path)
    assert str(path) in message and "ftp://planetarycomputer" in message
    assert "sources.s2" in message and "url" in message
    assert all(s in message for s in ("http://", "https://", "demo://"))


def test_catalog_unknown_source(tmp_path: Path, catalog_data: dict[str, Any]) -> None:
    catalog_data["sources"]["sentinel1"] = catalog_data["sources"]["s2"]
    message = error_of(load_catalog, write(tmp_path, catalog_data))
    assert "'sentinel1'" in message and "allowed: s2, l8, vhr, labels" in message


STAC_VHR = {"type": "stac", "url": "demo://", "collection": "demo-vhr", "asset": "image"}  # a user-STAC VHR


def test_vhr_band_mapping_loads(tmp_path: Path, demo_catalog_data: dict[str, Any]) -> None:
    demo_catalog_data["sources"]["vhr"] = {**STAC_VHR, "bands": {"red": 3, "green": 2, "blue": 1, "nir": 4}}
    catalog = load_catalog(str(write(tmp_path, demo_catalog_data)))
    assert catalog.sources["vhr"].bands == {"red": 3, "green": 2, "blue": 1, "nir": 4}
    demo_catalog_data["sources"]["vhr"] = STAC_VHR
    default = load_catalog(str(write(tmp_path, demo_catalog_data))).sources["vhr"]
    assert default.bands is None, "default: the sensor's R, G, B, NIR order"


@pytest.mark.parametrize("source, bands, expected", [
    ("vhr", {"red": 3, "swir": 5}, "sources.vhr.bands: unknown band 'swir' (allowed: red, green, blue, nir)"),
    ("vhr", {"red": 0}, "sources.vhr.bands.red: Input should be greater than 0"),
    ("vhr", {"red": "three"}, "sources.vhr.bands.red: Input should be a valid integer"),
    ("vhr", {"red": 1, "green": 1}, "sources.vhr.bands: two bands share an index"),
    ("s2", {"B04": 1}, "sources.s2.bands: only the vhr source maps bands"),
])
def test_bad_band_mapping_is_one_line(tmp_path: Path, demo_catalog_data: dict[str, Any], source: str,
                                      bands: dict[str, Any], expected: str) -> None:
    demo_catalog_data["sources"]["vhr"] = dict(STAC_VHR)
    demo_catalog_data["sources"][source]["bands"] = bands
    path = write(tmp_path, demo_catalog_data)
    message = error_of(load_catalog, path)
    assert message.startswith(f"{path}: {expected}"), message


def test_catalog_misaligned_world_dates(tmp_path: Path, demo_catalog_data: dict[str, Any]) -> None:
    demo_catalog_data["world"]["l8"]["cloud_cover"] = [0, 5]
    message = error_of(load_catalog, write(tmp_path, demo_catalog_data))
    assert "world.l8" in message and "cloud_cover has 2 values for 4 dates" in message


# --- unreadable files and names ----------------------------------------------------------------------
@pytest.mark.parametrize(
    "text", ["name: [demo\ngrid: {}\n", "name: demo\n  grid: 1\n bad: indent\n", "a: b: c\n", "key: 'unclosed\n"],
)
def test_invalid_yaml(tmp_path: Path, text: str) -> None:
    path = write(tmp_path, text)
    message = error_of(load_recipe, path)
    assert str(path) in message and "not valid YAML" in message and " line " in message


@pytest.mark.parametrize("text", ["- name: demo\n- grid: {}\n", "just a string\n", "42\n", "", "# only a comment\n"])
def test_non_mapping_yaml(tmp_path: Path, text: str) -> None:
    path = write(tmp_path, text)
    for loader in (load_recipe, load_catalog):
        message = error_of(loader, path)
        assert str(path) in message and "mapping" in message


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nowhere.yaml"
    message = error_of(load_recipe, path)
    assert str(path) in message and "no such file" in message


def test_unknown_names_suggest_known() -> None:
    message = error_of(load_recipe, "msc_france")
    assert "'msc_france'" in message and "demo" in message and "msc-france" in message and ".yaml" in message
    message = error_of(load_catalog, "pc")
    assert "'pc'" in message and "demo" in message and "planetary-computer" in message


def test_yaml_is_loaded_safely(tmp_path: Path) -> None:
    path = write(tmp_path, "name: !!python/object/apply:os.system ['true']\n")
    message = error_of(load_recipe, path)
    assert "not valid YAML" in message


def test_load_yaml_wraps_user_errors_with_path(tmp_path: Path, recipe_data: dict[str, Any]) -> None:
    recipe_data["grid"]["gsd"]["l8"] = 35
    path = write(tmp_path, recipe_data)
    with pytest.raises(UserError) as info:
        load_yaml(path, Recipe)
    assert str(info.value).startswith(f"{path}: ")


def test_non_utf8_file_is_user_error(tmp_path: Path, recipe_data: dict[str, Any]) -> None:
    recipe_data["description"] = "Réunion"
    path = tmp_path / "latin1.yaml"
    path.write_bytes(yaml.safe_dump(recipe_data, allow_unicode=True).encode("latin-1"))
    message = error_of(load_recipe, path)
    assert str(path) in message
