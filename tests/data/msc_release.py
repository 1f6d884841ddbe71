"""A miniature of the released MSC-France layout, ``ROOT/{Sentinel,Landsat,SPOT}/CITY/NAME``, generated in
code (deterministic from a seed): three cities, PNG and GeoTIFF files of a different size per sensor
(one city all GeoTIFF),
one footprint per smooth random field seen by every sensor, and the faults the importer must report.
``python -m tests.data.msc_release OUT`` writes one for a look.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import rasterio
from PIL import Image

CITIES: dict[str, int] = {"Bordeaux": 6, "Grenoble": 5, "Toulouse": 6}  # footprints with a file in every sensor
SIZES: dict[str, int] = {"Sentinel": 32, "Landsat": 12, "SPOT": 96}  # image side per sensor folder
RESIZED = ("Sentinel", "Bordeaux", "img_000.png", 40)  # one image of another size: resized on import
SIXTEEN_BIT = "Grenoble"  # SPOT of this city: 4-band uint16 GeoTIFFs, which PIL cannot open (rasterio can)


@dataclass
class Release:
    """What was written: the root, the paired footprints (``CITY/NAME``), and the faults."""

    root: Path
    paired: list[str] = field(default_factory=list)
    unpaired: list[Path] = field(default_factory=list)  # files without a partner in some sensor
    corrupt: list[Path] = field(default_factory=list)  # files no reader decodes
    left_out: list[str] = field(default_factory=list)  # footprints lost to a corrupt file
    ignored: list[Path] = field(default_factory=list)  # not images


def _field(rng: np.random.Generator) -> Image.Image:
    """A smooth RGB field: 4 x 4 random colours, to be resized to each sensor's size."""
    return Image.fromarray(rng.integers(0, 256, (4, 4, 3), dtype=np.uint8))


def _write_tif(path: Path, rgb: np.ndarray, sixteen_bit: bool) -> None:
    """(h, w, 3) uint8 as a GeoTIFF: 3 bands of uint8, or 4 bands of uint16 (a NIR band added)."""
    bands = np.moveaxis(rgb, -1, 0)
    if sixteen_bit:
        bands = np.concatenate([bands, bands[:1]]).astype(np.uint16)
    with rasterio.open(path, "w", driver="GTiff", width=rgb.shape[1], height=rgb.shape[0], count=bands.shape[0],
                       dtype=bands.dtype, crs="EPSG:2154",
                       transform=rasterio.transform.from_origin(570_000, 6_280_000, 10, 10)) as dst:
        dst.write(bands)


def _write(path: Path, image: Image.Image, sensor: str, city: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".tif":
        _write_tif(path, np.asarray(image), sixteen_bit=sensor == "SPOT" and city == SIXTEEN_BIT)
    else:
        image.save(path)


def file_name(city: str, index: int) -> str:
    """GeoTIFF in the 16-bit city, PNG elsewhere: the same name in every sensor folder is what pairs a
    footprint's files, extension included."""
    return f"img_{index:03d}.{'tif' if city == SIXTEEN_BIT else 'png'}"


def write_release(root: Path, seed: int = 0) -> Release:
    """Write the miniature under ``root/MSC-France``; return what it holds."""
    rng = np.random.default_rng(seed)
    base = root / "MSC-France"
    release = Release(base)
    for city, count in CITIES.items():
        for index in range(count):
            colours = _field(rng)
            name = file_name(city, index)
            for sensor, side in SIZES.items():
                if (sensor, city, name) == RESIZED[:3]:
                    side = RESIZED[3]
                _write(base / sensor / city / name, colours.resize((side, side), Image.Resampling.BILINEAR),
                       sensor, city)
            release.paired.append(f"{city}/{name}")
    # faults: a SPOT file without partners, a Landsat file of random bytes, a Sentinel PNG cut short
    extra = base / "SPOT" / "Bordeaux" / "img_999.png"
    _write(extra, _field(rng).resize((96, 96)), "SPOT", "Bordeaux")
    release.unpaired.append(extra)
    garbage = base / "Landsat" / "Toulouse" / "img_001.png"
    garbage.write_bytes(rng.integers(0, 256, 300, dtype=np.uint8).tobytes())
    truncated = base / "Sentinel" / "Toulouse" / "img_004.png"
    truncated.write_bytes(truncated.read_bytes()[:200])
    release.corrupt += [garbage, truncated]
    release.left_out += ["Toulouse/img_001.png", "Toulouse/img_004.png"]
    notes = base / "Sentinel" / "README.txt"
    notes.write_text("not an image\n")
    release.ignored.append(notes)
    return release


if __name__ == "__main__":
    print(write_release(Path(sys.argv[1])))
