"""Tasks submitted to Dask in a bounded window: at most ``window`` futures in flight, the next one submitted as
each completes (``as_completed(...).add``), so that the scheduler holds a window of tasks, not the whole run."""

from __future__ import annotations

from collections.abc import Callable, Generator, Iterable
from itertools import islice
from typing import Any

from dask.distributed import Client, Future, as_completed

WINDOW_MIN = 512  # tasks in flight at least
WINDOW_PER_THREAD = 4  # and this many per worker thread


def window_size(client: Client) -> int:
    """Tasks kept in flight on the cluster of ``client``: a few per worker thread, at least :data:`WINDOW_MIN`."""
    threads = sum(client.nthreads().values())  # type: ignore[no-untyped-call]  # distributed has no annotations
    return max(WINDOW_MIN, WINDOW_PER_THREAD * threads)


Call = tuple[tuple[Any, ...], dict[str, Any]]  # the positional and keyword arguments of one task


def bounded(client: Client, function: Callable[..., Any], calls: Iterable[Call],
            window: int, **options: Any) -> Generator[Future[Any]]:
    """Each future of ``function(*args, **kwargs)`` for ``calls``, as it completes, with at most ``window`` in
    flight; ``options`` go to ``client.submit``. Closing the iterator early (an exception in the caller's loop,
    Ctrl-C included) cancels the futures still in flight."""
    pending = iter(calls)

    def submit(call: Call) -> Future[Any]:
        return client.submit(function, *call[0], **call[1], **options)

    first = [submit(call) for call in islice(pending, window)]
    flight = as_completed(first)  # type: ignore[no-untyped-call]  # distributed has no annotations
    try:
        for future in flight:
            if (call := next(pending, None)) is not None:
                flight.add(submit(call))  # type: ignore[no-untyped-call]  # distributed has no annotations
            yield future
    finally:
        if flight.futures:
            client.cancel(list(flight.futures))  # type: ignore[no-untyped-call]  # distributed has no annotations
