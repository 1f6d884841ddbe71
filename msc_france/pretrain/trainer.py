"""The pretraining loop: data, batched augmentation on the device, X-STARS losses, AdamW with DINO's
schedules, EMA teacher, gradient accumulation and clipping, bf16 autocast, optional compile, DDP (NCCL on
CUDA, gloo on CPU), atomic checkpoints that resume exactly, logs and curves, and the exported backbone."""

from __future__ import annotations

import math
import random
import resource
import signal
import time
import traceback
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader
from tqdm import tqdm

from msc_france.errors import Interrupted, UserError
from msc_france.lock import exclusive
from msc_france.names import safe_name
from msc_france.pretrain import distributed
from msc_france.pretrain.augment import MultiCrop
from msc_france.pretrain.checkpoint import CHECKPOINT, load_checkpoint, rng_state, save_checkpoint, set_rng_state
from msc_france.pretrain.config import (
    RGB_BANDS,
    PretrainConfig,
    baseline_name,
    default_preset,
    load_pretrain_config,
    seeded_name,
)
from msc_france.pretrain.dataset import TileDataset, collate_tiles
from msc_france.pretrain.export import export_backbone
from msc_france.pretrain.meta_arch import XStars
from msc_france.pretrain.metrics import MetricsLog
from msc_france.pretrain.sampler import ResumableSampler
from msc_france.pretrain.schedules import cosine, warmup_then_constant
from msc_france.pretrain.stopping import StepBoundaryStop
from msc_france.pretrain.weights import load_initial_weights, resolve_init

WORKER_DIED = "DataLoader worker (pid"  # how torch words the death of a loader worker


@dataclass
class PretrainRequest:
    config: str | Path | None = None  # default: pretrain-<recipe of the store> (see default_preset)
    data: Path = Path("data")
    run: str | None = None
    resume: bool | Literal["auto"] = False  # "auto": resume when the run has a checkpoint
    store: str | None = None
    max_steps: int | None = None
    quiet: bool = False
    dino_only: bool = False  # the DINO-alone baseline: MSAD weight 0, run named <run>-dino
    seed: int | None = None  # runtime.seed = seed, run named <run>-seed<seed> (before any -dino)




@dataclass
class PretrainSummary:
    run_dir: Path
    steps: int
    checkpoint: Path
    export: Path | None
    curves: Path | None
    last: dict[str, float]


@dataclass
class Schedules:
    lr: np.ndarray
    weight_decay: np.ndarray
    momentum: np.ndarray
    teacher_temperature: np.ndarray


def _schedules(config: PretrainConfig, steps_per_epoch: int, world: int) -> Schedules:
    o, loss = config.optim, config.loss
    total = o.epochs * steps_per_epoch
    lr = o.base_lr * o.batch_size * o.accumulate * world / 256  # linear scaling rule
    return Schedules(
        cosine(lr, o.min_lr, total, warmup_steps=int(o.warmup_epochs * steps_per_epoch)),
        cosine(o.weight_decay, o.weight_decay_end, total),
        cosine(o.teacher_momentum, 1.0, total),
        warmup_then_constant(loss.teacher_temperature_warmup, loss.teacher_temperature, total,
                             loss.teacher_temperature_warmup_epochs * steps_per_epoch),
    )


def _param_groups(model: XStars) -> list[dict[str, Any]]:
    """Weight decay on weight matrices only (not on biases, norms, tokens or position embeddings)."""
    decay: list[torch.nn.Parameter] = []
    no_decay: list[torch.nn.Parameter] = []
    for name, param in model.student.named_parameters():
        if not param.requires_grad:
            continue
        flat = param.ndim <= 1 or name.endswith(("cls_token", "pos_embed", "reg_token"))
        (no_decay if flat else decay).append(param)
    return [{"params": decay}, {"params": no_decay, "weight_decay": 0.0}]


def _sync(ddp: DistributedDataParallel | None, boundary: bool) -> AbstractContextManager[None]:
    """DDP's ``no_sync`` on micro-steps before the last of an accumulation (gradients add up locally),
    else nothing. A new context on each call: one made by a generator cannot be entered twice."""
    if ddp is None or boundary:
        return nullcontext()
    no_sync: AbstractContextManager[None] = ddp.no_sync()
    return no_sync


def _bands(config: PretrainConfig) -> dict[str, list[str] | None]:
    return {s: list(RGB_BANDS[s]) if config.model.mode == "rgb" else None for s in config.data.sensors}


