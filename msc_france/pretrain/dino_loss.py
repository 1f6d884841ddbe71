"""The DINO self-distillation loss: cross-entropy between the centred, sharpened teacher distribution
of each global crop and the student distribution of every other crop."""

from __future__ import annotations

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn


class DINOLoss(nn.Module):
    """``forward(student, teacher, teacher_temperature)``: student (n_crops*B, K) logits with the 2 global
    crops first, teacher (2*B, K). Updates the centre (an EMA of teacher outputs, across processes)."""

    center: torch.Tensor  # a buffer

    def __init__(self, out_dim: int, student_temperature: float = 0.1, center_momentum: float = 0.9) -> None:
        super().__init__()
        self.student_temperature = student_temperature
        self.center_momentum = center_momentum
        self.register_buffer("center", torch.zeros(1, out_dim))

    def forward(self, student: torch.Tensor, teacher: torch.Tensor, teacher_temperature: float) -> torch.Tensor:
        batch = teacher.shape[0] // 2
        student_logp = torch.split(F.log_softmax(student.float() / self.student_temperature, dim=-1), batch)
        targets = torch.split(F.softmax((teacher.float() - self.center) / teacher_temperature, dim=-1).detach(), batch)
        total, terms = student.new_zeros((), dtype=torch.float32), 0
        for t, target in enumerate(targets):
            for v, logp in enumerate(student_logp):
                if v == t:  # never the same view
                    continue
                total = total + torch.sum(-target * logp, dim=-1).mean()
                terms += 1
        self.update_center(teacher)
        return total / terms

    @torch.no_grad()
    def update_center(self, teacher: torch.Tensor) -> None:
        total = teacher.float().sum(dim=0, keepdim=True)
        count = torch.tensor(float(teacher.shape[0]), device=teacher.device)
        if dist.is_available() and dist.is_initialized():
            dist.all_reduce(total)
            dist.all_reduce(count)
        self.center.mul_(self.center_momentum).add_(total / count, alpha=1 - self.center_momentum)
