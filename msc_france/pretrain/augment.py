"""Batched, on-device augmentations (torch, no PIL): DINO multi-crop on one sensor's images, and
co-located views of every sensor on one token grid for MSAD.

All randomness comes from a generator seeded per step, so a resumed run draws the same crops.
Geometry is one ``affine_grid`` + ``grid_sample`` per view for the whole batch: a random box of the
tile (normalised coordinates, the same ground in every sensor since tiles share their footprint),
a flip and a quarter turn. Photometric changes are those that make sense for reflectance bands.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from msc_france.pretrain.config import CropConfig

BLUR_RADIUS = 4  # pixels; sigma up to 2
MSAD_BLUR, MSAD_SOLARIZE = 0.5, 0.0  # photometric chances of an aligned view with crops.msad_augment


@dataclass
class Views:
    """One step's inputs: DINO crops of ``sensor`` and, per sensor, the co-located MSAD views."""

    sensor: str
    globals: torch.Tensor  # (2B, C, G, G): first crop of every sample, then the second
    locals: torch.Tensor | None  # (nB, C, L, L)
    aligned: dict[str, torch.Tensor]  # sensor -> (B, C_s, G, G), token t is the same ground in every sensor


def _uniform(n: int, low: float, high: float, generator: torch.Generator, device: torch.device) -> torch.Tensor:
    return low + (high - low) * torch.rand(n, generator=generator, device=device)


def random_boxes(n: int, scale: tuple[float, float], generator: torch.Generator, device: torch.device,
                 ratio: tuple[float, float] = (3 / 4, 4 / 3)) -> torch.Tensor:
    """(n, 4) boxes ``x0, y0, x1, y1`` in [0, 1] of area ``scale`` and aspect ``ratio`` (RandomResizedCrop)."""
    area = _uniform(n, *scale, generator, device)
    aspect = torch.exp(_uniform(n, math.log(ratio[0]), math.log(ratio[1]), generator, device))
    width = torch.sqrt(area * aspect).clamp(max=1.0)
    height = torch.sqrt(area / aspect).clamp(max=1.0)
    x0 = torch.rand(n, generator=generator, device=device) * (1 - width)
    y0 = torch.rand(n, generator=generator, device=device) * (1 - height)
    return torch.stack([x0, y0, x0 + width, y0 + height], dim=1)


def random_orientation(n: int, generator: torch.Generator, device: torch.device) -> torch.Tensor:
    """(n, 2, 2) matrices: a horizontal flip with probability 1/2, then 0 to 3 quarter turns."""
    flip = torch.where(torch.rand(n, generator=generator, device=device) < 0.5, -1.0, 1.0)
    turns = torch.randint(0, 4, (n,), generator=generator, device=device).float() * (math.pi / 2)
    cos, sin = torch.cos(turns).round(), torch.sin(turns).round()
    rotation = torch.stack([torch.stack([cos, -sin], 1), torch.stack([sin, cos], 1)], 1)
    flips = torch.diag_embed(torch.stack([flip, torch.ones_like(flip)], 1))
    return rotation @ flips


def crop_resize(images: torch.Tensor, boxes: torch.Tensor, orientation: torch.Tensor, size: int) -> torch.Tensor:
    """Resample ``boxes`` of ``images`` (B, C, H, W) to (B, C, size, size), turned by ``orientation``."""
    half = torch.stack([boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]], 1)  # [0,1] width = [-1,1] half-width
    centre = boxes[:, :2] + boxes[:, 2:] - 1.0
    linear = torch.diag_embed(half) @ orientation
    theta = torch.cat([linear, centre[:, :, None]], dim=2).to(images.dtype)
    grid = F.affine_grid(theta, [images.shape[0], images.shape[1], size, size], align_corners=False)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="reflection", align_corners=False)