def _memory_gb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**30
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def _signature(config: PretrainConfig, in_chans: dict[str, int]) -> dict[str, Any]:
    """What must match for a checkpoint to load: the model's shape."""
    return {"model": config.model.model_dump(mode="json"), "in_chans": in_chans, "msad": config.loss.msad_weight > 0,
            "continual": config.continual is not None}


def run_pretrain(request: PretrainRequest) -> PretrainSummary:
    preset = request.config
    if preset is None:
        preset, store = default_preset(request.data, request.store)
        request = replace(request, config=preset, store=store)
    config = load_pretrain_config(preset)
    if request.max_steps is not None:
        runtime = config.runtime.model_copy(update={"max_steps": request.max_steps})
        config = config.model_copy(update={"runtime": runtime})
    if request.seed is not None:
        runtime = config.runtime.model_copy(update={"seed": request.seed})
        config = config.model_copy(update={"runtime": runtime})
        request = replace(request, run=seeded_name(request.run or config.name, request.seed))
    if request.dino_only:
        if config.continual is not None:
            raise UserError(f"preset {config.name} is a continual run: its DINO-alone baseline is not defined")
        config = config.model_copy(update={"loss": config.loss.model_copy(update={"msad_weight": 0.0})})
        request = replace(request, run=baseline_name(request.run or config.name))
    name = safe_name(request.run or config.name, "run name")
    proc = distributed.setup(config.runtime)
    try:
        # One run at a time in a run folder (the lock file is beside it); only the main process writes.
        with exclusive(request.data / "runs" / f".{name}.lock", f"run {name}") if proc.main else nullcontext():
            return _train(config, request, proc)
    finally:
        distributed.teardown()


