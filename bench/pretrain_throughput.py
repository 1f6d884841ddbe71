"""Pretraining throughput: our loop against a reference loop built the way the authors' code is, on the
same store, model and step count, in one process.

    make download region=demo catalog=demo && make tiles recipe=demo     # once: the store
    .venv/bin/python bench/pretrain_throughput.py [--config pretrain-demo] [--arch vit_small_patch16]
        [--global-size 224 --local-size 96 --local-number 8 --batch 64] [--steps 20] [--peak-tflops 989]
        [--compile] [--bf16-cpu]

- msc-france: DataLoader of Zarr chunks -> batched multi-crop and co-located views on the device ->
  X-STARS step (bf16 autocast and fused AdamW on CUDA, bf16 on CPU with --bf16-cpu, optional torch.compile);
- reference: the authors' pipeline: per-sample PIL/torchvision augmentation (RandomResizedCrop bicubic,
  flip, colour jitter, grayscale, blur, solarise) in the DataLoader workers, images resized per sensor
  for MSAD, fp16 autocast with a GradScaler on CUDA; the same model and losses.
Prints images/s, the share of step time spent waiting for data, achieved TFLOP/s (counted with
torch.utils.flop_counter on one step) and the MFU against --peak-tflops, by default the matmul peak
measured on this device (msc_france.pretrain.peak, the figure `msc-france doctor` prints); then the ratio.
"""

from __future__ import annotations

import argparse
import sys
import time
from contextlib import AbstractContextManager
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageFilter, ImageOps
from torch.utils.data import DataLoader, Dataset
from torch.utils.flop_counter import FlopCounterMode

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from msc_france.pretrain.augment import MultiCrop, Views
from msc_france.pretrain.backbone import import_timm
from msc_france.pretrain.config import PretrainConfig, load_pretrain_config
from msc_france.pretrain.dataset import TileDataset
from msc_france.pretrain.meta_arch import XStars
from msc_france.pretrain.peak import matmul_peak
from msc_france.pretrain.runtime import RuntimeChoices, runtime_choices
from msc_france.pretrain.trainer import _bands, _param_groups

import_timm()
from torchvision import transforms  # noqa: E402


def _pil_blur(image: Image.Image) -> Image.Image:
    return image.filter(ImageFilter.GaussianBlur(radius=np.random.uniform(0.1, 2.0)))


class PILMultiCrop(Dataset):
    """The reference data path: each sample's sensor images as 8-bit PIL RGB, DINO crops and per-sensor
    resized images built one sample at a time."""

    def __init__(self, tiles: TileDataset, config: PretrainConfig, dino_sensor: str) -> None:
        self.tiles, self.c, self.dino_sensor = tiles, config.crops, dino_sensor
        jitter = transforms.Compose([transforms.RandomHorizontalFlip(), transforms.RandomApply(
            [transforms.ColorJitter(0.4, 0.4, 0.2, 0.1)], p=0.8), transforms.RandomGrayscale(p=0.2)])
        norm = transforms.Compose([transforms.ToTensor(), transforms.Normalize([0.5] * 3, [0.25] * 3)])
        bicubic = transforms.InterpolationMode.BICUBIC

        def blur(p: float) -> transforms.RandomApply:
            return transforms.RandomApply([transforms.Lambda(_pil_blur)], p=p)

        solarize = transforms.RandomApply([transforms.Lambda(ImageOps.solarize)], p=0.2)
        crop = transforms.RandomResizedCrop
        self.global1 = transforms.Compose([crop(self.c.global_size, self.c.global_scale, interpolation=bicubic),
                                           jitter, blur(1.0), norm])
        self.global2 = transforms.Compose([crop(self.c.global_size, self.c.global_scale, interpolation=bicubic),
                                           jitter, blur(0.1), solarize, norm])
        self.local = transforms.Compose([crop(self.c.local_size, self.c.local_scale, interpolation=bicubic),
                                         jitter, blur(0.5), norm])
        self.resize = transforms.Compose([transforms.Resize((self.c.global_size, self.c.global_size),
                                                            interpolation=bicubic), norm])

    def __len__(self) -> int:
        return len(self.tiles)

    @staticmethod
    def _pil(image: torch.Tensor) -> Image.Image:
        scaled = ((image.numpy().transpose(1, 2, 0) * 0.25 + 0.5).clip(0, 1) * 255).astype(np.uint8)
        return Image.fromarray(scaled)

    def __getitem__(self, index: int) -> dict[str, object]:
        sample = {s: self._pil(t) for s, t in self.tiles[index].items()}
        source = sample[self.dino_sensor]
        crops = [self.global1(source), self.global2(source)] + [self.local(source) for _ in range(self.c.local_number)]
        return {"crops": crops, "aligned": {s: self.resize(im) for s, im in sample.items()}}


def _loader(dataset: Dataset, config: PretrainConfig, device: torch.device) -> DataLoader:
    workers = config.data.workers
    return DataLoader(dataset, batch_size=config.optim.batch_size, shuffle=True, drop_last=True, num_workers=workers,
                      pin_memory=device.type == "cuda", persistent_workers=workers > 0,
                      multiprocessing_context="forkserver" if workers else None)


def _cycle(loader: DataLoader):  # noqa: ANN202
    while True:
        yield from loader


