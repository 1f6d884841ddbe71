"""fp32 against bf16 autocast for one training step of a preset, alternated in one process so that both
see the same machine load; prints the median seconds per step of each, then their ratio.

    .venv/bin/python bench/pretrain_precision.py [--config pretrain-demo] [--store data/demo.zarr] [--rounds 4]

The precision comes from ``runtime_choices`` (``runtime.bf16_cpu`` on CPU), as in the trainer.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch
from torch.utils.data import DataLoader

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from msc_france.pretrain.augment import MultiCrop
from msc_france.pretrain.config import load_pretrain_config
from msc_france.pretrain.dataset import TileDataset
from msc_france.pretrain.meta_arch import XStars
from msc_france.pretrain.runtime import RuntimeChoices, runtime_choices
from msc_france.pretrain.trainer import _bands, _param_groups


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="pretrain-demo")
    parser.add_argument("--store", default="data/demo.zarr")
    parser.add_argument("--rounds", type=int, default=4, help="rounds of 3 steps per precision; the first is warm-up")
    args = parser.parse_args()
    if not Path(args.store).exists():
        sys.exit(f"no store at {args.store}: run `make download region=demo catalog=demo` and `make tiles recipe=demo`")
    config = load_pretrain_config(args.config)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    tiles = TileDataset(args.store, _bands(config), config.data.split, config.data.min_valid)
    batch = {s: t.to(device) for s, t in next(iter(DataLoader(tiles, batch_size=config.optim.batch_size))).items()}
    augment = MultiCrop(config.crops)
    runs: dict[str, tuple[XStars, torch.optim.Optimizer, RuntimeChoices]] = {}
    for name, bf16 in (("fp32", False), ("bf16", True)):
        torch.manual_seed(0)
        model = XStars(config, dict.fromkeys(tiles.sensors, 3)).to(device).train()
        runtime = config.runtime.model_copy(update={"bf16": bf16, "bf16_cpu": bf16})
        runs[name] = (model, torch.optim.AdamW(_param_groups(model), lr=1e-4), runtime_choices(device, runtime))
    times: dict[str, list[float]] = {name: [] for name in runs}
    for round_ in range(args.rounds):
        for name, (model, optimizer, choices) in runs.items():
            for i in range(3):
                views = augment(batch, seed=i, dino_sensor=tiles.sensors[0], msad_sensors=list(tiles.sensors))
                start = time.perf_counter()
                with choices.autocast(device):
                    loss = model(views, 0.04)["loss"]
                loss.backward()
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)
                model.update_teacher(0.996)
                if device.type == "cuda":
                    torch.cuda.synchronize(device)
                if round_:
                    times[name].append(time.perf_counter() - start)
    medians = {name: statistics.median(values) for name, values in times.items()}
    for name, median in medians.items():
        print(f"{name}: {median:.3f} s/step ({config.optim.batch_size / median:.1f} images/s, median of "
              f"{len(times[name])} steps, {device})")
    print(f"ratio: bf16 / fp32 images/s: {medians['fp32'] / medians['bf16']:.2f}x")


if __name__ == "__main__":
    main()
