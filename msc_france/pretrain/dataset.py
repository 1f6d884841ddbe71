"""A map-style dataset over the tile index: one sample is one tile, one chunk read per sensor (by the
store's :class:`TileReader`: straight from its shard on a local store), as reflectance normalised with
the per-band statistics stored in the store, or as stored (``as_stored``: DN, normalised later on the
device by :class:`~msc_france.pretrain.normalise.NormaliseOnDevice`); a batch read at once into one
tensor per sensor."""

from __future__ import annotations

import math
from collections.abc import Collection
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset, default_collate, get_worker_info

from msc_france.errors import UserError
from msc_france.pretrain.normalise import NormaliseOnDevice
from msc_france.store import Normalisation, TileStore, open_store
from msc_france.store.tile_reader import TileReader


class EmptySplitError(UserError):
    """No tile of the split passes the quality and validity filters."""


class TileDataset(Dataset[dict[str, torch.Tensor]]):
    """Tiles of one split (``all``: every split) whose every sensor passed the quality checks and is valid
    at least ``min_valid``; of those, only ``tiles`` when given (the tiles of another evaluation).

    ``dataset[i]`` is ``{sensor: float32 tensor (band, px, px)}``, each from one Zarr chunk; with
    ``as_stored``, the chunk's DN in the stored type (uint8 VHR is a quarter of the bytes to decode, hand
    over and pin), to be normalised where the model runs by :meth:`normaliser`. The store is
    opened lazily in each DataLoader worker (the object pickles as paths and numbers only), and read as a
    store that does not change meanwhile (:mod:`msc_france.store.tile_reader`).
    """

    def __init__(self, store: str, bands: dict[str, list[str] | None], split: str = "train",
                 min_valid: float = 0.95, storage_options: dict[str, Any] | None = None,
                 tiles: Collection[str] | None = None, as_stored: bool = False) -> None:
        self.store = store
        self.as_stored = as_stored
        self.storage_options = storage_options
        self.sensors = list(bands)
        opened = open_store(store, storage_options)
        self.stats: dict[str, Normalisation] = {s: opened.normalisation(s, bands[s]) for s in self.sensors}
        self.stored_types = {s: np.dtype(opened.layer(s).dtype) for s in self.sensors}
        self.tile_px = {s: opened.tile_px(s) for s in self.sensors}
        band_index = {s: [opened.layer(s).bands.index(b) for b in self.stats[s].bands] for s in self.sensors}
        # None where every band is read in the stored order: the chunk is used as it is, without a copy
        self._band_index = {s: None if i == list(range(len(opened.layer(s).bands))) else i
                            for s, i in band_index.items()}
        table = opened.index()
        keep = table["quality_ok"].astype(bool) & ((table["split"] == split) if split != "all" else True)
        for sensor in self.sensors:
            keep &= table[f"{sensor}_valid"].fillna(0.0) >= min_valid
        if tiles is not None:
            keep &= table["tile"].isin(list(tiles))
        chosen = table[keep].sort_values(["row", "col"])
        if chosen.empty:
            raise EmptySplitError(f"no {split} tile of {store} is valid in {', '.join(self.sensors)} "
                            f"(min_valid {min_valid}); build more tiles or lower data.min_valid")
        self.tiles: list[str] = list(chosen["tile"])
        self.cells = [(int(c), int(r)) for c, r in zip(chosen["col"], chosen["row"], strict=True)]
        self._reader: TileReader | None = None

    def __len__(self) -> int:
        return len(self.cells)

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_reader": None}

    def reader(self) -> TileReader:
        """The store's tile reader, opened once per process (DataLoader workers each open their own)."""
        if self._reader is None:
            self._reader = TileReader(open_store(self.store, self.storage_options))
        return self._reader

    def opened(self) -> TileStore:
        """The store, opened once per process."""
        return self.reader().store

    def normaliser(self) -> NormaliseOnDevice:
        """What turns this dataset's ``as_stored`` batches into the normalised ones, on their device."""
        return NormaliseOnDevice(self.stats)

    def __getitems__(self, indices: list[int]) -> TileBatch:
        """The samples of one batch, each sensor's tiles normalised (or, ``as_stored``, decoded) straight
        into one batch tensor (in shared memory in a DataLoader worker, where the batch goes to the main
        process): with :func:`collate_tiles` no sample is copied again. The same values as
        ``[self[i] for i in indices]``."""
        reader = self.reader()
        shared = get_worker_info() is not None
        batch = {}
        for sensor in self.sensors:
            bands, norm = self._band_index[sensor], self.stats[sensor]
            px = self.tile_px[sensor]
            dtype = self.stored_types[sensor] if self.as_stored else np.dtype(np.float32)
            batch[sensor] = _empty((len(indices), len(norm.bands), px, px), dtype, shared)
            out = batch[sensor].numpy()
            for slot, index in enumerate(indices):
                col, row = self.cells[index]
                if self.as_stored and bands is None:
                    reader.read(sensor, col, row, out=out[slot])  # decoded in place
                    continue
                dn = reader.read(sensor, col, row)
                dn = dn if bands is None else dn[bands]
                if self.as_stored:
                    out[slot] = dn
                else:
                    norm.normalise(dn, out=out[slot])
        return TileBatch(batch)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        col, row = self.cells[index]
        reader = self.reader()
        sample = {}
        for sensor in self.sensors:
            dn = reader.read(sensor, col, row)
            bands = self._band_index[sensor]
            dn = dn if bands is None else dn[bands]
            sample[sensor] = torch.from_numpy(dn if self.as_stored else self.stats[sensor].normalise(dn))
        return sample


class TileBatch(list[dict[str, torch.Tensor]]):
    """The samples of one batch (views of ``batch``, one tensor per sensor), as ``__getitems__`` gives
    them: ``default_collate`` stacks them as it would any samples, :func:`collate_tiles` returns ``batch``."""

    def __init__(self, batch: dict[str, torch.Tensor]) -> None:
        size = len(next(iter(batch.values())))
        super().__init__({sensor: tiles[i] for sensor, tiles in batch.items()} for i in range(size))
        self.batch = batch


def collate_tiles(samples: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """The DataLoader collate of :class:`TileDataset`: a :class:`TileBatch` as it is, else ``default_collate``."""
    if isinstance(samples, TileBatch):
        return samples.batch
    collated: dict[str, torch.Tensor] = default_collate(samples)
    return collated


def _empty(shape: tuple[int, ...], dtype: np.dtype[Any], shared: bool) -> torch.Tensor:
    """A tensor of ``dtype``, in shared memory when ``shared`` (what ``default_collate`` does in a worker, so
    that sending it to the main process copies nothing)."""
    torch_type = torch.from_numpy(np.empty(0, dtype.newbyteorder("="))).dtype
    if not shared:
        return torch.empty(shape, dtype=torch_type)
    # as torch's default_collate allocates in a worker (an untyped, private helper of torch's storages)
    storage = torch.UntypedStorage._new_shared(math.prod(shape) * dtype.itemsize)  # type: ignore[no-untyped-call]
    return torch.empty(0, dtype=torch_type).set_(storage).view(shape)
