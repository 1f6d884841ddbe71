"""Measured throughputs, in one place: what ``msc-france plan`` turns into compute estimates.

Each figure names the run it comes from. To update one, rerun that benchmark on the target machine
and edit the figure here (docs/store.md and docs/pretrain.md hold the full outputs).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Figure:
    """A throughput and where it comes from."""

    value: float
    unit: str
    device: str
    source: str


# Tiler, fitted to the tiles stage itself: bench/tiles_load.py --copies 4 --workers 1 --fine-shards 4 (9,920
# tiles of recipe demo, one worker; the 2-core CPU shared with other jobs, load average 5; docs/scaling.md
# section 5). Two runs of one region, in shards of 17 and of 4 tiles a side, give per group the CPU seconds of
# a shard task beyond its pixels (Dask's handling, opening the arrays and the sources, flushing the shard
# files) and the band-megapixels of (tile, item) pairs per CPU second left (render, write, statistics, tile
# records). bench/tiles_throughput.py's render-and-write figures (docs/store.md) leave out a third to a half
# of that.
TILES_SOURCE = "bench/tiles_load.py --copies 4 --workers 1 --fine-shards 4 (docs/scaling.md section 5)"
TILES_MP_PER_CORE_S: dict[str, Figure] = {
    key: Figure(value, "band-MP/s per core", "CPU core", TILES_SOURCE)
    for key, value in (("s2", 4.9), ("l8", 2.0), ("vhr", 43.6), ("labels", 7.0))
}
TILES_TASK_CORE_S: dict[str, Figure] = {
    key: Figure(value, "core-seconds per shard task", "CPU core", TILES_SOURCE)
    for key, value in (("s2", 0.0284), ("l8", 0.0325), ("vhr", 0.0147), ("labels", 0.0168))
}


def render_band_mp(item_tiles: float, tile_px: int, bands: int) -> float:
    """Band-megapixels the tiler renders for ``item_tiles`` (tile, item) pairs of ``tile_px`` x ``tile_px``
    pixels and ``bands`` bands: each item mosaicked on a tile is rendered there whole."""
    return item_tiles * tile_px**2 * bands / 1e6


def tiler_core_seconds(group: str, item_tiles: float, tile_px: int, bands: int, tasks: int) -> float | None:
    """``msc-france plan``'s tiler core-seconds for ``group``: those pairs at its band-MP/s per core and
    ``tasks`` shard tasks at its seconds each; None where it has no measured figures."""
    if group not in TILES_MP_PER_CORE_S or group not in TILES_TASK_CORE_S:
        return None
    return (render_band_mp(item_tiles, tile_px, bands) / TILES_MP_PER_CORE_S[group].value
            + tasks * TILES_TASK_CORE_S[group].value)


# Pretraining, per preset: images per second of one device.
# pretrain-demo: bench/pretrain_throughput.py on the demo store, 2-core CPU (docs/pretrain.md).
# pretrain-msc-france: no GPU figure measured yet. Until then an estimate: 183.9 GFLOP per image (one
# training step of the preset, ViT-S/16, 2 x 224 + 8 x 96 px crops and MSAD over s2, l8, vhr at 224 px,
# counted by bench/pretrain_flops.py with torch.utils.flop_counter, forward and backward) at an assumed 30 % of an
# H100 SXM's 989 dense bf16 TFLOP/s. Measure with bench/pretrain_throughput.py --config
# pretrain-msc-france --store STORE --peak-tflops 989 [--compile] and put the figure here.
H100_BF16_TFLOPS = 989.0
ASSUMED_MFU = 0.30
MSC_FRANCE_GFLOP_PER_IMAGE = 183.9
PRETRAIN_IMAGES_PER_S: dict[str, Figure] = {
    "pretrain-demo": Figure(23.3, "images/s", "2-core CPU", "bench/pretrain_throughput.py (docs/pretrain.md)"),
    "pretrain-msc-france": Figure(
        H100_BF16_TFLOPS * 1e12 * ASSUMED_MFU / (MSC_FRANCE_GFLOP_PER_IMAGE * 1e9), "images/s", "H100 GPU",
        f"estimate, not measured: {MSC_FRANCE_GFLOP_PER_IMAGE:g} GFLOP/image at {ASSUMED_MFU:.0%} MFU "
        f"of {H100_BF16_TFLOPS:g} TFLOP/s",
    ),
}
