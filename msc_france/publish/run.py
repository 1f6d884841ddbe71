"""``msc-france publish``: read a built store, decide its version, and write beside it the STAC Collection,
the tiles' stac-geoparquet, the provenance list, the dataset card, the Croissant description and the
changelog, each file atomically, the release record last."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from msc_france.checksum import sha256_hex
from msc_france.errors import UserError
from msc_france.publish.card import render_card
from msc_france.publish.collection import build_collection, collection_json
from msc_france.publish.croissant import build_croissant
from msc_france.publish.dataset import Release, dataset_info
from msc_france.publish.items import provenance, tile_items, write_mirror
from msc_france.publish.layout import (
    CARD,
    CHANGELOG,
    COLLECTION,
    CROISSANT,
    MIRROR,
    PROVENANCE,
    STATE,
    Layout,
    default_folder,
    layout,
)
from msc_france.publish.licences import LICENCES, origin
from msc_france.publish.source import StoreView, find_store, read_store
from msc_france.publish.tiles import TileSet, read_tiles
from msc_france.publish.version import (
    Change,
    ReleaseState,
    changelog_entry,
    compare,
    digest,
    fingerprint,
    next_release,
    with_entry,
)
from msc_france.store.atomic import atomic_write

PLACEHOLDER = Release("0.0.0", dt.date(1970, 1, 1))  # the release the metadata digest is computed with


@dataclass(frozen=True)
class PublishRequest:
    """What to publish: ``store`` (default: the one tile store in ``data``) into ``out`` (default:
    ``STORE.publish/`` beside it); ``today`` dates a new version (default: the current date)."""

    data: Path = Path("data")
    store: str | None = None
    out: Path | None = None
    today: dt.date | None = None


@dataclass(frozen=True)
class PublishSummary:
    """What a publish wrote."""

    store: Path
    folder: Path
    version: str
    change: Change
    tiles: int
    files: tuple[Path, ...]


@dataclass(frozen=True)
class Documents:
    """Everything a publish writes but the changelog and the release record."""

    items: list[dict[str, Any]]
    provenance: dict[str, Any]
    card: str
    croissant: dict[str, Any]
    collection: dict[str, Any]

    def digest(self) -> str:
        """SHA-256 over every document (item by item: the mirror of a large store is large)."""
        hasher = hashlib.sha256()
        for part in (self.provenance, self.card, self.croissant, self.collection, *self.items):
            hasher.update(digest(part).encode())
        return hasher.hexdigest()


def publish(request: PublishRequest) -> PublishSummary:
    """Publish a built store (see ``docs/publish.md``)."""
    store = find_store(request.data, request.store)
    view = read_store(store)
    tiles = read_tiles(view.index, tuple(g.name for g in view.groups))
    span = tiles.interval
    if span is None:
        raise UserError(f"the tile index of {store} records no source dates; run `make tiles` again")
    where = layout(request.out or default_folder(store), store, view.index_path)
    mirror = where.path(MIRROR)
    # the mirror's digest enters the Croissant: written first, rewritten only with other content
    placeholder = _documents(view, tiles, where, span, PLACEHOLDER, request.data, mirror_sha256="")
    current = fingerprint(view, tiles, placeholder.digest())
    previous = ReleaseState.read(where.path(STATE))
    change = compare(previous, current)
    release = next_release(previous, change, request.today or dt.date.today())
    write_mirror(mirror, placeholder.items)
    documents = _documents(view, tiles, where, span, release, request.data, mirror_sha256=sha256_hex(mirror))
    atomic_write(where.path(PROVENANCE), _json(documents.provenance))
    atomic_write(where.path(CARD), documents.card)
    atomic_write(where.path(CROISSANT), _json(documents.croissant))
    atomic_write(where.path(COLLECTION), _json(documents.collection))
    if change.kind != "unchanged":
        changelog = where.path(CHANGELOG)
        text = with_entry(changelog.read_text() if changelog.exists() else None,
                          changelog_entry(release, change, tiles, current.recipe), release.version)
        if text is not None:
            atomic_write(changelog, text)
    atomic_write(where.path(STATE), ReleaseState(release.version, release.date.isoformat(), current).to_json())
    written = (MIRROR, PROVENANCE, CARD, CROISSANT, COLLECTION, CHANGELOG, STATE)
    return PublishSummary(store=store, folder=where.folder, version=release.version, change=change,
                          tiles=len(tiles.tiles), files=tuple(where.path(name) for name in written))


def _documents(view: StoreView, tiles: TileSet, where: Layout, span: tuple[dt.datetime, dt.datetime],
               release: Release, data: Path, mirror_sha256: str) -> Documents:
    """The documents of ``release``."""
    found = origin(data, tiles.regions)
    info = dataset_info(view, tiles, found, release)
    licences = [LICENCES[g.name] for g in view.groups if g.name in LICENCES]
    collection = build_collection(view, tiles, info, licences, where, span)
    return Documents(
        items=tile_items(tiles, info.id, span), provenance=provenance(tiles),
        card=render_card(view, tiles, info, licences, found, where),
        croissant=build_croissant(view, tiles, info, licences, where, span, sha256_hex(view.index_path), mirror_sha256),
        collection=collection_json(collection),
    )


def _json(value: object) -> str:
    return json.dumps(value, indent=1, ensure_ascii=False) + "\n"
