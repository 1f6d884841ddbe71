"""The GeoParquet tile index beside the store: one row per tile, its sources, quality and split.

See ``docs/store.md``. The index is built from the per-(tile, sensor) records of the shard
completion records. Splits are drawn per spatial block of tiles from a hash of the block
coordinates only, so they never depend on which tiles exist and never change as the store grows.
"""

from __future__ import annotations

import hashlib
import io
import math
from collections.abc import Iterable
from typing import Any

import geopandas as gpd
import shapely

from msc_france.config import SplitConfig
from msc_france.errors import UserError
from msc_france.grid import CRS, TileGrid, TileId
from msc_france.store.atomic import atomic_path, atomic_write, is_url, local_path
from msc_france.store.layout import LABELS, group_rank, index_path
from msc_france.store.records import TileRecord

SPLITS: dict[str, float] = {"train": 0.8, "val": 0.1, "test": 0.1}

_PER_SENSOR = ("datetime", "items", "dates", "valid", "cloud")


# --- splits ------------------------------------------------------------------------------------
def _unit_hash(text: str) -> float:
    """A deterministic number in [0, 1) from ``text`` (64 bits of BLAKE2b)."""
    digest = hashlib.blake2b(text.encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2.0**64


def split_of(col: int, row: int, block: int = 4, seed: int = 0) -> str:
    """The split (``train``, ``val``, ``test``) of tile ``(col, row)``.

    Tiles are grouped in blocks of ``block x block``; every tile of a block gets the block's split,
    drawn from a hash of ``seed`` and the block coordinates against the cumulative shares of
    :data:`SPLITS`.
    """
    if block < 1:
        raise ValueError(f"split block must be a positive number of tiles, got {block}")
    bc, br = col // block, row // block
    u = _unit_hash(f"{seed}:{bc}:{br}")
    cumulative = 0.0
    names = list(SPLITS)
    for name in names[:-1]:
        cumulative += SPLITS[name]
        if u < cumulative:
            return name
    return names[-1]


# --- index -------------------------------------------------------------------------------------
def _below(value: float, threshold: float) -> str:
    """``value`` printed with the fewest decimals (at least 2) that still read as below ``threshold``."""
    for digits in range(2, 7):
        text = f"{value:.{digits}f}"
        if float(text) < threshold:
            return text
    return repr(value)


def _regions(records: Iterable[TileRecord]) -> str | None:
    """Distinct region slugs of ``records`` (which may already be comma-joined), sorted, comma-joined."""
    slugs = {part.strip() for record in records for part in (record.region or "").split(",") if part.strip()}
    return ",".join(sorted(slugs)) or None


def _verdict(sensor: str, record: TileRecord | None, valid: float, min_valid: float) -> str | None:
    """Why ``sensor`` fails the quality rule on a tile (its record, its valid share); None if it passes."""
    if record is None:
        return f"{sensor} missing"
    if valid >= min_valid:
        return None
    if math.isnan(valid):
        return f"{sensor} valid unknown"
    shares = [f"{name} {share:.2f}" for name, share in record.invalid_fractions.items() if share >= 0.005]
    return f"{sensor} valid {_below(valid, min_valid)} < {min_valid:g}" + (f" ({', '.join(shares)})" if shares else "")


def _columns(sensors: list[str]) -> list[str]:
    base = ["tile", "col", "row", "region", "geometry"]
    per_sensor = [f"{s}_{field}" for s in sensors for field in _PER_SENSOR]
    return [*base, *per_sensor, "quality_ok", "quality_reason", "split"]


def tile_split(grid: TileGrid, tile: TileId, splits: SplitConfig) -> str:
    """The split of ``tile``: ``test`` when its centre lies in ``splits.test_area``, else by block hash."""
    area = splits.test_area
    if area is not None:
        b = grid.tile_bounds(tile)
        x, y = (b.left + b.right) / 2, (b.bottom + b.top) / 2
        if area[0] <= x < area[2] and area[1] <= y < area[3]:
            return "test"
    return split_of(tile.col, tile.row, block=splits.block)


def build_index(
    records: list[TileRecord], grid: TileGrid, min_valid: float = 0.95, splits: SplitConfig | None = None
) -> gpd.GeoDataFrame:
    """The tile index (``docs/store.md``) from per-(tile, sensor) records, given oldest first.

    One row per tile, sorted by row then column. For each sensor that appears in any record there
    are ``<sensor>_datetime``, ``<sensor>_items`` and ``<sensor>_dates`` (comma-joined, in priority
    order; dates are None for records written before they were kept), ``<sensor>_valid`` and
    ``<sensor>_cloud``; a tile without a record for that sensor has None / NaN there. When a
    (tile, sensor) has several records the latest one wins, and ``region`` joins the distinct
    regions of the records kept.

    Quality: a tile is ok when every imaging sensor (all but ``labels``) present in the records has
    a record for the tile with ``valid_fraction >= min_valid``. ``quality_reason`` is ``"ok"`` or lists
    each failing sensor with why its pixels are not valid (shares of the tile, from the records'
    ``invalid_fractions``), e.g. ``"s2 valid 0.62 < 0.95 (cloud 0.30, snow 0.05, nodata 0.03); l8 valid
    0.00 < 0.95 (nodata 1.00); vhr missing"``. Failing tiles keep their split.
    """
    latest: dict[TileId, dict[str, TileRecord]] = {}
    for record in records:
        latest.setdefault(record.tile, {})[record.sensor] = record  # later records replace earlier

    sensors = sorted({s for per_tile in latest.values() for s in per_tile}, key=group_rank)
    imaging = [s for s in sensors if s != LABELS]

    rows: list[dict[str, Any]] = []
    for tile in sorted(latest, key=lambda t: (t.row, t.col)):
        per_tile = latest[tile]
        b = grid.tile_bounds(tile)
        row: dict[str, Any] = {
            "tile": str(tile),
            "col": tile.col,
            "row": tile.row,
            "region": _regions(per_tile[s] for s in sensors if s in per_tile),
            "geometry": shapely.box(b.left, b.bottom, b.right, b.top),
        }
        for s in sensors:
            rec = per_tile.get(s)
            if rec is None:
                row.update({f"{s}_datetime": None, f"{s}_items": None, f"{s}_dates": None, f"{s}_valid": math.nan,
                            f"{s}_cloud": math.nan})
                continue
            row.update({
                f"{s}_datetime": rec.datetime,
                f"{s}_items": ",".join(rec.items),
                f"{s}_dates": None if rec.dates is None else ",".join(d or "" for d in rec.dates),
                f"{s}_valid": rec.valid_fraction,
                f"{s}_cloud": rec.cloud_fraction,
            })
        reasons = [r for s in imaging if (r := _verdict(s, per_tile.get(s), row[f"{s}_valid"], min_valid))]
        row["quality_ok"] = not reasons
        row["quality_reason"] = "; ".join(reasons) or "ok"
        row["split"] = tile_split(grid, tile, splits or SplitConfig())
        rows.append(row)

    columns = _columns(sensors)
    gdf = gpd.GeoDataFrame(rows, columns=columns, geometry="geometry", crs=CRS)
    gdf = gdf.astype({"col": "int64", "row": "int64", "quality_ok": "bool"})
    for s in sensors:
        gdf = gdf.astype({f"{s}_valid": "float64", f"{s}_cloud": "float64"})
    return gdf.reset_index(drop=True)


# --- files -------------------------------------------------------------------------------------
def write_index(gdf: gpd.GeoDataFrame, store: str, storage_options: dict[str, Any] | None = None) -> str:
    """Write the index of ``store`` as GeoParquet, whole or not at all; return where."""
    target = index_path(store)
    if is_url(target):
        buffer = io.BytesIO()
        gdf.to_parquet(buffer, index=False)
        atomic_write(target, buffer.getvalue(), storage_options)
    else:
        with atomic_path(local_path(target)) as tmp:
            gdf.to_parquet(tmp, index=False)
    return target


def read_index(store: str, storage_options: dict[str, Any] | None = None) -> gpd.GeoDataFrame:
    """The tile index of ``store``; a missing one is a one-line error."""
    target = index_path(store)
    try:
        if is_url(target):
            import fsspec

            with fsspec.open(target, "rb", **(storage_options or {})) as handle:
                return gpd.read_parquet(handle)
        return gpd.read_parquet(local_path(target))
    except FileNotFoundError:
        raise UserError(f"no tile index beside {store}; run `make tiles` to finish the store") from None
