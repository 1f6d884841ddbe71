"""The X-STARS losses and heads: DINO, MSAD (aligned vs shuffled, gradient to the backbone, heads
optimised, global variant), the EMA teacher."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from msc_france.pretrain.augment import MultiCrop
from msc_france.pretrain.config import PretrainConfig
from msc_france.pretrain.dino_loss import DINOLoss
from msc_france.pretrain.meta_arch import XStars
from msc_france.pretrain.msad_loss import MSADLoss
from msc_france.pretrain.trainer import _param_groups
from tests.pretrain_fixtures import TINY

RGB3 = {"s2": 3, "l8": 3, "vhr": 3}


def tiny_config(**loss: object) -> PretrainConfig:
    return PretrainConfig.model_validate({**TINY, "loss": {**TINY["loss"], **loss}})


def batch(seed: int = 0, n: int = 6) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {"s2": torch.randn(n, 3, 48, 48, generator=g), "l8": torch.randn(n, 3, 16, 16, generator=g),
            "vhr": torch.randn(n, 3, 120, 120, generator=g)}


def test_dino_loss_matches_its_definition_and_updates_the_centre() -> None:
    torch.manual_seed(0)
    loss = DINOLoss(out_dim=5, student_temperature=0.1, center_momentum=0.9)
    student, teacher = torch.randn(4 * 3, 5), torch.randn(2 * 3, 5)
    value = loss(student, teacher, teacher_temperature=0.04)
    s = F.log_softmax(student / 0.1, -1).split(3)
    t = F.softmax(teacher / 0.04, -1).split(3)
    expected = sum((-t[i] * s[v]).sum(-1).mean() for i in range(2) for v in range(4) if v != i) / 6
    assert torch.allclose(value, expected, atol=1e-6)
    assert torch.allclose(loss.center, 0.1 * teacher.mean(0, keepdim=True), atol=1e-6)


def test_msad_is_lower_for_aligned_pairs_than_for_shuffled_ones() -> None:
    g = torch.Generator().manual_seed(1)
    a = F.normalize(torch.randn(16, 9, 32, generator=g), dim=-1)
    b = F.normalize(a + 0.3 * torch.randn(16, 9, 32, generator=g), dim=-1)
    shuffled = b[torch.randperm(16, generator=g)]
    loss = MSADLoss(temperature=0.1, label_smoothing=0.1)
    assert loss(a, b) < loss(a, shuffled) - 0.5
    assert torch.allclose(loss(a, b), loss(b, a), atol=1e-5)  # symmetric


def test_hard_msad_targets_are_a_symmetric_smoothed_infonce() -> None:
    g = torch.Generator().manual_seed(2)
    a = F.normalize(torch.randn(8, 4, 16, generator=g), dim=-1)
    b = F.normalize(torch.randn(8, 4, 16, generator=g), dim=-1)
    logits = torch.einsum("itd,jtd->tij", a, b) / 0.1  # (T, B, B)
    labels = torch.arange(8).repeat(4)
    expected = (F.cross_entropy(logits.reshape(-1, 8), labels, label_smoothing=0.2)
                + F.cross_entropy(logits.transpose(1, 2).reshape(-1, 8), labels, label_smoothing=0.2)) / 2
    torch.testing.assert_close(MSADLoss(0.1, 0.2, soft=False)(a, b), expected)


def _after_descent(soft: bool) -> tuple[float, float]:
    """Free tokens started nearly collapsed (every one close to the same vector), 300 Adam steps on MSAD:
    the loss, and the mean cosine between different samples' tokens."""
    g = torch.Generator().manual_seed(3)
    start = torch.randn(1, 1, 16, generator=g)
    a = (start + 0.05 * torch.randn(8, 4, 16, generator=g)).requires_grad_(True)
    b = (start + 0.05 * torch.randn(8, 4, 16, generator=g)).requires_grad_(True)
    optimizer = torch.optim.Adam([a, b], lr=0.01)
    loss_fn = MSADLoss(0.1, 0.1, soft=soft)
    for _ in range(300):
        optimizer.zero_grad()
        loss = loss_fn(F.normalize(a, dim=-1), F.normalize(b, dim=-1))
        loss.backward()
        optimizer.step()
    tokens = F.normalize(a.detach(), dim=-1).transpose(0, 1)  # (T, B, D)
    cosines = tokens @ tokens.transpose(1, 2)
    others = (cosines.sum() - cosines.diagonal(dim1=1, dim2=2).sum()) / (4 * 8 * 7)
    return float(loss.detach()), float(others)


