"""Sensor descriptions: encodings, encoding selection from STAC metadata, quality masks, band tables."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from msc_france.errors import UserError
from msc_france.sensors import (
    QA_PIXEL_BITS,
    SENSORS,
    BitMask,
    ClassMask,
    Encoding,
    s2_encoding,
    sensor,
)

_spec = importlib.util.spec_from_file_location("pc_items", Path(__file__).parent / "data" / "pc_items.py")
pc_items = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(pc_items)

S2 = SENSORS["s2"]
L8 = SENSORS["l8"]
VHR = SENSORS["vhr"]
LANDSAT_SR = Encoding(dtype="uint16", nodata=0, scale=2.75e-5, offset=-0.2)


def _valid_range(enc: Encoding) -> tuple[float, float]:
    """Reflectances whose DN lies strictly inside the valid DN range (never the nodata DN)."""
    info = np.iinfo(enc.dtype)
    return (info.min + 1) * enc.scale + enc.offset, (info.max - 1) * enc.scale + enc.offset


# --- Encoding ------------------------------------------------------------------------------------
ENCODINGS = {
    "s2-03.01": s2_encoding("03.01"),
    "s2-04.00": s2_encoding("04.00"),
    "s2-05.10": s2_encoding("05.10"),
    "landsat": L8.encoding,
    "vhr": VHR.encoding,
}


def test_s2_baselines_offsets() -> None:
    assert s2_encoding("03.01").offset == 0.0
    assert s2_encoding("02.14").offset == 0.0
    for baseline in ("04.00", "05.09", "05.10", "05.11"):
        enc = s2_encoding(baseline)
        assert enc.offset == pytest.approx(-0.1)
        assert (enc.dtype, enc.nodata, enc.scale) == ("uint16", 0, pytest.approx(1e-4))


@pytest.mark.parametrize(
    "baseline, expected", [("03.01", 0.1), ("04.00", 0.0), ("05.10", 0.0)]
)
def test_s2_dn_1000(baseline: str, expected: float) -> None:
    value = s2_encoding(baseline).decode(np.array([1000], dtype=np.uint16))
    assert value[0] == pytest.approx(expected, abs=1e-6)


@pytest.mark.parametrize("bad", ["N0510", "5", "05.10.1", "", "v5.x"])
def test_s2_bad_baseline(bad: str) -> None:
    with pytest.raises(UserError, match="processing_baseline"):
        s2_encoding(bad)


@pytest.mark.parametrize("name", list(ENCODINGS))
def test_encode_decode_round_trip(name: str) -> None:
    enc = ENCODINGS[name]
    rng = np.random.default_rng(42)
    low, high = _valid_range(enc)
    low, high = max(low, -0.1) + enc.scale, min(high, 1.5) - enc.scale
    values = rng.uniform(low, high, size=20_000)
    for dtype in (np.float64, np.float32):
        x = values.astype(dtype)
        dn = enc.encode(x)
        assert dn.dtype == np.dtype(enc.dtype)
        assert not np.any(dn == enc.nodata)
        back = enc.decode(dn)
        assert back.dtype == np.float32
        # rounding to the nearest DN loses at most half a step (plus float32 noise of decode)
        assert np.max(np.abs(back.astype(np.float64) - x.astype(np.float64))) <= enc.scale / 2 + 1e-6


@pytest.mark.parametrize("name", list(ENCODINGS))
def test_decode_encode_dn_round_trip(name: str) -> None:
    """Every valid DN survives decode then encode exactly."""
    enc = ENCODINGS[name]
    info = np.iinfo(enc.dtype)
    dn = np.arange(info.min, info.max + 1, dtype=enc.dtype)
    dn = dn[dn != enc.nodata]
    assert np.array_equal(enc.encode(enc.decode(dn)), dn)


def test_landsat_decode_known_values() -> None:
    values = LANDSAT_SR.decode(np.array([0, 10000, 43636], dtype=np.uint16))
    assert np.isnan(values[0])
    assert values[1] == pytest.approx(0.075, abs=1e-6)
    assert values[2] == pytest.approx(43636 * 2.75e-5 - 0.2, abs=1e-6)  # 0.99999
    assert abs(values[2] - 1.0) < LANDSAT_SR.scale
    assert LANDSAT_SR.decode(np.array([7273], dtype=np.uint16))[0] == pytest.approx(7.5e-6, abs=1e-6)
    assert L8.encoding == LANDSAT_SR


def test_nodata_and_nan() -> None:
    for enc in ENCODINGS.values():
        dn = enc.encode(np.array([np.nan, 0.3, np.nan]))
        assert dn[0] == enc.nodata and dn[2] == enc.nodata
        assert dn[1] != enc.nodata
        decoded = enc.decode(np.array([enc.nodata, dn[1]], dtype=enc.dtype))
        assert np.isnan(decoded[0]) and not np.isnan(decoded[1])


@pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")  # +-inf through nan_to_num
def test_encode_clips_and_never_hits_nodata() -> None:
    for name, enc in ENCODINGS.items():
        info = np.iinfo(enc.dtype)
        dn = enc.encode(np.array([50.0, np.inf, -50.0, -np.inf]))
        assert dn[0] == info.max and dn[1] == info.max, name  # nodata is 0: the top DN is valid
        # far below range: the lowest *valid* DN, not the nodata DN 0
        assert dn[2] == info.min + 1 and dn[3] == info.min + 1, name
        assert not np.any(dn == enc.nodata), name
    # exact zero DN of the old S2 baseline (reflectance 0.0) is nudged off nodata
    assert s2_encoding("03.01").encode(np.array([0.0]))[0] == 1


def test_encode_avoids_nodata_at_top_of_range() -> None:
    enc = Encoding(dtype="uint8", nodata=255, scale=1 / 254, offset=0.0)
    dn = enc.encode(np.array([0.0, 1.0, 5.0, np.nan]))
    assert dn.tolist() == [0, 254, 254, 255]


# --- Sensor.encoding_for ------------------------------------------------------------------------
def test_encoding_for_s2_by_baseline() -> None:
    new = S2.encoding_for({"s2:processing_baseline": "05.10"})
    old = S2.encoding_for({"s2:processing_baseline": "03.01"})
    assert new.offset == pytest.approx(-0.1) and old.offset == 0.0
    assert new.scale == old.scale == pytest.approx(1e-4)
    dn = np.array([1000], dtype=np.uint16)
    assert new.decode(dn)[0] == pytest.approx(0.0, abs=1e-6)
    assert old.decode(dn)[0] == pytest.approx(0.1, abs=1e-6)


def test_encoding_for_landsat_from_raster_bands() -> None:
    asset = {"raster:bands": [{"scale": 2.75e-05, "offset": -0.2, "nodata": 0, "data_type": "uint16"}]}
    assert L8.encoding_for({}, asset) == LANDSAT_SR
    other = {"raster:bands": [{"scale": 0.01, "offset": 1.5, "nodata": 7, "data_type": "int16"}]}
    assert L8.encoding_for({}, other) == Encoding(dtype="int16", nodata=7, scale=0.01, offset=1.5)
    # partial raster:bands fall back field by field on the sensor default
    partial = {"raster:bands": [{"scale": 1e-4}]}
    assert L8.encoding_for({}, partial) == Encoding("uint16", 0, 1e-4, -0.2)
    # no asset or no raster:bands: the default
    assert L8.encoding_for({}) == L8.encoding
    assert L8.encoding_for({}, {"href": "x"}) == L8.encoding


def test_encoding_for_vhr_default() -> None:
    enc = VHR.encoding_for({})
    assert enc == VHR.encoding
    assert (enc.dtype, enc.nodata, enc.offset) == ("uint8", 0, 0.0)
    assert enc.decode(np.array([255], dtype=np.uint8))[0] == pytest.approx(1.0)


def test_encoding_for_vhr_per_band_and_bit_depth() -> None:
    twelve_bit = {"raster:bands": [{"data_type": "uint16", "nodata": 0, "bits_per_sample": 12},
                                   {"data_type": "uint16", "nodata": 0, "scale": 2.5e-4, "offset": -0.01}]}
    assert VHR.encoding_for({}, twelve_bit, band=1) == Encoding("uint16", 0, 1 / 4095, 0.0), "display: 4095 is 1"
    assert VHR.encoding_for({}, twelve_bit, band=2) == Encoding("uint16", 0, 2.5e-4, -0.01), "the band's own entry"
    assert VHR.encoding_for({}, twelve_bit, band=4) == VHR.encoding_for({}, twelve_bit, band=1), "short list: the first"
    assert VHR.encoding_for({}, None, dtype="uint16") == Encoding("uint16", 0, 1 / 65535, 0.0), "the file's type wins"
    assert VHR.encoding_for({}, {"raster:bands": [{"data_type": "uint8"}]}) == VHR.encoding
    with pytest.raises(UserError, match="float32 is not an integer type"):
        VHR.encoding_for({}, {"raster:bands": [{"data_type": "float32"}]})


# --- Planetary Computer shaped items ------------------------------------------------------------
def test_pc_items_are_deterministic() -> None:
    assert pc_items.sentinel2_item(3) == pc_items.sentinel2_item(3)
    assert pc_items.landsat_item(2) == pc_items.landsat_item(2)
    assert pc_items.sentinel2_item(0)["id"] != pc_items.sentinel2_item(1)["id"]


@pytest.mark.parametrize("baseline, offset", [("05.10", -0.1), ("04.00", -0.1), ("03.01", 0.0)])
def test_s2_pc_item(baseline: str, offset: float) -> None:
    item = pc_items.sentinel2_item(1, processing_baseline=baseline)
    props, assets = item["properties"], item["assets"]
    assert item["collection"] == "sentinel-2-l2a"
    assert list(assets) == list(pc_items.S2_ASSET_KEYS)
    assert props["platform"] in S2.platforms
    assert 0 <= props["eo:cloud_cover"] <= 100
    assert "proj:epsg" in props and "proj:transform" not in props  # S2: proj grid per asset
    for band in S2.bands:
        asset = assets[band.asset]
        assert [b["name"] for b in asset["eo:bands"]] == [band.name]
        assert asset["eo:bands"][0]["center_wavelength"] == pytest.approx(band.center_wavelength, abs=0.002)
        assert asset["gsd"] == band.gsd
        assert asset["proj:transform"][0] == band.gsd
        assert "raster:bands" not in asset
        # S2 ignores asset metadata: the baseline decides
        enc = S2.encoding_for(props, asset)
        assert enc.offset == pytest.approx(offset) and enc.scale == pytest.approx(1e-4) and enc.nodata == 0
    assert assets[S2.mask.asset]["gsd"] == S2.mask.gsd


def test_landsat_pc_item() -> None:
    item = pc_items.landsat_item(0, platform="landsat-8")
    props, assets = item["properties"], item["assets"]
    assert item["collection"] == "landsat-c2-l2"
    assert list(assets) == list(pc_items.LANDSAT_ASSET_KEYS)
    assert props["platform"] in L8.platforms
    assert {"proj:epsg", "proj:shape", "proj:transform"} <= set(props)  # Landsat: item-level grid
    assert props["proj:transform"][0] == 30.0
    for band in L8.bands:
        asset = assets[band.asset]
        assert asset["raster:bands"], band.name
        assert asset["eo:bands"][0]["common_name"] == band.common_name
        assert asset["eo:bands"][0]["center_wavelength"] == pytest.approx(band.center_wavelength, abs=0.01)
        assert L8.encoding_for(props, asset) == LANDSAT_SR
    # the thermal band carries its own (non-reflectance) encoding, which encoding_for reads through
    thermal = L8.encoding_for(props, assets["lwir11"])
    assert (thermal.scale, thermal.offset, thermal.nodata) == (pytest.approx(0.00341802), 149.0, 0)
    # the QA layer the mask reads exists, and our bit numbers agree with its bitfields
    qa = assets[L8.mask.asset]
    offsets = {b["name"]: b["offset"] for b in qa["classification:bitfields"] if b["length"] == 1}
    for name, bit in QA_PIXEL_BITS.items():
        assert offsets[name] == bit


def test_landsat_9_item_same_layout() -> None:
    l9 = pc_items.landsat_item(1, platform="landsat-9")
    assert l9["id"].startswith("LC09_") and l9["properties"]["platform"] == "landsat-9"
    assert list(l9["assets"]) == list(pc_items.landsat_item(1)["assets"])


# --- masks ---------------------------------------------------------------------------------------
def test_scl_mask() -> None:
    mask = S2.mask
    assert isinstance(mask, ClassMask) and mask.asset == "SCL"
    codes = np.arange(12)
    assert set(codes[mask.invalid(codes)].tolist()) == {0, 1, 3, 8, 9, 10, 11}
    assert set(codes[mask.cloudy(codes)].tolist()) == {3, 8, 9, 10}  # thin cirrus is cloud, snow is not
    assert set(codes[mask.snowy(codes)].tolist()) == {11}
    assert set(codes[mask.missing(codes)].tolist()) == {0}
    grid = codes.reshape(3, 4).astype(np.uint8)
    assert mask.invalid(grid).shape == (3, 4)


def _bits(value: int) -> set[int]:
    return {b for b in range(16) if value >> b & 1}


@pytest.mark.parametrize(
    "qa, name",
    [
        (21824, "clear land"),
        (21952, "clear water"),
        (1, "fill"),
        (22280, "high-confidence cloud"),
        (23888, "cloud shadow"),
        (55052, "cirrus + cloud"),
        (21826, "dilated cloud"),
        (30048, "snow"),
    ],
)
def test_qa_pixel_mask(qa: int, name: str) -> None:
    mask = L8.mask
    assert isinstance(mask, BitMask)
    bits = _bits(qa)
    fill = QA_PIXEL_BITS["fill"] in bits
    cloud = bool(bits & {QA_PIXEL_BITS[b] for b in ("dilated_cloud", "cirrus", "cloud", "cloud_shadow")})
    snow = QA_PIXEL_BITS["snow"] in bits
    arr = np.array([qa], dtype=np.uint16)
    assert mask.invalid(arr)[0] == (fill or cloud or snow), name
    assert mask.cloudy(arr)[0] == cloud, name
    assert mask.snowy(arr)[0] == snow, name


def test_qa_pixel_cirrus_and_snow_bits_alone_are_masked() -> None:
    """Bit 2 (cirrus) is cloud as Sentinel-2's thin cirrus is; bit 5 (snow) is invalid but not cloud."""
    mask = L8.mask
    clear = 21824
    cirrus, snow = clear | 1 << QA_PIXEL_BITS["cirrus"], clear | 1 << QA_PIXEL_BITS["snow"]
    qa = np.array([clear, cirrus, snow], dtype=np.uint16)
    assert mask.invalid(qa).tolist() == [False, True, True]
    assert mask.cloudy(qa).tolist() == [False, True, False]
    assert mask.snowy(qa).tolist() == [False, False, True]
    assert mask.missing(np.array([1, clear], dtype=np.uint16)).tolist() == [True, False] and mask.nodata == 1


