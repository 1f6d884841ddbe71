"""The dataset's semantic version and its changelog. Each publish compares the store with the last one
(``release.json``): major when the recipe, the grid or the store's format version changes, minor when
tiles are added or removed, patch when only the published metadata change, the same version when
nothing does. The first publish is 1.0.0."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

from msc_france.errors import UserError
from msc_france.provenance import content, describe
from msc_france.publish.dataset import Release
from msc_france.publish.source import StoreView
from msc_france.publish.tiles import TileSet

FIRST = "1.0.0"
LISTED = 20  # tile ids listed per changelog entry (then "and N more")
HEADER = """# Changelog

Published versions of this dataset, newest first. Major: the recipe, the grid or the store's format
changed; minor: tiles were added or removed; patch: only the published metadata changed.
"""

Kind = Literal["first", "major", "minor", "patch", "unchanged"]


@dataclass(frozen=True)
class Fingerprint:
    """What the version follows: the recipe (its content, the grid and the store format), the tiles and
    a digest of every published document."""

    recipe: str  # the recipe in a few words, for the changelog
    recipe_digest: str
    metadata_digest: str
    tiles: tuple[str, ...]


@dataclass(frozen=True)
class ReleaseState:
    """The last publish, recorded in ``release.json``."""

    version: str
    date: str  # ISO date
    fingerprint: Fingerprint

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=1, sort_keys=True) + "\n"

    @classmethod
    def read(cls, path: Path) -> ReleaseState | None:
        """The state in ``path``; None when there is none, a one-line error when it is damaged."""
        try:
            data: dict[str, Any] = json.loads(path.read_text())
            recorded = data["fingerprint"]
            return cls(version=str(data["version"]), date=str(data["date"]),
                       fingerprint=Fingerprint(**{**recorded, "tiles": tuple(recorded["tiles"])}))
        except FileNotFoundError:
            return None
        except (ValueError, KeyError, TypeError):
            raise UserError(f"{path} is damaged; restore it from a backup (it holds the version history), "
                            "or delete it to start again at 1.0.0") from None


@dataclass(frozen=True)
class Change:
    """How a publish differs from the last one."""

    kind: Kind
    added: tuple[str, ...]
    removed: tuple[str, ...]
    previous_recipe: str | None


def fingerprint(view: StoreView, tiles: TileSet, metadata_digest: str) -> Fingerprint:
    """The fingerprint of the store in ``view``; ``metadata_digest`` from :func:`digest`."""
    recipe = {"grid": view.grid.to_dict(), "recipe": content(view.recipe), "store_version": view.store_version}
    return Fingerprint(recipe=describe(view.recipe), recipe_digest=digest(recipe), metadata_digest=metadata_digest,
                       tiles=tuple(sorted(tiles.ids)))


def digest(value: object) -> str:
    """SHA-256 of a JSON value, keys sorted."""
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()


def compare(previous: ReleaseState | None, current: Fingerprint) -> Change:
    """What changed since ``previous``."""
    if previous is None:
        return Change("first", current.tiles, (), None)
    before, now = set(previous.fingerprint.tiles), set(current.tiles)
    added, removed = tuple(sorted(now - before)), tuple(sorted(before - now))
    if previous.fingerprint.recipe_digest != current.recipe_digest:
        kind: Kind = "major"
    elif added or removed:
        kind = "minor"
    elif previous.fingerprint.metadata_digest != current.metadata_digest:
        kind = "patch"
    else:
        kind = "unchanged"
    return Change(kind, added, removed, previous.fingerprint.recipe)


def next_release(previous: ReleaseState | None, change: Change, today: dt.date) -> Release:
    """The release of this publish: the bumped version dated ``today``, or the last one when unchanged."""
    if previous is None:
        return Release(FIRST, today)
    if change.kind == "unchanged":
        return Release(previous.version, dt.date.fromisoformat(previous.date))
    major, minor, patch = (int(p) for p in previous.version.split("."))
    bumped = {"major": (major + 1, 0, 0), "minor": (major, minor + 1, 0), "patch": (major, minor, patch + 1)}
    return Release(".".join(str(n) for n in bumped[change.kind]), today)


def changelog_entry(release: Release, change: Change, tiles: TileSet, recipe: str) -> str:
    """The changelog entry of ``release``: date, version, tiles added and removed, counts per split and group."""
    splits = ", ".join(f"{name} {count}" for name, (count, _) in tiles.splits.items())
    lines = [f"## {release.version} ({release.date.isoformat()})", ""]
    if change.kind == "first":
        lines.append(f"- first publish: {len(tiles.tiles)} tiles ({splits}); recipe {recipe}")
    else:
        if change.kind == "major":
            lines.append(f"- recipe, grid or store format changed: now {recipe}, was {change.previous_recipe}")
        if change.kind == "patch":
            lines.append("- metadata only: the same tiles")
        else:
            lines.append(f"- {len(change.added)} tiles added, {len(change.removed)} removed: "
                         f"{len(tiles.tiles)} tiles ({splits})")
    for label, ids in (("added", change.added if change.kind != "first" else ()), ("removed", change.removed)):
        if ids:
            more = f" and {len(ids) - LISTED} more" if len(ids) > LISTED else ""
            lines.append(f"- {label}: {' '.join(ids[:LISTED])}{more}")
    per_group = []
    for group in tiles.groups:
        summary = tiles.summary(group)
        count = len(summary.items)
        per_group.append(f"{group} {summary.tiles} tiles from {count} source item{'s' if count != 1 else ''}")
    lines.append(f"- per group: {'; '.join(per_group)}")
    return "\n".join(lines) + "\n"


def with_entry(changelog: str | None, entry: str, version: str) -> str | None:
    """The changelog with ``entry`` first; None when it already has an entry for ``version`` (a publish
    stopped after writing it, before recording the release)."""
    if changelog is None:
        return f"{HEADER}\n{entry}"
    if f"\n## {version} (" in changelog:
        return None
    head, sep, rest = changelog.partition("\n## ")
    return f"{head.rstrip()}\n\n{entry}" + (f"\n## {rest}" if sep else "")
