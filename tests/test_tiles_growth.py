"""Region growth: download and tile region A of the served demo world, then region B (overlapping A)
into the same data folder and store. A's download and A's complete shards are left as they are.

A recipe with 0.4 m VHR makes shards of one tile (1200 px), so that A's tiles have shards of their own
(with the demo recipe's 17 x 17 tile shards, the whole tiny world is one shard)."""

from __future__ import annotations

import hashlib
import io
import os
from pathlib import Path
from typing import Any

import yaml
from rich.console import Console

from msc_france.config import load_recipe
from msc_france.demo.server import DemoServer
from msc_france.download.run import DownloadRequest, run_download
from msc_france.grid import TileId
from msc_france.pairs import open_pairs
from msc_france.store.index import read_index
from msc_france.store.layout import done_path, layers, shard_tiles
from msc_france.tiles.run import TilesRequest, run_tiles
from tests.test_download import _catalog_file

World = tuple[Path, dict[str, Any]]
QUIET = Console(file=open(os.devnull, "w"))  # noqa: SIM115
NW, SW, SE = TileId(1180, 1936), TileId(1180, 1937), TileId(1181, 1937)  # the tiny world's tiles (NE unused)


def _fine_recipe(folder: Path) -> Path:
    recipe = load_recipe("demo").model_dump(mode="json")
    recipe["name"] = "demo-fine"
    recipe["grid"]["gsd"]["vhr"] = 0.4
    path = folder / "demo-fine.yaml"
    path.write_text(yaml.safe_dump(recipe))
    assert shard_tiles(load_recipe(str(path))) == 1, "the premise: one tile a shard"
    return path


def _boxes(tiny_world: World) -> tuple[str, str]:
    """A: the west column of tiles (NW, SW); B: the south row (SW, SE). The tile edges run through the middle
    of the scene; each box stays 20 m inside the scene and about 70 m off the middle."""
    west, south, east, north = tiny_world[1]["scene"]["bbox_lonlat"]
    d, mid_lon, mid_lat = 0.00025, (west + east) / 2, (south + north) / 2
    return (f"{west + d},{south + d},{mid_lon - 0.0009},{north - d}",
            f"{west + d},{south + d},{east - d},{mid_lat - 0.0007}")


def _files(root: Path) -> dict[str, tuple[str, int]]:
    """Every file under ``root``: its sha256 and mtime (ns)."""
    return {str(p.relative_to(root)): (hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_mtime_ns)
            for p in sorted(root.rglob("*")) if p.is_file()}


def _shard_files(store: str, tile: TileId) -> dict[str, tuple[str, int]]:
    """The shard files (data, valid) and completion records of the one-tile shard of ``tile``, every group."""
    found = {}
    for layer in layers(load_recipe("demo")):
        paths = [Path(store) / layer.group / "data" / "c" / "0" / str(tile.row) / str(tile.col),
                 Path(store) / layer.group / "valid" / "c" / str(tile.row) / str(tile.col),
                 Path(done_path(store, layer.group, (tile.col, tile.row)))]
        found.update({str(p): (hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_mtime_ns)
                      for p in paths if p.exists()})
    return found


def test_a_second_region_grows_the_store_and_leaves_the_first_alone(
        tmp_path: Path, served_world: DemoServer, tiny_world: World) -> None:
    catalog, recipe, data = _catalog_file(tmp_path, served_world.stac_url), _fine_recipe(tmp_path), tmp_path / "data"
    box_a, box_b = _boxes(tiny_world)

    def download(box: str) -> Path:
        """The region folder the download of ``box`` made."""
        before = set((data / "catalogs").glob("*")) if data.exists() else set()
        summary = run_download(DownloadRequest(region=box, catalog=str(catalog), recipe=str(recipe), data=data), QUIET)
        assert summary.failed == []
        (made,) = set((data / "catalogs").glob("*")) - before
        return made

    region_a = download(box_a)
    first = run_tiles(TilesRequest(data=data, workers=1), QUIET)
    assert first.tiles == 2 and first.written == 2 * len(layers(load_recipe("demo"))) and first.skipped == 0
    catalog_a = _files(region_a)
    only_a, shared = _shard_files(first.store, NW), _shard_files(first.store, SW)
    assert len(only_a) == len(shared) == 2 * 4 + 4, "the premise: data, valid and a record of each group"
    assert not _shard_files(first.store, SE)

    region_b = download(box_b)
    out = io.StringIO()
    second = run_tiles(TilesRequest(data=data, workers=1), Console(file=out, width=200))
    groups = len(layers(load_recipe("demo")))
    assert second.tiles == 3 and second.skipped == 2 * groups and second.written == groups, "A's shards skipped"
    assert f"({groups} shard tasks, {2 * groups} already complete)" in out.getvalue()
    assert _files(region_a) == catalog_a, "A's catalog files: same bytes, same mtimes"
    assert _shard_files(second.store, NW) == only_a and _shard_files(second.store, SW) == shared
    assert len(_shard_files(second.store, SE)) == len(only_a), "B's new tile was written"

    index = read_index(second.store).set_index("tile")
    assert sorted(index.index) == sorted(str(t) for t in (NW, SW, SE))
    assert index.loc[str(NW), "region"] == region_a.name
    # Without a plan, every item near the tile is used: A's window reaches a few pixels into SE.
    assert region_b.name in index.loc[str(SE), "region"].split(",")
    assert index.loc[str(SE), "s2_dates"].split(",")[0] == index.loc[str(SE), "s2_datetime"]
    pairs = open_pairs(second.store)
    for tile in (NW, SE):
        assert pairs.tile(str(tile))["s2"]["valid"].values.mean() > 0.9, f"{tile} holds data"
