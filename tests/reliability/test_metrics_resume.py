"""Metrics on resume: the lines of steps past the checkpoint and a line torn by a kill are cut, whole or
not at all, so the resumed run's files list each step once, in order, as an uninterrupted run's do."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from msc_france.pretrain import metrics
from msc_france.pretrain.metrics import MetricsLog

STEPS = 10
CHECKPOINT = 6


def _record(step: int) -> dict[str, float]:
    return {"step": step, "epoch": step // 4, "loss": 1.0 / step, "lr": 1e-3 * step}


def _run(folder: Path, steps: range, resume_step: int | None = None) -> None:
    log = MetricsLog(folder, resume_step, tensorboard=False)
    for step in steps:
        log.log(_record(step))


def _killed_run(folder: Path) -> None:
    """A run that logged past its last checkpoint, then was killed mid-line in both files."""
    _run(folder, range(1, STEPS))
    with (folder / "metrics.jsonl").open("a") as handle:
        handle.write('{"step": 10, "epoch": 2, "lo')
    with (folder / "metrics.csv").open("a") as handle:
        handle.write("10,2,0.")


def _steps(folder: Path) -> tuple[list[int], list[int]]:
    """The steps of metrics.jsonl (every line must parse) and of metrics.csv."""
    lines = (folder / "metrics.jsonl").read_text().splitlines()
    with (folder / "metrics.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    return [json.loads(line)["step"] for line in lines], [int(row["step"]) for row in rows]


def test_metrics_on_resume_list_each_step_once_in_order(tmp_path: Path) -> None:
    whole = tmp_path / "whole"
    _run(whole, range(1, STEPS + 1))
    killed = tmp_path / "killed"
    _killed_run(killed)
    assert (killed / "metrics.jsonl").read_text().count('"step": 8') == 1, "the premise: steps past the checkpoint"
    assert not (killed / "metrics.jsonl").read_text().endswith("\n"), "the premise: a torn last line"
    _run(killed, range(CHECKPOINT + 1, STEPS + 1), resume_step=CHECKPOINT)
    assert _steps(killed) == (list(range(1, STEPS + 1)), list(range(1, STEPS + 1)))
    for name in ("metrics.jsonl", "metrics.csv"):
        assert (killed / name).read_bytes() == (whole / name).read_bytes(), name


def test_a_resume_cut_while_it_trims_the_metrics_leaves_them_whole(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    _killed_run(tmp_path)
    before = {name: (tmp_path / name).read_bytes() for name in ("metrics.jsonl", "metrics.csv")}
    real = metrics.atomic_write

    def killed_at_the_csv(target: Path, content: str) -> None:
        if Path(target).name == "metrics.csv":
            raise KeyboardInterrupt  # the kill, once the JSON lines are trimmed
        real(target, content)

    with monkeypatch.context() as patched:
        patched.setattr(metrics, "atomic_write", killed_at_the_csv)
        with pytest.raises(KeyboardInterrupt):
            MetricsLog(tmp_path, CHECKPOINT, tensorboard=False)
    assert (tmp_path / "metrics.jsonl").read_bytes() != before["metrics.jsonl"], "the premise: the JSON was trimmed"
    assert (tmp_path / "metrics.csv").read_bytes() == before["metrics.csv"], "the CSV is the old one, not a part"
    assert not list(tmp_path.glob(".*.partial"))
    _run(tmp_path, range(CHECKPOINT + 1, STEPS + 1), resume_step=CHECKPOINT)
    assert _steps(tmp_path) == (list(range(1, STEPS + 1)), list(range(1, STEPS + 1)))
