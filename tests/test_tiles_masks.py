"""What the tiler masks, on small synthetic files: snow in the Sentinel-2 SCL (invalid, not cloud, and
the reason a tile fails quality), the fill of a file that declares no nodata, and the table of causes by code."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin

from msc_france.grid import TileGrid, TileId
from msc_france.sensors import SENSORS
from msc_france.store.index import build_index
from msc_france.store.layout import Layer
from msc_france.tiles.shard import _tile_record
from msc_france.tiles.sources import SourceItem
from msc_france.tiles.warp import CLEAR, CLOUD, NODATA, _cause, _causes, render
from tests.test_tiles_fast import ORIGIN, UTM, _lambert_target, _source

GRID = TileGrid.create(480, {"s2": 10})
S2_LAYER = Layer("s2", "s2", ("B04",), "uint16", 0, 1e-4, -0.1, (0.665,))
VHR_LAYER = Layer("vhr", "vhr", ("red",), "uint16", 0, 1 / 255, 0.0, (0.66,))


def _item(sensor: str, assets: dict[str, Path], nodata: dict[str, float] | None = None) -> SourceItem:
    footprint = _lambert_target(10.0, beyond=True).extent.wkt
    return SourceItem(sensor=sensor, item_id=f"{sensor}-item", region="test", datetime="2023-06-01T10:30:00Z",
                      cloud=0.0, baseline="05.09", footprint_wkt=footprint,
                      assets=tuple(sorted((k, str(v)) for k, v in assets.items())),
                      nodata=tuple(sorted((nodata or {}).items())))


def _scl(path: Path, snow_columns: int) -> Path:
    """An SCL layer at 20 m over the source: vegetation (4), snow (11) in its first ``snow_columns`` columns."""
    codes = np.full((150, 150), 4, np.uint8)
    codes[:, :snow_columns] = 11
    profile = {"driver": "GTiff", "width": 150, "height": 150, "count": 1, "dtype": "uint8", "nodata": 0,
               "crs": UTM, "transform": from_origin(*ORIGIN, 20, 20)}
    with rasterio.open(path, "w", **profile) as out:
        out.write(codes, 1)
    return path


def test_snow_is_invalid_not_cloud_and_the_reason_a_tile_fails(tmp_path: Path) -> None:
    item = _item("s2", {"B04": _source(tmp_path / "B04.tif", holes=False, bands=1),
                        "SCL": _scl(tmp_path / "SCL.tif", snow_columns=60)})
    target = _lambert_target(10.0, beyond=False)
    rendered = render(S2_LAYER, [item], target)
    assert rendered.has_data.all() and 0.2 < (~rendered.valid).mean() < 0.6, "snow pixels are data, not valid"
    record = _tile_record(TileId(0, 0), S2_LAYER, rendered, (slice(None), slice(None)))
    assert record.cloud_fraction == 0.0, "snow is not cloud"
    shares = record.invalid_fractions
    assert shares["snow"] == pytest.approx(1 - record.valid_fraction) and shares["cloud"] == 0.0
    reason = build_index([record], GRID).iloc[0]["quality_reason"]
    assert reason == f"s2 valid {record.valid_fraction:.2f} < 0.95 (snow {shares['snow']:.2f})"


@pytest.mark.parametrize(("fill", "declared"), [(0, None), (65535, 65535.0)])
def test_a_file_without_nodata_is_masked_with_the_declared_one(tmp_path: Path, fill: int,
                                                               declared: float | None) -> None:
    """A file that declares no nodata: its fill (edge and holes) is nodata all the same, as the item's
    raster:bands say (or the layer's nodata, 0, when they say nothing), exactly as if the file said so."""
    target = _lambert_target(10.0, beyond=True)
    said = _item("vhr", {"image": _source(tmp_path / "said.tif", holes=True, bands=1, nodata=fill, fill=fill)})
    unsaid = _item("vhr", {"image": _source(tmp_path / "unsaid.tif", holes=True, bands=1, nodata=None, fill=fill)},
                   None if declared is None else {"image": declared})
    with rasterio.open(unsaid.asset("image")) as ds:
        assert ds.nodata is None
    expected, found = render(VHR_LAYER, [said], target), render(VHR_LAYER, [unsaid], target)
    assert 0.3 < found.valid.mean() < 0.9, "the swath edge and the holes are not valid"
    assert np.array_equal(found.valid, expected.valid) and np.array_equal(found.data, expected.data)
    record = _tile_record(TileId(0, 0), VHR_LAYER, found, (slice(None), slice(None)))
    assert record.invalid_fractions["nodata"] == pytest.approx(1 - record.valid_fraction)


@pytest.mark.parametrize(("sensor", "dtype"), [("s2", "uint8"), ("l8", "uint16")])
def test_the_causes_looked_up_are_those_the_mask_says(sensor: str, dtype: str) -> None:
    """Every code of the quality mask's type: the table the tiler looks causes up in, against the mask."""
    mask = SENSORS[sensor].mask
    assert mask is not None
    codes = np.arange(np.iinfo(dtype).max + 1, dtype=dtype)
    found = _causes(mask, np.dtype(dtype).str)[codes[::-1]]
    expected = _cause(mask, codes[::-1])
    assert np.array_equal(found, expected) and found.dtype == np.uint8
    assert {CLEAR, CLOUD, NODATA} <= set(np.unique(found).tolist()), "the premise: codes of several causes"