def _train(config: PretrainConfig, request: PretrainRequest, proc: distributed.Process) -> PretrainSummary:
    rt, o = config.runtime, config.optim
    run_dir = request.data / "runs" / (request.run or config.name)
    checkpoint_path = run_dir / CHECKPOINT
    if request.resume == "auto":
        request = replace(request, resume=checkpoint_path.exists())
    if checkpoint_path.exists() and not request.resume:
        raise UserError(f"run {run_dir} already has a checkpoint: add resume=1 to continue it, or give another run=")
    if request.resume and not checkpoint_path.exists():
        raise UserError(f"nothing to resume: no checkpoint in {run_dir}")
    init = None  # on resume, the frozen copy's weights come back with the checkpoint
    if config.continual is not None and not request.resume:
        init = resolve_init(config.continual.init, request.data)  # before the data: a missing run fails at once
    random.seed(rt.seed)
    np.random.seed(rt.seed)
    torch.manual_seed(rt.seed + proc.rank)

    store = request.store or config.data.store or str(request.data / f"{config.data.recipe}.zarr")
    dataset = TileDataset(store, _bands(config), config.data.split, config.data.min_valid, as_stored=True)
    try:
        sampler = ResumableSampler(len(dataset), o.batch_size, rt.seed, proc.rank, proc.world)
    except ValueError:
        raise UserError(f"{len(dataset)} training tiles are fewer than one batch of {o.batch_size} x {proc.world} "
                        "processes: lower optim.batch_size or build more tiles") from None
    workers = config.data.workers
    loader = DataLoader(dataset, batch_size=o.batch_size, sampler=sampler, num_workers=workers, drop_last=True,
                        collate_fn=collate_tiles,
                        pin_memory=proc.choices.pin_memory, generator=torch.Generator().manual_seed(rt.seed),
                        multiprocessing_context="forkserver" if workers else None, worker_init_fn=_ignore_ctrl_c,
                        prefetch_factor=config.data.prefetch if workers else None, persistent_workers=workers > 0)
    in_chans = {s: len(dataset.stats[s].bands) for s in dataset.sensors}

    model = XStars(config, in_chans)
    if config.continual is not None:
        if init is not None:
            missing = load_initial_weights(model, init)
            if missing and proc.main:
                tqdm.write(f"continual: {len(missing)} tensors not in {init} "
                           f"(kept at their initial values), e.g. {missing[0]}")
        model.start_continual()
    model.to(proc.device)
    to_reflectance = dataset.normaliser().to(proc.device)  # the loader hands over DN as stored
    cuda = proc.device.type == "cuda"
    optimizer = torch.optim.AdamW(_param_groups(model), lr=0.0, fused=proc.choices.fused_adamw or None)

    batches_per_epoch = sampler.batches_per_epoch
    steps_per_epoch = max(1, batches_per_epoch // o.accumulate)
    sched = _schedules(config, steps_per_epoch, proc.world)
    total_steps = len(sched.lr)
    last_step = min(total_steps, rt.max_steps or total_steps)
    step, micro = 0, 0
    if request.resume:
        state = load_checkpoint(checkpoint_path, proc.device)
        if state.get("signature") != _signature(config, in_chans):
            raise UserError(f"{checkpoint_path} was made by another architecture or mode than preset "
                            f"{config.name}; start a new run= instead")
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        step, micro = int(state["step"]), int(state["micro"])
        set_rng_state(state["rng"])
    if rt.compile:
        model.student.backbone.compile()
        model.teacher.backbone.compile()
    ddp = DistributedDataParallel(model, device_ids=[proc.local_rank] if cuda else None,
                                  find_unused_parameters=config.continual is not None) if proc.world > 1 else None
    forward: torch.nn.Module = ddp if ddp is not None else model
    augment = MultiCrop(config.crops)
    dino_sensors = [config.continual.new_sensor] if config.continual else list(dataset.sensors)
    msad_sensors = sorted({s for pair in model.msad_pairs() for s in pair}) if config.loss.msad_weight > 0 else []
    autocast = proc.choices.autocast(proc.device)
    if proc.choices.tf32:
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True

    log = MetricsLog(run_dir, step if request.resume else None) if proc.main else None
    bar = tqdm(total=last_step, initial=step, unit="step", desc="pretrain", dynamic_ncols=True,
               disable=request.quiet or not proc.main)
    last: dict[str, float] = {}
    window = {"wait": 0.0, "time": 0.0, "images": 0, "loss": 0.0, "dino": 0.0, "msad": 0.0, "n": 0}
    model.train()
    saved = step if request.resume else None
    stop = StepBoundaryStop(enabled=proc.world == 1)
    stop.install()
    try:
        while step < last_step:
            epoch, start_batch = divmod(micro, batches_per_epoch)
            sampler.set_epoch(epoch, start_batch)
            tick = time.perf_counter()
            for batch in loader:
                arrived = time.perf_counter()
                batch = to_reflectance({s: t.to(proc.device, non_blocking=True) for s, t in batch.items()})
                for i, group in enumerate(optimizer.param_groups):
                    group["lr"] = float(sched.lr[step])
                    if i == 0:
                        group["weight_decay"] = float(sched.weight_decay[step])
                views = augment(batch, seed=rt.seed * 1_000_003 + micro,
                                dino_sensor=dino_sensors[micro % len(dino_sensors)], msad_sensors=msad_sensors)
                boundary = (micro + 1) % o.accumulate == 0
                with _sync(ddp, boundary), autocast:
                    out = forward(views, float(sched.teacher_temperature[step]))
                with _sync(ddp, boundary):
                    (out["loss"] / o.accumulate).backward()
                loss_value = float(out["loss"].detach())
                if not math.isfinite(loss_value):
                    raise UserError(f"the loss became {loss_value} at step {step}: lower optim.base_lr or "
                                    "raise loss.teacher_temperature_warmup_epochs, then resume=1")
                micro += 1
                for key in ("loss", "dino", "msad"):
                    window[key] += float(out[key].detach()) / o.accumulate
                window["images"] += o.batch_size * proc.world
                if not boundary:
                    continue
                if o.clip_grad > 0:
                    torch.nn.utils.clip_grad_norm_(model.student.parameters(), o.clip_grad)
                if micro // batches_per_epoch < o.freeze_last_layer_epochs:
                    for param in model.student.dino_head.last_layer.parameters():
                        param.grad = None
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)
                model.update_teacher(float(sched.momentum[step]))
                step += 1
                if cuda:
                    torch.cuda.synchronize(proc.device)
                now = time.perf_counter()
                window["wait"] += arrived - tick
                window["time"] += now - tick
                window["n"] += 1
                tick = now
                bar.update(1)
                if step % rt.log_every == 0 or step == last_step:
                    last = _log_window(window, step, micro // batches_per_epoch, sched, proc, log)
                    bar.set_postfix(loss=f"{last['loss']:.3f}", msad=f"{last['msad']:.3f}",
                                    img_s=f"{last['images_per_s']:.0f}")
                    window = dict.fromkeys(window, 0.0)
                if step % rt.checkpoint_every == 0 or step == last_step:
                    _save(checkpoint_path, model, optimizer, step, micro, config, in_chans, proc)
                    saved = step
                if stop.requested:  # Ctrl-C: this step is kept, then the run stops
                    if saved != step:
                        _save(checkpoint_path, model, optimizer, step, micro, config, in_chans, proc)
                        saved = step
                    raise Interrupted.at_checkpoint(saved, last_step)
                if step >= last_step:
                    break
    except KeyboardInterrupt:  # Ctrl-C: the last checkpoint is whole (written aside, then renamed)
        bar.close()
        raise Interrupted.at_checkpoint(saved, last_step) from None
    except RuntimeError as exc:  # torch raises it in the main thread when a loader worker dies
        bar.close()  # before any error line, which the bar would otherwise print over
        _if_worker_died(exc, saved)
        raise
    except (ConnectionError, EOFError) as exc:  # a worker killed while it hands over a batch's shared memory
        bar.close()
        if _in_worker_ipc(exc):
            reason = _dead_worker() or f"its connection closed: {type(exc).__name__}"
            raise UserError(_worker_died(reason, saved)) from None
        raise
    finally:
        stop.restore()
        bar.close()
    export = curves = None
    try:  # torch's SIGCHLD handler raises a worker's death wherever the main thread is while the loader lives
        if proc.main:
            export = export_backbone(model.teacher.backbone, config, dataset.stats, run_dir / "export", step)
            curves = log.close() if log else None
    except RuntimeError as exc:
        _if_worker_died(exc, saved)
        raise
    return PretrainSummary(run_dir, step, checkpoint_path, export, curves, last)


def _ignore_ctrl_c(worker_id: int) -> None:
    """Loader workers ignore Ctrl-C (a terminal signals its whole process group): the main process stops
    the run and lets them go, and none prints a traceback."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _if_worker_died(exc: RuntimeError, saved: int | None) -> None:
    """Raise the one-line error when ``exc`` is torch's word for a dead loader worker."""
    if WORKER_DIED in str(exc):
        raise UserError(_worker_died(str(exc), saved)) from None


def _in_worker_ipc(exc: BaseException) -> bool:
    """True when ``exc`` was raised by multiprocessing's connections (a loader worker's hand-over), not
    by a data read (a worker's own errors come back through torch with their original type)."""
    frames = traceback.extract_tb(exc.__traceback__)
    return bool(frames) and "multiprocessing" in Path(frames[-1].filename).parts


def _dead_worker(wait_s: float = 1.0) -> str | None:
    """torch's word for a loader worker of this process that exited, once its exit is seen; None if none
    did (or the loader already let its workers go)."""
    from torch._C import _error_if_any_worker_fails  # what the loader checks (torch.utils.data._utils.signal_handling)

    deadline = time.monotonic() + wait_s
    while True:
        try:
            _error_if_any_worker_fails()
        except RuntimeError as exc:
            return str(exc)
        if time.monotonic() > deadline:
            return None
        time.sleep(0.05)


def _worker_died(reason: str, saved: int | None) -> str:
    """One line for a data-loading worker that died (killed, out of memory): what is kept, what to do."""
    kept = f"the checkpoint of step {saved} is kept" if saved else "no checkpoint was written yet"
    return f"a data-loading worker stopped ({reason.strip().splitlines()[0]}); {kept}: rerun with resume=1 to continue"


def _log_window(window: dict[str, float], step: int, epoch: int, sched: Schedules, proc: distributed.Process,
                log: MetricsLog | None) -> dict[str, float]:
    n = max(window["n"], 1)
    values = {"loss": window["loss"] / n, "dino": window["dino"] / n, "msad": window["msad"] / n}
    values = distributed.mean_across(values, proc.device)
    record = {"step": step, "epoch": epoch, "processes": proc.world, **values, "lr": float(sched.lr[step - 1]),
              "weight_decay": float(sched.weight_decay[step - 1]), "momentum": float(sched.momentum[step - 1]),
              "teacher_temperature": float(sched.teacher_temperature[step - 1]),
              "images_per_s": window["images"] / max(window["time"], 1e-9),
              "data_wait": window["wait"] / max(window["time"], 1e-9), "memory_gb": _memory_gb(proc.device)}
    if log is not None:
        log.log(record)
    return record


def _save(path: Path, model: XStars, optimizer: torch.optim.Optimizer, step: int, micro: int,
          config: PretrainConfig, in_chans: dict[str, int], proc: distributed.Process) -> None:
    if not proc.main:
        return
    save_checkpoint(path, {"model": model.state_dict(), "optimizer": optimizer.state_dict(), "step": step,
                           "micro": micro, "rng": rng_state(), "signature": _signature(config, in_chans),
                           "config": config.model_dump(mode="json")})
