"""The paired bootstrap on synthetic per-tile outcomes whose truth is known."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from msc_france.eval.bootstrap import BalancedAccuracy, MeanIoU, Resamples, TileMean, bootstrap
from msc_france.eval.probes import balanced_accuracy
from msc_france.eval.report import difference_rows, headline_rows
from msc_france.eval.segmentation import IGNORE, mean_iou, tile_confusions

TILES = 48


def _half_correct() -> np.ndarray:
    return (np.arange(TILES) % 2).astype(np.float64)


def test_resamples_are_seeded_and_draw_every_tile_count() -> None:
    first, again, other = Resamples.draw(TILES, 200, seed=3), Resamples.draw(TILES, 200, seed=3), Resamples.draw(
        TILES, 200, seed=4)
    assert first.weights.shape == (200, TILES) and (first.weights.sum(axis=1) == TILES).all()
    assert np.array_equal(first.weights, again.weights) and not np.array_equal(first.weights, other.weights)
    assert (first.weights != 1).any()  # not the identity: some tiles drawn twice, some left out


def test_identical_models_differ_by_nothing() -> None:
    outcome = TileMean((_half_correct(),))
    result = bootstrap({"a": {"acc": outcome}, "b": {"acc": TileMean((_half_correct().copy(),))}},
                       Resamples.draw(TILES))
    (diff,) = result.differences
    assert (diff.model, diff.baseline) == ("b", "a")
    assert diff.interval.low <= 0 <= diff.interval.high and not diff.interval.significant
    figure = result.figures["a"]["acc"]
    assert figure.value == 0.5 and figure.low < 0.45 and figure.high > 0.55  # one model alone does vary


def test_always_right_beats_half_right_far_from_zero() -> None:
    result = bootstrap({"half": {"acc": TileMean((_half_correct(),))},
                        "all": {"acc": TileMean((np.ones(TILES),))}}, Resamples.draw(TILES))
    interval = result.difference("all", "half", "acc")
    assert interval is not None and interval.significant
    assert interval.value == 0.5 and interval.low > 0.3  # half right: sd of the mean 0.5 / sqrt(48) = 0.072


def test_paired_a_model_shifted_by_a_constant_differs_by_exactly_it() -> None:
    noisy = np.random.default_rng(0).random(TILES)
    result = bootstrap({"a": {"score": TileMean((noisy,))}, "b": {"score": TileMean((noisy + 0.1,))}},
                       Resamples.draw(TILES, seed=1))
    interval = result.difference("b", "a", "score")
    assert interval is not None
    assert interval.low == pytest.approx(0.1, abs=1e-12) and interval.high == pytest.approx(0.1, abs=1e-12)
    spread = result.figures["a"]["score"]
    assert spread.high - spread.low > 0.1  # unpaired, the two intervals would overlap


def test_differences_go_against_every_earlier_model() -> None:
    models = {name: {"acc": TileMean((np.ones(TILES),))} for name in ("random init", "DINO alone", "DINO + MSAD")}
    result = bootstrap(models, Resamples.draw(TILES, 10))
    assert result.compared == [("DINO alone", "random init"), ("DINO + MSAD", "random init"),
                               ("DINO + MSAD", "DINO alone")]


def test_mean_iou_of_the_identity_resample_is_the_direct_one() -> None:
    generator = torch.Generator().manual_seed(5)
    truth = torch.randint(0, 4, (TILES, 16, 16), generator=generator)
    truth[truth == 3] = IGNORE
    truth[0] = 2  # class 2 only in tile 0
    predicted = torch.where(torch.rand(truth.shape, generator=generator) < 0.7, truth.clamp_min(0),
                            torch.randint(0, 4, truth.shape, generator=generator))
    counts = tile_confusions(predicted, truth, 4)
    assert int(counts.sum()) == int((truth != IGNORE).sum())
    statistic = MeanIoU((counts.numpy(),))
    direct, _ = mean_iou(predicted, truth, 4)
    assert statistic.resampled(np.ones((1, TILES)))[0] == pytest.approx(direct, rel=1e-12)
    without_first = np.ones((1, TILES))
    without_first[0, 0] = 0
    assert statistic.resampled(without_first)[0] == pytest.approx(mean_iou(predicted[1:], truth[1:], 4)[0], rel=1e-12)


def test_balanced_accuracy_recomputed_on_each_resample() -> None:
    truth = torch.tensor([0] * 40 + [1] * 8)
    predicted = torch.zeros_like(truth)  # the majority class everywhere
    correct = (predicted == truth).numpy()
    statistic = BalancedAccuracy(((correct, truth.numpy()),))
    assert statistic.resampled(np.ones((1, TILES)))[0] == pytest.approx(balanced_accuracy(predicted, truth))
    only_majority = np.zeros((1, TILES))
    only_majority[0, :40] = 1
    assert statistic.resampled(only_majority)[0] == 1.0  # class 1 absent from this resample: not averaged in
    values = statistic.resampled(Resamples.draw(TILES).weights)
    assert set(np.round(values, 9)) <= {0.5, 1.0}  # 0.5 whenever class 1 was drawn, 1.0 when not


def test_every_score_of_a_demo_sized_report_gets_a_finite_interval() -> None:
    generator = np.random.default_rng(2)
    parts = tuple(generator.random(TILES) < 0.7 for _ in range(6))
    confusions = tuple(generator.integers(0, 50, (TILES, 6, 6)) for _ in range(6))
    truths = tuple((p, generator.integers(0, 6, TILES)) for p in parts)
    stats = {"acc": TileMean(parts), "bal": BalancedAccuracy(truths), "miou": MeanIoU(confusions)}
    result = bootstrap(dict.fromkeys(("a", "b", "c"), stats), Resamples.draw(TILES, 1000))
    assert len(result.differences) == 9 and result.resamples == 1000
    assert all(np.isfinite([i.low, i.high]).all() for f in result.figures.values() for i in f.values())


def test_report_rows_mark_significant_differences_and_missing_scores() -> None:
    models = {"random init": {"retrieval_R@1": TileMean((_half_correct(),))},
              "DINO + MSAD": {"retrieval_R@1": TileMean((np.ones(TILES),))}}  # a store without labels: no probes
    result = bootstrap(models, Resamples.draw(TILES))
    header, rows = headline_rows(result)
    assert header[:2] == ["model", "R@1"] and rows[1][1] == "100.0 [100.0, 100.0]"
    assert rows[0][1].startswith("50.0 [") and set(rows[0][2:]) == {"n/a"}
    _, differences = difference_rows(result)
    assert differences[0][0] == "DINO + MSAD vs random init" and set(differences[0][2:]) == {"n/a"}
    assert differences[0][1].startswith("+50.0 [+") and differences[0][1].endswith("]†")
    same = bootstrap({"a": models["random init"], "b": models["random init"]}, Resamples.draw(TILES, 50))
    assert difference_rows(same)[1][0][1] == "+0.0 [+0.0, +0.0]"  # no † on an interval that holds 0


def test_a_class_of_one_tile_is_left_out_of_balanced_accuracy_and_its_interval() -> None:
    truth = torch.tensor([0] * 150 + [1] * 117 + [2])  # 268 tiles; class 2 is one tile (0.4 %)
    predicted = truth.clone()
    predicted[:30] = 1  # class 0 recall 0.8, class 1 recall 1; the lone class-2 tile is missed
    predicted[-1] = 0
    assert balanced_accuracy(predicted, truth) == pytest.approx((0.8 + 1.0) / 2)
    statistic = BalancedAccuracy((((predicted == truth).numpy(), truth.numpy()),))
    values = statistic.resampled(Resamples.draw(len(truth), 500, seed=3).weights)
    # with class 2 averaged in, about 37 % of resamples (those without its tile) would jump by a third
    assert values.max() - values.min() < 0.15
    assert np.median(values) == pytest.approx(0.9, abs=0.03)
