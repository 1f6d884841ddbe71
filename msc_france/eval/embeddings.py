"""Embeddings of one split of the tile store: the class token and the patch tokens of every tile for
every sensor and every encoder, computed in one pass over the data, with the tiles' label maps."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field

import numpy as np
import torch
from torch.utils.data import DataLoader
from tqdm import tqdm

from msc_france.errors import UserError
from msc_france.eval.encoders import Encoder
from msc_france.pretrain.dataset import EmptySplitError, TileDataset, collate_tiles
from msc_france.store import LABELS

EMBEDDINGS = ("both", "cls", "mean")  # the tile embedding (first), then each of its halves alone


def tile_features(cls: torch.Tensor, patches: torch.Tensor, kind: str = "both") -> torch.Tensor:
    """The tile embedding: class token and mean patch token side by side (DINOv2's linear eval), or
    ``kind`` ``cls`` or ``mean`` alone."""
    if kind == "cls":
        return cls
    if kind == "mean":
        return patches.mean(dim=(1, 2))
    return torch.cat([cls, patches.mean(dim=(1, 2))], dim=1)


@dataclass
class SplitEmbeddings:
    """One encoder's tokens over one split: ``cls[sensor]`` (N, D), ``patches[sensor]`` (N, h, w, D)."""

    tiles: list[str]
    cls: dict[str, torch.Tensor] = field(default_factory=dict)
    patches: dict[str, torch.Tensor] = field(default_factory=dict)

    def features(self, sensor: str, kind: str = "both") -> torch.Tensor:
        return tile_features(self.cls[sensor], self.patches[sensor], kind)


@dataclass
class Split:
    """Embeddings per encoder name, and the label map (N, H, W) of WorldCover codes when the store has one."""

    name: str
    tiles: list[str]
    embeddings: dict[str, SplitEmbeddings]
    labels: torch.Tensor | None


def read_labels(dataset: TileDataset) -> torch.Tensor | None:
    """The label chunk of each tile of ``dataset`` (None when the store has no label group)."""
    store = dataset.opened()
    if LABELS not in store.groups:
        return None
    maps = [store.read_tile(LABELS, col, row)[0] for col, row in dataset.cells]
    return torch.from_numpy(np.stack(maps).astype(np.int64))


def embed_split(encoders: list[Encoder], store: str, split: str, min_valid: float = 0.95, batch_size: int = 32,
                workers: int = 0, quiet: bool = False, required: bool = True,
                tiles: Collection[str] | None = None) -> Split:
    """Embed every tile of ``split`` valid in every sensor with every encoder (they share their bands); only
    those of ``tiles`` when given. A split with no tile is an error when ``required``, else an empty Split."""
    bands = encoders[0].bands
    if any(e.bands != bands for e in encoders[1:]):
        raise UserError("the evaluated backbones were trained on different bands; evaluate them separately")
    try:
        dataset = TileDataset(store, {s: list(b) for s, b in bands.items()}, split, min_valid, tiles=tiles,
                              as_stored=True)
    except EmptySplitError:
        if required:
            raise
        return Split(split, [], {e.name: SplitEmbeddings([]) for e in encoders}, None)
    loader = DataLoader(dataset, batch_size=batch_size, num_workers=workers, shuffle=False, collate_fn=collate_tiles)
    to_reflectance = dataset.normaliser()
    chunks: dict[str, dict[str, list[tuple[torch.Tensor, torch.Tensor]]]] = {
        e.name: {s: [] for s in bands} for e in encoders}
    for stored in tqdm(loader, desc=f"embed {split}", unit="batch", disable=quiet, leave=False):
        batch = to_reflectance(stored)
        for encoder in encoders:
            for sensor, images in batch.items():
                chunks[encoder.name][sensor].append(encoder.tokens(images, sensor))
    embeddings = {}
    for encoder in encoders:
        out = SplitEmbeddings(list(dataset.tiles))
        for sensor, parts in chunks[encoder.name].items():
            out.cls[sensor] = torch.cat([c for c, _ in parts])
            out.patches[sensor] = torch.cat([p for _, p in parts])
        embeddings[encoder.name] = out
    return Split(split, list(dataset.tiles), embeddings, read_labels(dataset))
