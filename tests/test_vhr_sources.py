"""VHR from a user STAC with its own data type and band order: a 12-bit SPOT-like collection
(``tests/data/spot_vhr.py``, bands B, G, R, NIR) served by a real STAC API on loopback, downloaded
with the catalog's band mapping and tiled into a uint16 VHR layer with the source's scale/offset."""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pystac
import pytest
import rasterio
import xarray as xr
import zarr
from odc.geo.geom import BoundingBox
from rich.console import Console

from msc_france.config import StacSource, load_catalog, load_recipe
from msc_france.demo.server import DemoServer, serve_world
from msc_france.download.fetch import AssetJob, fetch_asset
from msc_france.download.http import FetchError, HttpOpener, RetryPolicy, Transfer, http_client, no_signing
from msc_france.download.run import DownloadRequest, run_download, vhr_band_indexes
from msc_france.errors import UserError
from msc_france.pairs import open_pairs
from msc_france.sensors import VHR, Encoding
from msc_france.store import open_store
from msc_france.tiles.create import create_or_open
from msc_france.tiles.run import TilesRequest, run_tiles
from msc_france.tiles.sources import SourceItem, item_encodings
from tests.data import spot_vhr
from tests.test_download import _region

World = tuple[Path, dict[str, Any]]
QUIET = Console(file=open(os.devnull, "w"))  # noqa: SIM115
CATALOG = Path(__file__).parent / "data" / "spot-catalog.yaml"
SOURCE_BAND = {name: i + 1 for i, name in enumerate(spot_vhr.ORDER)}  # band name -> band index in the source


@pytest.fixture(scope="module")
def spot(tmp_path_factory: pytest.TempPathFactory, tiny_world: World) -> tuple[Path, dict[str, Any]]:
    """The tiny world plus the SPOT-like collection, served while the download runs (``demo://``)."""
    data = tmp_path_factory.mktemp("spot") / "data"
    world = data / "demo-world"
    shutil.copytree(tiny_world[0], world, ignore=shutil.ignore_patterns("server.*"))
    truth = spot_vhr.add_spot_collection(world, seed=6)
    with serve_world(world):
        summary = run_download(DownloadRequest(region=_region(tiny_world), catalog=str(CATALOG), recipe="demo",
                                               data=data), QUIET)
    assert summary.failed == []
    return data, truth


@pytest.fixture(scope="module")
def store(spot: tuple[Path, dict[str, Any]]) -> str:
    return run_tiles(TilesRequest(recipe="demo", data=spot[0], workers=1), QUIET).store


def _vhr_item(data: Path) -> pystac.Item:
    catalog = pystac.Catalog.from_file(str(next((data / "catalogs").glob("*/catalog.json"))))
    return next(i for i in catalog.get_items(recursive=True) if i.properties["msc:sensor"] == "vhr")


def test_download_maps_bands_and_records_the_source_encoding(spot: tuple[Path, dict[str, Any]]) -> None:
    data, truth = spot
    item = _vhr_item(data)
    assert item.id == spot_vhr.ITEM_ID
    asset = item.assets[spot_vhr.ASSET]
    recorded = asset.extra_fields["raster:bands"]
    assert [b["name"] for b in recorded] == ["red", "green", "blue", "nir"]
    assert all((b["data_type"], b["scale"], b["offset"], b["nodata"]) == ("uint16", spot_vhr.SCALE, spot_vhr.OFFSET, 0)
               for b in recorded)
    with rasterio.open(asset.get_absolute_href()) as local:
        assert local.dtypes == ("uint16",) * 4 and local.descriptions == ("red", "green", "blue", "nir")
        row, col = local.index(*truth["point"])
        assert local.read(1)[row, col] == truth["dn"]["red"], "the local red band is the source's band 3"
        assert local.read(3)[row, col] == truth["dn"]["blue"]


