"""FLOPs of one pretraining step a sample, per architecture, counted on CPU without a store or a GPU.

    .venv/bin/python bench/pretrain_flops.py [ARCH ...] [--config pretrain-msc-france] [--batch 2]

One training step (forward and backward, the preset's crops, DINO on the first sensor and MSAD over
all of them) on random images, counted by torch.utils.flop_counter, as bench/pretrain_throughput.py
counts its MFU. The FLOPs depend on the crop sizes only (every view is cut to them), so each sensor's
input is a square of the global crop size. The figure msc_france/throughput.py's estimate uses and the
basis of the images/s to expect on a GPU at a given MFU (docs/pretrain.md).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.pretrain_throughput import step_flops
from msc_france.pretrain.augment import MultiCrop
from msc_france.pretrain.config import PretrainConfig, load_pretrain_config
from msc_france.pretrain.meta_arch import XStars
from msc_france.pretrain.runtime import runtime_choices
from msc_france.pretrain.trainer import _bands


def gflop_a_sample(config: PretrainConfig, batch_size: int) -> float:
    """GFLOP of one training step of ``config``'s model a sample, on CPU."""
    if config.model.mode != "rgb":
        sys.exit("a multispectral model takes its bands from a store: count it with bench/pretrain_throughput.py "
                 "--store STORE (it prints the GFLOP a sample)")
    in_chans = {s: len(bands) for s, bands in _bands(config).items() if bands is not None}
    size = config.crops.global_size
    generator = torch.Generator().manual_seed(0)
    images = {s: torch.rand(batch_size, c, size, size, generator=generator) for s, c in in_chans.items()}
    sensors = list(in_chans)
    views = MultiCrop(config.crops)(images, seed=0, dino_sensor=sensors[0], msad_sensors=sensors)
    torch.manual_seed(0)
    cpu = torch.device("cpu")
    flops = step_flops(XStars(config, in_chans), views, runtime_choices(cpu, config.runtime), cpu)
    return flops / batch_size / 1e9


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("arch", nargs="*", help="timm architectures (default: the preset's)")
    parser.add_argument("--config", default="pretrain-msc-france")
    parser.add_argument("--batch", type=int, default=2, help="samples of the counted step (the count is per sample)")
    args = parser.parse_args()
    base = load_pretrain_config(args.config)
    c = base.crops
    print(f"{args.config}: {c.global_size}/{c.local_size} px crops, 2 global + {c.local_number} local, "
          f"MSAD over {', '.join(base.data.sensors)} ({base.loss.msad_mode})")
    for arch in args.arch or [base.model.arch]:
        config = base.model_copy(update={"model": base.model.model_copy(update={"arch": arch})})
        print(f"{arch:22s} {gflop_a_sample(config, args.batch):8.1f} GFLOP a sample a step (forward and backward)",
              flush=True)


if __name__ == "__main__":
    main()
