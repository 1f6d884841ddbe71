"""The exported backbone reloads strictly into timm, in RGB and in multispectral mode: the same features for
every sensor, the exported patch embedding (not a fresh one), and a tampered export is one line."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from msc_france.config import load_recipe
from msc_france.errors import UserError
from msc_france.eval.encoders import from_export, random_like
from msc_france.pretrain.backbone import SensorViT, import_timm
from msc_france.pretrain.config import RGB_BANDS, PretrainConfig
from msc_france.pretrain.export import export_backbone, load_backbone, timm_backbone
from msc_france.store import Normalisation, read_card
from tests.pretrain_fixtures import TINY

SIZE = 32  # TINY's global crop: a 2 x 2 token grid
BANDS = {"rgb": {s: RGB_BANDS[s] for s in ("s2", "l8", "vhr")},
         "multispectral": {s: tuple(c.bands) for s, c in load_recipe("msc-france").sensors.items()}}  # 10, 6, 3

Exported = tuple[SensorViT, Path]


def _export(folder: Path, mode: str) -> Exported:
    """A ViT-Tiny SensorViT of ``mode`` with every weight moved off its initial value (as if trained), exported
    to ``folder/runs/ms/export`` as pretraining does."""
    bands = BANDS[mode]
    config = PretrainConfig.model_validate({**TINY, "model": {**TINY["model"], "mode": mode}})
    torch.manual_seed(0)
    backbone = SensorViT(config.model.arch, {s: len(b) for s, b in bands.items()}, mode, SIZE).eval()
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for param in backbone.parameters():
            param.add_(0.05 * torch.randn(param.shape, generator=generator))
    stats = {s: Normalisation(b, 1e-4, -0.1, 0, (0.1,) * len(b), (0.05,) * len(b)) for s, b in bands.items()}
    out = export_backbone(backbone, config, stats, folder / "runs" / "ms" / "export", step=7)
    return backbone, out


@pytest.fixture(scope="module", autouse=True)
def one_thread() -> Iterator[None]:
    """Tiny models: threads only add synchronisation (and stall when other jobs share the cores)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module", params=["rgb", "multispectral"])
