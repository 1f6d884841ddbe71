"""Tasks submitted to Dask in a bounded window: at most ``window`` futures in flight, more submitted as they
complete (``as_completed(...).update``), so that the scheduler holds a window of tasks, not the whole run."""

from __future__ import annotations

from collections.abc import Callable, Generator, Iterable
from itertools import islice
from typing import Any
from uuid import uuid4

from dask.distributed import Client, Future, as_completed

WINDOW_MIN = 512  # tasks in flight at least
WINDOW_PER_THREAD = 4  # and this many per worker thread
REFILL_PARTS = 8  # the window is topped up when an eighth of it (at least one task) has completed


def window_size(client: Client) -> int:
    """Tasks kept in flight on the cluster of ``client``: a few per worker thread, at least :data:`WINDOW_MIN`."""
    threads = sum(client.nthreads().values())  # type: ignore[no-untyped-call]  # distributed has no annotations
    return max(WINDOW_MIN, WINDOW_PER_THREAD * threads)


def bounded(client: Client, function: Callable[..., Any], calls: Iterable[tuple[Any, ...]],
            window: int, name: Callable[[tuple[Any, ...]], str] | None = None,
            **options: Any) -> Generator[Future[Any]]:
    """Each future of ``function(*args)`` for the ``args`` of ``calls``, as it completes, with at most ``window``
    in flight; ``options`` go to ``client.map``. ``name(args)``, if given, is the task's key prefix (Dask's
    dashboard and metrics group tasks by it; a unique suffix is added), else Dask names it after ``function``.
    Tasks go to the scheduler in batches of an eighth of the window (one message each: a task submitted alone
    costs the scheduler a message of its own). Closing the iterator early (an exception in the caller's loop,
    Ctrl-C included) cancels the futures still in flight."""
    pending = iter(calls)

    def submit(count: int) -> list[Future[Any]]:
        batch = list(islice(pending, count))
        if not batch:
            return []
        if name is not None:
            options["key"] = [f"{name(args)}-{uuid4().hex}" for args in batch]
        return client.map(function, *zip(*batch, strict=True), **options)

    refill, free = max(1, window // REFILL_PARTS), 0
    flight = as_completed(submit(window))  # type: ignore[no-untyped-call]  # distributed has no annotations
    try:
        for future in flight:
            free += 1
            if free >= refill:  # refill <= window: some are still in flight, so none is left unsubmitted
                flight.update(submit(free))  # type: ignore[no-untyped-call]  # distributed has no annotations
                free = 0
            yield future
    finally:
        if flight.futures:
            client.cancel(list(flight.futures))  # type: ignore[no-untyped-call]  # distributed has no annotations
