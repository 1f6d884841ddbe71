"""`msc-france publish`: the STAC Collection validates offline and reads the store back on its own, the
stac-geoparquet mirror and the Croissant description match the tile index, the version follows the store,
writes are atomic, and a missing store is one line."""

from __future__ import annotations

import datetime as dt
import itertools
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import geopandas as gpd
import mlcroissant as mlc
import numpy as np
import pystac
import pytest
import rustac
import xarray as xr
import zarr
from pystac.extensions.classification import ClassificationExtension
from pystac.extensions.datacube import DatacubeExtension
from pystac.extensions.eo import EOExtension
from pystac.extensions.projection import ProjectionExtension
from pystac.extensions.raster import RasterExtension
from pystac.extensions.scientific import ScientificExtension
from pystac.extensions.version import VersionExtension
from pystac.extensions.xarray_assets import XarrayAssetsExtension
from pystac.validation.stac_validator import JsonSchemaSTACValidator

from msc_france.config import load_recipe
from msc_france.provenance import CATALOG_KEY, RecipeRecord
from msc_france.publish import PublishRequest, PublishSummary, publish
from msc_france.store.atomic import atomic_write
from tests.data.tile_store import write_tile_store

DAY = dt.date(2026, 12, 2)

# The fields each extension documents (its README's field tables), by the schema URI the collection declares.
EXTENSION_FIELDS: dict[str, set[str]] = {
    "https://stac-extensions.github.io/datacube/v2.2.0/schema.json": {"cube:dimensions", "cube:variables"},
    "https://stac-extensions.github.io/projection/v2.0.0/schema.json": {
        "proj:code", "proj:wkt2", "proj:projjson", "proj:geometry", "proj:bbox", "proj:centroid", "proj:shape",
        "proj:transform"},
    "https://stac-extensions.github.io/raster/v1.1.0/schema.json": {"raster:bands"},
    "https://stac-extensions.github.io/eo/v1.1.0/schema.json": {"eo:bands", "eo:cloud_cover", "eo:snow_cover"},
    "https://stac-extensions.github.io/classification/v2.0.0/schema.json": {
        "classification:classes", "classification:bitfields"},
    "https://stac-extensions.github.io/xarray-assets/v1.0.0/schema.json": {
        "xarray:open_kwargs", "xarray:storage_options"},
    "https://stac-extensions.github.io/zarr/v1.1.0/schema.json": {
        "zarr:consolidated", "zarr:node_type", "zarr:zarr_format"},
    "https://stac-extensions.github.io/version/v1.2.0/schema.json": {"version", "deprecated", "experimental"},
    "https://stac-extensions.github.io/scientific/v1.0.0/schema.json": {"sci:doi", "sci:citation", "sci:publications"},
}
RASTER_BAND = {"nodata", "sampling", "data_type", "bits_per_sample", "spatial_resolution", "statistics", "unit",
               "scale", "offset", "histogram"}
EO_BAND = {"name", "common_name", "description", "center_wavelength", "full_width_half_max", "solar_illumination"}
EO_COMMON_NAMES = {"pan", "coastal", "blue", "green", "green05", "yellow", "red", "rededge", "rededge071",
                   "rededge075", "rededge078", "nir", "nir08", "nir09", "cirrus", "swir16", "swir22", "lwir", "lwir11",
                   "lwir12"}


class OfflineValidator(JsonSchemaSTACValidator):
    """pystac's JSON-schema validator on the core schemas it ships; never fetches a schema (no network in CI).
    Extension schemas are remote, so the extensions are checked by their documented field names instead."""

    def _get_schema(self, schema_uri: str) -> dict[str, Any]:
        if schema_uri not in self.schema_cache:
            raise AssertionError(f"would fetch {schema_uri}")
        return self.schema_cache[schema_uri]

    def validate_extension(self, *args: Any, **kwargs: Any) -> None:
        return None


def _data(tmp: Path, name: str = "demo", **tiles: Any) -> tuple[Path, Path]:
    """A data folder with a fixture store ``name.zarr``: (data folder, store)."""
    data = tmp / "data"
    store = data / f"{name}.zarr"
    write_tile_store(store, **tiles)
    return data, store


