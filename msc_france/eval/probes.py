"""Frozen-feature classifiers: weighted kNN (as in DINO) and a linear probe (multinomial logistic
regression, L2 strength chosen on the validation split), with their scores."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from msc_france.eval.bootstrap import scored_classes

WEIGHT_DECAYS = (1e-4, 1e-3, 1e-2, 1e-1)


def knn_predict(train_x: torch.Tensor, train_y: torch.Tensor, test_x: torch.Tensor, classes: int,
                k: int = 20, temperature: float = 0.07) -> torch.Tensor:
    """Class of each test row by a vote of its ``k`` nearest train rows (cosine), weighted by exp(sim / T)."""
    similarity = F.normalize(test_x.float(), dim=1) @ F.normalize(train_x.float(), dim=1).T
    top, index = similarity.topk(min(k, len(train_x)), dim=1)
    votes = torch.zeros(len(test_x), classes)
    votes.scatter_add_(1, train_y[index], (top / temperature).exp())
    return votes.argmax(dim=1)


@dataclass
class LinearProbe:
    """A linear classifier on standardised features; ``predict`` applies the same standardisation."""

    weight: torch.Tensor
    bias: torch.Tensor
    mean: torch.Tensor
    std: torch.Tensor
    weight_decay: float

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        return ((x.float() - self.mean) / self.std) @ self.weight.T + self.bias

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        return self.logits(x).argmax(dim=1)


def _fit(x: torch.Tensor, y: torch.Tensor, classes: int, weight_decay: float,
         iterations: int) -> tuple[torch.Tensor, torch.Tensor]:
    weight = torch.zeros(classes, x.shape[1], requires_grad=True)
    bias = torch.zeros(classes, requires_grad=True)
    optimizer = torch.optim.LBFGS([weight, bias], lr=1.0, max_iter=iterations, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        loss = F.cross_entropy(x @ weight.T + bias, y) + weight_decay * weight.square().sum()
        torch.autograd.backward(loss)  # loss.backward(), which torch leaves unannotated
        return loss

    optimizer.step(closure)  # type: ignore[no-untyped-call]  # torch's LBFGS.step has no annotations
    return weight.detach(), bias.detach()


def fit_linear(train_x: torch.Tensor, train_y: torch.Tensor, classes: int, val_x: torch.Tensor | None = None,
               val_y: torch.Tensor | None = None, weight_decays: tuple[float, ...] = WEIGHT_DECAYS,
               iterations: int = 100) -> LinearProbe:
    """Logistic regression; the L2 strength with the best validation accuracy (the middle one without a
    validation set: ``val_x`` and ``val_y``, both or neither)."""
    if (val_x is None) != (val_y is None):
        raise ValueError("fit_linear: give both val_x and val_y, or neither")
    mean, std = train_x.float().mean(0), train_x.float().std(0).clamp_min(1e-6)
    x = (train_x.float() - mean) / std
    candidates = weight_decays if val_x is not None and len(val_x) else (weight_decays[len(weight_decays) // 2],)
    best: LinearProbe | None = None
    best_score = -1.0
    for decay in candidates:
        with torch.enable_grad():
            weight, bias = _fit(x, train_y, classes, decay, iterations)
        probe = LinearProbe(weight, bias, mean, std, decay)
        score = accuracy(probe.predict(val_x), val_y) if val_x is not None and val_y is not None and len(val_x) else 0.0
        if score > best_score:
            best, best_score = probe, score
    assert best is not None
    return best


def accuracy(predicted: torch.Tensor, truth: torch.Tensor) -> float:
    return float((predicted == truth).float().mean()) if len(truth) else float("nan")


def balanced_accuracy(predicted: torch.Tensor, truth: torch.Tensor) -> float:
    """Mean recall over the classes of ``truth`` with at least 2 % of its samples (not fooled by always
    answering the majority; :func:`~msc_france.eval.bootstrap.scored_classes`)."""
    recalls = [float((predicted[truth == c] == c).float().mean()) for c in scored_classes(truth.numpy())]
    return sum(recalls) / len(recalls) if recalls else float("nan")


def confusion(predicted: torch.Tensor, truth: torch.Tensor, classes: int) -> torch.Tensor:
    """(classes, classes) counts, rows the truth, columns the prediction."""
    return torch.bincount(truth * classes + predicted, minlength=classes * classes).reshape(classes, classes)
