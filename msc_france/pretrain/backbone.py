"""The sensor-agnostic backbone: a timm Vision Transformer whose blocks every sensor shares, fed by one
patch embedding (the paper's RGB mode) or by one patch embedding per sensor for its own bands."""

from __future__ import annotations

import glob
import importlib.util
import os
from types import ModuleType

import torch
from torch import nn

_TORCHVISION_OPS: torch.library.Library | None = None


def import_timm() -> ModuleType:
    """``timm``, also beside a CPU-only torch wheel.

    PyPI's torchvision wheels carry CUDA-linked operators; beside a CPU-only torch their library does not
    load, and torchvision then fails at import on a fake-kernel registration for ``torchvision::nms``
    (it guards the other operators). Declaring the two operator schemas first lets it import; their
    kernels stay absent and are never used here.
    """
    global _TORCHVISION_OPS
    spec = importlib.util.find_spec("torchvision")
    if _TORCHVISION_OPS is None and spec is not None and spec.submodule_search_locations:
        libraries = glob.glob(os.path.join(spec.submodule_search_locations[0], "_C*.so"))
        try:
            torch.ops.load_library(libraries[0])
        except (OSError, IndexError):
            _TORCHVISION_OPS = torch.library.Library("torchvision", "DEF")
            for op in ("nms", "qnms"):
                _TORCHVISION_OPS.define(f"{op}(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
    import timm

    return timm


class SensorViT(nn.Module):
    """Tokens of a timm ViT for one sensor's images: ``forward(images, sensor) -> (B, 1 + T, D)``.

    ``mode="rgb"``: the timm model's 3-band patch embedding for all sensors. ``mode="multispectral"``:
    one patch embedding per sensor for its own bands, the first sensor's being the timm model's own.
    """

    def __init__(self, arch: str, in_chans: dict[str, int], mode: str, img_size: int, drop_path: float = 0.0) -> None:
        super().__init__()
        timm = import_timm()
        self.arch, self.mode = arch, mode
        self.first_sensor, first_chans = next(iter(in_chans.items()))
        self.vit = timm.create_model(f"{arch}_224", pretrained=False, num_classes=0, img_size=img_size,
                                     in_chans=3 if mode == "rgb" else first_chans, dynamic_img_size=True,
                                     drop_path_rate=drop_path)
        self.embed_dim: int = self.vit.embed_dim
        self.prefix_tokens: int = self.vit.num_prefix_tokens
        self.patch_embeds = nn.ModuleDict()
        if mode == "multispectral":
            template = self.vit.patch_embed
            for sensor, channels in list(in_chans.items())[1:]:
                self.patch_embeds[sensor] = type(template)(
                    img_size=img_size, patch_size=template.patch_size, in_chans=channels, embed_dim=self.embed_dim,
                    flatten=template.flatten, output_fmt=template.output_fmt, strict_img_size=False)

    def embed(self, sensor: str) -> nn.Module:
        if self.mode == "rgb" or sensor == self.first_sensor:
            patch_embed: nn.Module = self.vit.patch_embed
            return patch_embed
        return self.patch_embeds[sensor]

    def forward(self, images: torch.Tensor, sensor: str) -> torch.Tensor:
        vit = self.vit
        x = self.embed(sensor)(images)
        x = vit._pos_embed(x)  # interpolated to the crop's token grid (dynamic_img_size)
        x = vit.patch_drop(x)
        x = vit.norm_pre(x)
        x = vit.blocks(x)
        tokens: torch.Tensor = vit.norm(x)
        return tokens

    def timm_state_dict(self, sensor: str) -> dict[str, torch.Tensor]:
        """The weights as a plain timm model of this arch for ``sensor``'s bands (for export)."""
        state = {k: v for k, v in self.vit.state_dict().items() if not k.startswith("patch_embed.")}
        state.update({f"patch_embed.{k}": v for k, v in self.embed(sensor).state_dict().items()})
        return state
