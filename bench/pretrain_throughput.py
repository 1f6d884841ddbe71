"""Pretraining throughput: our loop against a reference loop built the way the authors' code is, on the
same store, model and step count, in one process; for several architectures, with torch.compile off and on.

    make download region=demo catalog=demo && make tiles recipe=demo     # once: the store
    .venv/bin/python bench/pretrain_throughput.py [--config pretrain-demo] [--store data/demo.zarr]
        [--arch vit_small_patch16 vit_base_patch16] [--compile off on] [--global-size 224 --local-size 96
        --local-number 8 --batch 64] [--workers N] [--prefetch N] [--tile-repeat K] [--steps 10] [--peak-tflops 989]
        [--bf16-cpu] [--profile DIR [--profile-steps 3]]

- msc-france: DataLoader of Zarr chunks as stored (the trainer's ``collate_tiles``) -> normalised,
  batched multi-crop and co-located views on the device -> X-STARS step (bf16 autocast, TF32 and
  fused AdamW on CUDA, bf16 on CPU with --bf16-cpu), with the backbones compiled in place as the
  trainer does (``--compile on``) or not;
- reference: the authors' pipeline: per-sample PIL/torchvision augmentation (RandomResizedCrop bicubic,
  flip, colour jitter, grayscale, blur, solarise) in the DataLoader workers, images resized per sensor
  for MSAD, fp16 autocast with a GradScaler on CUDA, no compile; the same model and losses.
Per architecture: our loop eager, the reference, then our loop compiled (as ``--compile`` asks). Each
run: 3 warm-up steps (workers, allocator, compilation), then ``--steps`` timed steps, each synchronised.
Prints images/s, the share of step time spent waiting for the loader, achieved TFLOP/s (the model's
FLOPs, counted with torch.utils.flop_counter on one eager step of the architecture; the on-device
augmentation is not counted) and the MFU against --peak-tflops, by default the matmul peak measured on
this device (msc_france.pretrain.peak, the figure `msc-france doctor` prints), the peak CUDA memory
allocated in the timed steps; then a summary table and the ratios to the reference. ``--tile-repeat K``
shows each tile K times an epoch, so that a small store (16 tiles of the msc-france recipe) fills batches
of 64.
``--profile DIR``: after the timed steps of each run, ``--profile-steps`` more under torch.profiler, the
loader wait, the views and the step marked: DIR/LABEL.json.gz (a Chrome trace: chrome://tracing or
Perfetto) and DIR/LABEL.txt, the ops by self device time (self CPU time on CPU), whose top is printed.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageFilter, ImageOps
from torch.profiler import ProfilerActivity, profile, record_function
from torch.utils.data import DataLoader, Dataset
from torch.utils.flop_counter import FlopCounterMode

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from msc_france.pretrain.augment import MultiCrop, Views
from msc_france.pretrain.backbone import import_timm
from msc_france.pretrain.config import PretrainConfig, load_pretrain_config
from msc_france.pretrain.dataset import TileBatch, TileDataset, collate_tiles
from msc_france.pretrain.meta_arch import XStars
from msc_france.pretrain.peak import matmul_peak
from msc_france.pretrain.runtime import RuntimeChoices, runtime_choices
from msc_france.pretrain.trainer import _bands, _param_groups

import_timm()
from torchvision import transforms  # noqa: E402

WARMUP = 3  # steps before the timed ones: workers, allocator, compilation
PRINTED_OPS = 15  # rows of a profile's table printed (the file keeps 40)


def _pil_blur(image: Image.Image) -> Image.Image:
    return image.filter(ImageFilter.GaussianBlur(radius=np.random.uniform(0.1, 2.0)))


class PILMultiCrop(Dataset):
    """The reference data path: each sample's sensor images as 8-bit PIL RGB, DINO crops and per-sensor
    resized images built one sample at a time."""

    def __init__(self, tiles: Repeated, config: PretrainConfig, dino_sensor: str) -> None:
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


class Repeated(Dataset[dict[str, torch.Tensor]]):
    """``tiles`` ``times`` over in one epoch (index modulo its length), batch reads included."""

    def __init__(self, tiles: TileDataset, times: int) -> None:
        self.tiles, self.times = tiles, times

    def __len__(self) -> int:
        return len(self.tiles) * self.times

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return self.tiles[index % len(self.tiles)]

    def __getitems__(self, indices: list[int]) -> TileBatch:
        return self.tiles.__getitems__([i % len(self.tiles) for i in indices])


def _loader(dataset: Dataset[Any], config: PretrainConfig, device: torch.device,
            collate: Callable[[Any], Any] | None = None) -> DataLoader[Any]:
    workers = config.data.workers
    return DataLoader(dataset, batch_size=config.optim.batch_size, shuffle=True, drop_last=True, num_workers=workers,
                      collate_fn=collate, pin_memory=device.type == "cuda", persistent_workers=workers > 0,
                      prefetch_factor=config.data.prefetch if workers else None,
                      multiprocessing_context="forkserver" if workers else None)


def _cycle(loader: DataLoader[Any]) -> Iterator[Any]:
    while True:
        yield from loader


@dataclass(frozen=True)
class Bench:
    """What every run shares: device, timed steps, the peak for MFU, where profiles go."""

    device: torch.device
    steps: int
    peak: float  # TFLOP/s
    profile: Path | None
    profile_steps: int

    def sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)


@dataclass(frozen=True)
class Result:
    arch: str
    loop: str
    compiled: bool
    rate: float  # images/s
    wait: float  # share of the timed steps' time spent waiting for the loader
    tflops: float
    mfu: float
    memory: float | None  # GiB, peak CUDA memory allocated in the timed steps

    @property
    def label(self) -> str:
        return f"{self.arch}-{self.loop}-{'compiled' if self.compiled else 'eager'}"

    def row(self) -> str:
        memory = f"{self.memory:8.2f}" if self.memory is not None else f"{'-':>8s}"
        return (f"{self.arch:22s} {self.loop:10s} {'on' if self.compiled else 'off':7s} {self.rate:9.1f} "
                f"{100 * self.wait:6.1f} {self.tflops:8.3f} {100 * self.mfu:6.1f} {memory}")


HEADER = (f"{'arch':22s} {'loop':10s} {'compile':7s} {'images/s':>9s} {'wait %':>6s} {'TFLOP/s':>8s} "
          f"{'MFU %':>6s} {'peak GiB':>8s}")


def step_flops(model: XStars, views: Views, choices: RuntimeChoices, device: torch.device) -> int:
    """The FLOPs of one training step of ``model`` (forward and backward) on ``views``, run eagerly."""
    with FlopCounterMode(display=False) as counter:
        with choices.autocast(device):
            loss = model(views, 0.04)["loss"]
        loss.backward()
    model.zero_grad(set_to_none=True)
    return counter.get_total_flops()


def run(arch: str, loop: str, model: XStars, batches: Iterator[Any], make_views: Callable[[Any], Views],
        bench: Bench, batch_size: int, choices: RuntimeChoices, fp16: bool, compiled: bool, flops: int) -> Result:
    """Warm-up, ``bench.steps`` timed steps, then the profiled ones when ``bench.profile`` is set."""
    optimizer = torch.optim.AdamW(_param_groups(model), lr=1e-4, fused=choices.fused_adamw or None)
    cuda = bench.device.type == "cuda"
    autocast: AbstractContextManager[object]
    if cuda and fp16:
        autocast, scaler = torch.autocast("cuda", dtype=torch.float16), torch.amp.GradScaler("cuda")
    else:
        autocast, scaler = choices.autocast(bench.device), None

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
    for _ in range(WARMUP):
        step(make_views(next(batches)))
    bench.sync()
    if cuda:
        torch.cuda.reset_peak_memory_stats(bench.device)
    wait = total = 0.0
    for _ in range(bench.steps):
        start = time.perf_counter()
        batch = next(batches)
        arrived = time.perf_counter()
        step(make_views(batch))
        bench.sync()
        wait += arrived - start
        total += time.perf_counter() - start
    tflops = flops * bench.steps / total / 1e12
    result = Result(arch, loop, compiled, bench.steps * batch_size / total, wait / total, tflops, tflops / bench.peak,
                    torch.cuda.max_memory_allocated(bench.device) / 2**30 if cuda else None)
    print(f"{result.label:40s} {result.rate:8.1f} images/s   data wait {100 * result.wait:5.1f} %   "
          f"{tflops:7.3f} TFLOP/s, MFU {100 * result.mfu:.1f} %"
          + (f"   peak {result.memory:.2f} GiB" if result.memory is not None else ""), flush=True)
    if bench.profile is not None:
        profile_steps(result.label, step, batches, make_views, bench)
    return result


def profile_steps(label: str, step: Callable[[Views], None], batches: Iterator[Any],
                  make_views: Callable[[Any], Views], bench: Bench) -> None:
    """``bench.profile_steps`` steps under torch.profiler: a Chrome trace and the table of ops by self time."""
    assert bench.profile is not None
    cuda = bench.device.type == "cuda"
    with profile(activities=[ProfilerActivity.CPU, *([ProfilerActivity.CUDA] if cuda else [])]) as prof:
        for _ in range(bench.profile_steps):
            with record_function("loader wait"):
                batch = next(batches)
            with record_function("views"):
                views = make_views(batch)
            with record_function("step"):
                step(views)
            bench.sync()
    bench.profile.mkdir(parents=True, exist_ok=True)
    prof.export_chrome_trace(str(bench.profile / f"{label}.json.gz"))
    averages = prof.key_averages()
    sort = "self_device_time_total" if cuda else "self_cpu_time_total"
    (bench.profile / f"{label}.txt").write_text(averages.table(sort_by=sort, row_limit=40) + "\n")
    print(f"profile of {label}: {bench.profile / label}.json.gz, top ops by {sort}:")
    print(averages.table(sort_by=sort, row_limit=PRINTED_OPS), flush=True)


def configured(base: PretrainConfig, args: argparse.Namespace, arch: str) -> PretrainConfig:
    """``base`` with the architecture and the sizes given on the command line."""
    crops = {k: v for k, v in (("global_size", args.global_size), ("local_size", args.local_size),
                               ("local_number", args.local_number)) if v is not None}
    optim = {"batch_size": args.batch} if args.batch else {}
    data = {k: v for k, v in (("workers", args.workers), ("prefetch", args.prefetch)) if v is not None}
    return PretrainConfig.model_validate({**base.model_dump(),
                                          "model": {**base.model.model_dump(), "arch": arch},
                                          "crops": {**base.crops.model_dump(), **crops},
                                          "optim": {**base.optim.model_dump(), **optim},
                                          "data": {**base.data.model_dump(), **data}})


def bench_arch(config: PretrainConfig, args: argparse.Namespace, bench: Bench,
               compile_modes: list[bool]) -> list[Result]:
    """Our loop eager, the reference, then our loop compiled (those of ``compile_modes``), for ``config``'s arch."""
    device, arch, batch_size = bench.device, config.model.arch, config.optim.batch_size
    tiles = TileDataset(args.store, _bands(config), config.data.split, config.data.min_valid)
    stored = TileDataset(args.store, _bands(config), config.data.split, config.data.min_valid, as_stored=True)
    samples = Repeated(stored, args.tile_repeat)  # ours: DN as stored, normalised on the device, as the trainer
    to_reflectance = stored.normaliser().to(device)
    if len(samples) < batch_size:
        sys.exit(f"{len(samples)} samples an epoch ({len(tiles)} tiles x {args.tile_repeat}), fewer than one batch "
                 f"of {batch_size}: give a larger --tile-repeat, or a smaller --batch")
    sensors, dino_sensor = list(tiles.sensors), tiles.sensors[0]
    print(f"{arch}, {config.crops.global_size}/{config.crops.local_size} px crops, 2 global + "
          f"{config.crops.local_number} local, MSAD over {', '.join(sensors)}, batch {batch_size}, "
          f"{config.data.workers} loader workers (prefetch {config.data.prefetch}), {device}; "
          f"{len(tiles)} tiles x {args.tile_repeat}", flush=True)

    def fresh_model(compiled: bool) -> XStars:
        torch.manual_seed(0)
        model = XStars(config, dict.fromkeys(sensors, 3)).to(device)
        if compiled:  # as the trainer does with runtime.compile
            model.student.backbone.compile()
            model.teacher.backbone.compile()
        return model

    ours_choices = runtime_choices(device, config.runtime.model_copy(update={"bf16_cpu": args.bf16_cpu}))
    augment = MultiCrop(config.crops)
    counter = iter(range(10**9))

    def ours_views(batch: dict[str, torch.Tensor]) -> Views:
        batch = to_reflectance({s: t.to(device, non_blocking=True) for s, t in batch.items()})
        return augment(batch, seed=next(counter), dino_sensor=dino_sensor, msad_sensors=sensors)

    def reference_views(batch: dict[str, Any]) -> Views:
        crops = [c.to(device, non_blocking=True) for c in batch["crops"]]
        locals_ = torch.cat(crops[2:]) if len(crops) > 2 else None
        return Views(dino_sensor, torch.cat(crops[:2]), locals_,
                     {s: t.to(device, non_blocking=True) for s, t in batch["aligned"].items()})

    flops = step_flops(fresh_model(False), ours_views(collate_tiles(samples.__getitems__(list(range(batch_size))))),
                       ours_choices, device)
    print(f"{flops / batch_size / 1e9:.1f} GFLOP a sample a step (forward and backward)", flush=True)

    def ours(compiled: bool) -> Result:
        batches = _cycle(_loader(samples, config, device, collate_tiles))
        return run(arch, "msc-france", fresh_model(compiled), batches, ours_views, bench, batch_size, ours_choices,
                   fp16=False, compiled=compiled, flops=flops)

    def reference() -> Result:
        batches = _cycle(_loader(PILMultiCrop(Repeated(tiles, args.tile_repeat), config, dino_sensor), config, device))
        return run(arch, "reference", fresh_model(False), batches, reference_views, bench, batch_size,
                   runtime_choices(device, config.runtime), fp16=True, compiled=False, flops=flops)

    # eager first and the reference before compiling: the ratios come even if compilation runs out of time
    results = [ours(False)] if False in compile_modes else []
    results.append(reference())
    if True in compile_modes:
        results.append(ours(True))
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="pretrain-demo")
    parser.add_argument("--store", default="data/demo.zarr")
    parser.add_argument("--arch", nargs="+", help="timm architectures, one after the other (default: the preset's)")
    parser.add_argument("--global-size", type=int)
    parser.add_argument("--local-size", type=int)
    parser.add_argument("--local-number", type=int)
    parser.add_argument("--batch", type=int)
    parser.add_argument("--workers", type=int)
    parser.add_argument("--prefetch", type=int, help="batches each worker loads ahead (default: the preset's)")
    parser.add_argument("--tile-repeat", type=int, default=1, help="times each tile is seen in one epoch")
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--compile", nargs="*", choices=["off", "on"], default=["off"],
                        help="our loop's torch.compile modes, in turn (a bare --compile: on)")
    parser.add_argument("--bf16-cpu", action="store_true", help="our loop with bf16 autocast on CPU too")
    parser.add_argument("--peak-tflops", type=float, help="the device's dense bf16 peak, for MFU (H100 SXM: 989); "
                        "default: the measured matmul peak")
    parser.add_argument("--profile", type=Path, metavar="DIR", help="profile a few steps of every run into DIR")
    parser.add_argument("--profile-steps", type=int, default=3)
    args = parser.parse_args()
    base = load_pretrain_config(args.config)
    if not Path(args.store).exists():
        sys.exit(f"no store at {args.store}: run `make download region=demo catalog=demo` and `make tiles recipe=demo`")
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.type == "cuda":  # as the trainer does (runtime_choices' tf32)
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
    peak = args.peak_tflops
    if peak is None:
        measured = matmul_peak(device)
        peak = measured.tflops
        print(f"matmul peak {peak:.3f} TFLOP/s (measured, {measured.dtype}, n={measured.size})")
    bench = Bench(device, args.steps, peak, args.profile, args.profile_steps)
    compile_modes = [mode == "on" for mode in dict.fromkeys(args.compile or ["on"])]
    results = [r for arch in args.arch or [base.model.arch]
               for r in bench_arch(configured(base, args, arch), args, bench, compile_modes)]
    print(f"\nsummary ({device}, MFU against {peak:.3g} TFLOP/s)\n{HEADER}")
    for result in results:
        print(result.row())
    for arch in dict.fromkeys(r.arch for r in results):
        reference = next(r.rate for r in results if r.arch == arch and r.loop == "reference")
        ours = ", ".join(f"{r.rate / reference:.2f}x {'compiled' if r.compiled else 'eager'}"
                         for r in results if r.arch == arch and r.loop == "msc-france")
        print(f"ratio: {arch}: msc-france / reference loop images/s: {ours}")


if __name__ == "__main__":
    main()
