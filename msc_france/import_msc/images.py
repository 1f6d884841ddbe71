"""Reading one image of the released dataset as the official code does: any image PIL opens, converted
to RGB; a GeoTIFF that PIL cannot open (more bands, other sample types) is read with rasterio, its
first three bands (one band repeated), values clipped to 0-255."""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import rasterio
import rasterio.errors
from PIL import Image

from msc_france.import_msc.scan import TIFF

# What PIL and rasterio raise on a file that is not a readable image (truncated, not an image, too big).
_UNREADABLE = (OSError, ValueError, SyntaxError, EOFError, Image.DecompressionBombError, rasterio.errors.RasterioError)


class UnreadableImage(Exception):  # noqa: N818 - a verdict on a file, reported as a warning
    """A file neither PIL nor rasterio reads as an image: which, and why."""

    def __init__(self, path: Path, exc: BaseException) -> None:
        self.path = path
        text = str(exc).replace(f" {str(path)!r}", "")  # PIL names the file, which the message already does
        self.reason = " ".join(text.split())[:120] or type(exc).__name__
        super().__init__(f"{path}: unreadable image ({self.reason})")


def image_size(path: Path) -> tuple[int, int]:
    """(width, height) of the image at ``path``, from its header."""
    try:
        with Image.open(path) as image:
            return image.size
    except _UNREADABLE as exc:
        if path.suffix.lower() not in TIFF:
            raise UnreadableImage(path, exc) from None
    try:
        with _rasterio(path) as src:
            return int(src.width), int(src.height)
    except _UNREADABLE as exc:
        raise UnreadableImage(path, exc) from None


@contextlib.contextmanager
def _rasterio(path: Path) -> Iterator[rasterio.DatasetReader]:
    """``path`` opened with rasterio, quiet about a missing georeference (the release has none to use)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", rasterio.errors.NotGeoreferencedWarning)
        with rasterio.open(path) as src:
            yield src


def _rasterio_rgb(path: Path) -> np.ndarray:
    with _rasterio(path) as src:
        bands = src.read([min(b, src.count) for b in (1, 2, 3)])
    rgb: np.ndarray = np.clip(np.moveaxis(bands, 0, -1), 0, 255).astype(np.uint8)
    return rgb


def read_rgb(path: Path, px: int) -> np.ndarray:
    """The image at ``path`` as (3, px, px) uint8 RGB, resized (bilinear) where it has another size."""
    try:
        with Image.open(path) as opened:
            image = opened.convert("RGB")  # decodes the whole file: a truncated one fails here
    except _UNREADABLE as exc:
        if path.suffix.lower() not in TIFF:
            raise UnreadableImage(path, exc) from None
        try:
            image = Image.fromarray(_rasterio_rgb(path))
        except _UNREADABLE as second:
            raise UnreadableImage(path, second) from None
    if image.size != (px, px):
        image = image.resize((px, px), Image.Resampling.BILINEAR)
    rgb: np.ndarray = np.moveaxis(np.asarray(image, dtype=np.uint8), -1, 0)
    return rgb
