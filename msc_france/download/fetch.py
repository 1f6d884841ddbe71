"""Fetch the windows the tiles stage needs, in each source's native CRS and grid (no resampling):
only the region's tiles plus a margin, only the recipe's bands, an overview when the recipe's GSD
is coarser than the source's. Each file is written under a temporary name and renamed when
complete, so a rerun skips complete files and rewrites partial ones. A file counts as complete only
if its size and checksum are those the local catalog recorded when it was fetched (or, with no
record, if every block of it reads back): a damaged or zero-length file is fetched again.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import rasterio
from odc.geo.geobox import GeoBox
from odc.geo.geom import BoundingBox, Geometry
from rasterio.errors import RasterioIOError
from rasterio.windows import Window

from msc_france.checksum import sha256_hex
from msc_france.cog import write_cog
from msc_france.download.http import FetchError, HttpOpener
from msc_france.errors import UserError
from msc_france.redact import redact
from msc_france.windows import padded_window

METRES_PER_DEGREE = 111_320.0  # along a meridian; close enough to choose an overview
MARGIN_PIXELS = 4  # native pixels around the tiles, for the resampling kernels of the tiles stage
GDAL_ENV = {
    "GDAL_DISABLE_READDIR_ON_OPEN": "EMPTY_DIR",  # no sidecar probing
    "GDAL_HTTP_MAX_RETRY": "0",  # retries are ours (Retry-After, re-signing)
}


@dataclass(frozen=True)
class AssetJob:
    """One asset of one item to fetch: where from, which bands, at which GSD, where to."""

    sensor: str
    item_id: str
    key: str
    href: str  # unsigned
    bands: tuple[int, ...]  # 1-based band indexes inside the asset
    band_names: tuple[str, ...]
    target_gsd: float  # the recipe's GSD for the sensor (metres)
    resampling: str  # for overviews of the local file: "average" or "nearest"
    path: Path
    declared_crs: str | None = None  # what the STAC item says (proj:code / proj:epsg), checked on read


@dataclass(frozen=True)
class Fetched:
    job: AssetJob
    size: int
    checksum: str  # multihash sha2-256 (STAC file extension)
    crs: str
    transform: list[float]
    shape: tuple[int, int]
    skipped: bool
    dtype: str  # of the local file's bands
    refetched: bool = False  # a local file was there but damaged, and was fetched again


@dataclass(frozen=True)
class FileRecord:
    """What the local catalog recorded of a fetched file (STAC file extension)."""

    size: int
    checksum: str


def multihash_sha256(path: Path) -> str:
    """The STAC file extension's `file:checksum`: the SHA-256 as a multihash (0x12, 32 bytes)."""
    return "1220" + sha256_hex(path)


def declared_crs(item: Mapping[str, Any], key: str) -> str | None:
    """The CRS a STAC item declares for asset ``key``: ``proj:code`` (projection v2) or ``proj:epsg``
    (v1, as the Planetary Computer writes), on the asset first, then on the item; None if absent."""
    for fields in (item.get("assets", {}).get(key, {}), item.get("properties", {})):
        if fields.get("proj:code"):
            return str(fields["proj:code"]).upper()
        if fields.get("proj:epsg"):
            return f"EPSG:{int(fields['proj:epsg'])}"
    return None


def _overview_level(decimations: list[int], native_gsd: float, target_gsd: float) -> int | None:
    """Index of the coarsest overview that is still at least as fine as ``target_gsd``."""
    best = None
    for level, factor in enumerate(decimations):
        if native_gsd * factor <= target_gsd * (1 + 1e-6):
            best = level
    return best


def _window(dataset: rasterio.io.DatasetReader, area_l93: BoundingBox) -> Window:
    """Pixel window of ``dataset`` covering ``area_l93`` plus a margin, snapped outwards."""
    extent = Geometry(area_l93.polygon.geom, "EPSG:2154").to_crs(str(dataset.crs), resolution=area_l93.span_x / 64)
    window = padded_window(dataset, extent.boundingbox.bbox, MARGIN_PIXELS)
    if window is None:
        raise UserError(f"{dataset.name}: the image does not overlap the region")
    return window


def describe(job: AssetJob, skipped: bool, refetched: bool = False, checksum: str | None = None) -> Fetched:
    """The local file of ``job`` as the catalog records it; ``checksum`` when already verified."""
    with rasterio.open(job.path) as local:
        return Fetched(job, job.path.stat().st_size, checksum or multihash_sha256(job.path), str(local.crs),
                       list(local.transform)[:6], (local.height, local.width), skipped, local.dtypes[0], refetched)


def readable(path: Path) -> bool:
    """Whether every block of every band of the GeoTIFF at ``path`` reads back (a truncated or
    zero-length file does not)."""
    try:
        with rasterio.open(path) as local:
            for _, window in local.block_windows(1):
                local.read(window=window)
    except (RasterioIOError, OSError, ValueError):
        return False
    return True


def local_state(path: Path, recorded: FileRecord | None) -> str:
    """``"complete"``, ``"damaged"`` (there but not as fetched: re-fetch it) or ``"missing"``. With a
    record, the size and checksum must match it; without one, every block must read back."""
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        return "missing"
    if size == 0:
        return "damaged"
    if recorded is not None:
        same = size == recorded.size and multihash_sha256(path) == recorded.checksum
        return "complete" if same else "damaged"
    return "complete" if readable(path) else "damaged"


def fetch_asset(job: AssetJob, area_l93: BoundingBox, opener: HttpOpener,
                recorded: FileRecord | None = None) -> Fetched:
    """Fetch one asset's window unless a complete local file is already there (see :func:`local_state`)."""
    state = local_state(job.path, recorded)
    if state == "complete":  # a recorded checksum was just verified: the file is not read twice
        return describe(job, skipped=True, checksum=recorded.checksum if recorded else None)
    if state == "damaged":  # never left for a later stage to read should the fetch fail
        job.path.unlink(missing_ok=True)
    try:
        _fetch(job, area_l93, opener)
    except RasterioIOError as exc:
        cause = opener.failure(job.href)
        raise (cause or FetchError(f"{redact(job.href)}: {exc}")) from None
    return describe(job, skipped=False, refetched=state == "damaged")


def _fetch(job: AssetJob, area_l93: BoundingBox, opener: HttpOpener) -> None:
    with rasterio.Env(**GDAL_ENV):
        with rasterio.open(job.href, opener=opener) as probe:
            actual = f"EPSG:{probe.crs.to_epsg()}" if probe.crs and probe.crs.to_epsg() else str(probe.crs)
            if job.declared_crs and job.declared_crs != actual:
                raise FetchError(
                    f"{redact(job.href)}: the STAC item says {job.declared_crs} but the file is {actual}")
            # Overview choice in metres, also for geographic grids (WorldCover's 1/12000 degree).
            native_gsd = abs(probe.transform.a) * (METRES_PER_DEGREE if probe.crs.is_geographic else 1.0)
            level = _overview_level(probe.overviews(1), native_gsd, job.target_gsd)
        options = {"overview_level": level} if level is not None else {}
        with rasterio.open(job.href, opener=opener, **options) as dataset:
            if max(job.bands) > dataset.count:
                raise FetchError(f"{redact(job.href)} has {dataset.count} bands, no band {max(job.bands)}; "
                                 f"check the catalog's `bands` for {job.sensor}")
            window = _window(dataset, area_l93)
            data = dataset.read(list(job.bands), window=window)
            geobox = GeoBox((int(window.height), int(window.width)), dataset.window_transform(window), str(dataset.crs))
            write_cog(job.path, data, geobox, dataset.nodata, job.resampling, list(job.band_names))
