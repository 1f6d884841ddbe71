"""What the device decides for a training run, in one place: autocast dtype, fused AdamW, pinned
memory, TF32 and the process-group backend."""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass

import torch

from msc_france.pretrain.config import RuntimeConfig


@dataclass(frozen=True)
class RuntimeChoices:
    autocast_dtype: torch.dtype | None  # None: full fp32
    fused_adamw: bool
    pin_memory: bool
    tf32: bool
    backend: str  # torch.distributed backend

    def autocast(self, device: torch.device) -> AbstractContextManager[object]:
        """The forward's autocast context for ``device`` (nothing when fp32)."""
        if self.autocast_dtype is None:
            return nullcontext()
        return torch.autocast(device.type, dtype=self.autocast_dtype)


def cuda_bf16() -> bool:
    """Whether the CUDA device computes in bf16 (compute capability 8.0 or later: Ampere, Hopper)."""
    return torch.cuda.is_available() and torch.cuda.is_bf16_supported()


def runtime_choices(device: torch.device, runtime: RuntimeConfig) -> RuntimeChoices:
    """The choices for ``device``: ``runtime.bf16`` autocasts on a CUDA device that has bf16 (one
    without, before Ampere, stays fp32; ``make doctor`` says so), and on CPU only with
    ``runtime.bf16_cpu`` as well (slower than fp32 on the CPU measured in docs/pretrain.md)."""
    cuda = device.type == "cuda"
    bf16 = runtime.bf16 and (cuda_bf16() if cuda else runtime.bf16_cpu)
    return RuntimeChoices(autocast_dtype=torch.bfloat16 if bf16 else None, fused_adamw=cuda, pin_memory=cuda,
                          tf32=cuda, backend="nccl" if cuda else "gloo")
