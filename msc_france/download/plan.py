"""Plan per tile: for every grid tile of the region, the items of each sensor that make it, in the order
the tiles stage mosaics them, and for a tile without a full triplet, why.

Per tile (see docs/download.md):

- **Sentinel-2**: the *reference* scene is the item with the most expected clear area over the tile
  (its share of the tile x (1 - cloud over the tile)); it comes first. Other items within
  ``window_days`` of the reference fill in, least cloudy over the tile first.
- **Landsat**: the scene nearest in date to the tile's reference, within ``window_days``; then by cloud.
- **VHR**: by campaign: a STAC source's items by season distance to the reference, then cloud; a WMS
  by the flights of its mosaic graph (WFS) where the catalog names one, else everywhere (measured when
  fetched).
- **Labels**: every item that covers the tile.

Items are added to a tile until ``TARGET_CLEAR`` of it is expected clear and all of it expected covered
(clouds and partial footprints taken as independent between items), or ``MOST`` items. Cloud over a
tile is the scene's ``eo:cloud_cover`` unless a cloud share measured from the item's own mask over that
tile is given (:mod:`msc_france.download.tile_cloud`).

Scale: tiles and footprints meet through a shapely STRtree (no loop over pairs in Python), tiles are
planned in chunks of ``CHUNK`` (bounded memory), and every per-tile choice is a pandas group operation.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import cast

import numpy as np
import pandas as pd
import shapely

from msc_france.download.candidates import Candidate
from msc_france.grid import TileGrid, TileId
from msc_france.regions import Region

PLAN_FILE = "plan.parquet"  # beside the local catalog: written by the download, read by the tiles stage
TARGET_CLEAR = 0.98  # expected clear share of a tile at which no more items are added
MIN_CLEAR = 0.95  # expected clear share each sensor must reach for a full triplet (the index's quality rule)
MIN_ITEM_CLEAR = 0.05  # an item expected to bring less clear area than this to a tile is not used there
FULL = 0.999  # share of a tile that counts as covered
MOST = 3  # items per tile and sensor (labels: all that cover it)
CHUNK = 20_000  # tiles planned at once
SENSOR_NAMES = {"s2": "Sentinel-2", "l8": "Landsat", "vhr": "VHR", "labels": "labels"}


@dataclass(frozen=True)
class SensorCandidates:
    """The deduplicated candidates of one sensor and how they are ordered per tile."""

    sensor: str
    candidates: list[Candidate]
    order: str  # "reference" (s2), "nearest" (l8), "season" (vhr), "cover" (labels, WMS graph)
    whole_service: str | None = None  # a WMS id when the sensor comes from a WMS without a graph

    def __post_init__(self) -> None:
        if self.order not in ("reference", "nearest", "season", "cover"):
            raise ValueError(f"unknown order {self.order!r}")


@dataclass(frozen=True)
class RegionPlan:
    """The plan of a region: one row per tile in ``tiles`` (columns in :data:`TILE_COLUMNS` and, per
    sensor, ``<sensor>_items`` (ids, mosaic order), ``<sensor>_dates``, ``<sensor>_clear`` (expected
    clear share) and ``<sensor>_cover`` (share of the tile inside the chosen footprints))."""

    region: Region
    grid: TileGrid
    window_days: int
    sensors: dict[str, SensorCandidates]
    tiles: pd.DataFrame
    coverable: int  # tiles that every sensor's candidates cover at all (whatever their date and cloud)
    duplicates: dict[str, list[Candidate]] = field(default_factory=dict)

    @property
    def triplets(self) -> int:
        return int(self.tiles["triplet"].sum())

    def used(self, sensor: str) -> list[Candidate]:
        """The candidates of ``sensor`` that some tile uses, by id."""
        ids = self._tiles_by_item[sensor]
        return [c for c in self.sensors[sensor].candidates if c.item_id in ids]

    def item_tiles(self, sensor: str) -> dict[str, list[TileId]]:
        """For each used item of ``sensor``, the tiles that use it (row-major)."""
        return self._tiles_by_item[sensor]

    @functools.cached_property
    def _tiles_by_item(self) -> dict[str, dict[str, list[TileId]]]:
        """Per sensor, per used item, its tiles: read once from ``tiles``, which never changes."""
        out: dict[str, dict[str, list[TileId]]] = {}
        for sensor in self.sensors:
            exploded = self.tiles[["col", "row", f"{sensor}_items"]].explode(f"{sensor}_items").dropna()
            by_item = out.setdefault(sensor, {})
            for item_id, col, row in zip(exploded[f"{sensor}_items"], exploded["col"], exploded["row"], strict=True):
                by_item.setdefault(str(item_id), []).append(TileId(int(col), int(row)))
        return out

    def reasons(self) -> pd.Series:
        """Tiles without a full triplet, counted by reason (most frequent first)."""
        return self.tiles["reason"].dropna().value_counts()


TILE_COLUMNS = ("tile", "col", "row", "reference_date", "triplet", "reason")


@dataclass
class _Pool:
    """A sensor's candidates as arrays, with their spatial index."""

    candidates: list[Candidate]
    footprints: np.ndarray
    tree: shapely.STRtree
    cloud: np.ndarray  # percent
    day: np.ndarray  # proleptic ordinal, -1 when unknown
    yday: np.ndarray
    union: shapely.Geometry | None

    @classmethod
    def of(cls, candidates: list[Candidate]) -> _Pool:
        footprints = np.array([c.footprint.geom for c in candidates], dtype=object)
        shapely.prepare(footprints)
        days = np.array([c.date.toordinal() if c.date else -1 for c in candidates], dtype=np.int64)
        ydays = np.array([c.date.timetuple().tm_yday if c.date else 0 for c in candidates], dtype=np.int64)
        union = shapely.union_all(footprints) if len(candidates) else None
        if union is not None:
            shapely.prepare(union)
        return cls(candidates, footprints, shapely.STRtree(footprints),
                   np.array([c.cloud for c in candidates], dtype=np.float64), days, ydays, union)

    def pairs(self, boxes: np.ndarray, tile_area: float) -> pd.DataFrame:
        """Every (tile, candidate) that meet, with the share of the tile inside the footprint."""
        t, c = self.tree.query(boxes, predicate="intersects")
        whole = shapely.covers(self.footprints[c], boxes[t])  # prepared footprints: all of the tile inside
        cover = np.ones(len(t))
        part = ~whole
        if part.any():
            cover[part] = shapely.area(shapely.intersection(boxes[t[part]], self.footprints[c[part]])) / tile_area
        keep = cover > 1e-6
        return pd.DataFrame({"t": t[keep], "c": c[keep], "cover": np.minimum(cover[keep], 1.0)})


