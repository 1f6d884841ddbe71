"""The three loaders that ``bench/loader.py`` compares, each over the same tiles, batch size and
DataLoader settings (forkserver workers, persistent, prefetch 2, as the trainer's):

- ``ours``: ``TileDataset`` on the store with the trainer's ``ResumableSampler`` and ``collate_tiles``;
- ``ours-zarr``, ``ours-tensorstore``: the same, each tile read by zarr-python (``TileStore.read_tile``,
  the loader before issue 18) or by TensorStore's zarr3 driver (shard indexes cached, no recheck)
  instead of ``msc_france.store.tile_reader``;
- ``torchgeo``: one ``RasterDataset`` subclass per sensor over the COGs of the download (found from the
  items of its local STAC catalog), intersected (``s2 & l8 & vhr``: torchgeo resamples every sensor to
  the first one's resolution, 10 m), ``GridGeoSampler`` chips of one tile (480 m, stride 480 m) and
  torchgeo's ``stack_samples``; its samples stay DN as float32 (no normalisation: that favours it);
- ``webdataset``: tar shards of the same tiles (one ``.npy`` of DN per sensor), written once by
  :func:`write_shards`, read by ``webdataset.WebDataset`` with ``.decode()``, ``.batched`` in the workers.

Ours and WebDataset hand over DN as stored; :class:`ToModelInput` normalises both the trainer's way
(``NormaliseOnDevice``), so both end in the same tensors.

Nothing here runs on import: ``make bench`` runs every ``bench/*.py``, this one does nothing.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
from torch.utils.data import DataLoader

from msc_france.pretrain.dataset import TileDataset, collate_tiles
from msc_france.pretrain.sampler import ResumableSampler
from msc_france.store import TileStore, open_store

KINDS = ("ours", "ours-zarr", "ours-tensorstore", "torchgeo", "webdataset")
SHARDS = 8  # at least as many as workers: WebDataset gives each worker whole shards


class ZarrReader:
    """Tiles read by zarr-python, one ``TileStore.read_tile`` each."""

    def __init__(self, store: TileStore) -> None:
        self.store = store

    def read(self, group: str, col: int, row: int, name: str = "data", out: np.ndarray | None = None) -> np.ndarray:
        return _into(self.store.read_tile(group, col, row, name), out)


def _into(tile: np.ndarray, out: np.ndarray | None) -> np.ndarray:
    """``tile``, copied into ``out`` when given (the batch slot ``TileDataset`` passes)."""
    if out is None:
        return tile
    np.copyto(out, tile)
    return out


class TensorStoreReader(ZarrReader):
    """Tiles read by TensorStore (zarr3 driver, a 16 MB cache pool for the shard indexes, no recheck)."""

    def __init__(self, store: TileStore) -> None:
        import tensorstore as ts

        super().__init__(store)
        self.ts, self.context, self.arrays = ts, ts.Context({"cache_pool": {"total_bytes_limit": 16 << 20}}), {}

    def read(self, group: str, col: int, row: int, name: str = "data", out: np.ndarray | None = None) -> np.ndarray:
        if (group, name) not in self.arrays:
            spec = {"driver": "zarr3", "kvstore": {"driver": "file", "path": f"{self.store.url}/{group}/{name}"},
                    "recheck_cached_data": False, "recheck_cached_metadata": False}
            self.arrays[group, name] = self.ts.open(spec, read=True, context=self.context).result()
        px = self.store.tile_px(group)
        window = self.arrays[group, name][..., row * px:(row + 1) * px, col * px:(col + 1) * px]
        return _into(window.read().result(), out)


class ZarrTiles(TileDataset):
    """TileDataset with another tile reader (``reader_class``): zarr-python's."""

    reader_class: type[ZarrReader] = ZarrReader

    def reader(self) -> Any:  # noqa: ANN401 - a reader with TileReader's read() and store
        if self._reader is None:
            self._reader = self.reader_class(open_store(self.store, self.storage_options))  # type: ignore[assignment]
        return self._reader


class TensorStoreTiles(ZarrTiles):
    """TileDataset with TensorStore's tile reader."""

    reader_class = TensorStoreReader


