"""The training loader against torchgeo and WebDataset, on the same tiles (issue 18, part 1).

    make download region=demo catalog=demo && make tiles      # once: the store and the download
    .venv/bin/python bench/loader.py [--store data/demo.zarr] [--catalog data/catalogs/demo]
        [--workers 0 1 2] [--batch 16] [--kinds ours torchgeo webdataset] [--shards DIR]

For each loader (``bench/loader_kinds.py``: our ``TileDataset``, torchgeo's intersected
``RasterDataset``s with a ``GridGeoSampler``, WebDataset tar shards written once from the store) and
each number of DataLoader workers, a fresh process builds the loader, runs one warm-up pass over the
train split's whole batches, then timed passes over the same samples, each batch made the model's
input (ours and WebDataset hand over DN as stored, normalised here as the trainer does on its
device), while the resident memory of every process is sampled. Prints samples/s, samples per
CPU-second (the main process and its workers, user + system: it does not depend on other jobs
sharing the machine as wall time does), the peak RSS of the main process and of each worker; then
ours / torchgeo and ours / WebDataset per CPU-second, and how many loader cores would feed ViT-B/16
at 40 % MFU on one H100 (725 samples/s with 2 + 8 crops): ``16 cores x our samples per CPU-second /
725``, that CPU time without the normalisation (on an H100 it is the GPU's).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psutil
import torch
from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import bench.loader_kinds as kinds
from bench.timing import PeriodicSampler

H100_FEED = 725.0  # samples/s: ViT-B/16, 2 x 224 px + 8 x 96 px crops, 40 % MFU on one H100 (issue 18)
CORES = 16


class RssSampler(PeriodicSampler):
    """Peak resident memory of this process and of each of its DataLoader workers (the forkserver's
    children), sampled every ``interval`` seconds."""

    def __init__(self, interval: float = 0.05) -> None:
        super().__init__(interval)
        self.me = psutil.Process()
        self.main, self.workers = 0, {}

    def sample(self) -> None:
        self.main = max(self.main, self.me.memory_info().rss)
        for child in self.me.children(recursive=True):
            try:
                if child.ppid() != self.me.pid:  # a worker, not the forkserver or the resource tracker
                    self.workers[child.pid] = max(self.workers.get(child.pid, 0), child.memory_info().rss)
            except psutil.NoSuchProcess:
                continue


def cpu_seconds(process: psutil.Process) -> float:
    """User + system CPU seconds of a process and of its living descendants (every thread of each)."""
    total = 0.0
    for proc in [process, *process.children(recursive=True)]:
        try:
            times = proc.cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += times.user + times.system
    return total


def build(args: argparse.Namespace) -> Any:  # noqa: ANN401 - a DataLoader of one of the kinds
    dataset = kinds.train_dataset(args.store)
    order = kinds.sample_order(dataset, args.batch)
    if args.child.startswith("ours"):
        return kinds.ours(args.store, args.batch, args.workers, args.child)
    if args.child == "torchgeo":
        return kinds.torchgeo(args.store, args.catalog, [dataset.tiles[i] for i in order], args.batch, args.workers)
    shards = sorted(str(p) for p in args.shards.glob("train-*.tar"))
    return kinds.webdataset(args.store, shards, args.batch, args.workers)


def child(args: argparse.Namespace) -> dict[str, Any]:
    """One loader, one worker count: a warm-up pass, then the timed passes, each batch made model input
    (``ToModelInput``: normalised here, on the CPU; its CPU time is kept apart as ``device_cpu``, the work a
    GPU takes off the CPU). One torch thread, as in the workers: with 0 workers the batches are collated
    here, and torch's intra-op threads beside other jobs on 2 cores made that 10x slower (README: OpenMP
    threads of two processes stall each other)."""
    torch.set_num_threads(1)
    loader, to_input = build(args), kinds.ToModelInput(args.store, args.child)
    me = psutil.Process()

    def timed_pass() -> tuple[int, float]:
        samples, device_cpu = 0, 0.0
        for batch in loader:
            started = time.thread_time()
            samples += kinds.batch_size_of(to_input(batch))
            device_cpu += time.thread_time() - started
        return samples, device_cpu

    with RssSampler() as rss:
        warm = timed_pass()[0]
        cpu, start = cpu_seconds(me), time.perf_counter()
        passes = [timed_pass() for _ in range(args.passes)]
        wall, cpu = time.perf_counter() - start, cpu_seconds(me) - cpu
    return {"kind": args.child, "workers": args.workers, "samples": sum(p[0] for p in passes), "warm": warm,
            "wall": wall, "cpu": cpu, "device_cpu": sum(p[1] for p in passes),
            "main_mb": rss.main / 2**20, "worker_mb": [v / 2**20 for v in rss.workers.values()]}


def run_child(args: argparse.Namespace, kind: str, workers: int) -> dict[str, Any]:
    command = [sys.executable, __file__, "--child", kind, "--workers", str(workers), "--store", args.store,
               "--catalog", str(args.catalog), "--batch", str(args.batch), "--shards", str(args.shards),
               "--passes", str(args.passes)]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        sys.exit(f"{kind} with {workers} workers failed:\n{done.stderr[-3000:]}")
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def table(rows: list[dict[str, Any]], console: Console) -> None:
    out = Table(title=f"loader: {rows[0]['warm']} train samples a pass, {rows[0]['samples']} timed, "
                      f"batch {rows[0]['batch']}")
    for name in ("loader", "workers", "samples/s", "samples per CPU-s", "CPU-s", "of which normalising",
                 "main RSS MB", "worker RSS MB"):
        out.add_column(name, justify="left" if name == "loader" else "right")
    for r in rows:
        workers = ", ".join(f"{mb:.0f}" for mb in sorted(r["worker_mb"])) or "-"
        out.add_row(r["kind"], str(r["workers"]), f"{r['samples'] / r['wall']:.0f}", f"{r['samples'] / r['cpu']:.0f}",
                    f"{r['cpu']:.2f}", f"{r['device_cpu']:.2f}", f"{r['main_mb']:.0f}", workers)
    console.print(out)


def ratios(rows: list[dict[str, Any]], console: Console) -> None:
    """ours / each other loader at each worker count, then the H100 feed ratio."""
    def rates(kind: str) -> dict[int, tuple[float, float]]:
        return {r["workers"]: (r["samples"] / r["cpu"], r["samples"] / r["wall"]) for r in rows if r["kind"] == kind}

    ours = rates("ours")
    for other in dict.fromkeys(r["kind"] for r in rows if r["kind"] != "ours"):
        theirs = rates(other)
        common = sorted(set(ours) & set(theirs))
        if common:
            console.print(f"ours / {other}: per CPU-second "
                          + ", ".join(f"{ours[w][0] / theirs[w][0]:.1f}x" for w in common)
                          + "; per second " + ", ".join(f"{ours[w][1] / theirs[w][1]:.1f}x" for w in common)
                          + f" ({', '.join(map(str, common))} workers)")
    if ours:
        most = max(ours)
        (mine,) = [r for r in rows if r["kind"] == "ours" and r["workers"] == most]
        rate = mine["samples"] / (mine["cpu"] - mine["device_cpu"])
        console.print(f"H100 feed: {CORES} cores x {rate:.0f} samples per core-second ({most} workers; without the "
                      f"normalisation, the GPU's work there) / {H100_FEED:.0f} samples/s (ViT-B/16, 2 + 8 crops, "
                      f"40 % MFU) = {CORES * rate / H100_FEED:.1f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--store", default="data/demo.zarr")
    parser.add_argument("--catalog", type=Path, default=Path("data/catalogs/demo"), help="the download (local STAC)")
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--batch", type=int, default=16, help="the demo preset's optim.batch_size")
    parser.add_argument("--passes", type=int, default=5, help="timed passes over the train split, after one warm-up")
    parser.add_argument("--kinds", nargs="+", choices=kinds.KINDS, default=list(kinds.KINDS))
    parser.add_argument("--shards", type=Path, default=Path(tempfile.gettempdir()) / "msc-france-loader-bench",
                        help="where the WebDataset shards are written")
    parser.add_argument("--child", choices=kinds.KINDS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        args.workers = args.workers[0]
        print(json.dumps(child(args)))
        return
    if not Path(args.store).exists():
        sys.exit(f"no store at {args.store}: run `make download region=demo catalog=demo` and `make tiles`")
    if "torchgeo" in args.kinds and not (args.catalog / "catalog.json").exists():
        sys.exit(f"no download in {args.catalog}: run `make download region=demo catalog=demo` first")
    console = Console(width=max(Console().width, 120))  # the loader names whole when not on a terminal
    if "webdataset" in args.kinds:
        dataset = kinds.train_dataset(args.store)
        shards = kinds.write_shards(dataset, kinds.sample_order(dataset, args.batch), args.shards)
        console.print(f"WebDataset: {len(shards)} shards in {args.shards}")
    rows = []
    for kind in args.kinds:
        for workers in args.workers:
            rows.append({**run_child(args, kind, workers), "batch": args.batch})
            console.print(f"{kind}, {workers} workers: {rows[-1]['samples'] / rows[-1]['cpu']:.0f} samples per CPU-s",
                          style="dim")
    table(rows, console)
    ratios(rows, console)
    console.print(f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} at the end")


if __name__ == "__main__":
    main()
