"""Render one acquisition of the demo world as the real product would be: on the sensor's native
grid and CRS, with clouds and their shadows, swath edges, point-spread blur, noise, the real
integer encoding and the real quality layer (Sentinel-2 SCL, Landsat ``qa_pixel``).
"""

from __future__ import annotations

import datetime as dt
import math
import warnings
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
from affine import Affine
from odc.geo.geobox import GeoBox
from rasterio.enums import Resampling
from rasterio.warp import reproject
from scipy import ndimage

from msc_france.demo.landscape import Landscape, smooth_noise
from msc_france.demo.spectra import cloud_spectrum, endmember_matrix, unit_weights
from msc_france.sensors import QA_PIXEL_BITS


@dataclass(frozen=True)
class Acquisition:
    """One date of one sensor in the demo world."""

    sensor: str
    index: int
    date: dt.date
    cloud_cover: float  # target percentage
    platform: str
    processing_baseline: str | None
    nodata_fraction: float  # share of the scene beyond the swath edge


@dataclass(frozen=True)
class Optics:
    """Point-spread blur (sigma in output pixels) and noise (absolute + relative) of a sensor."""

    psf_sigma: float
    noise_abs: float
    noise_rel: float


OPTICS = {
    "s2": Optics(psf_sigma=0.5, noise_abs=0.003, noise_rel=0.010),
    "l8": Optics(psf_sigma=0.45, noise_abs=0.004, noise_rel=0.012),
    "vhr": Optics(psf_sigma=0.7, noise_abs=0.004, noise_rel=0.010),
}
_SENSOR_CODE = {"s2": 1, "l8": 2, "vhr": 3}


@dataclass(frozen=True)
class ToneCurve:
    """How an orthophoto producer turns reflectance into 8-bit display values: each band is divided by
    its white point (the colour balance of the mosaic), gamma-encoded, and DN 0 is kept for no data."""

    white: tuple[float, ...]  # reflectance shown as DN 255, per band
    gamma: float

    def encode(self, reflectance: np.ndarray, band: int) -> np.ndarray:
        """Display DN (uint8, 1..255) of ``reflectance`` in ``band``; NaN becomes 0."""
        relative = np.clip(np.nan_to_num(reflectance / self.white[band], nan=0.0), 0.0, 1.0)
        dn = np.floor(1.5 + 254.0 * relative ** (1.0 / self.gamma))
        return np.where(np.isnan(reflectance), 0, dn).astype(np.uint8)


# A BD ORTHO-like product (R, G, B, NIR): sRGB-like gamma, mosaic balanced to neutral-looking land.
ORTHO_TONE = ToneCurve(white=(0.32, 0.28, 0.24, 0.60), gamma=2.2)


def sun_elevation(date: dt.date, lat: float) -> float:
    """Approximate solar elevation (degrees) mid-morning, as at Sentinel-2 and Landsat overpasses."""
    declination = 23.44 * math.sin(2 * math.pi * (date.timetuple().tm_yday - 81) / 365)
    return 90.0 - lat + declination - 8.0


class Sky:
    """Clouds, cloud shadows and swath edge of one acquisition, on the truth grid."""

    def __init__(self, land: Landscape, acq: Acquisition, seed: int, lat: float) -> None:
        shape = land.geobox.shape
        gsd = abs(land.geobox.resolution.x)
        rng = np.random.default_rng([seed, 100, _SENSOR_CODE[acq.sensor], acq.index])
        self.cloud = np.zeros(shape, dtype=np.float32)
        self.shadow = np.zeros(shape, dtype=np.float32)
        if acq.cloud_cover > 0:
            # Shadows fall away from the sun (south-east mid-morning): to the north-north-west, so
            # clouds are drawn over a domain extended south and east to cast shadows into the scene.
            reach = 1000.0 / math.tan(math.radians(sun_elevation(acq.date, lat))) / gsd
            dy, dx = round(reach * 0.87), round(reach * 0.5)
            extended = (shape[0] + dy, shape[1] + dx)
            field = smooth_noise(extended, 350 / gsd, rng) + 0.45 * smooth_noise(extended, 80 / gsd, rng)
            threshold = np.quantile(field[: shape[0] : 4, : shape[1] : 4], 1 - acq.cloud_cover / 100)
            thickness = (np.clip((field - threshold) / 0.6, 0, 1) ** 0.6).astype(np.float32)
            self.cloud = thickness[: shape[0], : shape[1]]
            cast = thickness[dy : dy + shape[0], dx : dx + shape[1]]
            self.shadow = np.where(self.cloud > 0.05, 0, cast).astype(np.float32)
        self.nodata = np.zeros(shape, dtype=bool)
        if acq.nodata_fraction > 0:
            yy, xx = np.mgrid[0 : shape[0], 0 : shape[1]]
            across = xx * math.cos(0.22) + yy * math.sin(0.22)  # orbit edge ~12 degrees from north
            self.nodata = across < np.quantile(across[::4, ::4], acq.nodata_fraction)


