"""Importing the package changes nothing around it: no plotting backend switched (a notebook keeps
its own), and evaluation does not pull in the trainer."""

from __future__ import annotations

import os
import subprocess
import sys

PROBE = """
import sys, matplotlib
import msc_france.eval.run
trainer_by_eval = "msc_france.pretrain.trainer" in sys.modules
import msc_france.pretrain.trainer, msc_france.pretrain.metrics, msc_france.quicklook
print(matplotlib.get_backend(), trainer_by_eval)
"""


def test_imports_keep_the_plotting_backend_and_eval_stays_off_the_trainer() -> None:
    env = {**os.environ, "MPLBACKEND": "svg"}  # what a notebook or a user's rc would have chosen
    result = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, env=env, timeout=300,
                            check=False)
    assert result.returncode == 0, result.stderr
    backend, trainer_by_eval = result.stdout.split()
    assert backend == "svg", "the trainer's metrics must draw on an Agg canvas, not switch pyplot's backend"
    assert trainer_by_eval == "False"
