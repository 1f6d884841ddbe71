"""Atomic training checkpoints that load with ``torch.load(weights_only=True)``: model (student,
teacher, DINO centre), optimiser, position (step, epoch, batch in epoch), RNG states, and the preset."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from msc_france.errors import UserError
from msc_france.store.atomic import atomic_path

CHECKPOINT = "checkpoint.pt"  # in each run folder, runs/NAME/


def rng_state() -> dict[str, Any]:
    """Python, NumPy and torch generator states, as plain data (no pickled objects)."""
    legacy = np.random.get_state(legacy=True)
    assert isinstance(legacy, tuple)  # a dict only for a global generator other than MT19937, never set here
    kind, keys, pos, has_gauss, cached = legacy
    state: dict[str, Any] = {
        "python": [list(x) if isinstance(x, tuple) else x for x in random.getstate()],
        "numpy": {"kind": kind, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": pos,
                  "has_gauss": has_gauss, "cached": cached},
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    n = state["numpy"]
    np.random.set_state((n["kind"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached"]))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    """Write ``state`` to a temporary file beside ``path``, then rename: a crash never leaves a half file."""
    with atomic_path(path) as tmp, open(tmp, "wb") as handle:  # Python's own writes: a full disk is an
        torch.save(state, handle)  # OSError (ENOSPC), not torch's "unexpected pos" RuntimeError


def load_checkpoint(path: Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """A checkpoint written by :func:`save_checkpoint` (tensors and plain data only)."""
    try:
        checkpoint: dict[str, Any] = torch.load(path, map_location=map_location, weights_only=True)
    except FileNotFoundError:
        raise UserError(f"no checkpoint at {path}") from None
    except Exception as exc:  # noqa: BLE001 - anything unreadable is the same user problem
        raise UserError(f"{path} is not a readable checkpoint ({type(exc).__name__}); "
                        "it may be truncated or from another program") from None
    return checkpoint
