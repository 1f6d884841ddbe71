"""The tiles stage's shard writer (zarr-python with zarrs-python's Rust codec pipeline, ``tiles/shard.py``)
against zarr-python's own codec pipeline writing the same whole shard with the same codecs (the
baseline), in one process, and what that means for the tiles stage.

    make demo                                     # once: data/demo.zarr and data/catalogs/demo
    .venv/bin/python bench/shard_writer.py [--data data] [--repeat 5]

For each group of the demo store, the shard that holds most of the demo scene is read back and written into a
fresh store of the same recipe each way; the values must be equal and the shards the same size (the same
encoded chunks; zarrs orders them row by row inside a shard, zarr-python in Morton order). The tiles stage's share: a
shard task renders then writes, so the stage ratio is (render + zarr-python write) / (render + our write),
with the render of the same shard from the demo download timed here too (Dask overhead left out,
which would only bring the ratio closer to 1). docs/store.md keeps the last run against the hand-written
encoder that zarrs replaced.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from collections import Counter
from functools import partial
from importlib.metadata import version
from pathlib import Path
from typing import Any

import numpy as np
import zarr
from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.timing import median_seconds
from msc_france.config import load_recipe
from msc_france.regions import resolve_region
from msc_france.store.layout import layers, shard_box, shard_of, shard_tiles
from msc_france.tiles.create import create_or_open
from msc_france.tiles.shard import RUST_CODECS
from msc_france.tiles.sources import read_items
from msc_france.tiles.warp import render


def write_with_zarrs(store: str, group: str, region: tuple[slice, ...], data: np.ndarray) -> None:
    """Open the ``data`` array of ``group`` and write ``region`` as a shard task does (tiles/shard.py)."""
    with zarr.config.set(RUST_CODECS):
        array: zarr.Array[Any] = zarr.open_array(f"{store}/{group}/data", mode="r+", zarr_format=3)
        array[region] = data


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("data"))
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    recipe = load_recipe("demo")
    grid = recipe.tile_grid
    source = zarr.open_group(str(args.data / "demo.zarr"), mode="r", zarr_format=3)
    items = read_items(args.data / "catalogs" / "demo")
    tiles = grid.tiles_in(resolve_region("demo").geometry)
    k = shard_tiles(recipe)
    shard, filled = Counter(shard_of(t, k) for t in tiles).most_common(1)[0]  # the fullest shard of the scene
    table = Table(title=f"one shard of the demo store ({k} x {k} tiles, {filled} of them with data), "
                        f"median of {args.repeat}")
    for column in ("group", "shard MB", "render s", "zarrs s", "zarr-python s", "write ratio", "stage ratio"):
        table.add_column(column, justify="left" if column == "group" else "right")
    totals = np.zeros(3)  # render, zarrs, zarr-python over the groups
    with tempfile.TemporaryDirectory() as scratch:
        create_or_open(f"{scratch}/ours.zarr", recipe)
        theirs = create_or_open(f"{scratch}/zarr.zarr", recipe)
        ours = zarr.open_group(f"{scratch}/ours.zarr", mode="r")
        for layer in layers(recipe):
            box = shard_box(grid, layer, shard, k)
            data = source[layer.group]["data"][(slice(None), *box)]
            region = (slice(None), *box)
            target = grid.geobox(layer.grid_sensor)[box]
            near = [i for i in items if i.sensor == layer.group]
            t_render = median_seconds(partial(render, layer, near, target), max(1, args.repeat // 2))
            t_ours = median_seconds(partial(write_with_zarrs, f"{scratch}/ours.zarr", layer.group, region, data),
                                    args.repeat)
            t_zarr = median_seconds(partial(theirs[layer.group]["data"].__setitem__, region, data), args.repeat)
            equal = np.array_equal(ours[layer.group]["data"][region], theirs[layer.group]["data"][region])
            assert equal, f"{layer.group}: the two writers stored different values"
            key = f"data/c/0/{shard[1]}/{shard[0]}"
            same_size = (Path(scratch) / "ours.zarr" / layer.group / key).stat().st_size == \
                (Path(scratch) / "zarr.zarr" / layer.group / key).stat().st_size
            totals += (t_render, t_ours, t_zarr)
            table.add_row(layer.group + ("" if same_size else " (sizes differ)"), f"{data.nbytes / 1e6:.1f}",
                          *_figures(t_render, t_ours, t_zarr))
    table.add_row("all groups", "", *_figures(*totals))
    Console(width=140).print(table)
    print(f"zarr {zarr.__version__}, zarrs {version('zarrs')} (one thread, as in a tiles worker); "
          "stage ratio = (render + zarr-python write) / (render + zarrs write)")


def _figures(render_s: float, ours_s: float, zarr_s: float) -> list[str]:
    return [f"{render_s:.3f}", f"{ours_s:.3f}", f"{zarr_s:.3f}", f"{zarr_s / ours_s:.2f}x",
            f"{(render_s + zarr_s) / (render_s + ours_s):.2f}x"]


if __name__ == "__main__":
    main()
