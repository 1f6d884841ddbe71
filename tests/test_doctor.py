"""``msc-france doctor`` on CPU: every line printed, compile and the gloo all-reduce really run, the store's
read rate measured; failing checks say what to fix, and the probes give up at their timeout."""

from __future__ import annotations

import multiprocessing
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from msc_france.cli import app
from msc_france.doctor.probes import check_all_reduce, check_compile
from msc_france.doctor.record import Check
from msc_france.doctor.run import failed
from msc_france.doctor.storage import check_data_folder, check_store_read
from msc_france.pretrain.config import RuntimeConfig
from msc_france.pretrain.runtime import runtime_choices

NAMES = ("torch", "CUDA", "GPUs", "bf16", "torch.compile", "gloo all-reduce", "data folder", "store read",
         "matmul peak")
CPU = torch.device("cpu")


def row(output: str, name: str) -> str:
    """The first line of the report's row for ``name``."""
    found = [line for line in output.splitlines() if line.startswith(f"│ {name} ")]
    assert found, f"no {name} row in:\n{output}"
    return found[0]


@pytest.fixture(scope="module")
def report(tile_store: str, tmp_path_factory: pytest.TempPathFactory) -> tuple[int, str]:
    data = tmp_path_factory.mktemp("doctor")
    result = CliRunner().invoke(app, ["doctor", "--data", str(data), "--store", tile_store])
    return result.exit_code, result.output


def test_doctor_prints_every_line_and_passes_on_this_cpu(report: tuple[int, str]) -> None:
    code, output = report
    for name in NAMES:
        assert row(output, name)
    assert "FAIL" not in output and code == 0, output
    assert "OK" in row(output, "torch.compile") and "matched eager" in output
    assert "OK" in row(output, "gloo all-reduce") and "2 processes on cpu agreed" in output
    assert "WARN" in row(output, "CUDA")  # a CPU machine: said, not failed


def test_doctor_measures_the_store_and_the_matmul_peak(report: tuple[int, str]) -> None:
    _, output = report
    store_row, peak_row = row(output, "store read"), row(output, "matmul peak")
    assert "OK" in store_row and "samples/s" in store_row
    rate = float(store_row.split("samples/s")[0].split()[-1])
    assert rate > 0
    assert "OK" in peak_row and float(peak_row.split("TFLOP/s")[0].split()[-1]) > 0


def test_a_data_folder_that_cannot_be_used_fails_with_what_to_fix(tmp_path: Path) -> None:
    a_file = tmp_path / "data.txt"
    a_file.write_text("not a folder")
    check = check_data_folder(a_file)
    assert check.status == "FAIL" and "give --data a folder" in check.detail
    below = check_data_folder(a_file / "data")
    assert below.status == "FAIL" and "cannot be created" in below.detail
    assert failed([Check("torch", "OK", ""), check])
    assert not failed([Check("torch", "OK", ""), Check("CUDA", "WARN", "")])  # warnings exit 0
    missing = check_data_folder(tmp_path / "new")
    assert missing.status == "WARN" and "mkdir -p" in missing.detail and not (tmp_path / "new").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data.txt"]  # nothing written beside


def test_a_failing_check_makes_the_command_exit_non_zero(tmp_path: Path) -> None:
    a_file = tmp_path / "data.txt"
    a_file.write_text("not a folder")
    result = CliRunner().invoke(app, ["doctor", "--data", str(a_file)])
    assert result.exit_code == 1
    assert "FAIL" in row(result.output, "data folder") and "give --data a folder" in result.output


def test_without_a_store_the_read_line_says_none_was_found(tmp_path: Path) -> None:
    check = check_store_read(tmp_path, None)
    assert check.status == "WARN" and "no tile store found" in check.detail


def test_probes_give_up_at_their_timeout_and_leave_no_process() -> None:
    before = {p.pid for p in multiprocessing.active_children()}  # other tests' Dask workers may be alive
    compiled = check_compile(CPU, timeout_s=0.01)
    assert compiled.status == "FAIL" and "no answer in" in compiled.detail
    reduced = check_all_reduce(CPU, runtime_choices(CPU, RuntimeConfig()), timeout_s=0.5)
    assert reduced.status == "FAIL" and "no answer from 2 processes" in reduced.detail
    assert {p.pid for p in multiprocessing.active_children()} <= before, "the probes' processes are gone"
