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


# Tiler: output band-megapixels per second on one core (render from one item and write the shard),
# docs/store.md "Figures": bench/tiles_throughput.py --data data --sensor S --repeat 7 on the demo
# download (4 bands, one thread, median of 7), 2-core CPU shared with another job.
TILES_MP_PER_CORE_S: dict[str, Figure] = {
    key: Figure(value, "band-MP/s per core", "CPU core", f"bench/tiles_throughput.py --sensor {key} (docs/store.md)")
    for key, value in (("s2", 9.0), ("l8", 3.9), ("vhr", 72.4))
}



def render_band_mp(item_tiles: float, tile_px: int, bands: int) -> float:
    """Band-megapixels the tiler renders for ``item_tiles`` (tile, item) pairs of ``tile_px`` x ``tile_px``
    pixels and ``bands`` bands: each item mosaicked on a tile is rendered there whole."""
    return item_tiles * tile_px**2 * bands / 1e6


def tiler_core_seconds(item_tiles: float, tile_px: int, bands: int, figure: Figure) -> float:
    """Tiler core-seconds for those pairs at ``figure`` band-MP/s per core: ``msc-france plan``'s estimate."""
    return render_band_mp(item_tiles, tile_px, bands) / figure.value


# Pretraining, per preset: images per second of one device.
# pretrain-demo: bench/pretrain_throughput.py on the demo store, 2-core CPU (docs/pretrain.md).
# pretrain-msc-france: no GPU figure measured yet. Until then an estimate: 260.7 GFLOP per image (one
# training step of the preset, ViT-S/16, 2 x 224 + 8 x 96 px crops and MSAD over s2, l8, vhr at 224 px,
# counted by torch.utils.flop_counter.FlopCounterMode, forward and backward) at an assumed 30 % of an
# H100 SXM's 989 dense bf16 TFLOP/s. Measure with bench/pretrain_throughput.py --config
# pretrain-msc-france --store STORE --peak-tflops 989 [--compile] and put the figure here.
H100_BF16_TFLOPS = 989.0
ASSUMED_MFU = 0.30
MSC_FRANCE_GFLOP_PER_IMAGE = 260.7
PRETRAIN_IMAGES_PER_S: dict[str, Figure] = {
    "pretrain-demo": Figure(12.9, "images/s", "2-core CPU", "bench/pretrain_throughput.py (docs/pretrain.md)"),
    "pretrain-msc-france": Figure(
        H100_BF16_TFLOPS * 1e12 * ASSUMED_MFU / (MSC_FRANCE_GFLOP_PER_IMAGE * 1e9), "images/s", "H100 GPU",
        f"estimate, not measured: {MSC_FRANCE_GFLOP_PER_IMAGE:g} GFLOP/image at {ASSUMED_MFU:.0%} MFU "
        f"of {H100_BF16_TFLOPS:g} TFLOP/s",
    ),
}
