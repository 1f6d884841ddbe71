"""The device's measured matrix-multiply peak, the denominator of MFU (bench/pretrain_throughput.py and
``msc-france doctor``)."""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch

from msc_france.pretrain.config import RuntimeConfig
from msc_france.pretrain.runtime import runtime_choices


@dataclass(frozen=True)
class MatmulPeak:
    tflops: float
    dtype: torch.dtype
    size: int


def peak_dtype(device: torch.device) -> torch.dtype:
    """What a default run computes in on ``device``: bf16 on CUDA, fp32 on CPU."""
    return runtime_choices(device, RuntimeConfig()).autocast_dtype or torch.float32


def matmul_peak(device: torch.device, dtype: torch.dtype | None = None, size: int | None = None,
                repeat: int = 5) -> MatmulPeak:
    """The best of ``repeat`` timings of a square ``size`` x ``size`` matmul (8192 on CUDA, 1024 on CPU),
    in TFLOP/s (2 n^3 operations each)."""
    dtype = dtype or peak_dtype(device)
    n = size or (8192 if device.type == "cuda" else 1024)
    a = torch.randn(n, n, device=device).to(dtype)
    b = torch.randn(n, n, device=device).to(dtype)
    inner = 10 if device.type == "cuda" else 2

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    torch.mm(a, b)  # warm-up: kernels, allocator, threads
    sync()
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        for _ in range(inner):
            torch.mm(a, b)
        sync()
        best = min(best, (time.perf_counter() - start) / inner)
    return MatmulPeak(2 * n**3 / best / 1e12, dtype, n)
