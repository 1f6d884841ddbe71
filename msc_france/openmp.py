"""OpenMP threads that spin only briefly when they wait, set before torch (and its libgomp) loads.

By default GNU OpenMP's idle threads spin at every barrier (300,000 rounds), so two torch processes on
the same cores (two trainings, a training beside a test run, the tests' own torch subprocesses) each
burn the CPU the other needs. ``GOMP_SPINCOUNT=1000`` spins briefly, then sleeps: on the 2-core
machine of the sessions, two ViT-Tiny trainings at once took 0.47 s a step instead of 0.90 s, and one
alone 0.23 s against 0.24 s (``bench/openmp_wait.py``); ``OMP_WAIT_POLICY=PASSIVE``, no spin at all,
made a lone process 0.71-0.84x as fast. libgomp reads it once, when it loads, so it is set here before anything
imports torch, and inherited by every process started afterwards (DataLoader and Dask workers,
``torchrun``'s ranks). A user's own ``GOMP_SPINCOUNT`` or ``OMP_WAIT_POLICY`` is left as it is.
"""

from __future__ import annotations

import os

SPIN_COUNT = "1000"


def spin_briefly_when_waiting() -> None:
    """``GOMP_SPINCOUNT=1000`` in this process's environment, unless the user chose a wait policy."""
    if "OMP_WAIT_POLICY" not in os.environ:
        os.environ.setdefault("GOMP_SPINCOUNT", SPIN_COUNT)
