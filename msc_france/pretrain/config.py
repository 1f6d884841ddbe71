"""The pretraining preset (``pipelines/pretrain-*.yaml``): data, model, crops, losses, optimisation and
runtime, as one validated value. Unknown keys and bad values fail with one line (see ``config.py``)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from msc_france.config import PIPELINES_DIR, PRETRAIN_PREFIX, SafeName, Strict, load_yaml, resolve_config
from msc_france.errors import UserError
from msc_france.sensors import SENSORS
from msc_france.store import open_store, stores_in

DINO_SUFFIX = "-dino"  # the DINO-alone baseline run of a run NAME is NAME-dino (baseline_name)
SEED_SUFFIX = "-seed"  # run NAME trained with --seed K is NAME-seedK (seeded_name)
ARCHS = ("vit_tiny_patch16", "vit_small_patch16", "vit_base_patch16", "vit_large_patch16")
RGB_BANDS: dict[str, tuple[str, str, str]] = {  # red, green, blue of each sensor, for the paper's RGB mode
    "s2": ("B04", "B03", "B02"), "l8": ("red", "green", "blue"), "vhr": ("red", "green", "blue"),
}


class DataConfig(Strict):
    store: str | None = Field(default=None, description="tile store path or URL; default DATA/<recipe>.zarr")
    recipe: str = "demo"
    sensors: list[str] = Field(default_factory=lambda: ["s2", "l8", "vhr"], min_length=1)
    split: Literal["train", "val", "test", "all"] = "train"
    min_valid: float = Field(default=0.95, ge=0, le=1,
                             description="keep tiles valid at least this much in every sensor")
    workers: int = Field(default=2, ge=0)
    prefetch: int = Field(default=2, ge=1)

    @model_validator(mode="after")
    def _known(self) -> DataConfig:
        for sensor in self.sensors:
            if sensor not in SENSORS:
                raise ValueError(f"data.sensors: unknown sensor {sensor!r} (allowed: {', '.join(SENSORS)})")
        return self


class ModelConfig(Strict):
    arch: Literal[ARCHS] = "vit_tiny_patch16"  # type: ignore[valid-type]
    mode: Literal["rgb", "multispectral"] = "rgb"
    drop_path: float = Field(default=0.1, ge=0, lt=1)
    dino_out_dim: int = Field(default=4096, ge=2)
    dino_hidden_dim: int = 2048
    dino_bottleneck_dim: int = 256
    msad_dim: int = Field(default=256, ge=2)
    msad_head: Literal["sensor", "shared"] = Field(
        default="sensor", description="sensor: a shared projection, then one linear head per sensor; shared: "
        "the shared projection alone (the sensors' tokens must align in the backbone, not in their heads)")
    msad_head_depth: int = Field(default=2, ge=1, le=4, description="Linear layers of the MSAD head's shared "
                                 "projection, GELU between them: 1 a single Linear, 2 Linear-GELU-Linear")


class CropConfig(Strict):
    global_size: int = Field(default=224, ge=16)
    local_size: int = Field(default=96, ge=16)
    local_number: int = Field(default=8, ge=0)
    global_scale: tuple[float, float] = (0.4, 1.0)
    local_scale: tuple[float, float] = (0.05, 0.4)
    msad_scale: tuple[float, float] = Field(default=(1.0, 1.0), description="ground window shared by all sensors")
    msad_augment: bool = Field(default=False, description="DINO's photometric augmentation on each sensor's "
                               "aligned MSAD view, drawn independently per sensor (same geometry, own colour)")

    @model_validator(mode="after")
    def _patch_multiple(self) -> CropConfig:
        for name in ("global_size", "local_size"):
            if getattr(self, name) % 16:
                raise ValueError(f"crops.{name} must be a multiple of the patch size 16")
        return self


class LossConfig(Strict):
    msad_weight: float = Field(default=0.1, ge=0, description="alpha: total = DINO + alpha * MSAD")
    msad_mode: Literal["dense", "global"] = "dense"
    msad_temperature: float = Field(default=0.1, gt=0)
    msad_label_smoothing: float = Field(default=0.1, ge=0, lt=1)
    msad_normalize: bool = Field(default=True, description="L2-normalise the MSAD projections; false: the "
                                 "paper's reference code (which also has temperature 1, label smoothing 0.3)")
    msad_targets: Literal["soft", "hard"] = Field(
        default="soft", description="soft: softmax of the within-sensor similarities (X-STARS); hard: the "
        "identity, each token's partner is the same ground in the other sensor (InfoNCE)")
    student_temperature: float = Field(default=0.1, gt=0)
    teacher_temperature: float = Field(default=0.04, gt=0)
    teacher_temperature_warmup: float = Field(default=0.04, gt=0)
    teacher_temperature_warmup_epochs: int = Field(default=0, ge=0)
    center_momentum: float = Field(default=0.9, ge=0, lt=1)


class OptimConfig(Strict):
    epochs: int = Field(default=100, ge=1)
    batch_size: int = Field(default=64, ge=2, description="per process, before accumulation")
    accumulate: int = Field(default=1, ge=1)
    base_lr: float = Field(default=5e-4, gt=0, description="for a total batch of 256; scaled linearly")
    min_lr: float = 1e-6
    warmup_epochs: float = Field(default=10, ge=0)
    weight_decay: float = 0.04
    weight_decay_end: float = 0.4
    clip_grad: float = Field(default=3.0, ge=0, description="0: no clipping")
    teacher_momentum: float = Field(default=0.996, ge=0, le=1)
    freeze_last_layer_epochs: int = Field(default=1, ge=0)


class ContinualConfig(Strict):
    init: str = Field(description="checkpoint to start from: run:NAME (DATA/runs/NAME/checkpoint.pt), or a file: "
                      "ours (.pt) or a timm/DINO state dict (.pth, .safetensors)")
    new_sensor: str
    known_sensor: str


class RuntimeConfig(Strict):
    device: Literal["auto", "cpu", "cuda"] = "auto"
    bf16: bool = Field(default=True, description="bf16 autocast where supported: CUDA, and CPU with bf16_cpu")
    bf16_cpu: bool = Field(default=False, description="also autocast to bf16 on CPU (opt-in: slower on most CPUs)")
    compile: bool = False
    seed: int = 0
    log_every: int = Field(default=10, ge=1)
    checkpoint_every: int = Field(default=500, ge=1, description="steps between checkpoints")
    max_steps: int | None = Field(default=None, ge=1, description="stop after this many steps (tests, smoke runs)")


class PretrainConfig(Strict):
    name: SafeName
    description: str = ""
    data: DataConfig = DataConfig()
    model: ModelConfig = ModelConfig()
    crops: CropConfig = CropConfig()
    loss: LossConfig = LossConfig()
    optim: OptimConfig = OptimConfig()
    runtime: RuntimeConfig = RuntimeConfig()
    continual: ContinualConfig | None = None

    @model_validator(mode="after")
    def _consistent(self) -> PretrainConfig:
        if self.model.mode == "rgb":
            missing = [s for s in self.data.sensors if s not in RGB_BANDS]
            if missing:
                raise ValueError(f"model.mode rgb: no RGB bands known for {missing[0]}")
        if self.continual:
            for name in ("new_sensor", "known_sensor"):
                if getattr(self.continual, name) not in self.data.sensors:
                    raise ValueError(f"continual.{name} must be one of data.sensors ({', '.join(self.data.sensors)})")
            if self.continual.new_sensor == self.continual.known_sensor:
                raise ValueError("continual.new_sensor and continual.known_sensor must differ")
        if self.loss.msad_weight > 0 and len(self.data.sensors) < 2:
            raise ValueError("loss.msad_weight > 0 needs at least two data.sensors")
        return self


def seeded_name(name: str, seed: int | None) -> str:
    """The run name of ``name`` trained with ``--seed K``: ``NAME-seedK``; ``name`` itself without a seed."""
    return name if seed is None else f"{name}{SEED_SUFFIX}{seed}"


def baseline_name(run: str) -> str:
    """The DINO-alone baseline run of ``run``: ``RUN-dino`` (of a seeded run ``NAME-seedK``, ``NAME-seedK-dino``)."""
    return f"{run}{DINO_SUFFIX}"


def load_pretrain_config(name_or_path: str | Path) -> PretrainConfig:
    """A preset by name (``pretrain-demo``) or by YAML path."""
    return load_yaml(resolve_config(str(name_or_path), PIPELINES_DIR, "pretraining preset", pretrain=True),
                     PretrainConfig)


def default_preset(data: Path, store: str | None) -> tuple[str, str]:
    """The preset ``pretrain-<recipe>`` of a tile store's recipe, and that store: ``store`` when given,
    else the one tile store in ``data``."""
    if store is None:
        found = stores_in(data)
        if not found:
            raise UserError(f"no tile store in {data}; run `make tiles` first")
        if len(found) > 1:
            raise UserError(f"{data} holds several tile stores ({', '.join(Path(f).name for f in found)}); "
                            "say which with config=PRESET or store=PATH (--config, --store)")
        store = found[0]
    recipe = open_store(store).meta.recipe
    preset = f"{PRETRAIN_PREFIX}{recipe}"
    if not (PIPELINES_DIR / f"{preset}.yaml").exists():
        raise UserError(f"store {store} was built with recipe {recipe}, which has no preset {preset} "
                        "in pipelines/; give config=PRESET (--config)")
    return preset, store
