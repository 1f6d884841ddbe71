"""Projection heads: the DINO head (MLP, bottleneck, weight-normalised prototypes) and the MSAD head
(a projection shared by all sensors, then one head per sensor slot)."""

from __future__ import annotations

import itertools

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import weight_norm


def _mlp(in_dim: int, hidden: int, out_dim: int, layers: int) -> nn.Sequential:
    dims = [in_dim] + [hidden] * (layers - 1) + [out_dim]
    modules: list[nn.Module] = []
    for i, (a, b) in enumerate(itertools.pairwise(dims)):
        modules.append(nn.Linear(a, b))
        if i < len(dims) - 2:
            modules.append(nn.GELU())
    return nn.Sequential(*modules)


def _init(module: nn.Module) -> None:
    if isinstance(module, nn.Linear):
        nn.init.trunc_normal_(module.weight, std=0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)


class DINOHead(nn.Module):
    """MLP to a bottleneck, L2-normalised, then a weight-normalised linear layer onto ``out_dim`` prototypes
    whose norms are fixed to 1 (``last_layer``; frozen for the first epoch by the trainer)."""

    def __init__(self, in_dim: int, out_dim: int, hidden_dim: int = 2048, bottleneck_dim: int = 256,
                 layers: int = 3) -> None:
        super().__init__()
        self.mlp = _mlp(in_dim, hidden_dim, bottleneck_dim, layers)
        self.mlp.apply(_init)
        self.last_layer = weight_norm(nn.Linear(bottleneck_dim, out_dim, bias=False))
        with torch.no_grad():
            self.last_layer.parametrizations.weight.original0.fill_(1.0)
        self.last_layer.parametrizations.weight.original0.requires_grad = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits: torch.Tensor = self.last_layer(F.normalize(self.mlp(x), dim=-1))
        return logits


class MSADHead(nn.Module):
    """``forward(tokens, sensor)``: a projection shared by all sensors (``depth`` Linear layers, GELU between
    them), then the sensor's own linear head (identity when not ``per_sensor``), (B, T, dim), L2-normalised
    when ``normalize``."""

    def __init__(self, in_dim: int, dim: int, sensors: list[str], per_sensor: bool = True, depth: int = 2,
                 normalize: bool = True) -> None:
        super().__init__()
        self.normalize = normalize
        self.shared = _mlp(in_dim, dim, dim, depth)
        self.heads = nn.ModuleDict({s: nn.Linear(dim, dim) if per_sensor else nn.Identity() for s in sensors})
        self.apply(_init)

    def forward(self, tokens: torch.Tensor, sensor: str) -> torch.Tensor:
        projected: torch.Tensor = self.heads[sensor](self.shared(tokens))
        return F.normalize(projected, dim=-1) if self.normalize else projected
