"""Initial weights for continual pretraining: one of our checkpoints (a file, or ``run:NAME``, the
checkpoint of run NAME of the data folder), or a timm / DINO state dict."""

from __future__ import annotations

from pathlib import Path

import torch

from msc_france.errors import UserError
from msc_france.names import safe_name
from msc_france.pretrain.checkpoint import CHECKPOINT, load_checkpoint
from msc_france.pretrain.meta_arch import XStars

_PREFIXES = ("module.", "backbone.", "student.", "teacher.", "encoder.")
RUN_PREFIX = "run:"  # continual.init: run:NAME is DATA/runs/NAME/checkpoint.pt


def resolve_init(init: str, data: Path) -> Path:
    """The file of ``continual.init``: ``run:NAME``, the checkpoint of run NAME under ``data``; else a path."""
    if not init.startswith(RUN_PREFIX):
        return Path(init)
    name = safe_name(init.removeprefix(RUN_PREFIX), "continual.init run name")
    path = data / "runs" / name / CHECKPOINT
    if not path.exists():
        raise UserError(f"continual.init: run {name} has no checkpoint in {data / 'runs'}; "
                        f"train it first with `make pretrain config={name}`")
    return path


def _plain_state(path: Path) -> dict[str, torch.Tensor]:
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path))
    state = load_checkpoint(path)
    for key in ("teacher", "student", "state_dict", "model"):  # DINO checkpoints nest their weights
        if isinstance(state.get(key), dict):
            state = state[key]
            break
    return {k: v for k, v in state.items() if isinstance(v, torch.Tensor)}


def load_initial_weights(model: XStars, path: str | Path) -> list[str]:
    """Load ``path`` into the student; return the names of weights it did not provide.

    Our checkpoints give the whole student. Other state dicts give ViT weights with any of the usual
    prefixes (DINO's ``module.backbone.``, timm's none); a patch embedding of another band count is skipped.
    """
    path = Path(path)
    if not path.exists():
        raise UserError(f"continual.init: no file {path}")
    state = load_checkpoint(path) if path.suffix == ".pt" else None
    if state is not None and "model" in state and "step" in state:
        student = {k.removeprefix("student."): v for k, v in state["model"].items() if k.startswith("student.")}
        target = model.student.state_dict()
        clash = [k for k, v in student.items() if k in target and target[k].shape != v.shape]
        if clash or not any(k.startswith("backbone.") and k in target for k in student):
            raise UserError(f"continual.init: {path} is a checkpoint of another architecture "
                            f"({clash[0] if clash else 'no backbone weights'}); "
                            "use one made with the same model section")
        model.student.load_state_dict({k: v for k, v in student.items() if k in target}, strict=False)
        return sorted(k for k in target if k not in student)  # e.g. the head of a sensor new to the model
    vit_state = {}
    for key, value in _plain_state(path).items():
        for prefix in _PREFIXES:
            key = key.removeprefix(prefix)
        vit_state[key] = value
    target = model.student.backbone.vit.state_dict()
    usable = {k: v for k, v in vit_state.items() if k in target and target[k].shape == v.shape}
    if not usable:
        raise UserError(f"continual.init: {path} holds no weights of a {model.student.backbone.arch} backbone")
    model.student.backbone.vit.load_state_dict(usable, strict=False)
    return sorted(set(target) - set(usable))
