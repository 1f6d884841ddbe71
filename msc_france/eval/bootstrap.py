"""A paired bootstrap over test tiles: one set of seeded resamples of the tiles, applied to the per-tile
outcomes of every model, gives a percentile interval for every score and for every difference between
models. A resample is a (B, N) matrix of weights, how often each of the N tiles was drawn."""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

import numpy as np

LEVEL = 0.95
RESAMPLES = 1000
RARE_CLASS_SHARE = 0.02  # a class with fewer test tiles than this share is left out of balanced accuracy


def scored_classes(truth: np.ndarray) -> np.ndarray:
    """The classes a balanced accuracy averages: those with at least 2 % of ``truth`` (at least one). A class
    of one or two test tiles is all or nothing, its recall is no estimate, and the bootstrap would move the
    score by a whole class each time a resample leaves it out."""
    classes, counts = np.unique(truth, return_counts=True)
    kept: np.ndarray = classes[counts >= max(1.0, RARE_CLASS_SHARE * len(truth))]
    return kept


class TileStatistic(Protocol):
    """A score computed from per-tile outcomes, for every row of a (B, N) weight matrix at once."""

    def resampled(self, weights: np.ndarray) -> np.ndarray: ...


@dataclass(frozen=True)
class TileMean:
    """A mean over tiles of per-tile outcomes (hit, correct), averaged over ``parts`` (sensors or pairs)."""

    parts: tuple[np.ndarray, ...]  # each (N,)

    def resampled(self, weights: np.ndarray) -> np.ndarray:
        outcomes = np.stack(self.parts, axis=1).astype(np.float64)  # (N, parts)
        means: np.ndarray = ((weights @ outcomes) / weights.sum(axis=1, keepdims=True)).mean(axis=1)
        return means


@dataclass(frozen=True)
class BalancedAccuracy:
    """Mean recall over the scored classes of the truth (:func:`scored_classes`) that the resample
    draws, averaged over ``parts``: pairs of (correct (N,), truth class (N,))."""

    parts: tuple[tuple[np.ndarray, np.ndarray], ...]

    def resampled(self, weights: np.ndarray) -> np.ndarray:
        scores = []
        for correct, truth in self.parts:
            members = truth[:, None] == scored_classes(truth)[None, :]  # (N, classes)
            totals = weights @ members
            hits = weights @ (members & correct.astype(bool)[:, None])
            recall = np.where(totals > 0, hits / np.maximum(totals, 1), np.nan)
            scores.append(np.nanmean(recall, axis=1))
        mean: np.ndarray = np.mean(scores, axis=0)
        return mean


@dataclass(frozen=True)
class MeanIoU:
    """Mean IoU from the confusion matrix summed over the resampled tiles, over the classes present in it,
    averaged over ``parts``: per-tile confusion counts (N, C, C), rows the truth."""

    parts: tuple[np.ndarray, ...]

    def resampled(self, weights: np.ndarray) -> np.ndarray:
        scores = []
        for counts in self.parts:
            classes = counts.shape[-1]
            summed = (weights @ counts.reshape(len(counts), -1).astype(np.float64)).reshape(-1, classes, classes)
            tp = np.diagonal(summed, axis1=1, axis2=2)
            union = summed.sum(axis=1) + summed.sum(axis=2) - tp
            present = summed.sum(axis=2) > 0
            iou = np.where(present, tp / np.maximum(union, 1), 0.0)
            kept = present.sum(axis=1)
            scores.append(np.where(kept > 0, iou.sum(axis=1) / np.maximum(kept, 1), np.nan))
        mean: np.ndarray = np.mean(scores, axis=0)
        return mean


@dataclass(frozen=True)
class Resamples:
    """``weights[b, i]``: how many times resample ``b`` drew tile ``i``."""

    weights: np.ndarray  # (B, N)
    seed: int

    @classmethod
    def draw(cls, tiles: int, count: int = RESAMPLES, seed: int = 0) -> Resamples:
        index = np.random.default_rng(seed).integers(0, tiles, size=(count, tiles))  # tiles drawn, per resample
        flat = (index + tiles * np.arange(count)[:, None]).ravel()
        return cls(np.bincount(flat, minlength=count * tiles).reshape(count, tiles).astype(np.float64), seed)

    @property
    def count(self) -> int:
        return len(self.weights)

    @property
    def tiles(self) -> int:
        return int(self.weights.shape[1])


@dataclass(frozen=True)
class Interval:
    """A score on the test tiles as they are, and the percentile interval of its resamples."""

    value: float
    low: float
    high: float

    @property
    def significant(self) -> bool:
        """The interval excludes 0 (for a difference: the models differ beyond tile sampling)."""
        return self.low > 0 or self.high < 0


@dataclass(frozen=True)
class Difference:
    """``model`` minus ``baseline`` on ``metric``."""

    model: str
    baseline: str
    metric: str
    interval: Interval


@dataclass(frozen=True)
class Bootstrap:
    """Intervals of every model's scores (``figures[model][metric]``) and of the differences between models."""

    tiles: int
    resamples: int
    seed: int
    level: float
    figures: dict[str, dict[str, Interval]]
    differences: list[Difference]

    @property
    def compared(self) -> list[tuple[str, str]]:
        """The (model, baseline) pairs of the differences, in order."""
        return list(dict.fromkeys((d.model, d.baseline) for d in self.differences))

    def difference(self, model: str, baseline: str, metric: str) -> Interval | None:
        """The interval of ``model`` minus ``baseline`` on ``metric`` (None where either lacks that score)."""
        found = [d.interval for d in self.differences if (d.model, d.baseline, d.metric) == (model, baseline, metric)]
        return found[0] if found else None


def interval(value: float, samples: np.ndarray, level: float = LEVEL) -> Interval:
    low, high = np.percentile(samples, [50 * (1 - level), 50 * (1 + level)])
    return Interval(value, float(low), float(high))


def bootstrap(outcomes: Mapping[str, Mapping[str, TileStatistic]], resamples: Resamples,
              level: float = LEVEL) -> Bootstrap:
    """Intervals for every model and metric of ``outcomes``, and for every model minus each model before it
    (the baselines come first), on the same resamples."""
    identity = np.ones((1, resamples.tiles))
    values = {m: {k: float(s.resampled(identity)[0]) for k, s in stats.items()} for m, stats in outcomes.items()}
    samples = {m: {k: s.resampled(resamples.weights) for k, s in stats.items()} for m, stats in outcomes.items()}
    figures = {m: {k: interval(values[m][k], samples[m][k], level) for k in stats} for m, stats in samples.items()}
    differences = [Difference(model, baseline, key, interval(values[model][key] - values[baseline][key],
                                                             samples[model][key] - samples[baseline][key], level))
                   for baseline, model in itertools.combinations(list(outcomes), 2)
                   for key in samples[model] if key in samples[baseline]]
    return Bootstrap(resamples.tiles, resamples.count, resamples.seed, level, figures, differences)