DATASETS: dict[str, type[TileDataset]] = {"ours": TileDataset, "ours-zarr": ZarrTiles,
                                          "ours-tensorstore": TensorStoreTiles}


def train_dataset(store: str, kind: str = "ours") -> TileDataset:
    """The trainer's dataset: the train split, every sensor of the store with all its bands, DN as stored."""
    sensors = [g for g in open_store(store).groups if g != "labels"]
    return DATASETS[kind](store, dict.fromkeys(sensors), "train", as_stored=True)


def sample_order(dataset: TileDataset, batch: int, seed: int = 0) -> list[int]:
    """The indices the trainer's sampler gives for one epoch: whole batches of a seeded permutation."""
    return list(ResumableSampler(len(dataset), batch, seed))


def _loader_options(workers: int) -> dict[str, Any]:
    return {"num_workers": workers, "multiprocessing_context": "forkserver" if workers else None,
            "persistent_workers": workers > 0, "prefetch_factor": 2 if workers else None}


def ours(store: str, batch: int, workers: int, kind: str = "ours", seed: int = 0) -> DataLoader:
    """TileDataset as ``msc-france pretrain`` loads it (its sampler, ``collate_tiles``, drop_last)."""
    dataset = train_dataset(store, kind)
    return DataLoader(dataset, batch_size=batch, sampler=ResumableSampler(len(dataset), batch, seed), drop_last=True,
                      collate_fn=collate_tiles, **_loader_options(workers))


def torchgeo(store: str, catalog: Path, tiles: list[str], batch: int, workers: int) -> DataLoader:
    """torchgeo's loader of the same tiles (``bench/loader_torchgeo.py``; torchgeo is imported only here)."""
    from bench.loader_torchgeo import torchgeo_loader

    return torchgeo_loader(store, catalog, tiles, batch, _loader_options(workers))


def write_shards(dataset: TileDataset, order: list[int], folder: Path) -> list[str]:
    """The tiles of ``order`` as WebDataset tar shards (DN, one ``SENSOR.npy`` each); the shard paths."""
    import webdataset as wds

    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("train-*.tar"):
        old.unlink()
    reader = dataset.reader()
    with wds.ShardWriter(str(folder / "train-%04d.tar"), maxcount=math.ceil(len(order) / SHARDS), verbose=0) as sink:
        for index in order:
            col, row = dataset.cells[index]
            sink.write({"__key__": dataset.tiles[index],
                        **{f"{s}.npy": reader.read(s, col, row) for s in dataset.sensors}})
    return sorted(str(p) for p in folder.glob("train-*.tar"))


def webdataset(store: str, shards: list[str], batch: int, workers: int) -> DataLoader:
    """WebDataset over the shards, batched in the workers (``batch_size=None`` in the DataLoader): tuples of
    one DN tensor per sensor, in the store's sensor order."""
    import webdataset as wds

    dataset = train_dataset(store)
    pipeline = (wds.WebDataset(shards, shardshuffle=False, empty_check=False).decode()
                .to_tuple(*(f"{s}.npy" for s in dataset.sensors)).batched(batch))
    return DataLoader(pipeline, batch_size=None, **_loader_options(workers))


class ToModelInput:
    """What the trainer does to a batch once it has it: a loader's DN batch (a dict, or a tuple in the
    store's sensor order) normalised by ``NormaliseOnDevice`` on this process's device (the CPU here: on a
    GPU that work leaves the CPU); torchgeo's float32 DN batches pass as they are."""

    def __init__(self, store: str, kind: str) -> None:
        dataset = train_dataset(store)
        self.sensors, self.normalise = dataset.sensors, None if kind == "torchgeo" else dataset.normaliser()

    def __call__(self, batch: Any) -> Any:  # noqa: ANN401 - each loader's own batch type
        if self.normalise is None:
            return batch
        return self.normalise(batch if isinstance(batch, dict) else dict(zip(self.sensors, batch, strict=True)))


def batch_size_of(batch: Any) -> int:  # noqa: ANN401 - a dict or a tuple of tensors
    """Samples in one batch of any of the three loaders."""
    first = batch["image"] if isinstance(batch, dict) and "image" in batch else (
        next(iter(batch.values())) if isinstance(batch, dict) else batch[0])
    return int(first.shape[0])
