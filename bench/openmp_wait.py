"""OpenMP's waits: libgomp's default spin, the short spin ``msc-france`` sets (``GOMP_SPINCOUNT=1000``)
and no spin (``OMP_WAIT_POLICY=PASSIVE``), with one and with two torch processes on the machine's
cores (docs/pretrain.md, "OpenMP threads").

    .venv/bin/python bench/openmp_wait.py [--steps 8] [--rounds 2]

Each case starts fresh processes (libgomp reads its variables when it loads) that each time
``--steps`` training steps of a ViT-Tiny at the demo preset's sizes (batch 48, 64 px, AdamW) after one
warm-up step, with torch's default threads. Prints seconds and CPU seconds a step per process, the
cases alternated for ``--rounds`` rounds, then each policy's steps/s against the default spin's.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from msc_france.openmp import SPIN_COUNT

STEP = """
import json, sys, time
import torch
sys.path.insert(0, {root!r})
from msc_france.pretrain.backbone import import_timm
torch.manual_seed(0)
model = import_timm().create_model("vit_tiny_patch16_224", img_size=64, num_classes=0, dynamic_img_size=True)
optimizer = torch.optim.AdamW(model.parameters())
images = torch.randn(48, 3, 64, 64)
def step():
    model(images).sum().backward()
    optimizer.step()
    optimizer.zero_grad()
step()
wall, cpu = time.perf_counter(), time.process_time()
for _ in range({steps}):
    step()
print(json.dumps([(time.perf_counter() - wall) / {steps}, (time.process_time() - cpu) / {steps}]))
"""
POLICIES: dict[str, dict[str, str]] = {"spin": {}, "short spin": {"GOMP_SPINCOUNT": SPIN_COUNT},
                                       "passive": {"OMP_WAIT_POLICY": "PASSIVE"}}


def run_case(policy: dict[str, str], processes: int, steps: int) -> list[tuple[float, float]]:
    """(seconds, CPU seconds) a step of each of ``processes`` processes started at once, with the OpenMP
    variables ``policy`` (and no other)."""
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")} | policy
    code = STEP.format(root=str(Path(__file__).resolve().parents[1]), steps=steps)
    started = [subprocess.Popen([sys.executable, "-c", code], env=env, stdout=subprocess.PIPE, text=True)
               for _ in range(processes)]
    out = []
    for proc in started:
        stdout, _ = proc.communicate()
        if proc.returncode != 0:
            sys.exit(f"a step process failed (exit {proc.returncode})")
        wall, cpu = json.loads(stdout.strip().splitlines()[-1])
        out.append((wall, cpu))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    console = Console(width=max(Console().width, 120))
    results: dict[tuple[str, int], list[tuple[float, float]]] = {}
    load = [os.getloadavg()[0]]
    for _ in range(args.rounds):
        for processes in (1, 2):
            for name, policy in POLICIES.items():
                results.setdefault((name, processes), []).extend(run_case(policy, processes, args.steps))
                load.append(os.getloadavg()[0])
    table = Table(title=f"OpenMP wait policy: ViT-Tiny steps, {os.cpu_count()} cores, "
                        f"load average {min(load):.1f}-{max(load):.1f}")
    for column in ("policy", "processes at once", "s/step (median)", "CPU s/step (median)", "every run, s/step"):
        table.add_column(column, justify="left" if column == "policy" else "right")
    for (name, processes), runs in results.items():
        table.add_row(name, str(processes), f"{statistics.median(w for w, _ in runs):.3f}",
                      f"{statistics.median(c for _, c in runs):.3f}", ", ".join(f"{w:.2f}" for w, _ in runs))
    console.print(table)
    for processes in (1, 2):
        spin = statistics.median(w for w, _ in results["spin", processes])
        console.print(f"{processes} process{'es' if processes > 1 else ''} at once, steps/s against the default spin: "
                      + ", ".join(f"{name} {spin / statistics.median(w for w, _ in results[name, processes]):.2f}x"
                                  for name in POLICIES if name != "spin"))


if __name__ == "__main__":
    main()
