"""The import: scan and pair the released files, place them, write the store shard by shard through the
tiles stage's writer (each shard written whole, then recorded complete), then statistics and index.
A rerun skips the shards recorded complete with the same files: the same input gives the same store."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.markup import escape

from msc_france.config import SplitConfig
from msc_france.errors import UserError
from msc_france.grid import TileGrid
from msc_france.import_msc.images import UnreadableImage, image_size, read_rgb
from msc_france.import_msc.place import BLOCK, ENCODING, Placed, SplitMode, import_recipe, place, tile_sizes
from msc_france.import_msc.scan import Footprint, Scan, scan
from msc_france.lock import exclusive
from msc_france.store.done import all_done, read_done, write_done
from msc_france.store.durable import intact
from msc_france.store.index import build_index, write_index
from msc_france.store.layout import Layer, layers, lock_path, shard_box, shard_of, shard_tiles, tile_window
from msc_france.store.records import ShardRecord, TileRecord
from msc_france.tiles.create import create_or_open
from msc_france.tiles.run import check_store_path, finish_groups
from msc_france.tiles.shard import write_shard


@dataclass
class ImportRequest:
    path: Path
    data: Path = Path("data")
    store: str | None = None
    split: SplitMode = "city"
    test_cities: list[str] | None = None
    val_cities: list[str] | None = None


@dataclass
class ImportSummary:
    store: str
    index: str
    tiles: int
    cities: dict[str, str]  # city -> split ("block": by spatial block)
    unpaired: int
    unreadable: int
    resized: int
    ignored: int
    written: int
    skipped: int
    px: dict[str, int] = field(default_factory=dict)


def _warn(console: Console, text: str) -> None:
    console.print(f"[yellow]warning: {escape(text)}[/yellow]", soft_wrap=True)


def _sized(found: Scan, console: Console) -> tuple[list[Footprint], dict[str, list[tuple[int, int]]], int]:
    """The footprints whose every file has a readable header, the image sizes per group, and how many
    footprints were left out for an unreadable file (each reported)."""
    kept: list[Footprint] = []
    sizes: dict[str, list[tuple[int, int]]] = {g: [] for g in found.folders}
    bad = 0
    for fp in found.footprints:
        try:
            dims = {g: image_size(path) for g, path in fp.files.items()}
        except UnreadableImage as exc:
            bad += 1
            _warn(console, f"{exc}; footprint {fp.key} left out")
            continue
        kept.append(fp)
        for g, size in dims.items():
            sizes[g].append(size)
    return kept, sizes, bad


def _record(placed: Placed, group: str, root: Path) -> TileRecord:
    path = placed.footprint.files[group].relative_to(root).as_posix()
    return TileRecord(placed.tile.col, placed.tile.row, group, (path,), (None,), region=placed.footprint.city,
                      valid_fraction=1.0, cloud_fraction=0.0)


def _check_same_files(store: str, planned: dict[tuple[str, str], str]) -> None:
    """Refuse a store whose recorded tiles hold other files than this import places there."""
    for shard in all_done(store):
        for tile, record in shard.tiles.items():
            held = record.items[0] if record.items else None
            if planned.get((shard.group, tile)) != held:
                raise UserError(f"store {store} was imported from other files (tile {tile} of {shard.group} holds "
                                f"{held}); give another --store or delete it")


@dataclass
class _Progress:
    unreadable: int = 0
    written: int = 0
    skipped: int = 0


def _read_shard(members: list[Placed], px: dict[str, int], console: Console,
                progress: _Progress) -> list[tuple[Placed, dict[str, np.ndarray]]]:
    """The images of every footprint of one shard whose every file decodes (each failure reported)."""
    out = []
    for placed in members:
        try:
            out.append((placed, {group: read_rgb(path, px[group]) for group, path in placed.footprint.files.items()}))
        except UnreadableImage as exc:
            progress.unreadable += 1
            _warn(console, f"{exc}; footprint {placed.footprint.key} left out")
    return out


def _write_shards(store: str, root: Path, placed: list[Placed], layer_list: list[Layer], grid: TileGrid, k: int,
                  px: dict[str, int], console: Console) -> _Progress:
    """Write every shard not yet recorded complete, each group's whole at once; a footprint with an
    unreadable file is left out of every group."""
    progress = _Progress()
    by_shard: dict[tuple[int, int], list[Placed]] = {}
    for p in placed:
        by_shard.setdefault(shard_of(p.tile, k), []).append(p)
    for shard, members in sorted(by_shard.items()):
        done = {layer.group: read_done(store, layer.group, shard) for layer in layer_list}
        done = {group: record if record and intact(store, record.objects) else None  # lost to a power loss
                for group, record in done.items()}
        todo = [layer for layer in layer_list if done[layer.group] is None]
        progress.skipped += len(layer_list) - len(todo)
        if not todo:  # the same files (checked): footprints it lacks were unreadable then
            recorded = next(d for d in done.values() if d is not None).tiles
            for p in members:
                if str(p.tile) not in recorded:
                    progress.unreadable += 1
                    _warn(console, f"footprint {p.footprint.key} left out (unreadable when its shard was written)")
            continue
        images = _read_shard(members, px, console, progress)
        for layer in todo:
            box = shard_box(grid, layer, shard, k)
            data = np.full((len(layer.bands), box[0].stop - box[0].start, box[1].stop - box[1].start),
                           layer.nodata, dtype=layer.dtype)
            valid = np.zeros(data.shape[1:], dtype=np.uint8)
            for p, by_group in images:
                window = tile_window(p.tile, shard, k, px[layer.group])
                data[(slice(None), *window)] = by_group[layer.group]
                valid[window] = 1
            records = {str(p.tile): _record(p, layer.group, root) for p, _ in images}
            write_done(store, write_shard(store, layer, shard, box, data, valid, records))
            progress.written += 1
    return progress


def run_import(request: ImportRequest, console: Console) -> ImportSummary:
    """Import the dataset at ``request.path`` into ``request.store`` (default ``DATA/msc-paper.zarr``)."""
    found = scan(request.path)
    for item in found.unpaired:
        _warn(console, f"{item.path}: no file of the same name in {', '.join(item.missing)}; left out")
    footprints, sizes, bad = _sized(found, console)
    if not footprints:
        raise UserError(f"no footprint of {request.path} has a readable image in every sensor folder")
    px = tile_sizes(sizes)
    resized = sum(size != (px[g], px[g]) for g, found_sizes in sizes.items() for size in found_sizes)
    recipe = import_recipe(px)
    grid = recipe.tile_grid
    placed = place(footprints, grid.footprint, request.split, request.test_cities, request.val_cities)
    store = request.store or str(request.data / f"{recipe.name}.zarr")
    check_store_path(store)
    lock = lock_path(store)
    encodings = dict.fromkeys(px, ENCODING)
    with exclusive(lock, f"store {store}") if lock else contextlib.nullcontext():
        create_or_open(store, recipe, encodings=encodings)
        _check_same_files(store, {(g, str(p.tile)): p.footprint.files[g].relative_to(found.root).as_posix()
                                  for p in placed for g in px})
        progress = _write_shards(store, found.root, placed, layers(recipe, encodings), grid, shard_tiles(recipe),
                                 px, console)
        index = _write_index(store, grid, placed, finish_groups(store, {}))
    return ImportSummary(store, index, len(placed) - progress.unreadable,
                         {p.footprint.city: p.split or "block" for p in placed}, len(found.unpaired),
                         bad + progress.unreadable, resized, len(found.ignored), progress.written,
                         progress.skipped, px)


def _write_index(store: str, grid: TileGrid, placed: list[Placed], records: list[ShardRecord]) -> str:
    """The tile index with each tile's city and file name, and the city splits where chosen."""
    table = build_index([r for record in records for r in record.tiles.values()], grid, splits=SplitConfig(block=BLOCK))
    by_tile = {str(p.tile): p for p in placed}
    rows = [by_tile[tile] for tile in table["tile"]]
    at = list(table.columns).index("region") + 1
    table.insert(at, "city", [p.footprint.city for p in rows])
    table.insert(at + 1, "name", [p.footprint.name for p in rows])
    table["split"] = [p.split or split for p, split in zip(rows, table["split"], strict=True)]
    return write_index(table, store)
