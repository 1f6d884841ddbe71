"""The doctor's checks that run code in child processes, each bounded by a timeout: ``torch.compile`` of
a small model, and an all-reduce across all local devices (NCCL on CUDA, gloo on CPU) on loopback."""

from __future__ import annotations

import multiprocessing
import socket
import time
from datetime import timedelta
from multiprocessing.connection import Connection

import torch
import torch.distributed as dist
from torch import nn
from torch.multiprocessing.spawn import ProcessContext, start_processes

from msc_france.doctor.record import Check
from msc_france.pretrain.runtime import RuntimeChoices

COMPILE_TIMEOUT_S = 300.0  # inductor's first compile on 2 busy cores takes about 30 s
ALL_REDUCE_TIMEOUT_S = 120.0


def _last_line(exc: BaseException) -> str:
    """The last line of an error (for a child's exception re-raised by torch: the child's error line)."""
    lines = str(exc).strip().splitlines()
    return lines[-1] if lines else type(exc).__name__


def _compile_child(device: str, conn: Connection) -> None:
    """Compile a two-layer MLP, run forward and backward, compare with eager; send None or the error."""
    try:
        torch.manual_seed(0)
        model = nn.Sequential(nn.Linear(16, 32), nn.GELU(), nn.Linear(32, 4)).to(device)
        x = torch.randn(8, 16, device=device)
        eager = model(x)
        compiled = torch.compile(model)(x)
        compiled.sum().backward()
        same = torch.allclose(compiled, eager, atol=1e-4)
        conn.send(None if same else "the compiled model's output differs from eager mode")
    except Exception as exc:  # noqa: BLE001 - whatever fails is the finding, sent to the parent
        conn.send(f"{type(exc).__name__}: {_last_line(exc)}")


def check_compile(device: torch.device, timeout_s: float = COMPILE_TIMEOUT_S) -> Check:
    """``torch.compile`` (inductor) of a small model on ``device``, in a child killed after ``timeout_s``."""
    fix = "install a C++ compiler (apt-get install g++) or set runtime.compile: false"
    started = time.perf_counter()
    ctx = multiprocessing.get_context("spawn")
    parent, child = ctx.Pipe(duplex=False)
    process = ctx.Process(target=_compile_child, args=(str(device), child), daemon=True)
    process.start()
    child.close()
    try:
        if not parent.poll(timeout_s):
            process.kill()
            return Check("torch.compile", "FAIL", f"no answer in {timeout_s:.0f} s; {fix}")
        error = parent.recv()
    except EOFError:
        error = "the compiling process died"
    finally:
        process.join(10)
        parent.close()
    if error is None:
        return Check("torch.compile", "OK", f"a small model compiled (inductor) and matched eager mode on {device}, "
                                            f"{time.perf_counter() - started:.0f} s")
    return Check("torch.compile", "FAIL", f"{error}; {fix}")


def free_port() -> int:
    """A TCP port free on loopback now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _all_reduce_child(rank: int, world: int, port: int, backend: str, timeout_s: float) -> None:
    """Rank ``rank`` of ``world``: all-reduce rank + 1 and check the sum."""
    device = torch.device("cuda", rank) if backend == "nccl" else torch.device("cpu")
    if backend == "nccl":
        torch.cuda.set_device(device)
    dist.init_process_group(backend, init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world,
                            timeout=timedelta(seconds=timeout_s))
    try:
        value = torch.full((4,), float(rank + 1), device=device)
        dist.all_reduce(value)
        expected = world * (world + 1) / 2
        if not torch.all(value == expected):
            raise RuntimeError(f"rank {rank} got {value.tolist()} instead of {expected}")
    finally:
        dist.destroy_process_group()


def check_all_reduce(device: torch.device, choices: RuntimeChoices, timeout_s: float = ALL_REDUCE_TIMEOUT_S) -> Check:
    """An all-reduce over every local GPU (NCCL), or two CPU processes (gloo), started with spawn."""
    world = torch.cuda.device_count() if device.type == "cuda" else 2
    name = f"{choices.backend} all-reduce"
    fix = ("check the GPUs' interconnect and NCCL (NCCL_DEBUG=INFO shows why)" if choices.backend == "nccl"
           else "check that loopback (127.0.0.1) accepts TCP connections")
    started = time.perf_counter()
    context: ProcessContext = start_processes(  # type: ignore[no-untyped-call]  # torch leaves it unannotated
        _all_reduce_child, args=(world, free_port(), choices.backend, timeout_s), nprocs=world, join=False,
        start_method="spawn")
    try:
        while not context.join(timeout=max(0.0, timeout_s - (time.perf_counter() - started))):
            if time.perf_counter() - started >= timeout_s:
                return Check(name, "FAIL", f"no answer from {world} processes in {timeout_s:.0f} s; {fix}")
    except Exception as exc:  # noqa: BLE001 - a child's error, whatever it is, is the finding
        return Check(name, "FAIL", f"{_last_line(exc)}; {fix}")
    finally:
        for process in context.processes:
            if process.is_alive():
                process.kill()
            process.join(10)
    return Check(name, "OK", f"{world} processes on {device.type} agreed on the sum, "
                             f"{time.perf_counter() - started:.0f} s")
