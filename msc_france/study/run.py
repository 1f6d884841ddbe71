"""Train every (variant, seed) of a study, evaluate them all on the same tiles, choose on val, report test.

The runs are ordinary runs (``runs/study-NAME-VARIANT-seedK``, resumed when finished); their presets are
written to ``studies/NAME/presets/``. Every backbone, and a randomly initialised one, is embedded in one
pass over the store. Scores on val use probes with a fixed L2 (val is what they would choose it on);
scores on test use probes with the L2 chosen on val, as ``msc-france eval``. A variant trained with
several seeds scores the mean of its seeds, resample by resample of the paired bootstrap.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from statistics import fmean, pstdev

import numpy as np
from tqdm import tqdm

from msc_france.errors import UserError
from msc_france.eval.bootstrap import RESAMPLES, Bootstrap, Resamples, TileStatistic, bootstrap
from msc_france.eval.embeddings import Split, SplitEmbeddings, embed_split
from msc_france.eval.encoders import Encoder, from_export, random_like
from msc_france.eval.labels import ClassSpace
from msc_france.eval.scores import EncoderScores, score_encoder
from msc_france.pretrain.config import seeded_name
from msc_france.pretrain.trainer import PretrainRequest, run_pretrain
from msc_france.store import read_card
from msc_france.study.spec import StudySpec, Variant, load_study, variant_config, write_preset

RANDOM = "random init"


@dataclass
class StudyRequest:
    study: str
    data: Path = Path("data")
    store: str | None = None
    resamples: int = RESAMPLES
    seed: int = 0  # of the random-init backbone and of the resamples
    quiet: bool = False


@dataclass(frozen=True)
class Arm:
    """One trained run: a variant with one training seed."""

    variant: str
    seed: int
    run: str


@dataclass(frozen=True)
class Pooled:
    """A score averaged over the training seeds of a variant, resample by resample."""

    parts: tuple[TileStatistic, ...]

    def resampled(self, weights: np.ndarray) -> np.ndarray:
        mean: np.ndarray = np.mean([p.resampled(weights) for p in self.parts], axis=0)
        return mean


@dataclass
class VariantResult:
    name: str
    note: str
    runs: list[str]
    choice: float  # mean on val of the study's choose_by scores that the store defines
    chosen: bool
    seed_spread: dict[str, float] = field(default_factory=dict)  # test score -> std over training seeds
    pair_recall: dict[str, float] = field(default_factory=dict)  # test R@1 per sensor pair, mean over seeds


@dataclass
class StudySummary:
    folder: Path
    spec: StudySpec
    chosen: str
    chosen_by: list[str]  # the choose_by scores defined on this store (no labels: no transfer)
    variants: list[VariantResult]
    val: Bootstrap
    test: Bootstrap


def arms_of(spec: StudySpec) -> list[Arm]:
    return [Arm(v.name, seed, seeded_name(f"study-{spec.name}-{v.name}", seed)) for v in spec.variants
            for seed in spec.seeds_of(v)]


def _train(spec: StudySpec, request: StudyRequest, folder: Path) -> list[Arm]:
    arms = arms_of(spec)
    variants = {v.name: v for v in spec.variants}
    presets = [write_preset(variant_config(spec, variants[a.variant], a.seed, a.run), folder / "presets")
               for a in arms]  # every preset checked before the first run starts
    for arm, preset in tqdm(list(zip(arms, presets, strict=True)), desc=f"study {spec.name}", unit="run",
                            disable=request.quiet):
        tqdm.write(f"study {spec.name}: run {arm.run} ({arm.variant}, seed {arm.seed})")
        run_pretrain(PretrainRequest(config=preset, data=request.data, store=request.store, resume="auto",
                                     quiet=request.quiet))
    return arms


def _encoders(request: StudyRequest, arms: list[Arm]) -> tuple[list[Encoder], str]:
    runs = request.data / "runs"
    card = read_card(runs / arms[0].run / "export")
    encoders = [random_like(card, RANDOM, request.seed)]
    encoders += [from_export(runs / arm.run / "export", arm.run) for arm in arms]
    return encoders, request.store or str(request.data / f"{card.recipe}.zarr")


def _classes(*splits: Split) -> ClassSpace | None:
    labelled = [s.labels for s in splits if s.labels is not None]
    return ClassSpace.of(*labelled) if len(labelled) == len(splits) else None


def _pooled(scores: dict[str, EncoderScores], spec: StudySpec, arms: list[Arm]) -> dict[str, dict[str, TileStatistic]]:
    """Outcomes by model: random init, the reference, then the other variants in the study's order."""
    order = [spec.reference, *(v.name for v in spec.variants if v.name != spec.reference)]
    out: dict[str, dict[str, TileStatistic]] = {RANDOM: scores[RANDOM].outcomes}
    for name in order:
        members = [scores[a.run].outcomes for a in arms if a.variant == name]
        out[name] = {key: Pooled(tuple(m[key] for m in members)) for key in members[0]}
    return out


