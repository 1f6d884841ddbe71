"""The GeoParquet tile index beside the store: one row per tile, its sources, quality and split.

See ``docs/store.md``. The index is built from the per-(tile, sensor) records of the shard
completion records. Splits are drawn per spatial block of tiles from a hash of the block
coordinates only, so they never depend on which tiles exist and never change as the store grows.
"""

from __future__ import annotations

import hashlib
import math
import os
import uuid
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import geopandas as gpd
import shapely

from msc_france.grid import CRS, TileGrid, TileId
from msc_france.sensors import SENSORS

SPLITS: dict[str, float] = {"train": 0.8, "val": 0.1, "test": 0.1}

LABELS = "labels"
# Column order of the per-sensor groups: the known sensors first, labels last, then any others.
_SENSOR_ORDER: tuple[str, ...] = (*SENSORS, LABELS)
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
def _sensor_rank(sensor: str) -> tuple[int, str]:
    order = list(_SENSOR_ORDER)
    return (order.index(sensor) if sensor in order else len(order), sensor)


def _fraction(value: Any) -> float:
    """A record's fraction as a float; missing or unreadable values are NaN."""
    try:
        return float(value) if value is not None else math.nan
    except (TypeError, ValueError):
        return math.nan


def _below(value: float, threshold: float) -> str:
    """``value`` printed with the fewest decimals (at least 2) that still read as below ``threshold``."""
    for digits in range(2, 7):
        text = f"{value:.{digits}f}"
        if float(text) < threshold:
            return text
    return repr(value)


def _regions(records: Iterable[Mapping[str, Any]]) -> str | None:
    """Distinct region slugs of ``records`` (which may already be comma-joined), sorted, comma-joined."""
    slugs = {
        part.strip()
        for record in records
        for part in str(record.get("region") or "").split(",")
        if part.strip()
    }
    return ",".join(sorted(slugs)) or None


def _verdict(sensor: str, record: Mapping[str, Any] | None, valid: float, min_valid: float) -> str | None:
    """Why ``sensor`` fails the quality rule on a tile (its record, its valid share); None if it passes."""
    if record is None:
        return f"{sensor} missing"
    if valid >= min_valid:
        return None
    if math.isnan(valid):
        return f"{sensor} valid unknown"
    shares = [f"{name} {share:.2f}" for name, share in (record.get("invalid_fractions") or {}).items() if share >= 0.005]
    return f"{sensor} valid {_below(valid, min_valid)} < {min_valid:g}" + (f" ({', '.join(shares)})" if shares else "")


def _columns(sensors: list[str]) -> list[str]:
    base = ["tile", "col", "row", "region", "geometry"]
    per_sensor = [f"{s}_{field}" for s in sensors for field in _PER_SENSOR]
    return [*base, *per_sensor, "quality_ok", "quality_reason", "split"]


def build_index(
    records: list[dict], grid: TileGrid, min_valid: float = 0.95, block: int = 4
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
    latest: dict[TileId, dict[str, Mapping[str, Any]]] = {}
    for record in records:
        tile = TileId(int(record["col"]), int(record["row"]))
        if "tile" in record and record["tile"] is not None and str(record["tile"]) != str(tile):
            raise ValueError(
                f"tile record says tile {record['tile']!r} but col/row {tile.col}/{tile.row} ({tile})"
            )
        latest.setdefault(tile, {})[str(record["sensor"])] = record  # later records replace earlier

    sensors = sorted({s for per_tile in latest.values() for s in per_tile}, key=_sensor_rank)
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
            items, dates = rec.get("items"), rec.get("dates")
            row.update({
                f"{s}_datetime": None if rec.get("datetime") is None else str(rec["datetime"]),
                f"{s}_items": ",".join(str(i) for i in items) if items is not None else None,
                f"{s}_dates": ",".join(str(d or "") for d in dates) if dates is not None else None,
                f"{s}_valid": _fraction(rec.get("valid_fraction")),
                f"{s}_cloud": _fraction(rec.get("cloud_fraction")),
            })
        reasons = [r for s in imaging if (r := _verdict(s, per_tile.get(s), row[f"{s}_valid"], min_valid))]
        row["quality_ok"] = not reasons
        row["quality_reason"] = "; ".join(reasons) or "ok"
        row["split"] = split_of(tile.col, tile.row, block=block)
        rows.append(row)

    columns = _columns(sensors)
    gdf = gpd.GeoDataFrame(rows, columns=columns, geometry="geometry", crs=CRS)
    gdf = gdf.astype({"col": "int64", "row": "int64", "quality_ok": "bool"})
    for s in sensors:
        gdf = gdf.astype({f"{s}_valid": "float64", f"{s}_cloud": "float64"})
    return gdf.reset_index(drop=True)


# --- files -------------------------------------------------------------------------------------
def _is_url(path_or_url: str) -> bool:
    return "://" in path_or_url


def index_path(store: str | os.PathLike[str]) -> str:
    """``STORE.tiles.parquet`` beside ``STORE.zarr`` (local paths and URLs such as ``s3://b/x.zarr``)."""
    text = os.fspath(store).rstrip("/")
    if text.endswith(".zarr"):
        text = text[: -len(".zarr")]
    if not text or text.endswith("/") or text.endswith(":"):
        raise ValueError(f"cannot place a tile index beside store {os.fspath(store)!r}")
    return f"{text}.tiles.parquet"


def write_index(
    gdf: gpd.GeoDataFrame, path_or_url: str | os.PathLike[str], storage_options: dict[str, Any] | None = None
) -> None:
    """Write the index as GeoParquet: atomically (temporary name, then rename) for local paths,
    with fsspec for URLs (one object written whole, so readers never see a partial index)."""
    target = os.fspath(path_or_url)
    if _is_url(target):
        import fsspec

        with fsspec.open(target, "wb", **(storage_options or {})) as handle:
            gdf.to_parquet(handle, index=False)
        return
    path = Path(target)
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        gdf.to_parquet(temp, index=False)
        os.replace(temp, path)
    finally:
        temp.unlink(missing_ok=True)


def read_index(
    path_or_url: str | os.PathLike[str], storage_options: dict[str, Any] | None = None
) -> gpd.GeoDataFrame:
    """Read an index written by :func:`write_index`."""
    target = os.fspath(path_or_url)
    if _is_url(target):
        import fsspec

        with fsspec.open(target, "rb", **(storage_options or {})) as handle:
            return gpd.read_parquet(handle)
    return gpd.read_parquet(target)
