"""The released MSC-France layout, ``ROOT/{Sentinel,Landsat,SPOT}/CITY/NAME``: its sensor folders, its
image files, and their pairing by path (the same ``CITY/NAME`` in every sensor folder is one footprint,
as the official code pairs them by replacing the sensor folder in the path)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from msc_france.errors import UserError
from msc_france.store.layout import group_rank

# Folder name (any case) -> store group: the project's sensor names, which presets and eval know.
SENSOR_FOLDERS: dict[str, str] = {"sentinel": "s2", "landsat": "l8", "spot": "vhr"}
TIFF = (".tif", ".tiff")  # GeoTIFFs that PIL cannot open are read with rasterio (see images.py)


@dataclass(frozen=True)
class Footprint:
    """One ground footprint: its city, its name inside the city folder, its file in every sensor folder."""

    city: str
    name: str  # path below the city folder, with forward slashes
    files: dict[str, Path]  # group -> image file

    @property
    def key(self) -> str:
        return f"{self.city}/{self.name}"


@dataclass(frozen=True)
class Unpaired:
    """An image file whose footprint lacks a file in some sensor folder."""

    path: Path
    missing: tuple[str, ...]  # sensor folder names


@dataclass(frozen=True)
class Scan:
    """What the folder holds: its sensors (groups, in folder order), the paired footprints (sorted by
    key), the unpaired files, and how many files were not images (or not in a city folder)."""

    root: Path
    folders: dict[str, Path]  # group -> sensor folder
    footprints: list[Footprint]
    unpaired: list[Unpaired]
    ignored: list[Path]


def _image_suffixes() -> frozenset[str]:
    return frozenset(s.lower() for s in Image.registered_extensions()) | frozenset(TIFF)


def sensor_folders(root: Path) -> dict[str, Path]:
    """The sensor folders of ``root`` (or of ``root/MSC-France``), by group; a one-line error when it is
    not the released layout."""
    if not root.is_dir():
        raise UserError(f"{root} is not a folder; give the MSC-France folder (Sentinel/, Landsat/, SPOT/ inside)")
    for base in (root, root / "MSC-France"):
        found = {SENSOR_FOLDERS[p.name.lower()]: p for p in sorted(base.iterdir()) if p.is_dir()
                 and p.name.lower() in SENSOR_FOLDERS} if base.is_dir() else {}
        if len(found) >= 2:
            return {group: found[group] for group in sorted(found, key=group_rank)}
    raise UserError(f"{root} is not the MSC-France layout: it needs at least two of the folders Sentinel/, "
                    "Landsat/, SPOT/, each holding one folder per city; give the MSC-France folder")


def scan(root: Path) -> Scan:
    """Pair the image files of every sensor folder of ``root`` by ``CITY/NAME``."""
    folders = sensor_folders(root)
    suffixes = _image_suffixes()
    by_key: dict[str, dict[str, Path]] = {}
    ignored: list[Path] = []
    for group, folder in folders.items():
        for path in sorted(folder.rglob("*")):
            if path.is_dir() or any(part.startswith(".") for part in path.relative_to(folder).parts):
                continue
            relative = path.relative_to(folder)
            if len(relative.parts) < 2 or path.suffix.lower() not in suffixes:
                ignored.append(path)
                continue
            by_key.setdefault(relative.as_posix(), {})[group] = path
    footprints, unpaired = [], []
    for key in sorted(by_key):
        files = by_key[key]
        missing = tuple(folders[g].name for g in folders if g not in files)
        if missing:
            unpaired += [Unpaired(path, missing) for path in files.values()]
            continue
        city, name = key.split("/", 1)
        footprints.append(Footprint(city, name, {g: files[g] for g in folders}))
    if not footprints:
        names = ", ".join(p.name for p in folders.values())
        raise UserError(f"{root} holds no image found in every sensor folder ({names}, under CITY/NAME); "
                        "give the MSC-France folder")
    return Scan(root, folders, footprints, unpaired, ignored)
