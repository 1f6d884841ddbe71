"""Per-step schedules (DINO style): linear warm-up then cosine, as arrays indexed by the global step."""

from __future__ import annotations

import numpy as np


def cosine(start: float, end: float, steps: int, warmup_steps: int = 0, warmup_from: float = 0.0) -> np.ndarray:
    """``warmup_steps`` linear from ``warmup_from`` to ``start``, then a cosine from ``start`` to ``end``."""
    warmup = np.linspace(warmup_from, start, warmup_steps, endpoint=False) if warmup_steps else np.empty(0)
    rest = np.arange(max(steps - warmup_steps, 0))
    decay = end + 0.5 * (start - end) * (1 + np.cos(np.pi * rest / max(len(rest), 1)))
    return np.concatenate([warmup, decay])[:steps]


def warmup_then_constant(start: float, value: float, steps: int, warmup_steps: int) -> np.ndarray:
    """Linear from ``start`` to ``value`` over ``warmup_steps``, then ``value`` (teacher temperature)."""
    ramp = np.linspace(start, value, warmup_steps) if warmup_steps else np.empty(0)
    return np.concatenate([ramp, np.full(max(steps - len(ramp), 0), value)])[:steps]
