"""``msc-france plan``'s tiler model against the load test (``bench/tiles_load.py``): what the plan predicts
for the load region, the table of predicted against measured CPU seconds, and the fit of the model's figures
from two runs of one region in shards of two sizes."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.table import Table

from msc_france.config import Recipe
from msc_france.plan import shard_count
from msc_france.store.layout import layers
from msc_france.throughput import TILES_MP_PER_CORE_S, TILES_TASK_CORE_S, render_band_mp, tiler_core_seconds
from msc_france.tiles.run import plan_tiles
from msc_france.tiles.sources import catalog_dirs
from msc_france.tiles.tileplan import TileOrders, read_plan


@dataclass(frozen=True)
class Predicted:
    """One group of the load region as ``msc-france plan`` sees it."""

    pairs: int  # (tile, item) pairs
    band_mp: float  # their band-megapixels
    tasks: int  # shard tasks
    core_s: float | None  # tiler_core_seconds


def predicted(data: Path, recipe: Recipe, k: int) -> dict[str, Predicted]:
    """Per group: the (tile, item) pairs the regions' plans mosaic on the tiles the stage renders, their
    band-MP, the shard tasks (shards of ``k`` tiles a side) and the core-seconds of ``msc-france plan``'s
    formula."""
    folders = catalog_dirs(data, None)
    tiles, _ = plan_tiles(recipe, folders)
    orders = TileOrders.combine(plan for plan in map(read_plan, folders) if plan is not None).orders
    tasks = shard_count(list(tiles), k)
    out = {}
    for layer in layers(recipe):
        pairs = sum(len(orders.get((layer.group, tile), ())) for tile in tiles)
        px, bands = recipe.tile_grid.tile_px(layer.grid_sensor), len(layer.bands)
        out[layer.group] = Predicted(pairs, render_band_mp(pairs, px, bands), tasks,
                                     tiler_core_seconds(layer.group, pairs, px, bands, tasks))
    return out


def _ratio(measured: float, expected: float | None) -> str:
    return "-" if not expected else f"{measured / expected:.2f}"


def prediction_table(plans: dict[int, dict[str, Predicted]], runs: list[dict[str, Any]]) -> Table:
    """Per run and group, the plan's predicted core-seconds against the measured CPU seconds."""
    figures = ", ".join(f"{group} {f.value:g} + {TILES_TASK_CORE_S[group].value * 1e3:.1f} ms"
                        for group, f in TILES_MP_PER_CORE_S.items())
    table = Table(title=f"the plan's tiler core-seconds against the load test's (band-MP/s per core + a shard "
                        f"task: {figures})")
    for column in ("workers", "shard tiles", "group", "shard tasks", "(tile, item) pairs", "band-MP",
                   "predicted core-s", "measured CPU s", "measured/predicted"):
        table.add_column(column, justify="left" if column == "group" else "right")
    for run in runs:
        plan = plans[run["k"]]
        for group, p in plan.items():
            cpu = run["group_cpu"].get(group, 0.0)
            table.add_row(str(run["workers"]), f"{run['k']} x {run['k']}", group, f"{p.tasks:,}", f"{p.pairs:,}",
                          f"{p.band_mp:.1f}", "-" if p.core_s is None else f"{p.core_s:.1f}", f"{cpu:.1f}",
                          _ratio(cpu, p.core_s))
        total = sum(p.core_s or 0.0 for p in plan.values())
        table.add_row(str(run["workers"]), f"{run['k']} x {run['k']}", "total", f"{run['tasks']:,}", "", "",
                      f"{total:.1f}", f"{run['cpu']:.1f}", _ratio(run["cpu"], total), end_section=True)
    return table


Run = dict[str, Any]  # one run of bench/tiles_load.py


def fit(plans: dict[int, dict[str, Predicted]], base: Run, fine: Run) -> dict[str, tuple[float, float]]:
    """From two runs of one region, in shards of ``base["k"]`` and of ``fine["k"]`` tiles, per group: the CPU
    seconds of a shard task (the group's extra CPU over its extra tasks), then its band-MP per CPU second once
    its tasks' share is taken off (in the base run, whose tasks weigh least)."""
    out = {}
    for group, p in plans[base["k"]].items():
        extra_tasks = plans[fine["k"]][group].tasks - p.tasks
        task_s = (fine["group_cpu"][group] - base["group_cpu"][group]) / extra_tasks
        out[group] = (task_s, p.band_mp / (base["group_cpu"][group] - p.tasks * task_s))
    return out


def fit_line(plans: dict[int, dict[str, Predicted]], base: Run, fine: Run) -> str:
    """The fit, as the figures msc_france/throughput.py takes."""
    figures = fit(plans, base, fine)
    return (f"fit of the runs in shards of {base['k']} and of {fine['k']} tiles (1 worker), band-MP/s per core + CPU "
            "of a shard task: " + ", ".join(f"{g} {mp:.1f} + {s * 1e3:.1f} ms" for g, (s, mp) in figures.items())
            + " (TILES_MP_PER_CORE_S and TILES_TASK_CORE_S in msc_france/throughput.py). Measured: the workers' CPU "
            "seconds (their imports left out), split over the groups in proportion to the thread CPU of each group's "
            "shard tasks (Dask's metrics), which leave out zarr's I/O threads (the shard writes) and Dask's event "
            "loop.")
