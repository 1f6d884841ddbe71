"""Declarative descriptions of the sensors: bands, wavelengths, native GSDs, encodings and masks.

This is the one place that knows how each product is encoded; every stage reads it instead of
hard-coding band lists or scale factors. Asset keys are those of the Planetary Computer.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from msc_france.errors import UserError


@dataclass(frozen=True)
class Band:
    """One spectral band: where it lives in a STAC item and what it measures."""

    name: str
    asset: str
    center_wavelength: float  # micrometres
    fwhm: float  # micrometres
    gsd: float  # native ground sampling distance, metres (0: set by the source)
    common_name: str | None = None
    asset_band: int = 1  # 1-based band index inside the asset (multi-band VHR images)


@dataclass(frozen=True)
class Encoding:
    """Integer DN to physical value: ``value = DN * scale + offset``; ``nodata`` DN means no data."""

    dtype: str
    nodata: int
    scale: float
    offset: float

    def __str__(self) -> str:
        return f"{self.dtype} scale {self.scale:g} offset {self.offset:g} nodata {self.nodata}"

    def decode(self, dn: np.ndarray) -> np.ndarray:
        """DN to reflectance (float32), NaN where DN equals nodata."""
        values = dn.astype(np.float32) * np.float32(self.scale) + np.float32(self.offset)
        return np.where(dn == self.nodata, np.float32(np.nan), values)

    def encode(self, values: np.ndarray) -> np.ndarray:
        """Reflectance to DN, rounded and clipped to the valid range; NaN becomes nodata."""
        info = np.iinfo(self.dtype)
        low = info.min + 1 if self.nodata == info.min else info.min
        high = info.max - 1 if self.nodata == info.max else info.max
        dn = np.rint((np.nan_to_num(values, nan=0.0) - self.offset) / self.scale)
        dn = np.clip(dn, low, high).astype(self.dtype)
        return np.where(np.isnan(values), np.array(self.nodata, dtype=self.dtype), dn)


@dataclass(frozen=True)
class ClassMask:
    """A classification layer (Sentinel-2 SCL, a label map): some class values are invalid."""

    asset: str
    gsd: float
    nodata: int
    cloud: frozenset[int]  # cirrus included
    shadow: frozenset[int]
    snow: frozenset[int] = frozenset()  # snow and ice: invalid, not cloud
    other_invalid: frozenset[int] = frozenset()

    def invalid(self, codes: np.ndarray) -> np.ndarray:
        """True where a pixel is nodata, cloud, shadow, snow or otherwise unusable."""
        bad = self.cloud | self.shadow | self.snow | self.other_invalid | {self.nodata}
        return np.isin(codes, sorted(bad))

    def cloudy(self, codes: np.ndarray) -> np.ndarray:
        """True where a pixel is cloud or cloud shadow."""
        return np.isin(codes, sorted(self.cloud | self.shadow))

    def snowy(self, codes: np.ndarray) -> np.ndarray:
        """True where a pixel is snow or ice."""
        return np.isin(codes, sorted(self.snow))

    def missing(self, codes: np.ndarray) -> np.ndarray:
        """True where the layer says no data."""
        missing: np.ndarray = codes == self.nodata
        return missing


@dataclass(frozen=True)
class BitMask:
    """A bit-packed quality layer (Landsat ``qa_pixel``)."""

    asset: str
    gsd: float
    fill_bit: int
    cloud_bits: tuple[int, ...]  # cirrus included
    shadow_bits: tuple[int, ...]
    snow_bits: tuple[int, ...] = ()  # snow and ice: invalid, not cloud

    @property
    def nodata(self) -> int:
        """The fill value: only the fill bit set."""
        return 1 << self.fill_bit

    def _any_bit(self, qa: np.ndarray, bits: tuple[int, ...]) -> np.ndarray:
        word = np.uint32(sum(1 << b for b in bits))
        hit: np.ndarray = (qa.astype(np.uint32) & word) != 0
        return hit

    def invalid(self, qa: np.ndarray) -> np.ndarray:
        """True where a pixel is fill, cloud (incl. dilated and cirrus), shadow or snow."""
        return self._any_bit(qa, (self.fill_bit, *self.cloud_bits, *self.shadow_bits, *self.snow_bits))

    def cloudy(self, qa: np.ndarray) -> np.ndarray:
        """True where a pixel is cloud (incl. dilated and cirrus) or cloud shadow."""
        return self._any_bit(qa, (*self.cloud_bits, *self.shadow_bits))

    def snowy(self, qa: np.ndarray) -> np.ndarray:
        """True where a pixel is snow or ice."""
        return self._any_bit(qa, self.snow_bits)

    def missing(self, qa: np.ndarray) -> np.ndarray:
        """True where the layer says no data (fill)."""
        return self._any_bit(qa, (self.fill_bit,))


@dataclass(frozen=True)
class Sensor:
    """A sensor as the pipeline sees it: bands, default encoding, quality mask."""

    key: str
    title: str
    bands: tuple[Band, ...]
    encoding: Encoding
    mask: ClassMask | BitMask | None = None
    platforms: tuple[str, ...] = ()
    notes: str = ""
    _index: Mapping[str, Band] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_index", {b.name: b for b in self.bands})

    @property
    def band_names(self) -> tuple[str, ...]:
        return tuple(b.name for b in self.bands)

    def band(self, name: str) -> Band:
        """The band called ``name`` (our name, e.g. ``B04`` or ``red``)."""
        try:
            return self._index[name]
        except KeyError:
            raise UserError(
                f"sensor {self.key} has no band {name!r}; bands are {', '.join(self.band_names)}"
            ) from None

    def select(self, names: list[str] | tuple[str, ...]) -> tuple[Band, ...]:
        """The bands called ``names``, in that order."""
        return tuple(self.band(n) for n in names)

    def encoding_for(self, properties: Mapping[str, Any], asset: Mapping[str, Any] | None = None,
                     band: int = 1, dtype: str | None = None) -> Encoding:
        """The encoding of band ``band`` (1-based) of one item's asset.

        Sentinel-2 L2A: offset -1000 DN (-0.1 reflectance) from processing baseline 04.00 on.
        Otherwise that band's ``raster:bands`` entry (the first when the list is shorter) gives
        scale/offset/nodata/data_type, each falling back on the default; ``dtype`` (the type of
        the data as read) wins over the declared one. A VHR source without a scale is a display
        product: its full range (``bits_per_sample``, else the type's bits) maps to 0..1.
        """
        if self.key == "s2":
            baseline = str(properties.get("s2:processing_baseline", "99.99"))
            return s2_encoding(baseline)
        raster_bands = (asset or {}).get("raster:bands") or []
        rb = raster_bands[band - 1] if len(raster_bands) >= band else (raster_bands or [{}])[0]
        dtype = dtype or rb.get("data_type", self.encoding.dtype)
        scale = rb.get("scale")
        if scale is None:
            scale = display_scale(dtype, rb.get("bits_per_sample")) if self.key == "vhr" else self.encoding.scale
        return Encoding(dtype=dtype, nodata=int(rb.get("nodata", self.encoding.nodata)), scale=float(scale),
                        offset=float(rb.get("offset", self.encoding.offset)))


def display_scale(dtype: str, bits: int | None = None) -> float:
    """Scale of a display product: its largest DN (``2**bits - 1``, bits of ``dtype`` by default) is 1."""
    if np.dtype(dtype).kind not in "iu":
        raise UserError(f"VHR data type {dtype} is not an integer type; the store keeps integer DN")
    return 1 / ((1 << int(bits or np.iinfo(dtype).bits)) - 1)


def s2_encoding(processing_baseline: str) -> Encoding:
    """Sentinel-2 L2A encoding for a processing baseline such as ``"05.10"``."""
    try:
        major, minor = (int(p) for p in processing_baseline.split("."))
    except ValueError:
        raise UserError(
            f"unreadable s2:processing_baseline {processing_baseline!r}; expected like '05.10'"
        ) from None
    offset = -0.1 if (major, minor) >= (4, 0) else 0.0
    return Encoding(dtype="uint16", nodata=0, scale=1e-4, offset=offset)


# Sentinel-2 L2A scene classification (SCL) codes.
SCL_CLASSES: dict[int, str] = {
    0: "no data",
    1: "saturated or defective",
    2: "dark area pixels",
    3: "cloud shadows",
    4: "vegetation",
    5: "not vegetated",
    6: "water",
    7: "unclassified",
    8: "cloud medium probability",
    9: "cloud high probability",
    10: "thin cirrus",
    11: "snow",
}

# Landsat Collection 2 QA_PIXEL bits.
QA_PIXEL_BITS: dict[str, int] = {
    "fill": 0,
    "dilated_cloud": 1,
    "cirrus": 2,
    "cloud": 3,
    "cloud_shadow": 4,
    "snow": 5,
    "clear": 6,
    "water": 7,
}

SENTINEL2 = Sensor(
    key="s2",
    title="Sentinel-2 MSI Level-2A",
    bands=(
        Band("B01", "B01", 0.443, 0.027, 60, "coastal"),
        Band("B02", "B02", 0.490, 0.098, 10, "blue"),
        Band("B03", "B03", 0.560, 0.045, 10, "green"),
        Band("B04", "B04", 0.665, 0.038, 10, "red"),
        Band("B05", "B05", 0.705, 0.019, 20, "rededge"),
        Band("B06", "B06", 0.740, 0.018, 20, "rededge"),
        Band("B07", "B07", 0.783, 0.028, 20, "rededge"),
        Band("B08", "B08", 0.842, 0.145, 10, "nir"),
        Band("B8A", "B8A", 0.865, 0.033, 20, "nir08"),
        Band("B09", "B09", 0.945, 0.026, 60, "nir09"),
        Band("B11", "B11", 1.610, 0.143, 20, "swir16"),
        Band("B12", "B12", 2.190, 0.242, 20, "swir22"),
    ),
    encoding=s2_encoding("05.10"),
    mask=ClassMask(
        asset="SCL", gsd=20, nodata=0, cloud=frozenset({8, 9, 10}), shadow=frozenset({3}), snow=frozenset({11}),
        other_invalid=frozenset({1}),
    ),
    platforms=("Sentinel-2A", "Sentinel-2B", "Sentinel-2C"),
    notes="B10 (cirrus) is not distributed in L2A products.",
)

LANDSAT8 = Sensor(
    key="l8",
    title="Landsat 8 OLI Collection 2 Level-2",
    bands=(
        Band("coastal", "coastal", 0.443, 0.016, 30, "coastal"),
        Band("blue", "blue", 0.482, 0.060, 30, "blue"),
        Band("green", "green", 0.561, 0.057, 30, "green"),
        Band("red", "red", 0.655, 0.037, 30, "red"),
        Band("nir08", "nir08", 0.865, 0.028, 30, "nir08"),
        Band("swir16", "swir16", 1.609, 0.085, 30, "swir16"),
        Band("swir22", "swir22", 2.201, 0.187, 30, "swir22"),
    ),
    encoding=Encoding(dtype="uint16", nodata=0, scale=2.75e-5, offset=-0.2),
    mask=BitMask(
        asset="qa_pixel",
        gsd=30,
        fill_bit=QA_PIXEL_BITS["fill"],
        cloud_bits=(QA_PIXEL_BITS["dilated_cloud"], QA_PIXEL_BITS["cirrus"], QA_PIXEL_BITS["cloud"]),
        shadow_bits=(QA_PIXEL_BITS["cloud_shadow"],),
        snow_bits=(QA_PIXEL_BITS["snow"],),
    ),
    platforms=("landsat-8", "landsat-9"),
)

VHR = Sensor(
    key="vhr",
    title="Very-high-resolution optical (SPOT 6/7, Pleiades, IGN BD ORTHO)",
    bands=(
        Band("red", "image", 0.660, 0.070, 0, "red", asset_band=1),
        Band("green", "image", 0.560, 0.070, 0, "green", asset_band=2),
        Band("blue", "image", 0.485, 0.070, 0, "blue", asset_band=3),
        Band("nir", "image", 0.825, 0.110, 0, "nir", asset_band=4),
    ),
    encoding=Encoding(dtype="uint8", nodata=0, scale=display_scale("uint8"), offset=0.0),
    notes="8-bit DN by default; the GSD, the data type and any radiometric scale come from the source.",
)

SENSORS: dict[str, Sensor] = {s.key: s for s in (SENTINEL2, LANDSAT8, VHR)}


def sensor(key: str) -> Sensor:
    """The sensor called ``key`` (``s2``, ``l8``, ``vhr``)."""
    try:
        return SENSORS[key]
    except KeyError:
        raise UserError(f"unknown sensor {key!r}; sensors are {', '.join(SENSORS)}") from None
