"""X-STARS as one module: a student (backbone, DINO head, MSAD head), an EMA teacher, and the losses.

    total = DINO(student crops | teacher global crops) + alpha * sum over sensor pairs MSAD(a, b)

In continual mode the student adapts to ``new_sensor``: DINO on that sensor's crops, MSAD between its
tokens and those of a frozen copy of the initial model on ``known_sensor`` (eval mode, no gradient).
"""

from __future__ import annotations

import copy
import itertools

import torch
from torch import nn

from msc_france.pretrain.augment import Views
from msc_france.pretrain.backbone import SensorViT
from msc_france.pretrain.config import PretrainConfig
from msc_france.pretrain.dino_loss import DINOLoss
from msc_france.pretrain.heads import DINOHead, MSADHead
from msc_france.pretrain.msad_loss import MSADLoss


class Branch(nn.Module):
    """A backbone with its heads (the student's, the teacher's, or the frozen copy's)."""

    def __init__(self, backbone: SensorViT, dino_head: DINOHead, msad_head: MSADHead | None) -> None:
        super().__init__()
        self.backbone = backbone
        self.dino_head = dino_head
        self.msad_head = msad_head

    def dino(self, images: torch.Tensor, sensor: str) -> torch.Tensor:
        logits: torch.Tensor = self.dino_head(self.backbone(images, sensor)[:, 0])
        return logits

    def aligned(self, images: torch.Tensor, sensor: str, dense: bool) -> torch.Tensor:
        """MSAD projections (B, T, D) of patch tokens, or of the class token (T = 1) when not ``dense``."""
        assert self.msad_head is not None
        tokens = self.backbone(images, sensor)
        tokens = tokens[:, self.backbone.prefix_tokens:] if dense else tokens[:, :1]
        projected: torch.Tensor = self.msad_head(tokens, sensor)
        return projected


class XStars(nn.Module):
    """``forward(views, teacher_temperature) -> {"loss", "dino", "msad"}``; ``update_teacher(momentum)``."""

    def __init__(self, config: PretrainConfig, in_chans: dict[str, int]) -> None:
        super().__init__()
        m, loss = config.model, config.loss
        self.sensors = list(in_chans)
        self.msad_weight = loss.msad_weight
        self.dense = loss.msad_mode == "dense"
        self.continual = config.continual
        backbone = SensorViT(m.arch, in_chans, m.mode, config.crops.global_size, m.drop_path)
        dim = backbone.embed_dim
        msad_head = MSADHead(dim, m.msad_dim, self.sensors, m.msad_head == "sensor", m.msad_head_depth,
                             loss.msad_normalize) if self.msad_weight > 0 else None
        self.student = Branch(backbone, DINOHead(dim, m.dino_out_dim, m.dino_hidden_dim, m.dino_bottleneck_dim),
                              msad_head)
        self.teacher = copy.deepcopy(self.student)
        self.teacher.msad_head = None  # the teacher serves DINO only
        self.teacher.requires_grad_(False)
        self.frozen: Branch | None = None
        self.dino_loss = DINOLoss(m.dino_out_dim, loss.student_temperature, loss.center_momentum)
        self.msad_loss = MSADLoss(loss.msad_temperature, loss.msad_label_smoothing, loss.msad_targets == "soft")

    def start_continual(self) -> None:
        """Freeze a copy of the (just loaded) student as the reference for the known sensor."""
        self.frozen = copy.deepcopy(self.student)
        self.frozen.requires_grad_(False)
        self.frozen.eval()
        self.teacher.load_state_dict(self.student.state_dict(), strict=False)

    def train(self, mode: bool = True) -> XStars:
        super().train(mode)
        self.teacher.eval()  # no drop-path in the teacher (as in DINO)
        if self.frozen is not None:
            self.frozen.eval()  # the frozen copy never leaves eval mode
        return self

    def msad_pairs(self) -> list[tuple[str, str]]:
        if self.continual is not None:
            return [(self.continual.new_sensor, self.continual.known_sensor)]
        return list(itertools.combinations(self.sensors, 2))

    def forward(self, views: Views, teacher_temperature: float) -> dict[str, torch.Tensor]:
        student_out = [self.student.dino(views.globals, views.sensor)]
        if views.locals is not None:
            student_out.append(self.student.dino(views.locals, views.sensor))
        with torch.no_grad():
            teacher_out = self.teacher.dino(views.globals, views.sensor)
        dino = self.dino_loss(torch.cat(student_out), teacher_out, teacher_temperature)
        msad = dino.new_zeros(())
        if self.msad_weight > 0:
            pairs = self.msad_pairs()
            projected = self._projections(views, pairs)
            for a, b in pairs:
                msad = msad + self.msad_loss(projected[a], projected[b])
        return {"loss": dino + self.msad_weight * msad, "dino": dino.detach(), "msad": msad.detach()}

    def _projections(self, views: Views, pairs: list[tuple[str, str]]) -> dict[str, torch.Tensor]:
        """Each sensor's MSAD projections, one backbone pass a sensor however many pairs it is in.

        Three sensors make three pairs: a pass per pair side would run the backbone six times for the
        same three images. In continual mode the known sensor goes through the frozen copy."""
        projected: dict[str, torch.Tensor] = {}
        for a, b in pairs:
            if a not in projected:
                projected[a] = self.student.aligned(views.aligned[a], a, self.dense)
            if b in projected:
                continue
            if self.frozen is None:
                projected[b] = self.student.aligned(views.aligned[b], b, self.dense)
            else:
                with torch.no_grad():
                    projected[b] = self.frozen.aligned(views.aligned[b], b, self.dense)
        return projected

    @torch.no_grad()
    def update_teacher(self, momentum: float) -> None:
        """teacher = momentum * teacher + (1 - momentum) * student, for the backbone and the DINO head."""
        student = dict(self.student.named_parameters())
        names, teacher_params = zip(*self.teacher.named_parameters(), strict=True)
        student_params = [student[n].detach() for n in names]
        torch._foreach_mul_(list(teacher_params), momentum)
        torch._foreach_add_(list(teacher_params), student_params, alpha=1 - momentum)
