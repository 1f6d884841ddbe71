"""Export the teacher backbone as safetensors that load into a plain timm model, with a model card.

    model = msc_france.pretrain.export.load_backbone("data/runs/demo/export", sensor="s2")

or, with timm alone (the card gives arch, in_chans and img_size):

    timm.create_model("vit_tiny_patch16_224", pretrained=True, num_classes=0, in_chans=3, img_size=64,
                      pretrained_cfg_overlay={"file": "data/runs/demo/export/backbone-s2.safetensors"})
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from safetensors.torch import save_file
from torch import nn

from msc_france.errors import UserError
from msc_france.pretrain.backbone import SensorViT, import_timm
from msc_france.pretrain.config import PretrainConfig
from msc_france.pretrain.dataset import BandStats

CARD = "model_card.json"


def export_backbone(backbone: SensorViT, config: PretrainConfig, stats: dict[str, BandStats], out: Path,
                    step: int) -> Path:
    """One ``backbone-<sensor>.safetensors`` per sensor (the same blocks; the sensor's patch embedding)
    and ``model_card.json`` + ``README.md`` describing sensors, bands, normalisation and recipe."""
    out.mkdir(parents=True, exist_ok=True)
    sensors: dict[str, Any] = {}
    for sensor, s in stats.items():
        name = f"backbone-{sensor}.safetensors"
        state = {k: v.detach().float().contiguous().cpu() for k, v in backbone.timm_state_dict(sensor).items()}
        save_file(state, str(out / name), metadata={"arch": backbone.arch, "sensor": sensor})
        sensors[sensor] = {"file": name, "bands": list(s.bands), "in_chans": len(s.bands),
                           "dn_scale": s.scale, "dn_offset": s.offset, "nodata": s.nodata,
                           "mean": list(s.mean), "std": list(s.std)}
    card = {
        "model": "X-STARS (DINO + MSAD) backbone, msc-france", "arch": f"{backbone.arch}_224",
        "mode": backbone.mode, "img_size": config.crops.global_size, "patch_size": 16,
        "embed_dim": backbone.embed_dim, "step": step, "recipe": config.data.recipe, "preset": config.name,
        "msad_weight": config.loss.msad_weight, "msad_mode": config.loss.msad_mode,
        "normalisation": "reflectance = DN * dn_scale + dn_offset; input = (reflectance - mean) / std; nodata -> 0",
        "sensors": sensors,
    }
    (out / CARD).write_text(json.dumps(card, indent=2))
    lines = [f"# {card['model']}", "", f"- timm arch: `{card['arch']}`, img_size {card['img_size']}, mode {backbone.mode}",
             f"- trained {step} steps with preset `{config.name}` on the `{config.data.recipe}` store", "",
             "| sensor | file | bands | mean | std |", "| --- | --- | --- | --- | --- |"]
    lines += [f"| {k} | {v['file']} | {', '.join(v['bands'])} | {', '.join(f'{x:.4f}' for x in v['mean'])} | "
              f"{', '.join(f'{x:.4f}' for x in v['std'])} |" for k, v in sensors.items()]
    lines += ["", "Load: `msc_france.pretrain.export.load_backbone(folder, sensor)` returns a timm model."]
    (out / "README.md").write_text("\n".join(lines) + "\n")
    return out


def read_card(folder: Path) -> dict[str, Any]:
    try:
        return json.loads((Path(folder) / CARD).read_text())
    except FileNotFoundError:
        raise UserError(f"no exported backbone in {folder} (no {CARD}); run `make pretrain` first") from None


def load_backbone(folder: str | Path, sensor: str | None = None) -> nn.Module:
    """The exported backbone for ``sensor`` (default: the first) as a timm model, in one call."""
    card = read_card(Path(folder))
    sensor = sensor or next(iter(card["sensors"]))
    if sensor not in card["sensors"]:
        raise UserError(f"backbone in {folder} was not trained on {sensor} (it knows {', '.join(card['sensors'])})")
    entry = card["sensors"][sensor]
    timm = import_timm()
    return timm.create_model(card["arch"], pretrained=True, num_classes=0, in_chans=entry["in_chans"],
                             img_size=card["img_size"], dynamic_img_size=True,
                             pretrained_cfg_overlay={"file": str(Path(folder) / entry["file"])})
