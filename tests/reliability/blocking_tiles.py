"""``msc-france`` whose tiles stage runs :func:`dask_faults.process_shard_blocking_after` in place of
``process_shard``: ``python -m tests.reliability.blocking_tiles MARKER RUNS tiles ...`` (the Ctrl-C test
needs a run that is still busy after some shards are complete)."""

from __future__ import annotations

import functools
import sys

from msc_france.cli import main
from msc_france.tiles import run as tiles_run
from tests.reliability import dask_faults

if __name__ == "__main__":
    marker, runs, *command = sys.argv[1:]
    tiles_run.process_shard = functools.partial(dask_faults.process_shard_blocking_after, marker=marker,
                                                runs=int(runs))
    sys.argv = ["msc-france", *command]
    main()