def run(name: str, config: PretrainConfig, model: XStars, batches, make_views, steps: int,  # noqa: ANN001
        device: torch.device, choices: RuntimeChoices, fp16: bool, peak: float) -> float:
    optimizer = torch.optim.AdamW(_param_groups(model), lr=1e-4, fused=choices.fused_adamw or None)
    cuda = device.type == "cuda"
    autocast: AbstractContextManager[object]
    if cuda and fp16:
        autocast, scaler = torch.autocast("cuda", dtype=torch.float16), torch.amp.GradScaler("cuda")
    else:
        autocast, scaler = choices.autocast(device), None
    batch_size = config.optim.batch_size

    def step(views: Views) -> None:
        with autocast:
            loss = model(views, 0.04)["loss"]
        optimizer.zero_grad(set_to_none=True)
        if scaler is not None:
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
        else:
            loss.backward()
            optimizer.step()
        model.update_teacher(0.996)

    model.train()
    for _ in range(3):  # warm-up: workers, allocator, compilation
        step(make_views(next(batches)))
    with FlopCounterMode(display=False) as counter:
        step(make_views(next(batches)))
    flops = counter.get_total_flops()
    wait = total = 0.0
    if cuda:
        torch.cuda.synchronize()
    for _ in range(steps):
        start = time.perf_counter()
        batch = next(batches)
        arrived = time.perf_counter()
        step(make_views(batch))
        if cuda:
            torch.cuda.synchronize()
        wait += arrived - start
        total += time.perf_counter() - start
    rate = steps * batch_size / total
    tflops = flops * steps / total / 1e12
    print(f"{name:12s} {rate:8.1f} images/s   data wait {100 * wait / total:5.1f} %   {tflops:7.3f} TFLOP/s, "
          f"MFU {100 * tflops / peak:.1f} %")
    return rate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="pretrain-demo")
    parser.add_argument("--store", default="data/demo.zarr")
    parser.add_argument("--arch")
    parser.add_argument("--global-size", type=int)
    parser.add_argument("--local-size", type=int)
    parser.add_argument("--local-number", type=int)
    parser.add_argument("--batch", type=int)
    parser.add_argument("--workers", type=int)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--compile", action="store_true")
    parser.add_argument("--bf16-cpu", action="store_true", help="our loop with bf16 autocast on CPU too")
    parser.add_argument("--peak-tflops", type=float, help="the device's dense bf16 peak, for MFU (H100 SXM: 989); "
                        "default: the measured matmul peak")
    args = parser.parse_args()
    config = load_pretrain_config(args.config)
    model_update = {"arch": args.arch} if args.arch else {}
    crops_update = {k: v for k, v in (("global_size", args.global_size), ("local_size", args.local_size),
                                      ("local_number", args.local_number)) if v is not None}
    optim_update = {"batch_size": args.batch} if args.batch else {}
    data_update = {"workers": args.workers} if args.workers is not None else {}
    config = PretrainConfig.model_validate({**config.model_dump(),
                                            "model": {**config.model.model_dump(), **model_update},
                                            "crops": {**config.crops.model_dump(), **crops_update},
                                            "optim": {**config.optim.model_dump(), **optim_update},
                                            "data": {**config.data.model_dump(), **data_update}})
    if not Path(args.store).exists():
        sys.exit(f"no store at {args.store}: run `make download region=demo catalog=demo` and `make tiles recipe=demo`")
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    peak = args.peak_tflops
    if peak is None:
        measured = matmul_peak(device)
        peak = measured.tflops
        print(f"matmul peak {peak:.3f} TFLOP/s (measured, {measured.dtype}, n={measured.size})")
    tiles = TileDataset(args.store, _bands(config), config.data.split, config.data.min_valid)
    sensors, dino_sensor = list(tiles.sensors), tiles.sensors[0]
    print(f"{config.model.arch}, {config.crops.global_size}/{config.crops.local_size} px crops, 2 global + "
          f"{config.crops.local_number} local, MSAD over {', '.join(sensors)}, batch {config.optim.batch_size}, "
          f"{config.data.workers} loader workers, {device}; {len(tiles)} tiles")

    def fresh_model() -> XStars:
        torch.manual_seed(0)
        model = XStars(config, dict.fromkeys(sensors, 3)).to(device)
        if args.compile:
            model.student.backbone.compile()
            model.teacher.backbone.compile()
        return model

    runtime = config.runtime.model_copy(update={"bf16_cpu": args.bf16_cpu})  # our loop's precision
    augment = MultiCrop(config.crops)
    counter = iter(range(10**9))

    def ours_views(batch: dict[str, torch.Tensor]) -> Views:
        batch = {s: t.to(device, non_blocking=True) for s, t in batch.items()}
        return augment(batch, seed=next(counter), dino_sensor=dino_sensor, msad_sensors=sensors)

    def reference_views(batch: dict[str, object]) -> Views:
        crops = [c.to(device, non_blocking=True) for c in batch["crops"]]
        locals_ = torch.cat(crops[2:]) if len(crops) > 2 else None
        return Views(dino_sensor, torch.cat(crops[:2]), locals_,
                     {s: t.to(device, non_blocking=True) for s, t in batch["aligned"].items()})

    ours = run("msc-france", config, fresh_model(), _cycle(_loader(tiles, config, device)), ours_views,
               args.steps, device, runtime_choices(device, runtime), fp16=False, peak=peak)
    reference_model = fresh_model()
    reference_batches = _cycle(_loader(PILMultiCrop(tiles, config, dino_sensor), config, device))
    reference = run("reference", config, reference_model, reference_batches,
                    reference_views, args.steps, device, runtime_choices(device, config.runtime), fp16=True, peak=peak)
    print(f"ratio: msc-france is {ours / reference:.2f}x the reference loop's images/s")


if __name__ == "__main__":
    main()
