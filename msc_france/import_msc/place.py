"""Where the imported footprints go. The released images carry no georeference, so they are laid on a
synthetic patch of the France grid: every footprint one tile, each city a rectangle of tiles aligned on
the split blocks, cities side by side from tile (0, 0), sorted by name. The recipe is derived from the
images: per sensor, a tile as many pixels as its most common image side; the tile footprint is that of
Sentinel (10 m) or, without it, Landsat (30 m) or SPOT (1.5 m), at their nominal GSDs."""

from __future__ import annotations

import hashlib
import math
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from msc_france.config import GridConfig, Recipe, SensorSelection
from msc_france.errors import UserError
from msc_france.grid import EXTENT_SIZE, TileId
from msc_france.import_msc.scan import Footprint
from msc_france.pretrain.config import RGB_BANDS
from msc_france.sensors import Encoding

RECIPE = "msc-paper"  # the store's recipe name: its pretraining preset is pipelines/pretrain-msc-paper.yaml
NOMINAL_GSD: dict[str, float] = {"s2": 10.0, "l8": 30.0, "vhr": 1.5}  # metres: Sentinel-2, Landsat-8, SPOT 6/7
BLOCK = 4  # tiles per side of a split block (msc_france.store.index.split_of)
# 8-bit RGB kept exactly in uint16, so that no real value is nodata; DN / 255 is the value in [0, 1].
ENCODING = Encoding(dtype="uint16", nodata=65535, scale=1 / 255, offset=0.0)
SplitMode = Literal["city", "block"]


@dataclass(frozen=True)
class Placed:
    """A footprint on its tile, with its split (None: the index's spatial-block split)."""

    footprint: Footprint
    tile: TileId
    split: str | None


def tile_sizes(sizes: Mapping[str, list[tuple[int, int]]]) -> dict[str, int]:
    """Per group, the most common longer side of its images (ties: the larger)."""
    out = {}
    for group, found in sizes.items():
        counts = Counter(max(size) for size in found)
        out[group] = max(counts, key=lambda side: (counts[side], side))
    return out


def import_recipe(px: Mapping[str, int]) -> Recipe:
    """The recipe of the imported store: RGB bands of each group, ``px[group]`` pixels per tile."""
    reference = next(g for g in NOMINAL_GSD if g in px)
    footprint = px[reference] * NOMINAL_GSD[reference]
    gsd = {group: footprint / px[group] for group in px}
    sensors = {group: SensorSelection(bands=list(RGB_BANDS[group])) for group in px}
    return Recipe(name=RECIPE, description="the released MSC-France dataset of the X-STARS paper (RGB), imported",
                  grid=GridConfig(footprint=footprint, gsd=gsd), sensors=sensors)


def _unit_hash(text: str) -> float:
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "big") / 2.0**64


def city_splits(cities: list[str], test: list[str] | None = None, val: list[str] | None = None) -> dict[str, str]:
    """The split of each city: ``test`` and ``val`` when given, else held out by a hash of the city name
    (10 % each, at least one test city, and one val city from three cities on)."""
    if len(cities) < 2:
        raise UserError(f"--split city needs at least two cities, found {', '.join(cities)}; use --split block")
    for given in (test or []) + (val or []):
        if given not in cities:
            raise UserError(f"no city {given!r} in the dataset (it has {', '.join(cities)})")
    if test is None:
        ranked = sorted((c for c in cities if c not in (val or [])), key=lambda c: (_unit_hash(c), c))
        n_test = max(1, round(0.1 * len(cities)))
        n_val = max(1, round(0.1 * len(cities))) if len(cities) >= 3 else 0
        test = ranked[:n_test]
        val = ranked[n_test:n_test + n_val] if val is None else val
    out = dict.fromkeys(cities, "train")
    out.update(dict.fromkeys(val or [], "val"))
    out.update(dict.fromkeys(test, "test"))
    if "train" not in out.values():
        raise UserError("every city is held out; leave at least one city for training")
    return out


def place(footprints: list[Footprint], footprint_m: float, mode: SplitMode,
          test: list[str] | None = None, val: list[str] | None = None) -> list[Placed]:
    """Every footprint on its tile (see the module's docstring), with its split."""
    by_city: dict[str, list[Footprint]] = {}
    for fp in sorted(footprints, key=lambda f: f.key):
        by_city.setdefault(fp.city, []).append(fp)
    splits = city_splits(list(by_city), test, val) if mode == "city" else {}
    cols = math.ceil(EXTENT_SIZE[0] / footprint_m) // BLOCK * BLOCK
    rows = math.ceil(EXTENT_SIZE[1] / footprint_m)
    out: list[Placed] = []
    col0 = row0 = shelf = 0
    for city, members in by_city.items():
        width = min(cols, math.ceil(math.sqrt(len(members)) / BLOCK) * BLOCK)
        height = math.ceil(len(members) / width)
        if col0 + width > cols:  # next shelf of cities
            col0, row0 = 0, row0 + math.ceil(shelf / BLOCK) * BLOCK
            shelf = 0
        if row0 + height > rows:
            raise UserError(f"{len(footprints)} footprints do not fit on the France grid of {footprint_m:g} m tiles")
        out += [Placed(fp, TileId(col0 + i % width, row0 + i // width), splits.get(city))
                for i, fp in enumerate(members)]
        col0 += width
        shelf = max(shelf, height)
    return out
