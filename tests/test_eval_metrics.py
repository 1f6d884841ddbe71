"""Evaluation metrics on synthetic embeddings whose answers are known."""

from __future__ import annotations

import torch

from msc_france.eval.labels import ClassSpace
from msc_france.eval.probes import accuracy, balanced_accuracy, confusion, fit_linear, knn_predict
from msc_france.eval.retrieval import chance, match_ranks, recall_at
from msc_france.eval.segmentation import IGNORE, fit_segmentation, mean_iou


def test_identical_embeddings_retrieve_every_tile() -> None:
    x = torch.randn(200, 32, generator=torch.Generator().manual_seed(0))
    assert recall_at(x, x.clone()) == {"R@1": 1.0, "R@5": 1.0}
    assert recall_at(x, 3 * x + 0.01 * torch.randn(200, 32))["R@1"] == 1.0  # cosine: scale does not matter


def test_random_embeddings_score_chance() -> None:
    n, draws = 100, 60
    generator = torch.Generator().manual_seed(1)
    r1 = [recall_at(torch.randn(n, 16, generator=generator), torch.randn(n, 16, generator=generator))
          for _ in range(draws)]
    mean1 = sum(r["R@1"] for r in r1) / draws
    mean5 = sum(r["R@5"] for r in r1) / draws
    assert abs(mean1 - chance(n)["R@1"]) < 0.01  # chance 0.01; the mean of 6000 trials is within +-0.004 (3 sd)
    assert abs(mean5 - chance(n)["R@5"]) < 0.02  # chance 0.05, 3 sd about 0.008


def test_collapsed_embeddings_do_not_score_perfectly() -> None:
    constant = torch.ones(50, 8)
    assert match_ranks(constant, constant).tolist() == [49] * 50  # ties count against the query
    assert recall_at(constant, constant)["R@1"] == 0.0


def test_knn_and_linear_probe_separate_clusters_and_not_noise() -> None:
    generator = torch.Generator().manual_seed(2)
    centres = torch.randn(4, 24, generator=generator) * 3
    y_train, y_test = torch.arange(200) % 4, torch.arange(100) % 4
    x_train = centres[y_train] + torch.randn(200, 24, generator=generator)
    x_test = centres[y_test] + torch.randn(100, 24, generator=generator)
    assert accuracy(knn_predict(x_train, y_train, x_test, 4), y_test) == 1.0
    probe = fit_linear(x_train, y_train, 4, x_test[:40], y_test[:40])
    assert accuracy(probe.predict(x_test), y_test) == 1.0
    noise = fit_linear(torch.randn(200, 24, generator=generator), y_train, 4)
    assert accuracy(noise.predict(torch.randn(400, 24, generator=generator)), torch.arange(400) % 4) < 0.4


def test_balanced_accuracy_and_confusion() -> None:
    truth = torch.tensor([0, 0, 0, 0, 0, 0, 1, 2])
    majority = torch.zeros_like(truth)
    assert accuracy(majority, truth) == 0.75
    assert abs(balanced_accuracy(majority, truth) - 1 / 3) < 1e-6
    matrix = confusion(torch.tensor([0, 1, 1]), torch.tensor([0, 1, 0]), 2)
    assert matrix.tolist() == [[1, 1], [0, 1]]


def test_mean_iou_known_values() -> None:
    truth = torch.tensor([[0, 0, 1, 1], [0, 0, 1, IGNORE]])
    assert mean_iou(truth.clamp_min(0), truth, 2)[0] == 1.0
    predicted = torch.tensor([[0, 0, 0, 1], [0, 0, 1, 0]])  # class 0: tp 4, union 5; class 1: tp 2, union 3
    miou, per_class = mean_iou(predicted, truth, 3)
    assert abs(per_class[0] - 4 / 5) < 1e-9 and abs(per_class[1] - 2 / 3) < 1e-9
    assert per_class[2] != per_class[2]  # NaN: class in neither map
    assert abs(miou - (4 / 5 + 2 / 3) / 2) < 1e-9


def test_segmentation_probe_learns_a_token_rule() -> None:
    generator = torch.Generator().manual_seed(3)
    tokens = torch.randn(40, 4, 4, 8, generator=generator)
    classes = (tokens[..., 0] > 0).long()  # the class of a token is the sign of its first feature
    labels = classes.repeat_interleave(4, dim=1).repeat_interleave(4, dim=2)  # 16 x 16 label maps
    probe = fit_segmentation(tokens[:30], labels[:30], 2, epochs=40)
    miou, _ = mean_iou(probe.predict(tokens[30:], 16), labels[30:], 2)
    assert miou > 0.6  # bilinear upsampling blurs token edges; chance is about 0.33


def test_class_space_dominant_and_pixels() -> None:
    maps = torch.tensor([[[40, 40], [10, 0]], [[80, 80], [80, 40]], [[0, 0], [0, 10]]], dtype=torch.uint8)
    space = ClassSpace.of(maps)
    assert space.codes == (10, 40, 80) and space.names[0] == "tree cover"
    assert space.dominant(maps).tolist() == [1, 2, 0]
    assert space.pixel_classes(maps)[0].tolist() == [[1, 1], [0, IGNORE]]
