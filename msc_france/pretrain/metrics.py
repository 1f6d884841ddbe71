"""Training logs: JSON lines and CSV of per-step metrics, TensorBoard events, and a PNG of the curves."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from msc_france.store.atomic import atomic_write

CURVES = ("loss", "dino", "msad", "lr", "images_per_s", "data_wait")


class MetricsLog:
    """Appends one record per logged step; on resume, drops records past the checkpoint's step so the
    files show one continuous run."""

    def __init__(self, folder: Path, resume_step: int | None, tensorboard: bool = True) -> None:
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        self.jsonl = folder / "metrics.jsonl"
        self.csv = folder / "metrics.csv"
        kept = [r for r in self.records() if resume_step is not None and r["step"] <= resume_step]
        # Whole or not at all: a kill here leaves the old files, which the next resume cuts the same way.
        atomic_write(self.jsonl, "".join(json.dumps(r) + "\n" for r in kept))
        atomic_write(self.csv, _csv_text(kept))
        self.writer = None
        if tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(str(folder / "tensorboard"), purge_step=(resume_step or 0) + 1)

    def records(self) -> list[dict[str, Any]]:
        if not self.jsonl.exists():
            return []
        records = []
        for line in self.jsonl.read_text().splitlines():
            try:
                records.append(json.loads(line))
            except ValueError:  # empty, or torn by a kill or a full disk: past the checkpoint anyway
                continue
        return records

    def _append_csv(self, record: dict[str, Any]) -> None:
        header = not self.csv.stat().st_size
        with self.csv.open("a", newline="") as handle:
            handle.write(_csv_text([record], header))

    def log(self, record: dict[str, Any]) -> None:
        with self.jsonl.open("a") as handle:
            handle.write(json.dumps(record) + "\n")
        self._append_csv(record)
        if self.writer is not None:
            for key, value in record.items():
                if key not in ("step", "epoch") and isinstance(value, (int, float)):
                    self.writer.add_scalar(f"train/{key}", value, record["step"])

    def close(self) -> Path:
        """Flush TensorBoard and draw ``curves.png``."""
        if self.writer is not None:
            self.writer.close()
        return plot_curves(self.records(), self.folder / "curves.png")


def _csv_text(records: list[dict[str, Any]], header: bool = True) -> str:
    """``records`` as CSV rows, each in its own keys' order, after a header of the first one's keys
    if ``header``: the same text whether written at once or appended one by one."""
    out = io.StringIO()
    for n, record in enumerate(records):
        writer = csv.DictWriter(out, fieldnames=list(record), extrasaction="ignore")
        if header and n == 0:
            writer.writeheader()
        writer.writerow(record)
    return out.getvalue()


def plot_curves(records: list[dict[str, Any]], path: Path) -> Path:
    shown = [k for k in CURVES if any(k in r for r in records)]
    fig = Figure(figsize=(3.2 * max(len(shown), 1), 2.8))  # the Agg canvas, never pyplot: no backend switch
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, max(len(shown), 1), squeeze=False)
    steps = [r["step"] for r in records]
    for ax, key in zip(axes[0], shown, strict=False):  # one empty panel when nothing is shown
        ax.plot(steps, [r.get(key, float("nan")) for r in records], lw=1.2)
        ax.set_title(key)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return path
