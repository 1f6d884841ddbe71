"""MSAD, the Multi-Sensor Alignment Dense loss of X-STARS.

For each token position t, the projected tokens of two sensors over the batch form a B x B similarity
matrix: a sample's token should match the same sample's token in the other sensor, the other samples
at that position being the negatives. The targets are soft: the softmax of the mean of the two
within-sensor similarity matrices (samples that look alike in both sensors are not pushed apart),
label-smoothed. The cross-entropy is symmetric (rows and columns) and averaged over tokens.
The "global" variant is the same with one token per image.

With ``soft=False`` the targets are the identity (InfoNCE, label-smoothed). The soft targets have a
collapsed optimum: when the projections are all alike, the targets are uniform, so are the
predictions, and the loss sits at chance with nothing pulling the tokens apart; the hard ones pull
each token towards its partner and away from the others (``tests/test_pretrain_losses.py``).

The similarities are computed in float32 with autocast off, so that projections left unnormalised
(``loss.msad_normalize: false``, the reference code's formulation) give exact logits under bf16 too.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class MSADLoss(nn.Module):
    """``forward(a, b)`` on projections (B, T, D) of the same ground by two sensors (L2-normalised by default)."""

    def __init__(self, temperature: float = 0.1, label_smoothing: float = 0.1, soft: bool = True) -> None:
        super().__init__()
        self.soft = soft
        self.temperature = temperature
        self.label_smoothing = label_smoothing

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        with torch.autocast(a.device.type, enabled=False):
            return self._loss(a.float().transpose(0, 1), b.float().transpose(0, 1))  # (T, B, D)

    def _loss(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        batch = a.shape[1]
        logits = a @ b.transpose(1, 2) / self.temperature  # (T, B, B): a's sample i against b's sample j
        if self.soft:
            within = (a @ a.transpose(1, 2) + b @ b.transpose(1, 2)) / 2
            targets = F.softmax(within.detach() / self.temperature, dim=-1)
        else:
            targets = torch.eye(batch, device=a.device).expand_as(logits)
        targets = (1 - self.label_smoothing) * targets + self.label_smoothing / batch
        a_to_b = -(targets * F.log_softmax(logits, dim=-1)).sum(-1)
        b_to_a = -(targets.transpose(1, 2) * F.log_softmax(logits.transpose(1, 2), dim=-1)).sum(-1)
        return (a_to_b + b_to_a).mean() / 2
