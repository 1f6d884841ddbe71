"""The store's contract has one owner: ``msc_france/store/`` reads it, ``msc_france/tiles/`` writes it
(``msc_france/import_msc/`` through the tiles stage's writer), and no other module reaches into either
(checked on the source, import by import and call by call)."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "msc_france"


def _modules() -> dict[str, ast.Module]:
    return {str(path.relative_to(PACKAGE.parent)): ast.parse(path.read_text()) for path in PACKAGE.rglob("*.py")}


def _imports(tree: ast.Module) -> set[str]:
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            found |= {node.module, *(f"{node.module}.{alias.name}" for alias in node.names)}
    return found


def test_no_reader_imports_the_writer() -> None:
    modules = _modules()
    assert "msc_france/store/reader.py" in modules and "msc_france/tiles/create.py" in modules, "the premise"
    # import-msc writes its store through the tiles stage's writer (create_or_open, write_shard, finish_groups)
    outside = {name: _imports(tree) for name, tree in modules.items()
               if not name.startswith(("msc_france/tiles/", "msc_france/import_msc/", "msc_france/cli.py"))}
    offenders = {name: sorted(i for i in found if i.startswith("msc_france.tiles")) for name, found in outside.items()}
    assert {k: v for k, v in offenders.items() if v} == {}, \
        "only the tiles stage, import-msc and their commands import tiles/"
    store_side = [name for name in modules if name.startswith("msc_france/store/")]
    assert not any(i.startswith("msc_france.tiles") for name in store_side for i in _imports(modules[name]))


OPENERS = {"open_zarr", "open_group", "open_array", "open_dataset", "open_consolidated"}  # zarr's and xarray's


def _io(tree: ast.Module) -> set[str]:
    """The store openers this module calls, whether it imports zarr, and its os.replace/os.rename calls."""
    used = {i.split(".")[0] for i in _imports(tree)} & {"zarr"}
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and node.attr in OPENERS:
            used.add(node.attr)
        if (isinstance(node, ast.Attribute) and node.attr in ("replace", "rename")
                and isinstance(node.value, ast.Name) and node.value.id == "os"):
            used.add(f"os.{node.attr}")
    return used


def test_only_the_store_package_and_the_writer_open_zarr_or_rename_files() -> None:
    modules = _modules()
    assert {"zarr", "open_zarr"} <= _io(modules["msc_france/store/reader.py"]), "the premise: the probe sees them"
    assert "os.replace" in _io(modules["msc_france/store/atomic.py"])
    offenders = {name: sorted(used) for name, tree in modules.items()
                 if not name.startswith(("msc_france/store/", "msc_france/tiles/")) and (used := _io(tree))}
    assert offenders == {}, "read a store through msc_france.store; write files with store.atomic"
