"""Labelled downstream datasets the user already has on disk, scored with the same frozen-feature
probes (kNN and linear). Nothing is downloaded.

- ``eurosat``: EuroSAT (multispectral) as torchgeo lays it out: ``ROOT/ds/images/remote_sensing/
  otherDatasets/sentinel_2/tif/<Class>/<Class>_<n>.tif`` (13 bands, DN = reflectance x 10000) and,
  when present, torchgeo's split files ``ROOT/eurosat-{train,val,test}.txt``.
- ``from_samples``: any map-style dataset of ``{"image": (C, H, W), "label": int}`` samples (the
  torchgeo convention), e.g. ``torchgeo.datasets.EuroSAT(root, split="test")`` built in a notebook.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import rasterio
import torch

from msc_france.errors import UserError
from msc_france.eval.embeddings import tile_features
from msc_france.eval.encoders import Encoder
from msc_france.eval.probes import accuracy, balanced_accuracy, fit_linear, knn_predict

EUROSAT_BANDS = ("B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B09", "B10", "B11", "B12", "B8A")
EUROSAT_TIF = Path("ds/images/remote_sensing/otherDatasets/sentinel_2/tif")
EUROSAT_SCALE = 1e-4  # DN to reflectance


class SampleDataset(Protocol):
    """A map-style dataset of ``{"image": (C, H, W), "label": int}`` samples (torchgeo's convention)."""

    def __len__(self) -> int: ...

    def __getitem__(self, index: int, /) -> Mapping[str, Any]: ...


@dataclass
class LabelledImages:
    """Reflectance images (N, C, H, W) of ``bands``, integer labels, class names."""

    images: torch.Tensor
    labels: torch.Tensor
    classes: list[str]
    bands: list[str]


def _split_of(name: str, seed: int = 0) -> str:
    """80 / 20 train / test from a hash of the file name, when the dataset has no split files."""
    digest = hashlib.blake2b(f"{seed}:{name}".encode(), digest_size=8).digest()
    return "train" if int.from_bytes(digest, "big") / 2**64 < 0.8 else "test"


def eurosat(root: str | Path, split: str, bands: Sequence[str]) -> LabelledImages:
    """One split of EuroSAT MS from ``root`` (the folder torchgeo's ``EuroSAT(root)`` uses)."""
    root = Path(root)
    folder = root / EUROSAT_TIF if (root / EUROSAT_TIF).is_dir() else root
    classes = sorted(p.name for p in folder.iterdir() if p.is_dir()) if folder.is_dir() else []
    if not classes:
        raise UserError(f"no EuroSAT class folders under {folder}; point eurosat= at the folder torchgeo uses")
    missing = [b for b in bands if b not in EUROSAT_BANDS]
    if missing:
        raise UserError(f"EuroSAT has no band {missing[0]} (it has {', '.join(EUROSAT_BANDS)})")
    split_file = root / f"eurosat-{split}.txt"
    wanted = ({line.strip().replace(".jpg", ".tif") for line in split_file.read_text().splitlines() if line.strip()}
              if split_file.exists() else None)
    index = [EUROSAT_BANDS.index(b) + 1 for b in bands]
    images, labels = [], []
    for label, name in enumerate(classes):
        for path in sorted((folder / name).glob("*.tif")):
            if (wanted is not None and path.name not in wanted) or (wanted is None and _split_of(path.name) != split):
                continue
            with rasterio.open(path) as src:
                images.append(src.read(index).astype(np.float32) * EUROSAT_SCALE)
            labels.append(label)
    if not images:
        raise UserError(f"EuroSAT in {root} has no {split} image")
    return LabelledImages(torch.from_numpy(np.stack(images)), torch.tensor(labels), classes, list(bands))


def from_samples(dataset: SampleDataset, classes: Sequence[str], band_names: Sequence[str], bands: Sequence[str],
                 scale: float = 1.0) -> LabelledImages:
    """A dataset of ``{"image", "label"}`` samples with ``band_names`` channels (values x ``scale`` =
    reflectance), keeping ``bands`` in that order."""
    index = [list(band_names).index(b) for b in bands]
    samples = [dataset[i] for i in range(len(dataset))]
    images = torch.stack([torch.as_tensor(s["image"], dtype=torch.float32)[index] * scale for s in samples])
    return LabelledImages(images, torch.tensor([int(s["label"]) for s in samples]), list(classes), list(bands))


def _features(encoder: Encoder, sensor: str, data: LabelledImages, batch_size: int = 64) -> torch.Tensor:
    mean, std = encoder.normalisation[sensor]
    parts = []
    for images in torch.split(data.images, batch_size):
        cls, patches = encoder.tokens((images - mean[:, None, None]) / std[:, None, None], sensor)
        parts.append(tile_features(cls, patches))
    return torch.cat(parts)


def score_downstream(encoder: Encoder, sensor: str, train: LabelledImages, test: LabelledImages) -> dict[str, Any]:
    """kNN and linear-probe accuracy of ``encoder``'s ``sensor`` backbone on a labelled dataset."""
    x_train, x_test = _features(encoder, sensor, train), _features(encoder, sensor, test)
    classes = len(train.classes)
    scores = {}
    for method, predicted in (("knn", knn_predict(x_train, train.labels, x_test, classes)),
                              ("linear", fit_linear(x_train, train.labels, classes).predict(x_test))):
        scores[method] = {"accuracy": accuracy(predicted, test.labels),
                          "balanced_accuracy": balanced_accuracy(predicted, test.labels)}
    return {"sensor": sensor, "train": len(train.labels), "test": len(test.labels), **scores}