def ground_and_sky(land: Landscape, sky: Sky, date: dt.date, wavelengths: np.ndarray) -> Iterator[np.ndarray]:
    """Reflectance on the truth grid for each band in turn, clouds included; NaN = no data."""
    weights = unit_weights(land.unit_material, land.unit_phase_days, date)
    per_unit = (weights @ endmember_matrix(wavelengths)) * land.unit_brightness[:, None]  # (units, bands)
    clouds = cloud_spectrum(wavelengths)
    lit = land.texture * land.shade * (1 - 0.7 * sky.shadow)
    for b in range(len(wavelengths)):
        refl = per_unit[:, b][land.unit] * lit
        refl = refl * (1 - sky.cloud) + sky.cloud * clouds[b]
        refl[sky.nodata] = np.nan
        yield refl.astype(np.float32)


def _prefilter_factor(src: GeoBox, dst: GeoBox) -> int:
    """Block size for an exact pre-average before warping to a much coarser grid."""
    want = int(abs(dst.resolution.x) / abs(src.resolution.x) / 2.5)
    common = math.gcd(*src.shape)
    return max((f for f in range(1, want + 1) if common % f == 0), default=1)


def warp(values: np.ndarray, src: GeoBox, dst: GeoBox, resampling: Resampling) -> np.ndarray:
    """Resample truth-grid ``values`` onto ``dst`` with GDAL; NaN outside the scene."""
    if resampling == Resampling.average:
        f = _prefilter_factor(src, dst)
        if f > 1:
            ny, nx = src.shape
            blocks = values.reshape(ny // f, f, nx // f, f)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN blocks stay NaN
                values = np.nanmean(blocks, axis=(1, 3))
            src = GeoBox((ny // f, nx // f), src.affine @ Affine.scale(f), src.crs)
    is_float = np.issubdtype(values.dtype, np.floating)
    out = np.full(dst.shape, np.nan if is_float else 0, dtype=values.dtype)
    reproject(
        values, out,
        src_transform=src.affine, src_crs=str(src.crs), src_nodata=np.nan if is_float else 0,
        dst_transform=dst.affine, dst_crs=str(dst.crs), dst_nodata=np.nan if is_float else 0,
        resampling=resampling, num_threads=1,
    )
    return out


def blur_and_noise(values: np.ndarray, optics: Optics, rng: np.random.Generator) -> np.ndarray:
    """Gaussian point-spread function (NaN-aware) then additive and multiplicative noise."""
    valid = ~np.isnan(values)
    filled = np.where(valid, values, 0).astype(np.float32)
    weight = ndimage.gaussian_filter(valid.astype(np.float32), optics.psf_sigma, mode="nearest")
    blurred = ndimage.gaussian_filter(filled, optics.psf_sigma, mode="nearest") / np.maximum(weight, 1e-6)
    noise = rng.standard_normal((2, *values.shape)).astype(np.float32)
    noisy = blurred * (1 + optics.noise_rel * noise[0]) + optics.noise_abs * noise[1]
    return np.where(valid, np.maximum(noisy, 0), np.nan).astype(np.float32)


def scene_classification(
    green: np.ndarray, red: np.ndarray, nir: np.ndarray, cloud: np.ndarray, shadow: np.ndarray
) -> np.ndarray:
    """Sentinel-2 SCL codes from reflectance and cloud/shadow weights on the SCL grid."""
    with np.errstate(invalid="ignore", divide="ignore"):
        ndvi = (nir - red) / (nir + red)
        ndwi = (green - nir) / (green + nir)
    scl = np.full(red.shape, 5, dtype=np.uint8)  # not vegetated
    scl[ndvi > 0.4] = 4  # vegetation
    scl[(ndwi > 0.05) & (nir < 0.08)] = 6  # water
    scl[shadow > 0.25] = 3
    scl[(cloud > 0.05) & (cloud <= 0.3)] = 10  # thin cirrus
    scl[(cloud > 0.3) & (cloud <= 0.6)] = 8
    scl[cloud > 0.6] = 9
    scl[np.isnan(red) | np.isnan(nir)] = 0
    return scl


def qa_pixel(green: np.ndarray, nir: np.ndarray, cloud: np.ndarray, shadow: np.ndarray) -> np.ndarray:
    """Landsat Collection 2 QA_PIXEL words, with the confidence fields set as USGS does."""
    bit = QA_PIXEL_BITS
    low = (1 << 8) | (1 << 10) | (1 << 12) | (1 << 14)  # low confidence of cloud, shadow, snow, cirrus
    clear = low | (1 << bit["clear"])
    with np.errstate(invalid="ignore", divide="ignore"):
        water = ((green - nir) / (green + nir) > 0.05) & (nir < 0.08)
    qa = np.where(water, clear | (1 << bit["water"]), clear).astype(np.uint16)
    thick = cloud > 0.3
    dilated = ndimage.binary_dilation(thick, iterations=3) & ~thick
    qa[dilated] = low | (1 << bit["dilated_cloud"])
    # Cirrus and shadow leave the clear bit set: it only reflects the cloud and dilated-cloud bits.
    qa[(cloud > 0.05) & ~thick & ~dilated] = (
        (1 << 8) | (1 << 10) | (1 << 12) | (3 << 14) | (1 << bit["cirrus"]) | (1 << bit["clear"])
    )
    qa[(shadow > 0.25) & ~thick & ~dilated] = (
        (1 << 8) | (3 << 10) | (1 << 12) | (1 << 14) | (1 << bit["cloud_shadow"]) | (1 << bit["clear"])
    )
    qa[thick] = (3 << 8) | (1 << 10) | (1 << 12) | (1 << 14) | (1 << bit["cloud"])
    qa[np.isnan(nir)] = 1 << bit["fill"]
    return qa
