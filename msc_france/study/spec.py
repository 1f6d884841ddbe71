"""The study file (``pipelines/studies/*.yaml``): a base preset, the variants (dotted keys changed from
it), the training seeds, and the scores the choice is made on (on the val split)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import Field, ValidationError, field_validator, model_validator

from msc_france.config import PIPELINES_DIR, SafeName, Strict, load_yaml, read_yaml, resolve_config
from msc_france.errors import UserError
from msc_france.pretrain.config import PretrainConfig, load_pretrain_config

STUDIES_DIR = PIPELINES_DIR / "studies"
CHOICE_SCORES = ("retrieval_R@1", "transfer_accuracy", "segmentation_transfer_miou")


class Variant(Strict):
    """One arm of the study: the base preset with ``set`` (``{"loss.msad_weight": 1.0}``) applied."""

    name: SafeName
    note: str = Field(default="", description="what the variant changes, for the tables")
    set: dict[str, Any] = Field(default_factory=dict)
    seeds: list[int] | None = Field(default=None, description="its training seeds (default: the study's)")


class StudySpec(Strict):
    name: SafeName
    description: str = ""
    base: str = Field(description="pretraining preset the variants change (name or YAML path)")
    set: dict[str, Any] = Field(default_factory=dict,
                                description="keys set in every variant before its own (the study's starting point)")
    seeds: list[int] = Field(default_factory=lambda: [0], min_length=1)
    choose_by: list[str] = Field(default_factory=lambda: list(CHOICE_SCORES), min_length=1,
                                 description="summary scores averaged to rank the variants on val")
    reference: str = Field(description="the variant every other is compared with (e.g. DINO alone)")
    variants: list[Variant] = Field(min_length=2)

    @field_validator("choose_by")
    @classmethod
    def _known_scores(cls, value: list[str]) -> list[str]:
        from msc_france.eval.report import EMBEDDING_LABELS, HEADLINE

        known = {key for key, _ in HEADLINE} | set(EMBEDDING_LABELS)
        unknown = [v for v in value if v not in known]
        if unknown:
            raise ValueError(f"choose_by: unknown score {unknown[0]!r} (known: {', '.join(sorted(known))})")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> StudySpec:
        names = [v.name for v in self.variants]
        if len(set(names)) != len(names):
            raise ValueError("variants: two variants share a name")
        if self.reference not in names:
            raise ValueError(f"reference {self.reference!r} is not one of the variants ({', '.join(names)})")
        return self

    def seeds_of(self, variant: Variant) -> list[int]:
        return variant.seeds or self.seeds


def load_study(name_or_path: str) -> StudySpec:
    """A study by name (``msad``, in ``pipelines/studies/``) or by YAML path."""
    return load_yaml(resolve_config(name_or_path, STUDIES_DIR, "study"), StudySpec)


def _with(raw: dict[str, Any], dotted: str, value: object) -> None:
    """Set ``raw[a][b]... = value`` for ``dotted`` ``a.b...``, creating sections as needed."""
    *parents, leaf = dotted.split(".")
    node = raw
    for key in parents:
        child = node.setdefault(key, {})
        if not isinstance(child, dict):
            raise UserError(f"study variant key {dotted!r}: {key} is not a section of the preset")
        node = child
    node[leaf] = value


def variant_config(spec: StudySpec, variant: Variant, seed: int, run: str) -> dict[str, Any]:
    """The preset of one (variant, seed) as a YAML-ready mapping, validated; a bad key is one line."""
    raw = read_yaml(resolve_config(spec.base, PIPELINES_DIR, "pretraining preset", pretrain=True))
    if not isinstance(raw, dict):
        raise UserError(f"study {spec.name}: base preset {spec.base} is not a mapping")
    for dotted, value in {**spec.set, **variant.set, "runtime.seed": seed, "name": run}.items():
        _with(raw, dotted, value)
    try:
        PretrainConfig.model_validate(raw)
    except ValidationError as exc:
        error = exc.errors()[0]
        where = ".".join(str(p) for p in error["loc"])
        raise UserError(f"study {spec.name}, variant {variant.name}: {where}: {error['msg']} "
                        f"(fix its `set` in the study file)") from None
    return raw


def write_preset(raw: dict[str, Any], folder: Path) -> Path:
    """The preset file of a run (the trainer reads presets from files), written whole."""
    from msc_france.store.atomic import atomic_write

    path = folder / f"{raw['name']}.yaml"
    atomic_write(path, yaml.safe_dump(raw, sort_keys=False))
    load_pretrain_config(path)  # as the trainer will read it
    return path
