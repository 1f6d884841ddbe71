"""Where a publish writes (``DATA/STORE.publish/`` beside ``DATA/STORE.zarr``) and how its files point at
the store: by paths relative to the publish folder, so that the store and its publish folder move together."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

COLLECTION = "collection.json"  # STAC Collection
MIRROR = "tiles.parquet"  # stac-geoparquet: one STAC item per tile (the collection's mirror)
PROVENANCE = "provenance.json"  # every source item per group, its date and tile count
CARD = "README.md"  # dataset card
CROISSANT = "croissant.json"  # Croissant JSON-LD
CHANGELOG = "CHANGELOG.md"
STATE = "release.json"  # the last publish (version, tiles): what the next one compares with; written last


@dataclass(frozen=True)
class Layout:
    """The publish folder and the hrefs, relative to it, of the store and its tile index."""

    folder: Path
    store_href: str
    index_href: str

    def path(self, name: str) -> Path:
        return self.folder / name


def default_folder(store: Path) -> Path:
    """``STORE.publish/`` beside ``STORE.zarr``."""
    return store.with_name(f"{store.name.removesuffix('.zarr')}.publish")


def layout(folder: Path, store: Path, index: Path) -> Layout:
    """The layout of ``folder`` for ``store`` and its ``index``."""
    folder = folder.resolve()
    return Layout(folder=folder, store_href=_relative(store, folder), index_href=_relative(index, folder))


def _relative(path: Path, folder: Path) -> str:
    return Path(os.path.relpath(path.resolve(), folder)).as_posix()
