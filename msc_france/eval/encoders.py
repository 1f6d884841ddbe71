"""Frozen backbones to evaluate: an exported run (one timm model per sensor, as written by pretraining),
the model a continual run started from, or a randomly initialised one of the same architecture (the
floor every method must beat)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import cast

import torch
import torch.nn.functional as F
from torch import nn

from msc_france.errors import UserError
from msc_france.pretrain.backbone import SensorViT
from msc_france.pretrain.export import load_backbone, timm_backbone
from msc_france.store import ModelCard, read_card

PATCH = 16


@dataclass
class Encoder:
    """``tokens(images, sensor) -> (cls (B, D), patches (B, h, w, D))`` at ``img_size`` pixels."""

    name: str
    models: dict[str, nn.Module]
    img_size: int
    bands: dict[str, list[str]]
    normalisation: dict[str, tuple[torch.Tensor, torch.Tensor]]  # sensor -> per-band reflectance mean, std

    @torch.no_grad()
    def tokens(self, images: torch.Tensor, sensor: str) -> tuple[torch.Tensor, torch.Tensor]:
        model = self.models[sensor]
        if images.shape[-1] != self.img_size or images.shape[-2] != self.img_size:
            images = F.interpolate(images, size=(self.img_size, self.img_size), mode="bilinear",
                                   antialias=True, align_corners=False)
        # a timm ViT: nn.Module types attributes as Tensor | Module, timm's method and count are neither
        forward_features = cast(Callable[[torch.Tensor], torch.Tensor], model.forward_features)
        prefix = cast(int, model.num_prefix_tokens)
        tokens = forward_features(images)
        side = self.img_size // PATCH
        patches = tokens[:, prefix:].reshape(len(images), side, side, -1)
        return tokens[:, 0], patches


def from_export(folder: str | Path, name: str) -> Encoder:
    """The exported teacher backbone of a run (``runs/NAME/export``)."""
    card = read_card(Path(folder))
    models = {s: load_backbone(folder, s).eval() for s in card.sensors}
    return _encoder(name, models, card)


def continual_start(export: Path, model_state: dict[str, torch.Tensor], name: str) -> Encoder:
    """The weights a continual run started from (its ``continual.init``): the frozen copy of the initial
    model in its checkpoint's ``model_state``, with the sensors, bands and normalisation of its ``export``."""
    card = read_card(export)
    prefix = "frozen.backbone."
    weights = {k.removeprefix(prefix): v for k, v in model_state.items() if k.startswith(prefix)}
    if not weights:
        raise UserError(f"run {export.parent.name} is not a continual run (its checkpoint holds no frozen initial "
                        "model); name one trained with a continual: section")
    backbone = SensorViT(card.arch.removesuffix("_224"), {s: c.in_chans for s, c in card.sensors.items()},
                         card.mode, card.img_size)
    backbone.load_state_dict(weights, strict=True)
    models = {}
    for sensor in card.sensors:
        model = timm_backbone(card, sensor)
        model.load_state_dict(backbone.timm_state_dict(sensor), strict=True)
        models[sensor] = model.eval()
    return _encoder(name, models, card)


def _encoder(name: str, models: dict[str, nn.Module], card: ModelCard) -> Encoder:
    sensors = card.sensors
    return Encoder(name, models, card.img_size, {s: list(v.bands) for s, v in sensors.items()},
                   {s: (torch.tensor(v.mean), torch.tensor(v.std)) for s, v in sensors.items()})


def random_like(card: ModelCard, name: str = "random init", seed: int = 0) -> Encoder:
    """A randomly initialised backbone with the architecture, bands and input size of ``card``."""
    torch.manual_seed(seed)
    shared = None
    models = {}
    for sensor in card.sensors:
        if shared is None or card.mode != "rgb":  # rgb mode: one model for every sensor, as trained
            shared = timm_backbone(card, sensor).eval()
        models[sensor] = shared
    return _encoder(name, models, card)