@pytest.fixture(scope="module")
def published(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A store of 32 tiles (train and val) with labels, published: (store, publish folder)."""
    data, store = _data(tmp_path_factory.mktemp("publish"), seed=1, blocks=1, splits=("train", "val"), labels=True)
    summary = publish(PublishRequest(data=data, today=DAY))
    assert summary.folder == data / "demo.publish" and summary.version == "1.0.0" and summary.tiles == 32
    return store, summary.folder


def test_collection_validates_offline_with_the_extensions_fields(published: tuple[Path, Path]) -> None:
    store, folder = published
    collection = pystac.read_file(folder / "collection.json")
    assert isinstance(collection, pystac.Collection)
    assert collection.validate(validator=OfflineValidator()) == [
        "https://schemas.stacspec.org/v1.1.0/collection-spec/json-schema/collection.json"]
    # the declared extensions are those pystac writes, at the versions whose fields are listed above
    assert set(collection.stac_extensions) == set(EXTENSION_FIELDS)
    for ext in (DatacubeExtension, ProjectionExtension, RasterExtension, EOExtension, ClassificationExtension,
                XarrayAssetsExtension, VersionExtension, ScientificExtension):
        assert ext.get_schema_uri() in EXTENSION_FIELDS
    documented = set().union(*EXTENSION_FIELDS.values())
    raw = json.loads((folder / "collection.json").read_text())
    fields = {key for key in raw if ":" in key or key in {"version"}}
    fields |= {key for asset in raw["assets"].values() for key in asset if ":" in key}
    assert {f for f in fields if not f.startswith("msc:")} <= documented, "a field no declared extension documents"
    assert raw["license"] == "other" and {link["rel"] for link in raw["links"]} >= {"license", "collection-mirror"}
    assert len([link for link in raw["links"] if link["rel"] == "license"]) == 4  # s2, l8, vhr, labels
    assert raw["version"] == "1.0.0" and raw["sci:publications"][0]["doi"] == "10.48550/arXiv.2405.09922"

    root = zarr.open_group(str(store), mode="r")
    for name in ("s2", "l8", "vhr", "labels"):
        asset = raw["assets"][name]
        data = root[name]["data"]
        assert asset["type"] == "application/vnd.zarr" and asset["roles"] == ["data"]
        dims = asset["cube:dimensions"]
        step = float(np.diff(root[name]["x"][:2])[0])
        assert dims["x"] == {"type": "spatial", "axis": "x", "extent": [float(root[name]["x"][0]),
                                                                         float(root[name]["x"][-1])],
                             "step": step, "reference_system": 2154}
        assert dims["y"]["axis"] == "y" and dims["y"]["step"] == -step and dims["y"]["reference_system"] == 2154
        assert dims["y"]["extent"] == [float(root[name]["y"][-1]), float(root[name]["y"][0])]
        assert dims["band"] == {"type": "bands", "values": list(data.attrs["bands"])}
        assert asset["cube:variables"]["data"]["dimensions"] == ["band", "y", "x"]
        assert asset["proj:code"] == "EPSG:2154" and asset["proj:shape"] == list(data.shape[1:])
        assert asset["proj:transform"][0] == step and asset["proj:transform"][4] == -step
        bands = asset["raster:bands"]
        assert len(bands) == data.shape[0] and all(set(b) <= RASTER_BAND for b in bands)
        assert {(b["scale"], b["offset"], b["nodata"], b["data_type"]) for b in bands} == {
            (data.attrs["scale_factor_dn"], data.attrs["add_offset_dn"], data.attrs["nodata"], str(data.dtype))}
        if name == "labels":
            assert [c["value"] for c in asset["classification:classes"]][:2] == [10, 20]
            continue
        eo = asset["eo:bands"]
        assert [b["name"] for b in eo] == data.attrs["bands"] and all(set(b) <= EO_BAND for b in eo)
        assert [b["center_wavelength"] for b in eo] == data.attrs["wavelengths"]
        assert {b["common_name"] for b in eo} <= EO_COMMON_NAMES


def test_the_store_reads_back_through_the_collection_alone(published: tuple[Path, Path]) -> None:
    store, folder = published
    collection = pystac.read_file(folder / "collection.json")
    mirror = next(link for link in collection.links if link.rel == "collection-mirror")
    assert mirror.media_type == "application/vnd.apache.parquet"
    items = rustac.read_sync(mirror.get_absolute_href())["features"]
    index = gpd.read_parquet(collection.assets["index"].get_absolute_href())
    assert [item["id"] for item in items] == list(index["tile"]) and len(items) == 32
    west, south, east, north = collection.extent.spatial.bboxes[0]
    tile = items[5]
    props = tile["properties"]
    assert props["msc:split"] == index["split"][5] and props["msc:s2_items"] == index["s2_items"][5].split(",")
    assert west <= tile["bbox"][0] < tile["bbox"][2] <= east and south <= tile["bbox"][1] < tile["bbox"][3] <= north
    left, bottom, right, top = props["proj:bbox"]
    root = zarr.open_group(str(store), mode="r")  # the store's own values, by the tile's place in the grid
    col, row = props["msc:col"], props["msc:row"]
    for name in ("s2", "l8", "vhr", "labels"):
        asset = collection.assets[name]
        kwargs = asset.extra_fields["xarray:open_kwargs"]
        with xr.open_dataset(asset.get_absolute_href(), **kwargs) as ds:
            window = ds["data"].sel(x=slice(left, right), y=slice(top, bottom)).values
        px = root[name].attrs["tile_px"]
        own = root[name]["data"][:, row * px:(row + 1) * px, col * px:(col + 1) * px]
        assert window.shape == own.shape == (len(root[name]["data"].attrs["bands"]), px, px)
        assert window.dtype == own.dtype and np.array_equal(window, own) and (own != 0).all()
        asset.href = asset.get_absolute_href()  # xpystac opens the href as given
        with xr.open_dataset(asset) as ds:
            assert np.array_equal(ds["data"].sel(x=slice(left, right), y=slice(top, bottom)).values, own)


def test_croissant_loads_and_gives_the_tile_index_records(published: tuple[Path, Path]) -> None:
    store, folder = published
    dataset = mlc.Dataset(jsonld=folder / "croissant.json")
    issues = dataset.metadata.ctx.issues
    assert not issues.errors and not issues.warnings, issues.report()
    index = gpd.read_parquet(store.with_name("demo.tiles.parquet"))
    records = list(itertools.islice(dataset.records("tiles"), 5))
    assert [r["tiles/tile"].decode() for r in records] == list(index["tile"][:5])
    assert [r["tiles/split"].decode() for r in records] == list(index["split"][:5])
    assert [r["tiles/s2_valid"] for r in records] == list(index["s2_valid"][:5])
    sensors = {r["sensors/group"]: r for r in dataset.records("sensors")}
    assert {g: r["sensors/spatialResolution"] for g, r in sensors.items()} == {
        "s2": "10 m", "l8": "30 m", "vhr": "4 m", "labels": "10 m"}
    raw = json.loads((folder / "croissant.json").read_text())
    assert "http://mlcommons.org/croissant/geo/1.0" in raw["conformsTo"]
    assert raw["geocr:coordinateReferenceSystem"] == "EPSG:2154"
    south, west, north, east = (float(v) for v in raw["spatialCoverage"]["geo"]["box"].split())
    assert 1.0 < west < east < 2.0 and 43.0 < south < north < 44.0  # near Toulouse
    assert {d["@id"] for d in raw["distribution"]} == {"tile-index", "stac-items", "store"}


def test_card_is_generated_from_the_store(published: tuple[Path, Path]) -> None:
    _, folder = published
    card = (folder / "README.md").read_text()
    front = card.split("---\n")[1]
    assert "license: other" in front and "size_categories:\n- n<1K" in front
    assert "pretty_name: MSC-France demo 1.0.0" in front
    assert "| train | 16 | 16 |" in card and "| val | 16 | 16 |" in card
    assert "| `s2` | B08 | nir | 0.842 | 0.145 |" in card
    assert "Contains modified Copernicus Sentinel data 2023" in card and "CC-BY-4.0" in card
    assert "Marsocci" in card and "2405.09922" in card and "Synthetic data" not in card


def test_version_follows_the_store(tmp_path: Path) -> None:
    data, store = _data(tmp_path, seed=2, blocks=1, splits=("train",))
    out = tmp_path / "published"

    def run(day: dt.date, store: Path = store) -> PublishSummary:
        return publish(PublishRequest(data=data, store=str(store), out=out, today=day))

    first = run(DAY)
    assert (first.version, first.change.kind, first.tiles) == ("1.0.0", "first", 16)
    changelog = (out / "CHANGELOG.md").read_text()
    assert "## 1.0.0 (2026-12-02)" in changelog and "first publish: 16 tiles (train 16)" in changelog

    again = run(DAY + dt.timedelta(days=1))  # nothing changed: same version, date and changelog
    assert (again.version, again.change.kind) == ("1.0.0", "unchanged")
    assert (out / "CHANGELOG.md").read_text() == changelog
    assert json.loads((out / "collection.json").read_text())["sci:citation"].endswith("(2026-12-02), built with "
                                                                                       f"{_generator()}.")

    write_tile_store(store, seed=2, blocks=2, splits=("train",))  # 16 more tiles
    grown = run(DAY + dt.timedelta(days=2))
    assert (grown.version, grown.change.kind, len(grown.change.added), grown.tiles) == ("1.1.0", "minor", 16, 32)
    changelog = (out / "CHANGELOG.md").read_text()
    assert changelog.index("## 1.1.0 (2026-12-04)") < changelog.index("## 1.0.0 (2026-12-02)")
    assert "- 16 tiles added, 0 removed: 32 tiles (train 32)" in changelog
    assert f"- added: {' '.join(sorted(grown.change.added))}\n" in changelog
    assert "- per group: s2 32 tiles from 1 source item; l8 32 tiles from 1 source item" in changelog

    group = zarr.open_group(str(store), mode="r+")["s2"]  # only metadata: new band statistics, as a rerun writes them
    group.attrs["statistics"] = {band: {"mean": 0.5, "std": 0.1, "count": 1.0} for band in ("B02", "B03", "B04", "B08")}
    zarr.consolidate_metadata(str(store))
    patched = run(DAY + dt.timedelta(days=3))
    assert (patched.version, patched.change.kind) == ("1.1.1", "patch")
    assert "## 1.1.1 (2026-12-05)\n\n- metadata only: the same tiles" in (out / "CHANGELOG.md").read_text()

    _, other = _data(tmp_path, name="other", seed=2, blocks=1, splits=("train",), labels=True)  # another recipe
    major = run(DAY + dt.timedelta(days=4), other)
    assert (major.version, major.change.kind, len(major.change.removed)) == ("2.0.0", "major", 16)
    changelog = (out / "CHANGELOG.md").read_text()
    assert "- recipe, grid or store format changed: now demo (" in changelog and changelog.count("\n## ") == 4
    assert json.loads((out / "release.json").read_text())["version"] == "2.0.0"


def test_a_store_of_the_demo_world_says_it_is_synthetic(tmp_path: Path) -> None:
    data, _ = _data(tmp_path, seed=3, blocks=1, splits=("test",))
    record = RecipeRecord(recipe=load_recipe("demo"), catalog="demo").to_json()
    atomic_write(data / "catalogs" / "synthetic" / "catalog.json", json.dumps({"type": "Catalog", CATALOG_KEY: record}))
    folder = publish(PublishRequest(data=data, today=DAY)).folder
    assert "> **Synthetic data.**" in (folder / "README.md").read_text()
    collection = json.loads((folder / "collection.json").read_text())
    assert collection["msc:synthetic"] is True and "synthetic demo world" in collection["description"]


@pytest.mark.parametrize(("args", "message"), [
    ((), "no tile store in"),
    (("--store", "missing.zarr"), "no tile store at missing.zarr"),
    (("--store", "s3://bucket/demo.zarr"), "publish writes beside a local store"),
])
def test_publish_errors_are_one_line(tmp_path: Path, args: tuple[str, ...], message: str) -> None:
    result = subprocess.run([sys.executable, "-m", "msc_france", "publish", "--data", str(tmp_path), *args],
                            capture_output=True, text=True, timeout=300, cwd=tmp_path, check=False)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip().count("\n") == 0 and message in result.stderr, result.stderr


def _generator() -> str:
    from importlib.metadata import version

    return f"msc-france {version('msc-france')}"
