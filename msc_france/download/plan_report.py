"""What a plan says and costs: the console report, the bytes to fetch, and ``plan.parquet`` with its map
beside the local catalog (read by the tiles stage, and by people)."""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import numpy as np
from rich.console import Group
from rich.table import Table

from msc_france.config import Recipe
from msc_france.download.plan import PLAN_FILE, SENSOR_NAMES, RegionPlan
from msc_france.grid import CRS, tiles_between
from msc_france.quicklook import plan_map
from msc_france.sensors import SENSORS
from msc_france.store.atomic import atomic_path

PLAN_MAP = "plan.png"
MASK_BYTES = {"s2": 1, "l8": 2}  # SCL is uint8, qa_pixel uint16
LISTED_ITEMS = 12  # items per sensor shown in the report


def fetch_bytes(plan: RegionPlan, recipe: Recipe) -> dict[str, int]:
    """Bytes each sensor fetches, uncompressed on the recipe's grid: per item the box of the tiles that
    use it (bands and quality mask); a WMS the tiles themselves. Files are written compressed, and a
    source read at a finer native GSD than the recipe's reads more."""
    grid = recipe.tile_grid
    out: dict[str, int] = {}
    for key, sensor in plan.sensors.items():
        bands = len(recipe.sensors[key].bands) if key in recipe.sensors else 1
        if key == "labels":
            gsd, per_pixel = (grid.gsd("s2") if "s2" in grid.sensors else min(g for _, g in grid.gsds)), 1
        else:
            gsd = grid.gsd(key)
            per_pixel = bands * np.dtype(SENSORS[key].encoding.dtype).itemsize + MASK_BYTES.get(key, 0)
        if sensor.whole_service is not None or all(c.item is None for c in sensor.candidates):
            tiles = int(plan.tiles[f"{key}_items"].map(len).gt(0).sum())
            out[key] = tiles * grid.tile_px(key) ** 2 * bands
            continue
        total = 0.0
        for item_tiles in plan.item_tiles(key).values():
            box = tiles_between(grid, item_tiles)
            total += box.span_x * box.span_y / gsd**2 * per_pixel
        out[key] = round(total)
    return out


def _size(n: float) -> str:
    return f"{n / 1e9:,.1f} GB" if n >= 1e8 else f"{n / 1e6:,.1f} MB"


def plan_report(plan: RegionPlan, recipe: Recipe) -> Group:
    """The plan as rich tables: coverage, reasons, items per sensor and bytes to fetch."""
    n = len(plan.tiles)
    share = plan.triplets / plan.coverable if plan.coverable else 0.0
    summary = Table(title=f"download plan for {plan.region.name}: {n:,} tiles, ±{plan.window_days} days")
    summary.add_column("quantity")
    summary.add_column("value", justify="right")
    summary.add_row("tiles of the region", f"{n:,}")
    summary.add_row("tiles the scenes found can cover (every sensor)", f"{plan.coverable:,}")
    summary.add_row("tiles with a full triplet", f"{plan.triplets:,} ({100 * share:.1f} % of those)")
    for reason, count in plan.reasons().head(8).items():
        summary.add_row(f"  without: {reason}", f"{count:,}")
    sizes = fetch_bytes(plan, recipe)
    for key, sensor in plan.sensors.items():
        used = plan.used(key)
        dropped = len(plan.duplicates.get(key, []))
        if sensor.whole_service:
            what = "whole service, coverage and dates measured when fetched"
        elif all(c.item is None for c in sensor.candidates):
            what = f"{len(used):,} flight areas of the mosaic graph"
        else:
            what = f"{len(used):,} of {len(sensor.candidates):,} candidates" + (
                f" ({dropped:,} duplicates dropped)" if dropped else "")
        summary.add_row(f"{SENSOR_NAMES[key]} items", what)
        summary.add_row(f"{SENSOR_NAMES[key]} to fetch (raw, on the grid)", _size(sizes[key]))
    summary.add_row("total to fetch (raw, on the grid)", _size(sum(sizes.values())))
    return Group(summary, *(_items_table(plan, key) for key in plan.sensors))


def _items_table(plan: RegionPlan, key: str) -> Table:
    counts = plan.item_tiles(key)
    table = Table(title=f"{SENSOR_NAMES[key]}: the items most used (of {len(counts):,})")
    table.add_column("item id", overflow="fold")
    for column in ("date", "scene cloud %", "tiles", "as reference"):
        table.add_column(column, justify="left" if column == "date" else "right", no_wrap=True)
    firsts = plan.tiles[f"{key}_items"].map(lambda ids: ids[0] if len(ids) else None).value_counts()
    by_id = {c.item_id: c for c in plan.sensors[key].candidates}
    for item_id, tiles in sorted(counts.items(), key=lambda kv: (-len(kv[1]), kv[0]))[:LISTED_ITEMS]:
        cand = by_id.get(item_id)
        date = str(cand.date) if cand and cand.item is not None else "per flight"
        cloud = f"{cand.cloud:.1f}" if cand and cand.item is not None else "-"
        as_reference = f"{int(firsts.get(item_id, 0)):,}" if key == "s2" else "-"
        table.add_row(item_id, date, cloud, f"{len(tiles):,}", as_reference)
    return table


def write_plan(plan: RegionPlan, root: Path) -> tuple[Path, Path]:
    """``root/plan.parquet`` (GeoParquet, one row per tile, written atomically) and ``root/plan.png``."""
    root.mkdir(parents=True, exist_ok=True)
    frame = plan.tiles
    boxes = plan.grid.tile_boxes(frame["col"].to_numpy(), frame["row"].to_numpy())
    table = gpd.GeoDataFrame(frame, geometry=list(boxes), crs=CRS)
    path = root / PLAN_FILE
    with atomic_path(path) as partial:
        table.to_parquet(partial, index=False)
    figure = plan_map(frame, root / PLAN_MAP,
                      f"plan for {plan.region.name}: {plan.triplets:,} of {len(frame):,} tiles with a full triplet")
    return path, figure