def gaussian_blur(images: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """Blur each image with its own sigma (pixels; 0 leaves it unchanged), separably, in one grouped conv."""
    n, c, h, w = images.shape
    offsets = torch.arange(-BLUR_RADIUS, BLUR_RADIUS + 1, device=images.device, dtype=images.dtype)
    safe = sigma.clamp(min=1e-3).to(images.dtype)[:, None]
    kernel = torch.exp(-(offsets[None] ** 2) / (2 * safe**2))
    kernel = torch.where((sigma > 0)[:, None], kernel, (offsets == 0).to(images.dtype)[None])
    kernel = (kernel / kernel.sum(1, keepdim=True)).repeat_interleave(c, dim=0)  # (n*c, k)
    flat = F.pad(images.reshape(1, n * c, h, w), [BLUR_RADIUS] * 4, mode="reflect")
    flat = F.conv2d(flat, kernel[:, None, :, None], groups=n * c)
    flat = F.conv2d(flat, kernel[:, None, None, :], groups=n * c)
    return flat.reshape(n, c, h, w)


def photometric(images: torch.Tensor, generator: torch.Generator, p_blur: float, p_solarize: float,
                p_jitter: float = 0.8, p_gray: float = 0.2) -> torch.Tensor:
    """Jitter for normalised reflectance: contrast and brightness, a small per-band (spectral) shift,
    a panchromatic view (band mean), Gaussian blur, solarisation about +1 standard deviation."""
    n, c = images.shape[:2]
    dev = images.device

    def chance(p: float) -> torch.Tensor:
        return (torch.rand(n, generator=generator, device=dev) < p)[:, None, None, None]

    mean = images.mean(dim=(2, 3), keepdim=True)
    contrast = _uniform(n, 0.6, 1.4, generator, dev)[:, None, None, None]
    brightness = _uniform(n, -0.4, 0.4, generator, dev)[:, None, None, None]
    spectral = (torch.rand(n, c, generator=generator, device=dev) * 0.4 - 0.2)[:, :, None, None]
    jittered = (images - mean) * contrast + mean + brightness + spectral
    images = torch.where(chance(p_jitter), jittered, images)
    images = torch.where(chance(p_gray), images.mean(dim=1, keepdim=True).expand_as(images), images)
    sigma = _uniform(n, 0.1, 2.0, generator, dev) * (torch.rand(n, generator=generator, device=dev) < p_blur)
    images = gaussian_blur(images, sigma)
    return torch.where(chance(p_solarize), torch.where(images > 1.0, 2.0 - images, images), images)


def _limit(images: torch.Tensor, size: int) -> torch.Tensor:
    """Downsample (antialiased) images larger than ``size``, so that crops are resampled at most ~1.6x."""
    if images.shape[-1] <= size:
        return images
    return F.interpolate(images, size=(size, size), mode="bilinear", antialias=True, align_corners=False)


class MultiCrop:
    """Turns a batch ``{sensor: (B, C, H, W)}`` on the device into a step's :class:`Views`."""

    def __init__(self, crops: CropConfig) -> None:
        self.crops = crops
        self.source_limit = math.ceil(crops.global_size / math.sqrt(crops.global_scale[0]))

    def _view(self, images: torch.Tensor, size: int, scale: tuple[float, float], generator: torch.Generator,
              p_blur: float, p_solarize: float) -> torch.Tensor:
        n, dev = images.shape[0], images.device
        out = crop_resize(images, random_boxes(n, scale, generator, dev), random_orientation(n, generator, dev), size)
        return photometric(out, generator, p_blur=p_blur, p_solarize=p_solarize)

    def __call__(self, batch: dict[str, torch.Tensor], seed: int, dino_sensor: str,
                 msad_sensors: list[str]) -> Views:
        c = self.crops
        source = _limit(batch[dino_sensor], self.source_limit)
        generator = torch.Generator(device=source.device).manual_seed(seed)
        first = self._view(source, c.global_size, c.global_scale, generator, p_blur=1.0, p_solarize=0.0)
        second = self._view(source, c.global_size, c.global_scale, generator, p_blur=0.1, p_solarize=0.2)
        local = [self._view(source, c.local_size, c.local_scale, generator, p_blur=0.5, p_solarize=0.0)
                 for _ in range(c.local_number)]
        return Views(dino_sensor, torch.cat([first, second]), torch.cat(local) if local else None,
                     self.aligned(batch, msad_sensors, generator))

    def aligned(self, batch: dict[str, torch.Tensor], sensors: list[str],
                generator: torch.Generator) -> dict[str, torch.Tensor]:
        """Every sensor on the same random ground window and orientation, at the global crop size; with
        ``crops.msad_augment``, then each with its own photometric draw (after the geometry's)."""
        if not sensors:
            return {}
        any_images = batch[sensors[0]]
        n, dev = any_images.shape[0], any_images.device
        boxes = random_boxes(n, self.crops.msad_scale, generator, dev, ratio=(1.0, 1.0))  # square: the token grid
        orientation = random_orientation(n, generator, dev)
        views = {s: crop_resize(_limit(batch[s], self.source_limit), boxes, orientation, self.crops.global_size)
                 for s in sensors}
        if self.crops.msad_augment:
            views = {s: photometric(v, generator, p_blur=MSAD_BLUR, p_solarize=MSAD_SOLARIZE) for s, v in views.items()}
        return views
