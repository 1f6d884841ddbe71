"""What the tiles stage records as it writes: per (tile, sensor) a :class:`TileRecord`, per shard a
:class:`ShardRecord` (its tiles and the sums of its valid pixels), kept as JSON beside the store
(``STORE.tiles.done``) and turned into the tile index and the band statistics when a run finishes."""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from functools import cached_property
from typing import Any, SupportsFloat

import numpy as np

from msc_france.grid import TileId


@dataclass(frozen=True)
class TileRecord:
    """One sensor over one tile: the items mosaicked on it (best first), their dates, and its shares
    of valid, cloudy and otherwise invalid pixels."""

    col: int
    row: int
    sensor: str
    items: tuple[str, ...] = ()
    dates: tuple[str | None, ...] | None = ()  # None in records written before dates were kept
    region: str | None = None
    datetime: str | None = None  # the first item's
    valid_fraction: float = math.nan
    cloud_fraction: float = math.nan
    invalid_fractions: dict[str, float] = field(default_factory=dict)  # cause -> share of the tile

    @property
    def tile(self) -> TileId:
        return TileId(self.col, self.row)

    def to_json(self) -> dict[str, Any]:
        return {"tile": str(self.tile), **asdict(self), "items": list(self.items),
                "dates": None if self.dates is None else list(self.dates)}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> TileRecord:
        """A record as :meth:`to_json` writes it; a ``tile`` that disagrees with col/row is an error."""
        tile = TileId(int(data["col"]), int(data["row"]))
        if data.get("tile") is not None and str(data["tile"]) != str(tile):
            raise ValueError(f"tile record says tile {data['tile']!r} but col/row {tile.col}/{tile.row} ({tile})")
        return cls(tile.col, tile.row, str(data["sensor"]), tuple(str(i) for i in data.get("items") or ()),
                   None if data.get("dates") is None else tuple(None if d is None else str(d) for d in data["dates"]),
                   data.get("region"), None if data.get("datetime") is None else str(data["datetime"]),
                   _fraction(data.get("valid_fraction")), _fraction(data.get("cloud_fraction")),
                   {str(k): float(v) for k, v in (data.get("invalid_fractions") or {}).items()})


def _fraction(value: object) -> float:
    """A record's fraction as a float; missing or unreadable values are NaN."""
    if not isinstance(value, str | SupportsFloat):  # None, or a JSON list or object
        return math.nan
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


@dataclass(frozen=True)
class BandSums:
    """Per band: the count, sum and sum of squares of valid pixels in physical units; they add up
    across shards into :class:`BandStatistics`."""

    count: tuple[float, ...]
    sum: tuple[float, ...]
    sumsq: tuple[float, ...]

    def __add__(self, other: BandSums) -> BandSums:
        return BandSums(*(tuple(a + b for a, b in zip(mine, theirs, strict=True))
                          for mine, theirs in ((self.count, other.count), (self.sum, other.sum),
                                               (self.sumsq, other.sumsq))))

    def to_json(self) -> dict[str, list[float]]:
        return {"count": list(self.count), "sum": list(self.sum), "sumsq": list(self.sumsq)}

    @classmethod
    def from_json(cls, data: dict[str, list[float]]) -> BandSums:
        return cls(tuple(map(float, data["count"])), tuple(map(float, data["sum"])), tuple(map(float, data["sumsq"])))


@dataclass(frozen=True)
class BandStatistic:
    """One band's mean and standard deviation over the store's valid pixels (physical units)."""

    mean: float
    std: float
    count: float


@dataclass(frozen=True)
class BandStatistics:
    """Per band of a group, as kept in the group's ``statistics`` attribute."""

    bands: dict[str, BandStatistic]

    @classmethod
    def of(cls, bands: tuple[str, ...] | list[str], sums: BandSums) -> BandStatistics:
        """From the sums of every shard of a group; bands with no valid pixel are left out."""
        out = {}
        for b, name in enumerate(bands):
            if sums.count[b]:
                mean = sums.sum[b] / sums.count[b]
                out[name] = BandStatistic(mean, math.sqrt(max(sums.sumsq[b] / sums.count[b] - mean**2, 0.0)),
                                          sums.count[b])
        return cls(out)

    def to_json(self) -> dict[str, dict[str, float]]:
        return {name: asdict(stat) for name, stat in self.bands.items()}

    @classmethod
    def from_json(cls, data: dict[str, dict[str, float]]) -> BandStatistics:
        return cls({name: BandStatistic(float(s["mean"]), float(s["std"]), float(s.get("count", math.nan)))
                    for name, s in data.items()})


@dataclass(frozen=True)
class StoredObject:
    """One object of a shard as written (``key`` in the store, e.g. ``s2/data/c/0/1/2``): its size and
    SHA-256, what a rerun checks before it trusts the shard's completion record."""

    key: str
    size: int
    sha256: str


@dataclass(frozen=True)
class ShardRecord:
    """A shard of one group written whole: every tile it holds, the sums of its valid pixels and the
    objects it was written to (none in records of earlier versions: those are trusted as they are)."""

    group: str
    shard: tuple[int, int]
    tiles: dict[str, TileRecord]
    sums: BandSums
    objects: tuple[StoredObject, ...] = ()

    def to_json(self) -> str:
        return json.dumps({"group": self.group, "shard": list(self.shard),
                           "tiles": {name: r.to_json() for name, r in self.tiles.items()},
                           "statistics": self.sums.to_json(), "objects": [asdict(o) for o in self.objects]},
                          sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> ShardRecord:
        """Raises ValueError (with KeyError, TypeError) on a record of another shape."""
        data = json.loads(text)
        try:
            return cls(str(data["group"]), (int(data["shard"][0]), int(data["shard"][1])),
                       {str(k): TileRecord.from_json(v) for k, v in data["tiles"].items()},
                       BandSums.from_json(data["statistics"]),
                       tuple(StoredObject(str(o["key"]), int(o["size"]), str(o["sha256"]))
                             for o in data.get("objects") or ()))
        except (KeyError, TypeError, IndexError) as exc:
            raise ValueError(f"not a shard record ({type(exc).__name__}: {exc})") from None


@dataclass(frozen=True)
class Normalisation:
    """What turns a group's stored DN into normalised reflectance: (DN * scale + offset - mean) / std."""

    bands: tuple[str, ...]
    scale: float
    offset: float
    nodata: int
    mean: tuple[float, ...]
    std: tuple[float, ...]

    @cached_property
    def _mean_std(self) -> tuple[np.ndarray, np.ndarray]:
        return (np.asarray(self.mean, dtype=np.float32)[:, None, None],
                np.asarray(self.std, dtype=np.float32)[:, None, None])

    def normalise(self, dn: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """(band, y, x) DN to float32 normalised reflectance; nodata becomes 0 (the mean). Written into
        ``out`` (float32, the shape of ``dn``) when given, e.g. a sample's place in a batch.

        ``(DN * scale + offset - mean) / std`` in float32, computed in place in one output array (the
        same operations in the same order as the expression, so the same values, 30 % less time)."""
        mean, std = self._mean_std
        if out is None:
            out = dn.astype(np.float32)
        else:
            np.copyto(out, dn, casting="unsafe")  # the conversion astype makes
        out *= np.float32(self.scale)
        out += np.float32(self.offset)
        out -= mean
        out /= std
        np.copyto(out, np.float32(0.0), where=dn == self.nodata)
        return out