def test_soft_msad_targets_keep_collapsed_tokens_collapsed_and_hard_ones_spread_them() -> None:
    """The soft targets have a collapsed optimum: with every token alike they are uniform, so are the
    predictions, and the loss stays at chance (ln B); the identity targets pull each token to its
    partner and away from the others."""
    soft_loss, soft_alike = _after_descent(soft=True)
    hard_loss, hard_alike = _after_descent(soft=False)
    assert soft_alike > 0.95 and abs(soft_loss - math.log(8)) < 0.05, (soft_loss, soft_alike)
    assert hard_alike < 0.8 and hard_loss < 1.0, (hard_loss, hard_alike)


def test_a_shared_msad_head_has_no_per_sensor_layer() -> None:
    config = PretrainConfig.model_validate({**TINY, "model": {**TINY["model"], "msad_head": "shared"},
                                            "loss": {**TINY["loss"], "msad_weight": 1.0}})
    heads = XStars(config, {"s2": 3, "l8": 3, "vhr": 3}).student.msad_head
    assert heads is not None and all(isinstance(h, torch.nn.Identity) for h in heads.heads.values())
    tokens = torch.randn(2, 5, heads.shared[0].in_features)
    torch.testing.assert_close(heads(tokens, "s2"), heads(tokens, "vhr"))  # the same map for every sensor


def head_config(model: dict[str, object] | None = None, **loss: object) -> PretrainConfig:
    return PretrainConfig.model_validate({**TINY, "model": {**TINY["model"], **(model or {})},
                                          "loss": {**TINY["loss"], **loss}})


def test_msad_normalize_false_leaves_the_projections_unnormalised() -> None:
    tokens = torch.randn(3, 5, 192, generator=torch.Generator().manual_seed(5))
    torch.manual_seed(0)
    normalised = XStars(head_config(), RGB3).student.msad_head
    torch.manual_seed(0)
    raw = XStars(head_config(msad_normalize=False), RGB3).student.msad_head
    assert normalised is not None and raw is not None
    unit, free = normalised(tokens, "l8"), raw(tokens, "l8")
    torch.testing.assert_close(unit.norm(dim=-1), torch.ones(3, 5))
    assert (free.norm(dim=-1) - 1).abs().min() > 0.1  # not unit vectors
    torch.testing.assert_close(F.normalize(free, dim=-1), unit)  # the same head, only the normalisation differs


def test_msad_loss_on_unnormalised_projections_is_float32_and_finite_under_bf16_autocast() -> None:
    g = torch.Generator().manual_seed(6)
    a, b = 30 * torch.randn(8, 4, 16, generator=g), 30 * torch.randn(8, 4, 16, generator=g)  # |a . b| ~ 3600
    loss = MSADLoss(temperature=1.0, label_smoothing=0.3)
    exact = loss(a, b)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        autocast = loss(a.bfloat16(), b.bfloat16())
    assert autocast.dtype == torch.float32 and torch.isfinite(autocast)
    torch.testing.assert_close(autocast, loss(a.bfloat16().float(), b.bfloat16().float()))  # no bf16 logits
    assert torch.isfinite(exact) and exact > 0


@pytest.mark.parametrize("depth", [1, 2, 3, 4])
def test_msad_head_depth_is_the_number_of_linear_layers_of_the_shared_projection(depth: int) -> None:
    head = XStars(head_config({"msad_head_depth": depth}), RGB3).student.msad_head
    assert head is not None
    kinds = [type(m).__name__ for m in head.shared]
    assert kinds == ["Linear", "GELU"] * (depth - 1) + ["Linear"]  # depth 2 is the default Linear-GELU-Linear
    assert head.shared[0].in_features == 192 and all(m.out_features == 64 for m in head.shared if
                                                      isinstance(m, torch.nn.Linear))
    assert head(torch.randn(2, 5, 192), "s2").shape == (2, 5, 64)


