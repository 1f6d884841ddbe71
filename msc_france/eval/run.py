"""``msc-france eval``: embed the store's splits with a run's backbone and its baselines, score them,
and write ``runs/NAME/report.md`` and ``report.json`` with figures; with a continual run, its scores
before and after adaptation in the same report."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from msc_france.errors import UserError
from msc_france.eval.bootstrap import RESAMPLES, Bootstrap, Resamples, bootstrap
from msc_france.eval.claim import Check, claim_checks
from msc_france.eval.continual import ContinualResult, evaluate_continual, find_continual
from msc_france.eval.downstream import eurosat, score_downstream
from msc_france.eval.embeddings import embed_split
from msc_france.eval.encoders import Encoder, from_export, random_like
from msc_france.eval.labels import ClassSpace
from msc_france.eval.report import write_report
from msc_france.eval.retrieval import chance
from msc_france.eval.scores import score_encoder
from msc_france.names import safe_name
from msc_france.pretrain.config import baseline_name
from msc_france.store import ModelCard, read_card
from msc_france.store.model_card import CARD

DOWNSTREAM = {"eurosat": eurosat}


@dataclass
class EvalRequest:
    run: str = "pretrain-demo"
    data: Path = Path("data")
    store: str | None = None
    baselines: bool = True
    min_valid: float = 0.95
    batch_size: int = 32
    quiet: bool = False
    seed: int = 0  # of the random-init baseline and of the bootstrap's resamples
    resamples: int = RESAMPLES
    downstream: dict[str, str] = field(default_factory=dict)  # dataset name -> folder on disk
    continual: str | None = None  # the continual run reported beside the run (default: run-continual if exported)


@dataclass
class EvalSummary:
    report: Path
    bootstrap: Bootstrap  # the intervals of the headline scores and of the differences between models
    headline: list[dict[str, Any]] = field(default_factory=list)
    chance: dict[str, float] = field(default_factory=dict)
    continual: ContinualResult | None = None  # the continual run before and after adaptation
    claim: list[Check] = field(default_factory=list)  # the run against its baselines and the per-pair goal


def _encoders(request: EvalRequest, run_dir: Path) -> tuple[list[Encoder], ModelCard, dict[str, str]]:
    """The run's backbone, and the baselines (random init; the DINO-alone run NAME-dino when it exists),
    baselines first as in the report's tables; with each encoder's source. The run's own encoder is
    named by the method of its card."""
    card = read_card(run_dir / "export")
    main = from_export(run_dir / "export", card.method)
    encoders, sources = [main], {main.name: f"run {request.run}, step {card.step}"}
    if request.baselines:
        dino = run_dir.parent / baseline_name(request.run) / "export"
        if main.name != "DINO alone" and (dino / CARD).exists():
            dino_card = read_card(dino)
            encoders.append(from_export(dino, "DINO alone"))
            sources["DINO alone"] = f"run {dino.parent.name}, step {dino_card.step}"
        encoders.append(random_like(card, "random init", request.seed))
        sources["random init"] = f"{card.arch} initialised by timm, seed {request.seed}"
    return encoders[::-1], card, sources


def _downstream(name: str, folder: str, encoders: list[Encoder]) -> dict[str, Any]:
    """kNN and linear probes of every encoder on a labelled dataset on disk (Sentinel-2 images)."""
    if name not in DOWNSTREAM:
        raise UserError(f"unknown downstream dataset {name!r} (known: {', '.join(DOWNSTREAM)})")
    if "s2" not in encoders[0].bands:
        raise UserError(f"downstream {name} holds Sentinel-2 images, but the run was not trained on s2")
    bands = encoders[0].bands["s2"]
    train, test = (DOWNSTREAM[name](folder, split, bands) for split in ("train", "test"))
    return {e.name: score_downstream(e, "s2", train, test) for e in encoders}


def run_eval(request: EvalRequest) -> EvalSummary:
    run_dir = request.data / "runs" / safe_name(request.run, "run name")
    if not run_dir.is_dir():
        raise UserError(f"no run {request.run!r} in {request.data / 'runs'}; "
                        f"train it with `make pretrain run={request.run}`")
    if request.resamples < 1:
        raise UserError(f"--resamples {request.resamples}: give a number of bootstrap resamples of 1 or more "
                        f"({RESAMPLES} by default)")
    continual_dir = find_continual(run_dir.parent, request.run, request.continual)
    torch.manual_seed(request.seed)
    started = time.perf_counter()
    encoders, card, sources = _encoders(request, run_dir)
    store = request.store or str(request.data / f"{card.recipe}.zarr")
    splits = {name: embed_split(encoders, store, name, request.min_valid, request.batch_size, quiet=request.quiet,
                                required=name != "val")  # without val tiles the probes keep a fixed L2
              for name in ("train", "val", "test")}
    labelled = [s.labels for s in (splits["train"], splits["test"]) if s.labels is not None]
    classes = ClassSpace.of(*labelled) if len(labelled) == 2 else None
    results = {e.name: score_encoder(e.name, splits["train"], splits["val"], splits["test"], classes) for e in encoders}
    n_test = len(splits["test"].tiles)
    intervals = bootstrap({name: r.outcomes for name, r in results.items()},
                          Resamples.draw(n_test, request.resamples, request.seed))
    downstream = {name: _downstream(name, folder, encoders) for name, folder in request.downstream.items()}
    continual = None if continual_dir is None else evaluate_continual(
        continual_dir, store, splits, request.min_valid, request.batch_size, request.resamples, request.seed,
        request.quiet)
    pair_recall = {pair: s["R@1"] for pair, s in results[card.method].scores["retrieval"].items()}
    claim = claim_checks(card.method, intervals, pair_recall)
    report = write_report(run_dir, request.run, card, store, splits, classes, results, card.method, sources,
                          downstream, intervals, continual, claim, time.perf_counter() - started)
    headline = [{"model": name, **r.scores["summary"]} for name, r in results.items()]
    return EvalSummary(report, intervals, headline, chance(n_test), continual, claim)