def exported(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Exported:
    return _export(tmp_path_factory.mktemp(request.param), request.param)


@pytest.fixture(scope="module")
def multispectral(tmp_path_factory: pytest.TempPathFactory) -> Exported:
    return _export(tmp_path_factory.mktemp("multispectral"), "multispectral")


def _images(channels: int) -> torch.Tensor:
    return torch.randn(2, channels, SIZE, SIZE, generator=torch.Generator().manual_seed(channels))


def test_export_reloads_strictly_with_the_same_features_for_every_sensor(exported: Exported) -> None:
    backbone, folder = exported
    card = read_card(folder)
    assert {s: c.in_chans for s, c in card.sensors.items()} == {s: len(b) for s, b in BANDS[backbone.mode].items()}
    for sensor, entry in card.sensors.items():
        images = _images(entry.in_chans)
        reloaded = load_backbone(folder, sensor).eval()
        fresh = timm_backbone(card, sensor).eval()
        exported_embed = backbone.embed(sensor).proj.weight
        assert reloaded.patch_embed.proj.weight.shape[1] == entry.in_chans
        assert torch.equal(reloaded.patch_embed.proj.weight, exported_embed), sensor
        assert not torch.allclose(fresh.patch_embed.proj.weight, exported_embed), sensor  # the premise
        with torch.no_grad():
            expected = backbone(images, sensor)
            torch.testing.assert_close(reloaded.forward_features(images), expected)
            assert not torch.allclose(fresh.forward_features(images), expected, atol=1e-3)


def test_the_sensors_of_a_multispectral_export_have_their_own_patch_embeddings(multispectral: Exported) -> None:
    backbone, folder = multispectral
    weights = {s: load_file(str(folder / f"backbone-{s}.safetensors")) for s in BANDS["multispectral"]}
    assert {s: w["patch_embed.proj.weight"].shape[1] for s, w in weights.items()} == {"s2": 10, "l8": 6, "vhr": 3}
    assert backbone.embed("l8") is not backbone.embed("s2")
    torch.testing.assert_close(weights["l8"]["blocks.0.attn.qkv.weight"], weights["s2"]["blocks.0.attn.qkv.weight"])


def test_eval_reloads_the_export_through_the_same_strict_loader(multispectral: Exported) -> None:
    backbone, folder = multispectral
    encoder = from_export(folder, "DINO + MSAD")
    baseline = random_like(read_card(folder))
    for sensor, bands in BANDS["multispectral"].items():
        images = _images(len(bands))
        cls, patches = encoder.tokens(images, sensor)
        with torch.no_grad():
            tokens = backbone(images, sensor)
        torch.testing.assert_close(cls, tokens[:, 0])
        torch.testing.assert_close(patches, tokens[:, 1:].reshape(2, 2, 2, -1))
        assert baseline.models[sensor].patch_embed.proj.weight.shape[1] == len(bands)


def _remove_a_block_weight(path: Path) -> None:
    state = load_file(str(path))
    del state["blocks.0.attn.qkv.weight"]
    save_file(state, str(path))


def _add_a_head(path: Path) -> None:
    state = load_file(str(path))
    state["head.weight"] = torch.zeros(10, 192)
    save_file(state, str(path))


def _put_l8_weights_in_place(path: Path) -> None:
    shutil.copyfile(path.with_name("backbone-l8.safetensors"), path)


def _cut_short(path: Path) -> None:
    path.write_bytes(path.read_bytes()[:1000])


TAMPERS: dict[str, tuple[Callable[[Path], None], str]] = {
    "a weight removed": (_remove_a_block_weight, "(1 missing: blocks.0.attn.qkv.weight)"),
    "an extra weight": (_add_a_head, "(1 unexpected: head.weight)"),
    "a patch embedding of the wrong shape": (
        _put_l8_weights_in_place, "(patch_embed.proj.weight is 192x6x16x16 where the card's model has 192x10x16x16)"),
    "cut short": (_cut_short, "is damaged (Error while deserializing header"),
    "deleted": (Path.unlink, "is missing;"),
}


@pytest.mark.parametrize("tamper", TAMPERS)
def test_a_tampered_export_is_one_line_naming_the_file(multispectral: Exported, tmp_path: Path, tamper: str) -> None:
    _, original = multispectral
    folder = shutil.copytree(original, tmp_path / "export")
    path = folder / "backbone-s2.safetensors"
    change, expected = TAMPERS[tamper]
    change(path)
    assert not path.exists() or path.read_bytes() != (original / path.name).read_bytes()  # the tamper happened
    with pytest.raises(UserError) as info:
        load_backbone(folder, "s2")
    message = str(info.value)
    assert message.startswith(f"{path} ") and expected in message, message
    assert "\n" not in message and "`make pretrain resume=1`" in message, message
    assert load_backbone(folder, "l8").patch_embed.proj.weight.shape[1] == 6  # the other sensor still loads


def test_a_tampered_export_stops_eval_in_one_line(multispectral: Exported, tmp_path: Path) -> None:
    _, original = multispectral
    shutil.copytree(original.parent.parent, tmp_path / "runs")
    path = tmp_path / "runs" / "ms" / "export" / "backbone-vhr.safetensors"
    _remove_a_block_weight(path)
    result = subprocess.run([sys.executable, "-m", "msc_france", "eval", "--data", str(tmp_path), "--run", "ms"],
                            capture_output=True, text=True, timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    assert result.stderr.strip() == (f"error: {path} does not fit {path.parent / 'model_card.json'} "
                                     "(1 missing: blocks.0.attn.qkv.weight); export the backbone again "
                                     "(`make pretrain resume=1`), or check the card")


def test_timms_pretrained_path_would_load_a_cut_export_without_error(multispectral: Exported, tmp_path: Path) -> None:
    """Why the loader is not timm's ``pretrained=True`` (the docs say so): with ``num_classes=0`` it loads
    non-strictly, and a weight missing from the file silently stays random."""
    _, original = multispectral
    path = tmp_path / "backbone-s2.safetensors"
    shutil.copyfile(original / path.name, path)
    _remove_a_block_weight(path)
    model = import_timm().create_model("vit_tiny_patch16_224", pretrained=True, num_classes=0, in_chans=10,
                                       img_size=SIZE, dynamic_img_size=True,
                                       pretrained_cfg_overlay={"file": str(path)})
    exported = load_file(str(original / path.name))
    assert torch.equal(model.patch_embed.proj.weight, exported["patch_embed.proj.weight"])  # it did read the file
    assert not torch.allclose(model.blocks[0].attn.qkv.weight, exported["blocks.0.attn.qkv.weight"])


def test_a_card_naming_an_architecture_timm_lacks_is_one_line(multispectral: Exported, tmp_path: Path) -> None:
    _, original = multispectral
    folder = shutil.copytree(original, tmp_path / "export")
    card = folder / "model_card.json"
    card.write_text(card.read_text().replace('"vit_tiny_patch16_224"', '"vit_nonexistent_patch16_224"'))
    assert "vit_nonexistent_patch16_224" in card.read_text()  # the card was changed
    with pytest.raises(UserError, match="architecture 'vit_nonexistent_patch16_224', which timm") as info:
        load_backbone(folder, "s2")
    assert "\n" not in str(info.value)