def test_qa_pixel_named_values() -> None:
    """The textbook QA_PIXEL values, cross-checked against their bits."""
    mask = L8.mask
    qa = np.array([21824, 21952, 1, 22280, 23888, 55052], dtype=np.uint16)
    assert mask.invalid(qa).tolist() == [False, False, True, True, True, True]
    assert mask.cloudy(qa).tolist() == [False, False, False, True, True, True]
    assert _bits(21824) >= {QA_PIXEL_BITS["clear"]} and QA_PIXEL_BITS["water"] in _bits(21952)
    assert QA_PIXEL_BITS["cloud"] in _bits(22280) and QA_PIXEL_BITS["cloud_shadow"] in _bits(23888)
    assert {QA_PIXEL_BITS["cirrus"], QA_PIXEL_BITS["cloud"]} <= _bits(55052)


# --- bands ---------------------------------------------------------------------------------------
def test_sensor_registry() -> None:
    assert set(SENSORS) == {"s2", "l8", "vhr"}
    assert sensor("l8") is L8
    with pytest.raises(UserError, match="s2, l8, vhr"):
        sensor("s3")


def test_unknown_band_lists_bands() -> None:
    with pytest.raises(UserError) as info:
        S2.band("B10")
    message = str(info.value)
    assert "B10" in message and "\n" not in message
    for name in S2.band_names:
        assert name in message


