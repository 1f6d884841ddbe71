"""``msc-france plan``: what a region costs before anything runs.

From the download stage's own per-tile plan (the STAC searches and :mod:`msc_france.download.plan`:
tiles with a full triplet, items per tile, bytes to fetch), the recipe (pixels, bands, types), the
store's compression (measured on a store) and the throughputs of ``throughput.py``: tiles, stored
bytes per sensor, bytes to download, tiler core-hours and
pretraining hours per epoch.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from rich.console import Console, Group
from rich.table import Table

from msc_france.config import Catalog, Recipe, StacSource, load_catalog, load_recipe
from msc_france.download.plan import RegionPlan
from msc_france.download.plan_report import fetch_bytes
from msc_france.errors import UserError
from msc_france.grid import TileId
from msc_france.regions import Region, region_tiles, resolve_region
from msc_france.store import SPLITS, Layer, layers, open_store
from msc_france.store.layout import shard_of, shard_tiles
from msc_france.throughput import (
    PRETRAIN_IMAGES_PER_S,
    TILES_MP_PER_CORE_S,
    TILES_TASK_CORE_S,
    Figure,
    tiler_core_seconds,
)

# Stored bytes (data and valid arrays, zstd level 1) per raw byte of the data array, measured on the
# demo store (the 144 tiles of the 5.76 km demo world, recipe demo) with `plan --store data/demo.zarr`.
# Synthetic scenes: real imagery may compress differently; pass --store to use a store of your own.
DEMO_STORE_RATIOS: dict[str, float] = {"s2": 0.815, "l8": 1.00, "vhr": 0.698, "labels": 0.205}


@dataclass(frozen=True)
class SensorPlan:
    """One group of the store over the region."""

    group: str
    source: str
    tile_px: int
    bands: int
    raw_bytes: int
    ratio: float
    core_hours: float | None  # tiler, None where no throughput was measured

    @property
    def stored_bytes(self) -> int:
        return round(self.raw_bytes * self.ratio)


@dataclass(frozen=True)
class Plan:
    """The figures ``msc-france plan`` prints."""

    region: Region
    recipe: str
    catalog: str
    download_bytes: int
    sensors: list[SensorPlan]
    ratios_from: str
    preset: str
    train_images: int
    epochs: int | None
    pretrain: Figure | None
    region_plan: RegionPlan
    shards: int  # shards of the store holding the region's tiles: a shard task each per group

    @property
    def tiles(self) -> int:
        return len(self.region_plan.tiles)

    @property
    def stored_bytes(self) -> int:
        return sum(s.stored_bytes for s in self.sensors)

    @property
    def core_hours(self) -> float:
        return sum(s.core_hours or 0.0 for s in self.sensors)

    @property
    def hours_per_epoch(self) -> float | None:
        return None if self.pretrain is None else self.train_images / self.pretrain.value / 3600


def store_ratios(store: str) -> dict[str, float]:
    """Stored bytes (data + valid, metadata and shard indexes included) per raw data byte, per group,
    over the tiles of the store's index."""
    opened = open_store(store)
    tiles = len(opened.index())
    ratios = {}
    for name in opened.groups:
        data = opened.array(name)
        raw = tiles * opened.tile_px(name) ** 2 * data.shape[0] * data.dtype.itemsize
        ratios[name] = opened.stored_bytes(name) / raw
    return ratios


def shard_count(tiles: list[TileId], k: int) -> int:
    """Shards of ``k`` x ``k`` tiles that hold ``tiles``."""
    return len({shard_of(tile, k) for tile in tiles})


def _source(catalog: Catalog, key: str) -> str:
    source = catalog.sources.get(key)
    if source is None:
        return "-"
    return source.collection if isinstance(source, StacSource) else f"WMS {source.layer}"


def _sensor_plan(layer: Layer, recipe: Recipe, catalog: Catalog, region_plan: RegionPlan,
                 ratios: dict[str, float], tasks: int) -> SensorPlan:
    """The group of ``layer``: its bytes, and its tiler core-hours for ``tasks`` shard tasks."""
    if layer.group not in ratios:
        raise UserError(f"the store has no {layer.group} group to measure its compression; give a store of this recipe")
    tiles = len(region_plan.tiles)
    px = recipe.tile_grid.tile_px(layer.grid_sensor)
    pixels = tiles * px**2 * len(layer.bands)
    # the tiler renders every item it mosaics on a tile: as many as the plan gives the tiles
    items = float(region_plan.tiles[f"{layer.group}_items"].map(len).sum())
    core_s = tiler_core_seconds(layer.group, items, px, len(layer.bands), tasks)
    core_hours = None if core_s is None else core_s / 3600
    return SensorPlan(layer.group, _source(catalog, layer.group), px, len(layer.bands),
                      pixels * np.dtype(layer.dtype).itemsize, ratios[layer.group], core_hours)