def test_msad_head_defaults_are_todays_head() -> None:
    """Default keys: the head as it was before they existed (Linear-GELU-Linear, per-sensor heads,
    L2-normalised), built from the same seed to the same weights and outputs."""
    from msc_france.pretrain.heads import MSADHead, _init

    torch.manual_seed(0)
    head = MSADHead(192, 64, list(RGB3))
    torch.manual_seed(0)
    shared = torch.nn.Sequential(torch.nn.Linear(192, 64), torch.nn.GELU(), torch.nn.Linear(64, 64))
    heads = torch.nn.ModuleDict({s: torch.nn.Linear(64, 64) for s in RGB3})
    shared.apply(_init)
    heads.apply(_init)
    tokens = torch.randn(2, 5, 192)
    torch.testing.assert_close(head(tokens, "vhr"), F.normalize(heads["vhr"](shared(tokens)), dim=-1), rtol=0, atol=0)
    config = head_config()
    assert (config.model.msad_head_depth, config.loss.msad_normalize, config.crops.msad_augment) == (2, True, False)


def test_the_reference_msad_formulation_trains_with_the_other_axes() -> None:
    """Unnormalised projections, temperature 1, smoothing 0.3, a 3-layer head and augmented aligned views:
    a finite loss whose gradient reaches the head's first layer."""
    config = PretrainConfig.model_validate({
        **TINY, "model": {**TINY["model"], "msad_head_depth": 3}, "crops": {**TINY["crops"], "msad_augment": True},
        "loss": {"msad_weight": 1.0, "msad_normalize": False, "msad_temperature": 1.0, "msad_label_smoothing": 0.3}})
    model = XStars(config, RGB3)
    model.train()
    views = MultiCrop(config.crops)(batch(), seed=0, dino_sensor="s2", msad_sensors=list(RGB3))
    out = model(views, teacher_temperature=0.04)
    assert torch.isfinite(out["loss"]) and out["msad"] > 0
    out["loss"].backward()
    assert model.student.msad_head.shared[0].weight.grad.abs().sum() > 0


def test_msad_gradient_reaches_the_backbone_and_its_heads_are_optimised() -> None:
    config = tiny_config()
    model = XStars(config, {"s2": 3, "l8": 3, "vhr": 3})
    views = MultiCrop(config.crops)(batch(), seed=0, dino_sensor="s2", msad_sensors=["s2", "l8", "vhr"])
    za = model.student.aligned(views.aligned["s2"], "s2", dense=True)
    zb = model.student.aligned(views.aligned["vhr"], "vhr", dense=True)
    model.msad_loss(za, zb).backward()
    block = model.student.backbone.vit.blocks[0].attn.qkv.weight
    assert block.grad is not None and block.grad.abs().sum() > 0
    assert model.student.backbone.vit.patch_embed.proj.weight.grad.abs().sum() > 0
    heads = model.student.msad_head
    assert heads.shared[0].weight.grad.abs().sum() > 0 and heads.heads["vhr"].weight.grad.abs().sum() > 0
    optimised = {id(p) for group in _param_groups(model) for p in group["params"]}
    assert all(id(p) in optimised for p in heads.parameters())
    before = heads.heads["vhr"].weight.detach().clone()
    optimizer = torch.optim.AdamW(_param_groups(model), lr=1e-3)
    optimizer.step()
    assert not torch.equal(before, heads.heads["vhr"].weight)


def test_total_loss_carries_the_msad_gradient() -> None:
    config = tiny_config(msad_weight=1.0)
    model = XStars(config, {"s2": 3, "l8": 3, "vhr": 3})
    model.train()
    views = MultiCrop(config.crops)(batch(), seed=0, dino_sensor="s2", msad_sensors=["s2", "l8", "vhr"])
    out = model(views, teacher_temperature=0.04)
    assert out["loss"].requires_grad and out["msad"] > 0
    assert torch.allclose(out["loss"].detach(), out["dino"] + out["msad"], atol=1e-5)
    out["loss"].backward()
    assert model.student.msad_head.heads["l8"].weight.grad.abs().sum() > 0
    assert all(p.grad is None for p in model.teacher.parameters())


