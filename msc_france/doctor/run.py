"""Run every doctor check and lay the report out as one table."""

from __future__ import annotations

from pathlib import Path

import torch
from rich.table import Table

from msc_france.doctor.environment import check_bf16, check_cuda, check_gpus, check_peak, check_torch
from msc_france.doctor.probes import check_all_reduce, check_compile
from msc_france.doctor.record import Check
from msc_france.doctor.storage import check_data_folder, check_store_read
from msc_france.pretrain.config import RuntimeConfig
from msc_france.pretrain.runtime import runtime_choices

STYLE = {"OK": "green", "WARN": "yellow", "FAIL": "bold red"}


def run_doctor(data: Path, store: str | None) -> list[Check]:
    """Every check, in the order of the report, on the device training would pick (``device: auto``)."""
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    choices = runtime_choices(device, RuntimeConfig())
    return [check_torch(), check_cuda(), check_gpus(), check_bf16(device), check_compile(device),
            check_all_reduce(device, choices), check_data_folder(data), check_store_read(data, store),
            check_peak(device)]


def failed(checks: list[Check]) -> bool:
    """True when a required check failed (warnings do not count)."""
    return any(c.status == "FAIL" for c in checks)


def doctor_table(checks: list[Check]) -> Table:
    table = Table(title="msc-france doctor")
    for column in ("check", "status", "found / what to do"):
        table.add_column(column)
    for check in checks:
        table.add_row(check.name, f"[{STYLE[check.status]}]{check.status}[/]", check.detail)
    return table
