"""A small tile store in the real layout, generated in code (deterministic from a seed).

Every sensor samples the same smooth reflectance field, defined in Lambert-93 metres, at its own pixel
centres: the sensors of a tile are co-located exactly, and tiles differ from each other. Used by the
pretraining tests; ``python -m tests.data.tile_store OUT.zarr [RECIPE [BLOCKS]]`` writes one for a look
(``msc-france 1``: the 16 tiles of 1920 m that ``docs/pretrain.md`` loads, section "Loader").
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import zarr

from msc_france.config import load_recipe
from msc_france.grid import TileId
from msc_france.store.done import write_done
from msc_france.store.index import split_of
from msc_france.store.layout import LABELS, layers, shard_box, shard_of, shard_tiles, tile_window
from msc_france.store.records import ShardRecord, TileRecord
from msc_france.tiles.create import create_or_open
from msc_france.tiles.run import finish_store
from msc_france.tiles.shard import _sums

START = (1176, 1932)  # a tile of the demo world, near Toulouse
WAVES = 12  # sinusoids per band; wavelengths 120-600 m, so that 30 m Landsat pixels do not alias


def split_tiles(split: str = "train", blocks: int = 2, block: int = 4, start: tuple[int, int] = START) -> list[TileId]:
    """The tiles of the first ``blocks`` blocks of ``split`` east of ``start`` (splits come by block)."""
    tiles: list[TileId] = []
    col = start[0] - start[0] % block
    row = start[1] - start[1] % block
    while len(tiles) < blocks * block * block:
        if split_of(col, row, block) == split:
            tiles += [TileId(c, r) for r in range(row, row + block) for c in range(col, col + block)]
        col += block
    return tiles


def land_cover(value: np.ndarray) -> np.ndarray:
    """WorldCover codes from the first band: tree cover (dark), cropland, built-up (bright)."""
    return np.select([value < 0.06, value < 0.1], [10, 40], 50).astype(np.uint8)


def reflectance(x: np.ndarray, y: np.ndarray, bands: int, seed: int) -> np.ndarray:
    """(bands, *x.shape) smooth reflectance in about [0.02, 0.45] at ground positions ``x, y`` (metres)."""
    rng = np.random.default_rng(seed)
    out = np.empty((bands, *x.shape), dtype=np.float64)
    for b in range(bands):
        field = np.zeros(x.shape)
        for _ in range(WAVES):
            wavelength = rng.uniform(120, 600)
            angle = rng.uniform(0, np.pi)
            phase = rng.uniform(0, 2 * np.pi)
            field += np.sin(2 * np.pi * (x * np.cos(angle) + y * np.sin(angle)) / wavelength + phase)
        out[b] = 0.08 + 0.05 * b + 0.06 * field / np.sqrt(WAVES / 2)
    return np.clip(out, 0.02, 0.45)


def write_tile_store(store: str | Path, seed: int = 0, blocks: int = 2, splits: tuple[str, ...] = ("train",),
                     labels: bool = False, recipe_name: str = "demo") -> list[TileId]:
    """Write the demo recipe's sensors (and a label map from the field when ``labels``) over ``blocks``
    blocks of each of ``splits``; return the tiles."""
    recipe = load_recipe(recipe_name).model_copy(update={"labels": labels})
    store = str(store)
    grid = recipe.tile_grid
    create_or_open(store, recipe)
    root = zarr.open_group(store, mode="r+", zarr_format=3)
    k = shard_tiles(recipe)
    scale = 480 / grid.footprint  # START is a tile of the demo recipe's 480 m grid: the same place on this grid
    start = (int(START[0] * scale), int(START[1] * scale))
    tiles = [t for split in splits for t in split_tiles(split, blocks, start=start)]
    for layer in layers(recipe):
        by_shard: dict[tuple[int, int], list[TileId]] = {}
        for tile in tiles:
            by_shard.setdefault(shard_of(tile, k), []).append(tile)
        px = grid.tile_px(layer.grid_sensor)
        info = np.iinfo(layer.dtype)
        for shard, members in by_shard.items():
            rows, cols = shard_box(grid, layer, shard, k)
            data = root[layer.group]["data"][:, rows, cols]
            valid = root[layer.group]["valid"][rows, cols]
            records = {}
            for tile in members:
                box = grid.tile_geobox(tile, layer.grid_sensor)
                xs, ys = box.coordinates["x"].values, box.coordinates["y"].values
                gx, gy = np.meshgrid(xs, ys)
                if layer.group == LABELS:
                    dn = land_cover(reflectance(gx, gy, 1, seed))
                else:
                    value = reflectance(gx, gy, len(layer.bands), seed)
                    dn = np.clip(np.rint((value - layer.offset) / layer.scale), 1, info.max).astype(layer.dtype)
                window = tile_window(tile, shard, k, px)
                data[(slice(None), *window)] = dn
                valid[window] = 1
                records[str(tile)] = TileRecord(tile.col, tile.row, layer.group, (f"SYNTHETIC_{layer.group.upper()}",),
                                                ("2023-07-01T10:30:00Z",), "synthetic", "2023-07-01T10:30:00Z",
                                                1.0, 0.0)
            root[layer.group]["data"][:, rows, cols] = data
            root[layer.group]["valid"][rows, cols] = valid
            write_done(store, ShardRecord(layer.group, shard, records, _sums(data, valid.astype(bool), layer)))
    finish_store(store, grid, {})
    return tiles


if __name__ == "__main__":  # python -m tests.data.tile_store OUT.zarr [RECIPE [BLOCKS]]
    name, count = (sys.argv[2] if len(sys.argv) > 2 else "demo"), (int(sys.argv[3]) if len(sys.argv) > 3 else 2)
    print(f"{len(write_tile_store(sys.argv[1], blocks=count, recipe_name=name))} tiles in {sys.argv[1]}")