def make_plan(region: str, recipe: str = "msc-france", catalog: str = "planetary-computer",
              store: str | None = None, data: Path = Path("data"), window_days: int = 30) -> Plan:
    """The plan of ``recipe`` over ``region`` with the sources of ``catalog`` (compression from
    ``store``): the download stage's searches and per-tile plan, nothing fetched or written."""
    from msc_france.download.run import DownloadRequest, make_region_plan, resolved
    from msc_france.pretrain.config import load_pretrain_config  # the trainer's config pulls no torch

    source_catalog = load_catalog(catalog)
    the_region = resolve_region(region, source_catalog.world)
    the_recipe = load_recipe(recipe)
    tiles = region_tiles(the_region, the_recipe.tile_grid)
    if not tiles:
        raise UserError(f"region {the_region.name} covers no tile of the France grid")
    request = DownloadRequest(region=region, catalog=catalog, recipe=recipe, data=data, window_days=window_days,
                              dry_run=True)
    with resolved(source_catalog, data) as live:
        region_plan = make_region_plan(request, live, the_recipe, the_region, tiles, Console(quiet=True))
    download_bytes = sum(fetch_bytes(region_plan, the_recipe).values())
    ratios = store_ratios(store) if store else DEMO_STORE_RATIOS
    shards = shard_count(tiles, shard_tiles(the_recipe))  # a shard task each per group
    sensors = [_sensor_plan(layer, the_recipe, source_catalog, region_plan, ratios, shards)
               for layer in layers(the_recipe)]
    preset = f"pretrain-{the_recipe.name}"
    figure = PRETRAIN_IMAGES_PER_S.get(preset)
    epochs = load_pretrain_config(preset).optim.epochs if figure is not None else None
    return Plan(the_region, the_recipe.name, source_catalog.name, download_bytes, sensors,
                store or "the demo store (msc_france/plan.py)", preset, round(len(tiles) * SPLITS["train"]), epochs,
                figure, region_plan, shards)


def _gb(n: float) -> str:
    return f"{n / 1e9:,.1f} GB" if n >= 1e8 else f"{n / 1e6:,.1f} MB"


def _time(hours: float) -> str:
    if hours >= 1:
        return f"{hours:,.1f} h"
    return f"{hours * 60:.1f} min" if hours >= 1 / 60 else f"{hours * 3600:.1f} s"


def plan_table(plan: Plan) -> Group:
    """Per-sensor table and totals, as rich renderables."""
    sensors = Table(title=f"plan for {plan.region.name}: recipe {plan.recipe}, catalog {plan.catalog}, "
                          f"{plan.tiles:,} tiles")
    for column in ("group", "source", "px/tile", "bands", "raw", "stored/raw", "stored", "tiler, 1 core"):
        sensors.add_column(column, justify="left" if column in ("group", "source") else "right")
    for s in plan.sensors:
        sensors.add_row(s.group, s.source, str(s.tile_px), str(s.bands), _gb(s.raw_bytes), f"{s.ratio:.3f}",
                        _gb(s.stored_bytes), "-" if s.core_hours is None else _time(s.core_hours))
    sensors.add_row("total", "", "", "", _gb(sum(s.raw_bytes for s in plan.sensors)), "", _gb(plan.stored_bytes),
                    _time(plan.core_hours))
    totals = Table(title="totals")
    for column in ("quantity", "value", "basis"):
        totals.add_column(column, justify="right" if column == "value" else "left")
    planned = plan.region_plan
    totals.add_row("tiles", f"{plan.tiles:,}", "tiles of the France grid meeting the region")
    totals.add_row("full triplets", f"{planned.triplets:,}",
                   f"of {planned.coverable:,} tiles the scenes found can cover; the download's per-tile plan")
    totals.add_row("download", _gb(plan.download_bytes), "raw, on the grid: per item the box of its tiles "
                   "(download/plan_report.py)")
    totals.add_row("store", _gb(plan.stored_bytes), f"compression measured on {plan.ratios_from}")
    figures = ", ".join(f"{k} {f.value:g} + {TILES_TASK_CORE_S[k].value * 1e3:.0f} ms"
                        for k, f in TILES_MP_PER_CORE_S.items())
    totals.add_row("tiles stage", f"{_time(plan.core_hours)} x 1 core",
                   f"the plan's items per tile at band-MP/s per core, and {plan.shards:,} shard tasks a group: "
                   f"{figures} (msc_france/throughput.py)")
    if plan.pretrain is None:
        totals.add_row("pretraining", "-", f"no throughput for {plan.preset} in msc_france/throughput.py")
    else:
        per_epoch = plan.hours_per_epoch or 0.0
        totals.add_row(f"pretraining ({plan.pretrain.device})", f"{_time(per_epoch)}/epoch",
                       f"{plan.preset}: at most {plan.train_images:,} train images at {plan.pretrain.value:,.1f} "
                       f"images/s; {plan.pretrain.source}")
        totals.add_row("", _time(per_epoch * (plan.epochs or 0)), f"{plan.epochs} epochs of {plan.preset}")
    return Group(sensors, totals)
