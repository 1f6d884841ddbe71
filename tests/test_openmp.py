"""The msc-france command makes OpenMP threads spin briefly before torch loads (msc_france/openmp.py)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

POLICY_AFTER_MAIN = """
import os, sys
from msc_france import cli
assert "torch" not in sys.modules, "the command module loaded torch before main() could set the policy"
sys.argv = ["msc-france", "--help"]
try:
    cli.main()
except SystemExit:
    pass
print(os.environ.get("GOMP_SPINCOUNT"), os.environ.get("OMP_WAIT_POLICY"))
"""


@pytest.mark.parametrize(("given", "expected"), [({}, "1000 None"), ({"GOMP_SPINCOUNT": "5"}, "5 None"),
                                                  ({"OMP_WAIT_POLICY": "ACTIVE"}, "None ACTIVE")])
def test_the_command_sets_a_short_spin_before_torch_unless_the_user_chose(given: dict[str, str],
                                                                          expected: str) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("GOMP_SPINCOUNT", "OMP_WAIT_POLICY")} | given
    done = subprocess.run([sys.executable, "-c", POLICY_AFTER_MAIN], env=env, capture_output=True, text=True,
                          check=False, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1] == expected