def _measured_cloud(pairs: pd.DataFrame, pool: _Pool, tile_ids: list[str],
                    measured: Mapping[tuple[str, str], float]) -> np.ndarray:
    """Cloud (percent) of each pair: measured over the tile where known, else the scene's."""
    cloud: np.ndarray = pool.cloud[pairs["c"].to_numpy()]
    if measured:
        ids = [pool.candidates[c].item_id for c in pairs["c"].to_numpy()]
        tiles = [tile_ids[t] for t in pairs["t"].to_numpy()]
        found = np.array([measured.get((i, t), np.nan) for i, t in zip(ids, tiles, strict=True)])
        cloud = np.where(np.isnan(found), cloud, found)
    return cloud


def _greedy(df: pd.DataFrame, order: list[str], most: int, first: pd.Series | None = None) -> pd.DataFrame:
    """Per tile, rows in ``order`` (``first`` rows before all) until TARGET_CLEAR is expected clear and
    the tile expected covered (shares taken as independent), or ``most`` rows."""
    df = df.assign(lead=0 if first is None else (~first).astype(np.int8))
    df = df.sort_values(["t", "lead", *order], kind="stable")
    by_tile = df["t"]
    missing = (1.0 - df["clear"]).groupby(by_tile).cumprod().groupby(by_tile).shift(1, fill_value=1.0)
    outside = (1.0 - df["cover"]).groupby(by_tile).cumprod().groupby(by_tile).shift(1, fill_value=1.0)
    rank = df.groupby("t").cumcount()
    return df[((missing > 1.0 - TARGET_CLEAR) | (outside > 1.0 - FULL)) & (rank < most)].assign(rank=rank)


