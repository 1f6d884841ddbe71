"""Export the teacher backbone as safetensors that load into a plain timm model, with a model card.

    model = msc_france.pretrain.export.load_backbone("data/runs/demo/export", sensor="s2")

or, with timm alone (the card gives arch, in_chans and img_size):

    timm.create_model("vit_tiny_patch16_224", pretrained=True, num_classes=0, in_chans=3, img_size=64,
                      pretrained_cfg_overlay={"file": "data/runs/demo/export/backbone-s2.safetensors"})
"""

from __future__ import annotations

from pathlib import Path

from safetensors.torch import save_file
from torch import nn

from msc_france.errors import UserError
from msc_france.pretrain.backbone import SensorViT, import_timm
from msc_france.pretrain.config import PretrainConfig
from msc_france.store import ModelCard, Normalisation, SensorCard, atomic_path, atomic_write, read_card
from msc_france.store.model_card import write_card


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
    lines += ["", "Load: `msc_france.pretrain.export.load_backbone(folder, sensor)` returns a timm model."]
    atomic_write(out / "README.md", "\n".join(lines) + "\n")
    write_card(out, card)
    return out


def load_backbone(folder: str | Path, sensor: str | None = None) -> nn.Module:
    """The exported backbone for ``sensor`` (default: the first) as a timm model, in one call."""
    card = read_card(Path(folder))
    sensor = sensor or next(iter(card.sensors))
    if sensor not in card.sensors:
        raise UserError(f"backbone in {folder} was not trained on {sensor} (it knows {', '.join(card.sensors)})")
    entry = card.sensors[sensor]
    timm = import_timm()
    model: nn.Module = timm.create_model(card.arch, pretrained=True, num_classes=0, in_chans=entry.in_chans,
                                         img_size=card.img_size, dynamic_img_size=True,
                                         pretrained_cfg_overlay={"file": str(Path(folder) / entry.file)})
    return model
