"""OpenMP threads that sleep when they wait, before torch (and its libgomp) loads.

By default GNU OpenMP's idle threads spin at every barrier, so two torch processes on the same cores
(the trainer beside a DataLoader-heavy job, two test processes, a Dask worker beside training) each
burn the CPU the other needs: on the 2-core machine of the sessions a ViT-Tiny step went from about
0.5 s to 7.7 s (``docs/pretrain.md``, "OpenMP threads"). ``OMP_WAIT_POLICY=PASSIVE`` makes them sleep;
libgomp reads it once, when it loads, so it is set here before anything imports torch, and inherited
by every process started afterwards (DataLoader and Dask workers, ``torchrun``'s ranks).
"""

from __future__ import annotations

import os


def sleep_when_waiting() -> None:
    """``OMP_WAIT_POLICY=PASSIVE`` in this process's environment, unless the user set a policy."""
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
