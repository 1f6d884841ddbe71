"""Timing shared by the benchmarks."""

from __future__ import annotations

import statistics
import threading
import time
from collections.abc import Callable
from typing import Self


def median_seconds(run: Callable[[], object], repeat: int) -> float:
    """Median seconds over ``repeat`` timed runs of ``run``, after one warm-up run."""
    run()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def interleaved_medians(runs: dict[str, Callable[[], object]], repeat: int) -> dict[str, float]:
    """Median seconds of each of ``runs`` over ``repeat`` rounds that run each once in turn, after one
    warm-up round: a load that comes and goes (other jobs on the machine) weighs on all of them alike."""
    for run in runs.values():
        run()
    times: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(repeat):
        for name, run in runs.items():
            start = time.perf_counter()
            run()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(seconds) for name, seconds in times.items()}


class PeriodicSampler:
    """Calls :meth:`sample` every ``interval`` seconds in a thread while the ``with`` block runs (and once at
    its start): the base of the benchmarks' peak-memory samplers."""

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def sample(self) -> None:
        raise NotImplementedError

    def _run(self) -> None:
        while True:
            self.sample()
            if self._stop.wait(self.interval):
                return

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
