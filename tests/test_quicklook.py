"""Quick looks on synthetic arrays: true-colour stretch, triplet panels, PNG files, coverage map."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
from matplotlib.figure import Figure
from PIL import Image

from msc_france.grid import TileGrid, TileId
from msc_france.quicklook import TileKey, coverage_map, plot_triplet, robust_rgb, save_triplets, worldcover_colormap
from msc_france.sensors import SENSORS
from msc_france.store.index import build_index
from msc_france.store.records import TileRecord

FOOTPRINT = 480.0
GSD = {"s2": 10.0, "l8": 30.0, "vhr": 6.0, "labels": 10.0}
X0, Y1 = 1440.0, 7_198_080.0  # upper-left corner of tile (3, 4) of a 480 m grid


def is_png(path: Path) -> bool:
    with open(path, "rb") as handle:
        return handle.read(8) == b"\x89PNG\r\n\x1a\n"


# --- robust_rgb --------------------------------------------------------------------------------
def test_robust_rgb_range_shape_and_nodata_black() -> None:
    rng = np.random.default_rng(0)
    data = rng.integers(100, 5000, size=(3, 20, 30)).astype(np.uint16)
    data[:, 0, 0] = 0  # nodata in every band
    data[1, 5, 5] = 0  # nodata in one band only: the pixel is invalid
    rgb = robust_rgb(data, nodata=0)
    assert rgb.shape == (20, 30, 3)
    assert rgb.dtype == np.float32
    assert rgb.min() >= 0.0 and rgb.max() <= 1.0
    assert np.all(rgb[0, 0] == 0) and np.all(rgb[5, 5] == 0)
    # The stretch spans the range: some pixels saturate at each end of every band.
    for band in range(3):
        assert (rgb[..., band] == 1.0).any() and (rgb[..., band] == 0.0).sum() > 2


def test_robust_rgb_nan_and_stretch_ignores_invalid() -> None:
    data = np.tile(np.linspace(0.0, 1.0, 100, dtype=np.float32), (3, 10, 1))  # (3, 10, 100)
    data[:, :, :10] = 60000.0  # nodata, far above the valid range
    data[2, 3, 50] = np.nan
    rgb = robust_rgb(data, nodata=60000.0, percentiles=(0, 100))
    assert np.all(rgb[:, :10] == 0)
    assert np.all(rgb[3, 50] == 0)
    # With nodata excluded, valid values 0.1..1.0 stretch onto 0..1 (nodata would squash them).
    assert rgb[0, 10, 0] == pytest.approx(0.0, abs=1e-6)
    assert rgb[0, 99, 0] == pytest.approx(1.0, abs=1e-6)
    assert 0.4 < rgb[0, 55, 0] < 0.6


def test_robust_rgb_all_invalid_and_bad_shape() -> None:
    assert np.all(robust_rgb(np.zeros((3, 4, 4), np.uint8), nodata=0) == 0)
    with pytest.raises(ValueError):
        robust_rgb(np.ones((4, 5, 5)), nodata=0)


# --- synthetic tile ----------------------------------------------------------------------------
def coords(gsd: float) -> dict[str, np.ndarray]:
    n = round(FOOTPRINT / gsd)
    return {"x": X0 + gsd / 2 + gsd * np.arange(n), "y": Y1 - gsd / 2 - gsd * np.arange(n)}


def image(sensor: str, seed: int) -> xr.DataArray:
    c = coords(GSD[sensor])
    bands = list(SENSORS[sensor].band_names)
    rng = np.random.default_rng(seed)
    dtype = SENSORS[sensor].encoding.dtype
    high = 250 if dtype == "uint8" else 9000
    values = rng.integers(1, high, size=(len(bands), len(c["y"]), len(c["x"]))).astype(dtype)
    values[:, :3, :3] = 0  # nodata corner
    return xr.DataArray(values, dims=("band", "y", "x"), coords={"band": bands, **c},
                        attrs={"nodata": 0, "datetime": f"2023-06-0{seed}T10:30:00Z"})


def labels() -> xr.DataArray:
    c = coords(GSD["labels"])
    codes = np.array([0, 10, 20, 30, 40, 50, 60, 80, 90, 95, 100], dtype=np.uint8)
    values = codes[np.arange(len(c["y"]) * len(c["x"])) % len(codes)].reshape(len(c["y"]), len(c["x"]))
    return xr.DataArray(values, dims=("y", "x"), coords=c, attrs={"nodata": 0})


def valid_of(array: xr.DataArray) -> xr.DataArray:
    plane = array.isel(band=0) if "band" in array.dims else array
    v = xr.ones_like(plane, dtype=np.uint8).drop_vars("band", errors="ignore")
    v[:3, :3] = 0
    return v


def test_worldcover_colormap_codes() -> None:
    cmap, norm = worldcover_colormap()
    assert cmap.N == 12
    assert cmap(norm(0))[:3] == (0.0, 0.0, 0.0)  # nodata black
    assert cmap(norm(80))[:3] == pytest.approx((0x00 / 255, 0x64 / 255, 0xC8 / 255))  # water
    assert cmap(norm(95))[:3] != cmap(norm(90))[:3]


def test_plot_triplet_panels_titles_and_overlay() -> None:
    # Given out of order: panels still come s2, l8, vhr, labels.
    arrays = {"labels": labels(), "vhr": image("vhr", 3), "s2": image("s2", 1), "l8": image("l8", 2)}
    valid = {s: valid_of(a) for s, a in arrays.items()}
    fig = plot_triplet(arrays, valid, "tile 0003_0004")
    assert isinstance(fig, Figure)
    assert len(fig.axes) == 4
    titles = [ax.get_title() for ax in fig.axes]
    for title, sensor in zip(titles, ["s2", "l8", "vhr", "labels"], strict=True):
        assert title.startswith(sensor)
    assert "10 m" in titles[0] and "30 m" in titles[1] and "6 m" in titles[2]
    assert "2023-06-01T10:30:00Z" in titles[0] and "2023-06-02" in titles[1]
    assert fig._suptitle is not None and fig._suptitle.get_text() == "tile 0003_0004"
    # Invalid pixels get an overlay image on top of each panel.
    assert [len(ax.images) for ax in fig.axes] == [2, 2, 2, 2]
    overlay = fig.axes[0].images[1].get_array()
    assert tuple(overlay[0, 0]) == pytest.approx((1.0, 0.0, 1.0, 0.5))
    assert overlay[10, 10, 3] == 0.0
    # True colour of s2 uses B04/B03/B02: swapping B08 in does not change the picture.
    base = fig.axes[0].images[0].get_array().copy()
    changed = arrays["s2"].copy()
    changed.loc[{"band": "B08"}] = 1234
    fig2 = plot_triplet({"s2": changed}, None, "t")
    assert np.array_equal(fig2.axes[0].images[0].get_array(), base)
    assert len(fig2.axes[0].images) == 1  # no validity given: no overlay
    # Panels share the tile's ground extent.
    for ax in fig.axes:
        left, right, bottom, top = ax.images[0].get_extent()
        assert (left, right) == pytest.approx((X0, X0 + FOOTPRINT))
        assert (bottom, top) == pytest.approx((Y1 - FOOTPRINT, Y1))


def test_plot_triplet_subset_and_given_axes() -> None:
    fig = plot_triplet({"l8": image("l8", 2), "vhr": image("vhr", 3)}, None, "two")
    assert [ax.get_title().split()[0] for ax in fig.axes] == ["l8", "vhr"]
    other = Figure()
    axes = other.subplots(1, 2)
    assert plot_triplet({"l8": image("l8", 2), "vhr": image("vhr", 3)}, None, "x", ax=axes) is other
    with pytest.raises(ValueError):
        plot_triplet({"l8": image("l8", 2), "vhr": image("vhr", 3)}, None, "x", ax=axes[:1])


@dataclass
class FakePairs:
    sensors: list[str] = field(default_factory=lambda: ["s2", "l8", "vhr", "labels"])
    asked: list = field(default_factory=list)

    def tile(self, tile_id: TileKey) -> dict[str, xr.Dataset]:
        self.asked.append(tile_id)
        out = {}
        for i, sensor in enumerate(self.sensors, start=1):
            data = labels().expand_dims(band=["map"]) if sensor == "labels" else image(sensor, i)
            data = data.copy()
            data.attrs = {}
            out[sensor] = xr.Dataset(
                {"data": data, "valid": valid_of(data)},
                attrs={"nodata": 0, "datetime": None if sensor == "labels" else f"2023-07-0{i}T11:00:00Z"},
            )
        return out


def test_save_triplets_writes_pngs(tmp_path: Path) -> None:
    pairs = FakePairs()
    tiles = [TileId(3, 4), TileId(4, 4)]
    paths = save_triplets(pairs, tiles, tmp_path / "ql")
    assert [p.name for p in paths] == ["triplet_0003_0004.png", "triplet_0004_0004.png"]
    assert pairs.asked == tiles
    for path in paths:
        assert path.stat().st_size > 0 and is_png(path)
        with Image.open(path) as img:
            width, height = img.size
        assert width > 0 and height > 0
        assert width > 2 * height  # four panels side by side


def test_coverage_map_writes_png(tmp_path: Path) -> None:
    grid = TileGrid.create(FOOTPRINT, GSD)
    records = []
    for col in range(6):
        for row in range(5):
            for sensor in ("s2", "l8"):
                valid = 0.5 if (sensor == "l8" and col == row) else 1.0
                records.append({"tile": str(TileId(col, row)), "col": col, "row": row, "sensor": sensor,
                                "region": "alpha", "datetime": None, "items": [], "valid_fraction": valid,
                                "cloud_fraction": 0.0})
    gdf = build_index([TileRecord.from_json(r) for r in records], grid)
    assert (~gdf["quality_ok"]).sum() == 5
    path = coverage_map(gdf, tmp_path / "maps" / "coverage.png")
    assert path == tmp_path / "maps" / "coverage.png"
    assert path.stat().st_size > 0 and is_png(path)
    with Image.open(path) as img:
        assert img.size[0] > 0 and img.size[1] > 0
    empty = coverage_map(gdf.iloc[:0], tmp_path / "empty.png")
    assert is_png(empty)
