"""A map-style dataset over the tile index: one sample is one tile, one chunk read per sensor, as
reflectance normalised with the per-band statistics stored in the store."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import zarr
from torch.utils.data import Dataset

from msc_france.errors import UserError
from msc_france.tiles.index import index_path, read_index
from msc_france.tiles.store import open_store


class EmptySplit(UserError):
    """No tile of the split passes the quality and validity filters."""


@dataclass(frozen=True)
class BandStats:
    """What turns a sensor's stored DN into normalised reflectance: (DN * scale + offset - mean) / std."""

    bands: tuple[str, ...]
    scale: float
    offset: float
    nodata: int
    mean: tuple[float, ...]
    std: tuple[float, ...]

    def normalise(self, dn: np.ndarray) -> np.ndarray:
        """(band, y, x) DN to float32 normalised reflectance; nodata becomes 0 (the mean)."""
        mean = np.asarray(self.mean, dtype=np.float32)[:, None, None]
        std = np.asarray(self.std, dtype=np.float32)[:, None, None]
        out = (dn.astype(np.float32) * np.float32(self.scale) + np.float32(self.offset) - mean) / std
        out[dn == self.nodata] = 0.0
        return out


def band_stats(root: zarr.Group, store: str, sensor: str, bands: list[str] | None = None) -> BandStats:
    """The encoding and statistics of ``bands`` (default: all) of one sensor group of the opened ``store``."""
    group = root[sensor]
    data = group["data"]
    stored = list(data.attrs["bands"])
    bands = bands or stored
    missing = [b for b in bands if b not in stored]
    if missing:
        raise UserError(f"store {store} has no band {missing[0]!r} in {sensor} (it has {', '.join(stored)})")
    stats = group.attrs.get("statistics") or {}
    if any(b not in stats for b in bands):
        raise UserError(f"store {store} has no statistics for {sensor}; re-run `make tiles` to compute them")
    return BandStats(tuple(bands), float(data.attrs["scale_factor_dn"]), float(data.attrs["add_offset_dn"]),
                     int(data.attrs["nodata"]), tuple(float(stats[b]["mean"]) for b in bands),
                     tuple(max(float(stats[b]["std"]), 1e-6) for b in bands))


class TileDataset(Dataset):
    """Tiles of one split (``all``: every split) whose every sensor passed the quality checks and is valid at least ``min_valid``.

    ``dataset[i]`` is ``{sensor: float32 tensor (band, px, px)}``, each from one Zarr chunk. The store is
    opened lazily in each DataLoader worker (the object pickles as paths and numbers only).
    """

    def __init__(self, store: str, bands: dict[str, list[str] | None], split: str = "train",
                 min_valid: float = 0.95, storage_options: dict[str, Any] | None = None) -> None:
        self.store = store
        self.storage_options = storage_options
        self.sensors = list(bands)
        root = open_store(store, storage_options)
        missing = [s for s in self.sensors if s not in root]
        if missing:
            raise UserError(f"store {store} has no {missing[0]} group (it has {', '.join(sorted(root.group_keys()))})")
        self.stats = {s: band_stats(root, store, s, bands[s]) for s in self.sensors}
        self.tile_px = {s: int(root[s].attrs["tile_px"]) for s in self.sensors}
        self._band_index = {s: [list(root[s]["data"].attrs["bands"]).index(b) for b in self.stats[s].bands]
                            for s in self.sensors}
        table = read_index(index_path(store), storage_options=storage_options or None)
        keep = table["quality_ok"].astype(bool) & ((table["split"] == split) if split != "all" else True)
        for sensor in self.sensors:
            keep &= table[f"{sensor}_valid"].fillna(0.0) >= min_valid
        chosen = table[keep].sort_values(["row", "col"])
        if chosen.empty:
            raise EmptySplit(f"no {split} tile of {store} is valid in {', '.join(self.sensors)} "
                            f"(min_valid {min_valid}); build more tiles or lower data.min_valid")
        self.tiles: list[str] = list(chosen["tile"])
        self.cells = [(int(c), int(r)) for c, r in zip(chosen["col"], chosen["row"])]
        self._arrays: dict[str, zarr.Array] | None = None

    def __len__(self) -> int:
        return len(self.cells)

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_arrays": None}

    def _data(self) -> dict[str, zarr.Array]:
        if self._arrays is None:
            root = open_store(self.store, self.storage_options)
            self._arrays = {s: root[s]["data"] for s in self.sensors}
        return self._arrays

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        col, row = self.cells[index]
        out = {}
        for sensor, array in self._data().items():
            px = self.tile_px[sensor]
            dn = array[:, row * px:(row + 1) * px, col * px:(col + 1) * px]
            out[sensor] = torch.from_numpy(self.stats[sensor].normalise(dn[self._band_index[sensor]]))
        return out