def test_msad_runs_the_backbone_once_a_sensor_and_equals_the_pairwise_sum() -> None:
    """Three sensors make three pairs but three backbone passes, not six; the loss and every gradient
    equal those of the pair-by-pair sum of the losses (no drop-path, so both see the same network)."""
    config = PretrainConfig.model_validate({**TINY, "model": {**TINY["model"], "drop_path": 0.0},
                                            "loss": {**TINY["loss"], "msad_weight": 1.0}})
    models = []
    for _ in range(2):
        torch.manual_seed(0)
        models.append(XStars(config, RGB3).train())
    ours, pairwise = models
    views = MultiCrop(config.crops)(batch(), seed=0, dino_sensor="s2", msad_sensors=list(RGB3))
    passes: list[int] = []
    hook = ours.student.backbone.register_forward_hook(lambda module, args, out: passes.append(args[0].shape[-1]))
    out = ours(views, teacher_temperature=0.04)
    hook.remove()
    assert len(passes) == 2 + 3  # DINO: globals and locals; MSAD: one pass each of s2, l8, vhr
    out["loss"].backward()
    pairwise.msad_weight = 0.0  # DINO alone, then each pair with its own two passes
    dino = pairwise(views, teacher_temperature=0.04)["loss"]
    msad = sum(pairwise.msad_loss(pairwise.student.aligned(views.aligned[a], a, True),
                                  pairwise.student.aligned(views.aligned[b], b, True))
               for a, b in pairwise.msad_pairs())
    torch.testing.assert_close(out["msad"], msad.detach())
    (dino + msad).backward()
    grads = {name: p.grad for name, p in ours.named_parameters() if p.grad is not None}
    reference = {name: p.grad for name, p in pairwise.named_parameters() if p.grad is not None}
    assert reference.keys() == grads.keys() and "student.msad_head.heads.vhr.weight" in grads
    for name, grad in reference.items():
        torch.testing.assert_close(grads[name], grad, rtol=1e-4, atol=1e-6, msg=name)


def test_global_variant_aligns_one_token_per_image() -> None:
    config = tiny_config(msad_mode="global")
    model = XStars(config, {"s2": 3, "l8": 3, "vhr": 3})
    views = MultiCrop(config.crops)(batch(), seed=0, dino_sensor="s2", msad_sensors=["s2", "l8"])
    assert model.student.aligned(views.aligned["s2"], "s2", dense=model.dense).shape == (6, 1, 64)
    dense = XStars(tiny_config(), {"s2": 3, "l8": 3, "vhr": 3})
    assert dense.student.aligned(views.aligned["s2"], "s2", dense=True).shape == (6, 4, 64)  # 32 px / 16 = 2 x 2


def test_teacher_follows_the_student_by_ema_and_never_gets_gradients() -> None:
    model = XStars(tiny_config(), {"s2": 3, "l8": 3, "vhr": 3})
    assert not any(p.requires_grad for p in model.teacher.parameters())
    with torch.no_grad():
        for p in model.student.parameters():
            p.add_(1.0)
    teacher_before = model.teacher.backbone.vit.cls_token.clone()
    model.update_teacher(0.9)
    expected = 0.9 * teacher_before + 0.1 * model.student.backbone.vit.cls_token
    assert torch.allclose(model.teacher.backbone.vit.cls_token, expected)


def test_multispectral_mode_has_one_patch_embedding_per_sensor() -> None:
    config = PretrainConfig.model_validate({**TINY, "model": {**TINY["model"], "mode": "multispectral"}})
    model = XStars(config, {"s2": 4, "l8": 6, "vhr": 3})
    backbone = model.student.backbone
    assert {s: backbone.embed(s).proj.in_channels for s in ("s2", "l8", "vhr")} == {"s2": 4, "l8": 6, "vhr": 3}
    assert backbone.timm_state_dict("l8")["patch_embed.proj.weight"].shape[1] == 6
    tokens = model.student.backbone(torch.randn(2, 6, 32, 32), "l8")
    assert tokens.shape == (2, 1 + 4, 192)


@pytest.mark.parametrize("bad, message", [
    ({"loss": {"msad_weight": 0.1}, "data": {"sensors": ["s2"], "workers": 0}}, "at least two"),
    ({"crops": {"global_size": 30}}, "multiple of the patch size"),
    ({"model": {"arch": "vit_huge_patch14"}}, "model.arch"),
    ({"model": {"msad_head_depth": 5}}, "model.msad_head_depth"),
])
def test_bad_presets_fail_on_one_line(bad: dict, message: str, tmp_path: Path) -> None:
    from msc_france.errors import UserError
    from msc_france.pretrain.config import load_pretrain_config
    from tests.pretrain_fixtures import write_preset

    with pytest.raises(UserError, match=message) as info:
        load_pretrain_config(write_preset(tmp_path, **bad))
    assert "\n" not in str(info.value)
