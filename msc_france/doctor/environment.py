"""The doctor's checks of the machine itself: torch, CUDA and driver, GPUs, bf16, the matmul peak."""

from __future__ import annotations

import platform
import shutil
import subprocess

import torch

from msc_france.doctor.record import Check
from msc_france.pretrain.peak import matmul_peak
from msc_france.pretrain.runtime import cuda_bf16

GPU_HINT = "on a GPU machine install a CUDA build of torch (README, GPU users)"


def check_torch() -> Check:
    return Check("torch", "OK", f"torch {torch.__version__}, Python {platform.python_version()}")


def _driver() -> str:
    """The NVIDIA driver version from ``nvidia-smi``, or why it is unknown."""
    if shutil.which("nvidia-smi") is None:
        return "unknown (no nvidia-smi)"
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=30, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return "unknown (nvidia-smi failed)"
    return out.strip().splitlines()[0] if out.strip() else "unknown"


def check_cuda() -> Check:
    if torch.cuda.is_available():
        return Check("CUDA", "OK", f"CUDA {torch.version.cuda}, driver {_driver()}")
    build = "a CPU build of torch" if torch.version.cuda is None else f"CUDA {torch.version.cuda} build, no GPU seen"
    return Check("CUDA", "WARN", f"none ({build}): training runs on CPU; {GPU_HINT}")


def check_gpus() -> Check:
    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if not count:
        return Check("GPUs", "WARN", f"none; {GPU_HINT}")
    gpus = [torch.cuda.get_device_properties(i) for i in range(count)]
    return Check("GPUs", "OK", "; ".join(f"{i}: {p.name}, {p.total_memory / 2**30:.1f} GiB"
                                         for i, p in enumerate(gpus)))


def check_bf16(device: torch.device) -> Check:
    """bf16 autocast on ``device``: what the trainer uses (runtime.bf16, runtime.bf16_cpu)."""
    if device.type == "cuda":
        if cuda_bf16():
            return Check("bf16", "OK", "supported on the GPU (runtime.bf16: true autocasts to it)")
        return Check("bf16", "WARN", "this GPU has no bf16 (before Ampere): training runs in fp32 here")
    try:
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = torch.ones(4, 4) @ torch.ones(4, 4)
    except RuntimeError as exc:
        return Check("bf16", "WARN", f"CPU autocast to bf16 failed ({exc}); keep runtime.bf16_cpu: false")
    if out.dtype != torch.bfloat16:
        return Check("bf16", "WARN", f"CPU autocast gave {out.dtype}, not bf16; keep runtime.bf16_cpu: false")
    return Check("bf16", "OK", "CPU autocast to bf16 works; off by default on CPU (often slower than fp32), "
                               "runtime.bf16_cpu: true opts in")


def check_peak(device: torch.device) -> Check:
    """The measured matmul peak, the denominator of MFU in bench/pretrain_throughput.py."""
    peak = matmul_peak(device)
    dtype = str(peak.dtype).removeprefix("torch.")
    return Check("matmul peak", "OK", f"{peak.tflops:.3f} TFLOP/s ({dtype}, {peak.size} x {peak.size}, on {device})")
