"""A linear probe on patch tokens against the label map: per-token logits upsampled to the label
grid, trained with cross-entropy (nodata ignored), scored by mean IoU."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from msc_france.eval.probes import confusion

IGNORE = -1


@dataclass
class SegmentationProbe:
    """``predict(tokens (N, h, w, D), size) -> (N, size, size)`` class indices."""

    weight: torch.Tensor  # (C, D)
    bias: torch.Tensor
    mean: torch.Tensor
    std: torch.Tensor

    def logits(self, tokens: torch.Tensor, size: int) -> torch.Tensor:
        x = ((tokens.float() - self.mean) / self.std) @ self.weight.T + self.bias  # (N, h, w, C)
        return F.interpolate(x.permute(0, 3, 1, 2), size=(size, size), mode="bilinear", align_corners=False)

    def predict(self, tokens: torch.Tensor, size: int) -> torch.Tensor:
        return torch.cat([self.logits(chunk, size).argmax(dim=1) for chunk in torch.split(tokens, 256)])


def fit_segmentation(tokens: torch.Tensor, labels: torch.Tensor, classes: int, epochs: int = 60,
                     batch_size: int = 64, lr: float = 1e-2, weight_decay: float = 1e-4,
                     seed: int = 0) -> SegmentationProbe:
    """Train on ``tokens`` (N, h, w, D) against ``labels`` (N, H, W) of class indices (``IGNORE`` skipped)."""
    flat = tokens.float().reshape(-1, tokens.shape[-1])
    mean, std = flat.mean(0), flat.std(0).clamp_min(1e-6)
    generator = torch.Generator().manual_seed(seed)
    weight = (torch.randn(classes, tokens.shape[-1], generator=generator) * 0.01).requires_grad_()
    bias = torch.zeros(classes, requires_grad=True)
    probe = SegmentationProbe(weight, bias, mean, std)
    optimizer = torch.optim.AdamW([weight, bias], lr=lr, weight_decay=weight_decay)
    size = labels.shape[-1]
    with torch.enable_grad():
        for _ in range(epochs):
            for index in torch.split(torch.randperm(len(tokens), generator=generator), batch_size):
                loss = F.cross_entropy(probe.logits(tokens[index], size), labels[index], ignore_index=IGNORE)
                optimizer.zero_grad()
                torch.autograd.backward(loss)  # loss.backward(), which torch leaves unannotated
                optimizer.step()
    return SegmentationProbe(weight.detach(), bias.detach(), mean, std)


def mean_iou(predicted: torch.Tensor, truth: torch.Tensor, classes: int) -> tuple[float, list[float]]:
    """Mean IoU over the classes present in ``truth`` (pixels marked ``IGNORE`` left out), and the IoU of
    every class (NaN where a class is in neither map)."""
    keep = truth != IGNORE
    t, p = truth[keep], predicted[keep]
    counts = confusion(p, t, classes).double()
    tp = counts.diagonal()
    union = counts.sum(0) + counts.sum(1) - tp
    iou = torch.where(union > 0, tp / union.clamp_min(1), torch.full_like(tp, float("nan")))
    present = counts.sum(1) > 0
    return (float(iou[present].mean()) if present.any() else float("nan")), [float(v) for v in iou]


def tile_confusions(predicted: torch.Tensor, truth: torch.Tensor, classes: int) -> torch.Tensor:
    """(N, C, C) confusion counts of each tile's maps (N, H, W), rows the truth, ``IGNORE`` pixels left out:
    their sum is the matrix ``mean_iou`` scores."""
    keep = truth != IGNORE
    tile = torch.arange(len(truth)).reshape(-1, 1, 1).expand_as(truth)
    flat = (tile * classes + truth) * classes + predicted
    return torch.bincount(flat[keep], minlength=len(truth) * classes * classes).reshape(len(truth), classes, classes)
