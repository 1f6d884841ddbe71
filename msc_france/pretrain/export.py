"""Export the teacher backbone as safetensors that load strictly into a plain timm model, with a model card.

    model = msc_france.pretrain.export.load_backbone("data/runs/demo/export", sensor="s2")

or, with timm alone (arch, img_size and the sensor's in_chans from ``model_card.json``):

    model = timm.create_model("vit_tiny_patch16_224", pretrained=False, num_classes=0, in_chans=3, img_size=64,
                              dynamic_img_size=True)
    model.load_state_dict(safetensors.torch.load_file("data/runs/demo/export/backbone-s2.safetensors"), strict=True)

Not through timm's ``pretrained=True`` with ``pretrained_cfg_overlay={"file": ...}``: with ``num_classes=0``
that path loads non-strictly (a missing weight is a log line and stays random), resizes a position embedding
of another grid, and adapts a patch embedding of other than 3 bands, or replaces it by a random one with a
warning where it cannot (timm 1.0.31 keeps one whose shape already fits, with a warning).
"""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from msc_france.errors import UserError
from msc_france.pretrain.backbone import SensorViT, import_timm
from msc_france.pretrain.config import PretrainConfig
from msc_france.store import ModelCard, Normalisation, SensorCard, atomic_path, atomic_write, read_card
from msc_france.store.model_card import CARD, write_card

REEXPORT = "export the backbone again (`make pretrain resume=1`)"


def export_backbone(backbone: SensorViT, config: PretrainConfig, stats: dict[str, Normalisation], out: Path,
                    step: int) -> Path:
    """One ``backbone-<sensor>.safetensors`` per sensor (the same blocks; the sensor's patch embedding)
    and ``model_card.json`` + ``README.md`` describing sensors, bands, normalisation and recipe; each
    file written whole or not at all, the card last."""
    out.mkdir(parents=True, exist_ok=True)
    sensors: dict[str, SensorCard] = {}
    for sensor, norm in stats.items():
        name = f"backbone-{sensor}.safetensors"
        state = {k: v.detach().float().contiguous().cpu() for k, v in backbone.timm_state_dict(sensor).items()}
        with atomic_path(out / name) as tmp:
            save_file(state, str(tmp), metadata={"arch": backbone.arch, "sensor": sensor})
        sensors[sensor] = SensorCard.of(name, norm)
    card = ModelCard(f"{backbone.arch}_224", backbone.mode, config.crops.global_size, 16, backbone.embed_dim, step,
                     config.data.recipe, config.name, config.loss.msad_weight, config.loss.msad_mode, sensors)
    lines = [f"# {card.model}", "", f"- timm arch: `{card.arch}`, img_size {card.img_size}, mode {card.mode}",
             f"- trained {step} steps with preset `{card.preset}` on the `{card.recipe}` store", "",
             "| sensor | file | bands | mean | std |", "| --- | --- | --- | --- | --- |"]
    lines += [f"| {k} | {v.file} | {', '.join(v.bands)} | {', '.join(f'{x:.4f}' for x in v.mean)} | "
              f"{', '.join(f'{x:.4f}' for x in v.std)} |" for k, v in sensors.items()]
    recipe = (f'model = timm.create_model("{card.arch}", pretrained=False, num_classes=0, in_chans=len(bands), '
              f"img_size={card.img_size}, dynamic_img_size=True)")
    lines += ["", "Load, strictly: `msc_france.pretrain.export.load_backbone(folder, sensor)` returns a timm model;",
              "with timm alone (`in_chans`: the sensor's number of bands):", "", "```python", recipe,
              "model.load_state_dict(safetensors.torch.load_file(file), strict=True)", "```"]
    atomic_write(out / "README.md", "\n".join(lines) + "\n")
    write_card(out, card)
    return out


def timm_backbone(card: ModelCard, sensor: str) -> nn.Module:
    """A freshly initialised timm model shaped like ``card``'s backbone for ``sensor``'s bands."""
    timm = import_timm()
    if not timm.is_model(card.arch):
        raise UserError(f"the model card names architecture {card.arch!r}, which timm {timm.__version__} does not "
                        "know; upgrade timm or export the backbone again (`make pretrain resume=1`)")
    model: nn.Module = timm.create_model(card.arch, pretrained=False, num_classes=0,
                                         in_chans=card.sensors[sensor].in_chans, img_size=card.img_size,
                                         dynamic_img_size=True)
    return model


def load_backbone(folder: str | Path, sensor: str | None = None) -> nn.Module:
    """The exported backbone for ``sensor`` (default: the first) as a timm model, loaded strictly.

    A weights file that does not fit its card exactly (a weight missing or extra, a shape that differs)
    is a one-line error, never a model with random weights left in it."""
    folder = Path(folder)
    card = read_card(folder)
    sensor = sensor or next(iter(card.sensors))
    if sensor not in card.sensors:
        raise UserError(f"backbone in {folder} was not trained on {sensor} (it knows {', '.join(card.sensors)})")
    path = folder / card.sensors[sensor].file
    model = timm_backbone(card, sensor)
    state = _read_weights(path)
    mismatch = _mismatch(model.state_dict(), state)
    if mismatch:
        raise UserError(f"{path} does not fit {folder / CARD} ({mismatch}); {REEXPORT}, or check the card")
    model.load_state_dict(state, strict=True)
    return model


def _read_weights(path: Path) -> dict[str, torch.Tensor]:
    try:
        return load_file(str(path))
    except FileNotFoundError:
        raise UserError(f"{path} is missing; {REEXPORT}") from None
    except SafetensorError as exc:
        raise UserError(f"{path} is damaged ({exc}); {REEXPORT}") from None


def _mismatch(expected: dict[str, torch.Tensor], state: dict[str, torch.Tensor]) -> str:
    """What keeps ``state`` from loading strictly where ``expected`` is, in a few words ('' when nothing)."""
    missing = [k for k in expected if k not in state]
    extra = [k for k in state if k not in expected]
    shapes = [f"{k} is {_shape(state[k])} where the card's model has {_shape(v)}"
              for k, v in expected.items() if k in state and state[k].shape != v.shape]
    problems = [f"{len(keys)} {what}: {', '.join(keys[:3])}{', ...' if len(keys) > 3 else ''}"
                for what, keys in (("missing", missing), ("unexpected", extra)) if keys]
    problems += shapes[:1] + ([f"{len(shapes) - 1} more shapes differ"] if len(shapes) > 1 else [])
    return "; ".join(problems)


def _shape(tensor: torch.Tensor) -> str:
    return "x".join(map(str, tensor.shape))
