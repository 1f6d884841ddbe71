"""Every score of one encoder from its embeddings of the train, val and test splits: cross-sensor
retrieval, kNN and linear classification of the dominant land cover, cross-sensor transfer of the
linear probe, and linear segmentation of the label map."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from statistics import fmean
from typing import Any

import numpy as np
import torch

from msc_france.eval.bootstrap import BalancedAccuracy, MeanIoU, TileMean, TileStatistic
from msc_france.eval.embeddings import EMBEDDINGS, Split
from msc_france.eval.labels import ClassSpace
from msc_france.eval.probes import accuracy, balanced_accuracy, confusion, fit_linear, knn_predict
from msc_france.eval.retrieval import match_ranks, recall_of
from msc_france.eval.segmentation import fit_segmentation, mean_iou, tile_confusions


@dataclass
class EncoderScores:
    """``scores``: JSON-ready tables; ``segmentation_maps[sensor]``: predicted class maps of the test tiles;
    ``outcomes[summary key]``: the per-tile outcomes behind each summary score, for the bootstrap;
    ``pair_outcomes["<summary key> A->B"]``: those of retrieval and transfer for one sensor pair alone."""

    scores: dict[str, Any]
    segmentation_maps: dict[str, torch.Tensor]
    outcomes: dict[str, TileStatistic]
    pair_outcomes: dict[str, TileStatistic]


@dataclass
class _TileOutcomes:
    """Per-tile outcomes, one array per sensor or sensor pair, by summary key."""

    hits: dict[str, list[np.ndarray]] = field(default_factory=dict)  # 1 where the tile scored, else 0
    balanced: dict[str, list[tuple[np.ndarray, np.ndarray]]] = field(default_factory=dict)  # correct, truth
    confusions: dict[str, list[np.ndarray]] = field(default_factory=dict)  # (N, C, C)
    pairs: dict[str, TileStatistic] = field(default_factory=dict)  # "<summary key> A->B": one pair's outcomes

    def statistics(self) -> dict[str, TileStatistic]:
        out: dict[str, TileStatistic] = {k: TileMean(tuple(v)) for k, v in self.hits.items()}
        out.update({k: BalancedAccuracy(tuple(v)) for k, v in self.balanced.items()})
        out.update({k: MeanIoU(tuple(v)) for k, v in self.confusions.items()})
        return out


def pair_name(a: str, b: str) -> str:
    return f"{a}->{b}"


def _classification(predicted: torch.Tensor, truth: torch.Tensor, tiles: _TileOutcomes, key: str,
                    pair: str | None = None) -> dict[str, float]:
    """Accuracy and balanced accuracy; each tile's correctness kept for the summary's ``key`` scores
    (and for the sensor ``pair`` alone when given)."""
    correct = (predicted == truth).numpy()
    tiles.hits.setdefault(f"{key}_accuracy", []).append(correct)
    tiles.balanced.setdefault(f"{key}_balanced_accuracy", []).append((correct, truth.numpy()))
    if pair is not None:
        tiles.pairs[f"{key}_accuracy {pair}"] = TileMean((correct,))
        tiles.pairs[f"{key}_balanced_accuracy {pair}"] = BalancedAccuracy(((correct, truth.numpy()),))
    return {"accuracy": accuracy(predicted, truth), "balanced_accuracy": balanced_accuracy(predicted, truth)}


def score_encoder(name: str, train: Split, val: Split, test: Split, classes: ClassSpace | None) -> EncoderScores:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the probes' matrices are tiny: threads only add synchronisation (and stall under load)
    try:
        return _score(name, train, val, test, classes)
    finally:
        torch.set_num_threads(threads)


def _score(name: str, train: Split, val: Split, test: Split, classes: ClassSpace | None) -> EncoderScores:
    tr, va, te = train.embeddings[name], val.embeddings[name], test.embeddings[name]
    sensors = list(te.cls)
    out: dict[str, Any] = {"retrieval": {}, "retrieval_cls": {}, "retrieval_mean": {}, "knn": {}, "linear": {},
                           "transfer": {}, "segmentation": {},
                           "segmentation_transfer": {}, "confusion": {}}
    tiles = _TileOutcomes()
    for a, b in itertools.permutations(sensors, 2):
        for kind in EMBEDDINGS:  # the tile embedding, then the class token and the mean patch token alone
            ranks = match_ranks(te.features(a, kind), te.features(b, kind))
            suffix = "" if kind == EMBEDDINGS[0] else f"_{kind}"
            out[f"retrieval{suffix}"][pair_name(a, b)] = recall_of(ranks)
            for k in (1, 5):
                hits = (ranks < k).numpy()
                tiles.hits.setdefault(f"retrieval_R@{k}{suffix}", []).append(hits)
                if not suffix:
                    tiles.pairs[f"retrieval_R@{k} {pair_name(a, b)}"] = TileMean((hits,))
    maps: dict[str, torch.Tensor] = {}
    if classes is not None and train.labels is not None and test.labels is not None:
        y_train, y_test = classes.dominant(train.labels), classes.dominant(test.labels)
        y_val = classes.dominant(val.labels) if val.labels is not None and len(val.tiles) else None
        pixels_train, pixels_test = classes.pixel_classes(train.labels), classes.pixel_classes(test.labels)
        for a in sensors:
            x_train = tr.features(a)
            knn = knn_predict(x_train, y_train, te.features(a), len(classes))
            out["knn"][a] = _classification(knn, y_test, tiles, "knn")
            probe = fit_linear(x_train, y_train, len(classes), va.features(a) if y_val is not None else None, y_val)
            for b in sensors:
                predicted = probe.predict(te.features(b))
                key, pair = ("linear", None) if a == b else ("transfer", pair_name(a, b))
                result = {**_classification(predicted, y_test, tiles, key, pair), "weight_decay": probe.weight_decay}
                if a == b:
                    out["linear"][a] = result
                    out["confusion"][a] = confusion(predicted, y_test, len(classes)).tolist()
                else:
                    out["transfer"][pair_name(a, b)] = result
            segmenter = fit_segmentation(tr.patches[a], pixels_train, len(classes))
            for b in sensors:  # the dense counterpart of transfer: a probe of A's patch tokens on B's
                predicted_map = segmenter.predict(te.patches[b], pixels_test.shape[-1])
                miou, per_class = mean_iou(predicted_map, pixels_test, len(classes))
                key = "segmentation_miou" if a == b else "segmentation_transfer_miou"
                tiles.confusions.setdefault(key, []).append(
                    tile_confusions(predicted_map, pixels_test, len(classes)).numpy())
                if a == b:
                    maps[a] = predicted_map
                    out["segmentation"][a] = {"miou": miou, "iou": dict(zip(classes.names, per_class, strict=True))}
                else:
                    out["segmentation_transfer"][pair_name(a, b)] = {"miou": miou}
    out["summary"] = summarise(out)
    return EncoderScores(out, maps, tiles.statistics(), tiles.pairs)


def _mean(values: list[float]) -> float:
    return fmean(values) if values else float("nan")


def summarise(scores: dict[str, Any]) -> dict[str, float]:
    """One number per task: means over sensor pairs (retrieval, transfer) or sensors (the others)."""
    by_embedding = {f"retrieval_R@{k}{suffix}": _mean([v[f"R@{k}"] for v in scores[f"retrieval{suffix}"].values()])
                    for suffix in ("", "_cls", "_mean") for k in (1, 5) if f"retrieval{suffix}" in scores}
    return {
        **by_embedding,
        "knn_accuracy": _mean([v["accuracy"] for v in scores["knn"].values()]),
        "knn_balanced_accuracy": _mean([v["balanced_accuracy"] for v in scores["knn"].values()]),
        "linear_accuracy": _mean([v["accuracy"] for v in scores["linear"].values()]),
        "linear_balanced_accuracy": _mean([v["balanced_accuracy"] for v in scores["linear"].values()]),
        "transfer_accuracy": _mean([v["accuracy"] for v in scores["transfer"].values()]),
        "transfer_balanced_accuracy": _mean([v["balanced_accuracy"] for v in scores["transfer"].values()]),
        "segmentation_miou": _mean([v["miou"] for v in scores["segmentation"].values()]),
        "segmentation_transfer_miou": _mean([v["miou"] for v in scores["segmentation_transfer"].values()]),
    }
