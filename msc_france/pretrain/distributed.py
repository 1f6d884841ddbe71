"""Process-group set-up for ``torchrun`` (one process per GPU, or gloo on CPU) and small helpers."""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from msc_france.pretrain.config import RuntimeConfig
from msc_france.pretrain.runtime import RuntimeChoices, runtime_choices


@dataclass(frozen=True)
class Process:
    rank: int
    world: int
    local_rank: int
    device: torch.device
    choices: RuntimeChoices

    @property
    def main(self) -> bool:
        return self.rank == 0


def setup(runtime: RuntimeConfig) -> Process:
    """Join the process group that ``torchrun`` describes in the environment (none when run alone)."""
    device = runtime.device
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    use_cuda = device == "cuda" or (device == "auto" and torch.cuda.is_available())
    if use_cuda:
        torch.cuda.set_device(local_rank)
    target = torch.device("cuda", local_rank) if use_cuda else torch.device("cpu")
    choices = runtime_choices(target, runtime)
    if world > 1 and not dist.is_initialized():
        dist.init_process_group(choices.backend)
    return Process(rank, world, local_rank, target, choices)


def teardown() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def mean_across(values: dict[str, float], device: torch.device) -> dict[str, float]:
    """The mean of each value over all processes (logging only)."""
    if not (dist.is_available() and dist.is_initialized()):
        return values
    keys = sorted(values)
    tensor = torch.tensor([values[k] for k in keys], device=device, dtype=torch.float64)
    dist.all_reduce(tensor)
    return {k: float(v) / dist.get_world_size() for k, v in zip(keys, tensor.tolist(), strict=True)}
