"""Fixtures of the reliability suite: one local Dask cluster (worker processes with nannies) shared by
the tiles runs of every module, so that each run does not pay for starting one."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from dask.distributed import LocalCluster


@pytest.fixture(scope="session")
def cluster() -> Iterator[str]:
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                      silence_logs=50) as local:
        yield local.scheduler_address