def _chosen(sensor: SensorCandidates, pool: _Pool, pairs: pd.DataFrame, reference_day: np.ndarray,
            window_days: int) -> pd.DataFrame:
    """The rows of ``pairs`` that ``sensor`` uses, with ``rank``."""
    if pairs.empty:
        return pairs.assign(rank=pd.Series(dtype=np.int64))
    c = pairs["c"].to_numpy()
    pairs = pairs.assign(clear=pairs["cover"] * (1 - pairs["cloud"] / 100), day=pool.day[c], cid=c,
                         scene=pool.cloud[c])
    if sensor.order == "reference":
        ranked = pairs.sort_values(["t", "clear", "cloud", "scene", "cid"], ascending=[True, False, True, True, True],
                                   kind="stable")
        reference = ranked.groupby("t").head(1)
        ref_day = pd.Series(reference["day"].to_numpy(), index=reference["t"].to_numpy())
        near = (pairs["day"] - pairs["t"].map(ref_day)).abs() <= window_days
        is_ref = pd.Series(False, index=pairs.index)
        is_ref[reference.index] = True
        pool_rows = pairs[(near & (pairs["clear"] >= MIN_ITEM_CLEAR)) | is_ref]
        return _greedy(pool_rows.assign(negcover=-pool_rows["cover"]), ["cloud", "negcover", "scene", "cid"], MOST,
                       first=is_ref[pool_rows.index])
    if sensor.order == "cover":  # every item that covers the tile, the largest share first
        ranked = pairs.assign(negcover=-pairs["cover"]).sort_values(["t", "negcover", "cid"], kind="stable")
        return ranked.assign(clear=ranked["cover"], rank=ranked.groupby("t").cumcount())
    ref = reference_day[pairs["t"].to_numpy()]
    pairs = pairs[(ref >= 0) & (pairs["clear"].to_numpy() >= MIN_ITEM_CLEAR)].copy()
    ref = reference_day[pairs["t"].to_numpy()]
    if sensor.order == "nearest":
        pairs["delta"] = np.abs(pairs["day"].to_numpy() - ref)
        pairs = pairs[pairs["delta"] <= window_days]
        return _greedy(pairs, ["delta", "cloud", "scene", "cid"], MOST)
    days, which = np.unique(ref, return_inverse=True)  # a few reference days for many pairs
    ref_yday = np.array([dt.date.fromordinal(int(d)).timetuple().tm_yday for d in days], dtype=np.int64)[which]
    gap = np.abs(pool.yday[pairs["c"].to_numpy()] - ref_yday)
    pairs["season"] = np.minimum(gap, 365 - gap)  # days apart in the year, whatever the years
    pairs = pairs[pairs["season"] <= window_days]
    return _greedy(pairs, ["season", "cloud", "scene", "cid"], MOST)


def _covered(chosen: pd.DataFrame, pool: _Pool, boxes: np.ndarray, n: int, tile_area: float) -> np.ndarray:
    """Share of each tile inside the union of its chosen footprints (exact where no one item covers it)."""
    share = np.zeros(n)
    if chosen.empty:
        return share
    best = chosen.groupby("t")["cover"].max()
    share[best.index.to_numpy()] = best.to_numpy()
    partial = chosen[chosen["t"].map(best) < FULL]
    for t, rows in partial.groupby("t"):
        tile = int(cast(np.int64, t))  # a tile's index: the stubs type group keys as any scalar
        parts = shapely.intersection(boxes[tile], pool.footprints[rows["c"].to_numpy()])
        share[tile] = min(1.0, shapely.union_all(parts).area / tile_area)
    return share


def _lists(chosen: pd.DataFrame, pool: _Pool, n: int) -> tuple[list[list[str]], list[list[str]]]:
    """Per tile, the chosen item ids and their dates in rank order (a WMS's repeated id once)."""
    items: list[list[str]] = [[] for _ in range(n)]
    dates: list[list[str]] = [[] for _ in range(n)]
    for t, c in zip(chosen["t"].to_numpy(), chosen["c"].to_numpy(), strict=True):
        cand = pool.candidates[c]
        if cand.item_id not in items[t]:
            items[t].append(cand.item_id)
        if cand.date is not None and cand.date.isoformat() not in dates[t]:
            dates[t].append(cand.date.isoformat())
    return items, dates


def _expected_clear(chosen: pd.DataFrame, n: int) -> np.ndarray:
    clear = np.zeros(n)
    if not chosen.empty:
        missing = (1.0 - chosen["clear"]).groupby(chosen["t"]).prod()
        clear[missing.index.to_numpy()] = 1.0 - missing.to_numpy()
    return clear