def defined_scores(spec: StudySpec, val: Bootstrap) -> list[str]:
    """The study's ``choose_by`` scores that every variant has on val: a store without labels has
    retrieval only, and a choice must not average a missing score."""
    defined = [key for key in spec.choose_by
               if all(key in val.figures[v.name] and not math.isnan(val.figures[v.name][key].value)
                      for v in spec.variants)]
    if not defined:
        raise UserError(f"study {spec.name}: none of choose_by ({', '.join(spec.choose_by)}) is defined on this "
                        "store's val split (no labels?); set choose_by: [retrieval_R@1] in the study file")
    return defined


def _result(variant: Variant, arms: list[Arm], test: dict[str, EncoderScores], val: Bootstrap,
            chosen_by: list[str]) -> VariantResult:
    members = [a for a in arms if a.variant == variant.name]
    choice = fmean(val.figures[variant.name][key].value for key in chosen_by)
    summaries = [test[a.run].scores["summary"] for a in members]
    spread = {key: pstdev([s[key] for s in summaries]) for key in summaries[0]} if len(members) > 1 else {}
    pairs = test[members[0].run].scores["retrieval"]
    recall = {pair: fmean(test[a.run].scores["retrieval"][pair]["R@1"] for a in members) for pair in pairs}
    return VariantResult(variant.name, variant.note, [a.run for a in members], choice, False, spread, recall)


def run_study(request: StudyRequest) -> StudySummary:
    if request.resamples < 1:
        raise UserError(f"--resamples {request.resamples}: give 1 or more bootstrap resamples")
    spec = load_study(request.study)
    folder = request.data / "studies" / spec.name
    arms = _train(spec, request, folder)
    encoders, store = _encoders(request, arms)
    train, val, test = (embed_split(encoders, store, name, quiet=request.quiet) for name in ("train", "val", "test"))
    no_val = Split("none", [], {e.name: SplitEmbeddings([]) for e in encoders}, None)
    on_val, on_test = {}, {}
    for e in tqdm(encoders, desc="score val and test", unit="model", disable=request.quiet):
        on_val[e.name] = score_encoder(e.name, train, no_val, val, _classes(train, val))
        on_test[e.name] = score_encoder(e.name, train, val, test, _classes(train, test))
    val_boot = bootstrap(_pooled(on_val, spec, arms), Resamples.draw(len(val.tiles), request.resamples, request.seed))
    test_boot = bootstrap(_pooled(on_test, spec, arms),
                          Resamples.draw(len(test.tiles), request.resamples, request.seed))
    chosen_by = defined_scores(spec, val_boot)
    results = [_result(v, arms, on_test, val_boot, chosen_by) for v in spec.variants]
    best = max(results, key=lambda r: r.choice)
    best.chosen = True
    summary = StudySummary(folder, spec, best.name, chosen_by, results, val_boot, test_boot)
    from msc_france.study.report import write_study

    write_study(summary)
    return summary