def test_store_keeps_the_12_bit_values_and_the_source_scale(store: str, spot: tuple[Path, dict[str, Any]]) -> None:
    truth = spot[1]
    data = zarr.open_group(store, mode="r")["vhr"]["data"]
    assert data.dtype == np.uint16
    assert (data.attrs["scale_factor_dn"], data.attrs["add_offset_dn"], data.attrs["nodata"]) == (
        spot_vhr.SCALE, spot_vhr.OFFSET, 0)
    ds = xr.open_zarr(store, group="vhr", mask_and_scale=False, chunks=None)
    x, y = truth["point"]
    at_patch = ds["data"].sel(x=x, y=y, method="nearest").values
    expected = [truth["dn"][name] for name in ds["band"].values]
    assert np.abs(at_patch.astype(int) - expected).max() <= 1, f"{at_patch} vs {expected}: band mapping or clipping"
    assert list(ds["band"].values) == ["red", "green", "blue", "nir"]
    assert int(at_patch[0]) == truth["dn"]["red"] == 3300 and SOURCE_BAND["red"] == 3
    valid = ds["valid"].sel(y=slice(truth["top"], truth["top"] - 960)).values.astype(bool)
    values = ds["data"].sel(y=slice(truth["top"], truth["top"] - 960)).values
    assert values[:, valid].max() > 255 and values[:, valid].min() >= 1, "12-bit values survive, not clipped to 255"
    east = ds["valid"].sel(x=truth["east"] - 2, y=y, method="nearest")
    assert int(east) == 0, "the source's no-data edge stays invalid"


def test_readers_take_the_scale_from_the_store(store: str, spot: tuple[Path, dict[str, Any]]) -> None:
    pairs = open_pairs(store)
    sample = pairs[0]["vhr"]
    assert (sample.attrs["scale"], sample.attrs["offset"]) == (spot_vhr.SCALE, spot_vhr.OFFSET)
    stats = open_store(store).normalisation("vhr")
    assert (stats.scale, stats.offset) == (spot_vhr.SCALE, spot_vhr.OFFSET)
    red = zarr.open_group(store, mode="r")["vhr"].attrs["statistics"]["red"]["mean"]
    assert 0.2 < red < 0.8, "reflectance = DN * scale + offset (DN about 1500-3300 in red)"


def test_a_store_keeps_one_vhr_encoding(store: str, tmp_path: Path) -> None:
    recipe = load_recipe("demo")
    with pytest.raises(UserError, match=re.escape("holds vhr as uint16 scale 0.00025 offset -0.01 nodata 0, "
                                                  "these items are uint8")):
        create_or_open(store, recipe)
    other = str(tmp_path / "eight-bit.zarr")
    create_or_open(other, recipe)
    assert zarr.open_group(other, mode="r")["vhr"]["data"].dtype == np.uint8, "8-bit by default"


def _item(item_id: str, encoding: Encoding) -> SourceItem:
    return SourceItem("vhr", item_id, "r", None, 0.0, None, "POINT (0 0)", (("image", "x.tif"),), encodings=(encoding,))


def test_items_of_two_encodings_are_one_line_error() -> None:
    twelve = Encoding("uint16", 0, spot_vhr.SCALE, spot_vhr.OFFSET)
    assert item_encodings([_item("a", twelve), _item("b", twelve)]) == {"vhr": twelve}
    assert item_encodings([]) == {}
    with pytest.raises(UserError, match=re.escape("vhr items disagree: a is uint16 scale 0.00025 offset -0.01 "
                                                  "nodata 0, b is uint8 scale 0.00392157")) as info:
        item_encodings([_item("a", twelve), _item("b", VHR.encoding)])
    assert "\n" not in str(info.value)


def test_band_mapping_defaults_and_gaps() -> None:
    spot_source = load_catalog(str(CATALOG)).sources["vhr"]
    assert isinstance(spot_source, StacSource)
    assert vhr_band_indexes(spot_source, ("red", "green", "blue", "nir")) == (3, 2, 1, 4)
    default = spot_source.model_copy(update={"bands": None})
    assert vhr_band_indexes(default, ("red", "green", "blue", "nir")) == (1, 2, 3, 4)
    rgb = spot_source.model_copy(update={"bands": {"red": 1, "green": 2, "blue": 3}})
    with pytest.raises(UserError, match="have no 'nir', which the recipe needs"):
        vhr_band_indexes(rgb, ("red", "nir"))


def test_a_band_index_beyond_the_asset_fails_with_its_reason(tmp_path: Path, served_world: DemoServer,
                                                             tiny_world: World) -> None:
    left, bottom, right, top = tiny_world[1]["scene"]["bounds"]
    job = AssetJob("vhr", "x", "image", f"{served_world.files_url}/cogs/demo-vhr/0/image.tif", (3, 5), ("red", "nir"),
                   4.0, "average", tmp_path / "image.tif")
    opener = HttpOpener(http_client(), no_signing, RetryPolicy(), Transfer())
    with pytest.raises(FetchError, match="has 4 bands, no band 5; check the catalog's `bands` for vhr"):
        fetch_asset(job, BoundingBox(left, bottom, right, top, "EPSG:2154"), opener)
    assert not job.path.exists()