def test_select_keeps_order() -> None:
    assert [b.name for b in L8.select(["red", "blue"])] == ["red", "blue"]
    with pytest.raises(UserError, match="nir"):
        L8.select(["red", "nir"])


def test_s2_band_table() -> None:
    names = S2.band_names
    assert len(names) == 12
    assert set(names) == {f"B{i:02d}" for i in range(1, 13) if i != 10} | {"B8A"}
    assert "B10" not in names
    native = {"B02": 10, "B03": 10, "B04": 10, "B08": 10,
              "B05": 20, "B06": 20, "B07": 20, "B8A": 20, "B11": 20, "B12": 20,
              "B01": 60, "B09": 60}
    assert {b.name: b.gsd for b in S2.bands} == native
    waves = [b.center_wavelength for b in S2.bands]
    assert waves == sorted(waves)  # listed by wavelength, B8A between B08 and B09
    assert all(b.asset == b.name for b in S2.bands)


def test_landsat_and_vhr_bands() -> None:
    assert L8.band_names == ("coastal", "blue", "green", "red", "nir08", "swir16", "swir22")
    assert all(b.gsd == 30 for b in L8.bands)
    assert [b.asset_band for b in VHR.bands] == [1, 2, 3, 4]
    assert {b.asset for b in VHR.bands} == {"image"}
