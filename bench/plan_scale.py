"""The per-tile planner at the scale of France, against a plain loop over tile-footprint pairs (the
baseline, timed on a sample of tiles in the same process and scaled to all of them).

    .venv/bin/python bench/plan_scale.py [--sample 1000]

Footprints come from the footprint world's generator (msc_france/demo/footprints.py: one season of
Sentinel-2 and Landsat-8 over France), without a server, so only the planning is timed.
"""

from __future__ import annotations

import argparse
import datetime as dt
import resource
import sys
import time
from pathlib import Path

import numpy as np
import shapely
from odc.geo.geom import Geometry
from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from msc_france.config import DateRange, load_recipe
from msc_france.demo.footprints import footprints
from msc_france.download.candidates import Candidate, one_per_acquisition
from msc_france.download.plan import SensorCandidates, plan_tiles
from msc_france.regions import resolve_region


def _candidates(season: DateRange) -> dict[str, list[Candidate]]:
    prints = footprints(season, seed=2154)
    s2 = [Candidate("s2", None, f"{s.tile}-{s.datatake:%Y%m%dT%H%M%S}-{s.processed:%H%M%S}", s.datatake.date(),
                    s.cloud_cover, Geometry(s.footprint, "EPSG:4326").to_crs("EPSG:2154"),
                    f"{s.platform}:{s.datatake:%Y%m%dT%H%M%S}:{s.tile}", f"{s.baseline}|{s.processed:%Y%m%dT%H%M%S}")
          for s in prints.s2]
    l8 = [Candidate("l8", None, f"{s.platform}-{s.path:03d}{s.row:03d}-{s.when:%Y%m%d}", s.when.date(), s.cloud_cover,
                    Geometry(s.footprint, "EPSG:4326").to_crs("EPSG:2154"))
          for s in prints.landsat if s.platform == "landsat-8"]
    return {"s2": one_per_acquisition(s2)[0], "l8": l8}


def _loop_seconds_per_tile(boxes: np.ndarray, footprints_l93: list[shapely.Geometry]) -> float:
    """The baseline: every footprint tested against each tile, intersection area where they meet."""
    start = time.perf_counter()
    for tile in boxes:
        for footprint in footprints_l93:
            if tile.intersects(footprint):
                tile.intersection(footprint).area  # noqa: B018 - the work the baseline does per pair
    return (time.perf_counter() - start) / len(boxes)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sample", type=int, default=1000, help="tiles the baseline loop is timed on")
    args = parser.parse_args()
    grid = load_recipe("msc-france").tile_grid
    tiles = grid.tiles_in(resolve_region("France").geometry)
    season = DateRange(start=dt.date(2023, 4, 1), end=dt.date(2023, 9, 30))
    start = time.perf_counter()
    found = _candidates(season)
    made = time.perf_counter() - start
    sensors = {"s2": SensorCandidates("s2", found["s2"], "reference"),
               "l8": SensorCandidates("l8", found["l8"], "nearest")}
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    start = time.perf_counter()
    plan = plan_tiles(resolve_region("France"), grid, tiles, sensors, 30)
    planned = time.perf_counter() - start
    rss_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    rng = np.random.default_rng(0)
    pick = rng.choice(len(tiles), size=min(args.sample, len(tiles)), replace=False)
    boxes = grid.tile_boxes(np.array([tiles[i].col for i in pick]), np.array([tiles[i].row for i in pick]))
    every = [c.footprint.geom for key in ("s2", "l8") for c in found[key]]
    baseline = _loop_seconds_per_tile(boxes, every) * len(tiles)
    table = Table(title=f"plan per tile, France ({len(tiles):,} tiles; {len(found['s2']):,} S2 + {len(found['l8']):,} "
                        f"Landsat-8 candidates; footprints made in {made:.1f} s)")
    for column in ("", "seconds", "ratio"):
        table.add_column(column, justify="left" if not column else "right")
    table.add_row("plan_tiles (STRtree, chunks, pandas)", f"{planned:,.1f}", "1.0")
    table.add_row(f"pair loop, timed on {len(pick):,} tiles, scaled", f"{baseline:,.0f}",
                  f"{baseline / planned:,.1f}x slower")
    Console(width=140).print(table)
    print(f"full triplets (S2 + Landsat only): {plan.triplets:,} of {plan.coverable:,} coverable tiles "
          f"({100 * plan.triplets / max(plan.coverable, 1):.1f} %); peak RSS {rss_after:,.0f} MB "
          f"(before planning {rss_before:,.0f} MB)")


if __name__ == "__main__":
    main()