def _reason(sensor: str, has_any: bool, chosen_any: bool, cover: float, clear: float, window_days: int) -> str | None:
    name = SENSOR_NAMES[sensor]
    if not has_any:
        return "outside VHR coverage" if sensor == "vhr" else f"no {name} scene"
    if not chosen_any:
        if sensor == "labels":
            return "no labels"
        return f"no {name} scene within ±{window_days} days of the Sentinel-2 reference"
    if cover < FULL:
        return f"{name} covers part of the tile"
    if clear < MIN_CLEAR:
        return f"{name} too cloudy"
    return None


def _plan_chunk(grid: TileGrid, cols: np.ndarray, rows: np.ndarray, sensors: dict[str, SensorCandidates],
                pools: dict[str, _Pool], window_days: int,
                measured: Mapping[tuple[str, str], float]) -> tuple[pd.DataFrame, int]:
    n = len(cols)
    boxes = grid.tile_boxes(cols, rows)
    tile_area = grid.footprint**2
    tile_ids = [str(TileId(int(c), int(r))) for c, r in zip(cols, rows, strict=True)]
    frame: dict[str, object] = {"tile": tile_ids, "col": cols, "row": rows}
    reference_day = np.full(n, -1, dtype=np.int64)
    reasons: list[str | None] = [None] * n
    coverable = np.ones(n, dtype=bool)
    for key, sensor in sensors.items():
        pool = pools[key]
        if sensor.whole_service is not None:  # a WMS without a graph: everywhere, measured at fetch
            frame[f"{key}_items"] = [[sensor.whole_service] for _ in range(n)]
            frame[f"{key}_dates"] = [[] for _ in range(n)]
            frame[f"{key}_clear"] = np.full(n, np.nan)
            frame[f"{key}_cover"] = np.full(n, np.nan)
            continue
        pairs = pool.pairs(boxes, tile_area)
        pairs["cloud"] = _measured_cloud(pairs, pool, tile_ids, measured)
        chosen = _chosen(sensor, pool, pairs, reference_day, window_days)
        if sensor.order == "reference" and not chosen.empty:
            first = chosen[chosen["rank"] == 0]
            reference_day[first["t"].to_numpy()] = first["day"].to_numpy()
        items, dates = _lists(chosen, pool, n)
        cover = _covered(chosen, pool, boxes, n, tile_area)
        clear = _expected_clear(chosen, n)
        if sensor.order == "cover":
            clear = cover
        frame.update({f"{key}_items": items, f"{key}_dates": dates, f"{key}_clear": clear, f"{key}_cover": cover})
        has_any = np.zeros(n, dtype=bool)
        has_any[pairs["t"].to_numpy()] = True
        coverable &= shapely.covers(pool.union, boxes) if pool.union is not None else False
        for t in range(n):
            if reasons[t] is None:
                reasons[t] = _reason(key, bool(has_any[t]), bool(items[t]), float(cover[t]), float(clear[t]),
                                     window_days)
    frame["reference_date"] = [dt.date.fromordinal(int(d)).isoformat() if d >= 0 else None for d in reference_day]
    frame["reason"] = reasons
    frame["triplet"] = np.array([r is None for r in reasons])
    return pd.DataFrame(frame), int(coverable.sum())


def plan_tiles(region: Region, grid: TileGrid, tiles: list[TileId], sensors: dict[str, SensorCandidates],
               window_days: int, measured: Mapping[tuple[str, str], float] | None = None,
               duplicates: dict[str, list[Candidate]] | None = None) -> RegionPlan:
    """The plan of every tile of ``tiles`` (see the module docstring); ``measured`` gives the cloud
    (percent) measured over a tile from an item's mask, by (item id, tile id)."""
    if "s2" in sensors and sensors["s2"].order != "reference":
        raise ValueError("Sentinel-2 is the reference sensor")
    ordered = dict(sorted(sensors.items(), key=lambda kv: list(SENSOR_NAMES).index(kv[0])))
    pools = {key: _Pool.of(s.candidates) for key, s in ordered.items()}
    cols = np.array([t.col for t in tiles], dtype=np.int64)
    rows = np.array([t.row for t in tiles], dtype=np.int64)
    parts, coverable = [], 0
    for start in range(0, len(tiles), CHUNK):
        part, count = _plan_chunk(grid, cols[start:start + CHUNK], rows[start:start + CHUNK], ordered, pools,
                                  window_days, measured or {})
        parts.append(part)
        coverable += count
    frame = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=list(TILE_COLUMNS))
    return RegionPlan(region, grid, window_days, ordered, frame, coverable, duplicates or {})
