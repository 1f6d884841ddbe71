"""Shared pieces of the pretraining tests: a synthetic tile store and a tiny preset."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.data.tile_store import write_tile_store

TINY: dict[str, Any] = {
    "name": "pretrain-tiny",
    "data": {"recipe": "demo", "sensors": ["s2", "l8", "vhr"], "workers": 0},
    "model": {"arch": "vit_tiny_patch16", "mode": "rgb", "drop_path": 0.1, "dino_out_dim": 256,
              "dino_hidden_dim": 128, "dino_bottleneck_dim": 64, "msad_dim": 64},
    "crops": {"global_size": 32, "local_size": 16, "local_number": 2},
    "loss": {"msad_weight": 0.1},
    "optim": {"epochs": 3, "batch_size": 8, "warmup_epochs": 1, "base_lr": 0.002},
    "runtime": {"device": "cpu", "log_every": 1, "checkpoint_every": 100, "seed": 3},
}


def write_preset(folder: Path, name: str = "tiny", preset_name: str | None = None, **sections: dict[str, Any]) -> Path:
    """TINY with ``sections`` merged over it (named ``preset_name`` when given), as ``folder``/``name``.yaml."""
    preset = {key: dict(value) if isinstance(value, dict) else value for key, value in TINY.items()}
    if preset_name is not None:
        preset["name"] = preset_name
    for key, value in sections.items():
        preset[key] = {**preset.get(key, {}), **value}
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(preset))
    return path


@pytest.fixture(scope="session")
def tile_store(tmp_path_factory: pytest.TempPathFactory) -> str:
    store = tmp_path_factory.mktemp("pretrain") / "demo.zarr"
    write_tile_store(store, seed=0)
    return str(store)
