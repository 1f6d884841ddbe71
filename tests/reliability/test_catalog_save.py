"""The local catalog is saved atomically as a set: every file whole (written under a temporary name,
flushed, renamed), each catalog after what it links to and the root last. A save cut short after
any number of files leaves the previous root (or none) for readers, every file it links to whole
(each item as it was or as it is now), and the rerun writes the new catalog whole."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pystac
import pytest

from msc_france.config import load_recipe
from msc_france.download import local_catalog
from msc_france.download.local_catalog import write_catalog
from msc_france.provenance import RecipeRecord
from msc_france.store.atomic import PARTIAL_GLOB

RECORD = RecipeRecord(recipe=load_recipe("demo"), catalog="demo")


class SaveCutShortError(Exception):
    """The save stopped part way, as a kill would stop it."""


def _item(sensor: str, item_id: str, checksum: str) -> dict[str, Any]:
    return {"type": "Feature", "stac_version": "1.0.0", "id": item_id, "collection": sensor,
            "geometry": {"type": "Point", "coordinates": [1.4, 43.6]}, "bbox": [1.4, 43.6, 1.4, 43.6],
            "links": [], "properties": {"datetime": "2023-06-01T00:00:00Z", "msc:sensor": sensor},
            "assets": {"B04": {"href": "B04.tif", "roles": ["data"], "file:size": 10, "file:checksum": checksum}}}


OLD = [_item("s2", "a", "old"), _item("s2", "b", "old"), _item("l8", "c", "old")]
NEW = [_item("s2", "a", "new"), _item("s2", "b", "new"), _item("s2", "d", "new"), _item("l8", "c", "new"),
       _item("l8", "e", "new"), _item("vhr", "f", "new")]


def _read(root: Path) -> tuple[list[str], dict[str, str]] | None:
    """What a reader sees from ``root/catalog.json``: the root's sub-catalogs and each item's checksum
    by id, every link resolved and parsed (raises if one is missing or torn); None when there is no
    catalog."""
    if not (root / "catalog.json").exists():
        return None
    catalog = pystac.Catalog.from_file(str(root / "catalog.json"))
    children = sorted(child.id for child in catalog.get_children())
    return children, {item.id: item.assets["B04"].extra_fields["file:checksum"]
                      for child in catalog.get_children() for item in child.get_items()}


def _saving_at_most(monkeypatch: pytest.MonkeyPatch, files: int) -> list[Path]:
    """Make the catalog's writer stop (raise) before its ``files + 1``-th file; returns the files written."""
    written: list[Path] = []
    real = local_catalog.atomic_write

    def write(target: Path, content: str) -> None:
        if len(written) == files:
            raise SaveCutShortError(target)
        real(target, content)
        written.append(target)

    monkeypatch.setattr(local_catalog, "atomic_write", write)
    return written


def _saved_files(tmp_path: Path) -> int:
    root = tmp_path / "count"
    write_catalog(root, "demo", NEW, RECORD)
    return len(list(root.rglob("*.json")))


def test_a_catalog_save_cut_short_leaves_the_old_catalog_whole_and_the_rerun_writes_the_new(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    total = _saved_files(tmp_path)
    assert total == 1 + 3 + len(NEW), "the premise: root, three sensor catalogs and the items"
    for cut in range(total):
        root = tmp_path / f"cut{cut}"
        write_catalog(root, "demo", OLD, RECORD)
        assert _read(root) == (["l8", "s2"], {"a": "old", "b": "old", "c": "old"})
        with monkeypatch.context() as patched:
            written = _saving_at_most(patched, cut)
            with pytest.raises(SaveCutShortError):
                write_catalog(root, "demo", NEW, RECORD)
        assert len(written) == cut, "the premise: the save stopped after exactly `cut` files"
        assert root / "catalog.json" not in written, "the root is written last"
        seen = _read(root)
        assert seen is not None and seen[0] == ["l8", "s2"], f"cut after {cut} files: the old root"
        assert seen[1].keys() <= {"a", "b", "c", "d", "e"} and {"a", "b", "c"} <= seen[1].keys()
        assert set(seen[1].values()) <= {"old", "new"}, "every item it links to is whole, old or new"
        assert not list(root.rglob(PARTIAL_GLOB)), "no partial file is left"
        for path in root.rglob("*.json"):
            json.loads(path.read_text())  # every file there is complete
        write_catalog(root, "demo", NEW, RECORD)
        assert _read(root) == (["l8", "s2", "vhr"], dict.fromkeys("abcdef", "new"))


def test_a_first_save_cut_short_leaves_no_catalog(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "first"
    written = _saving_at_most(monkeypatch, _saved_files(tmp_path) - 1)
    with pytest.raises(SaveCutShortError):
        write_catalog(root, "demo", NEW, RECORD)
    assert written, "the premise: items and sub-catalogs were written"
    assert _read(root) is None, "no root catalog: readers see no catalog, not a part of one"
