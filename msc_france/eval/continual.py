"""The continual row of an evaluation: a continual run (a preset with a ``continual:`` section) before and
after adaptation, on the evaluated run's tiles: cross-sensor retrieval and linear-probe transfer between
its known and its new sensor, with paired bootstrap intervals and the difference after - before."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from msc_france.errors import UserError
from msc_france.eval.bootstrap import Bootstrap, Resamples, bootstrap
from msc_france.eval.embeddings import Split, embed_split
from msc_france.eval.encoders import continual_start, from_export
from msc_france.eval.labels import ClassSpace
from msc_france.eval.scores import pair_name, score_encoder
from msc_france.names import safe_name
from msc_france.pretrain.checkpoint import CHECKPOINT, load_checkpoint
from msc_france.pretrain.config import ContinualConfig, PretrainConfig
from msc_france.store import read_card
from msc_france.store.model_card import CARD

CONTINUAL_SUFFIX = "-continual"  # the continual run reported beside run NAME is NAME-continual
BEFORE, AFTER = "before adaptation", "after adaptation"
METRICS = (("retrieval_R@1", "R@1"), ("retrieval_R@5", "R@5"), ("transfer_accuracy", "transfer"))


@dataclass
class ContinualResult:
    """``bootstrap.figures[model]["<metric> <pair>"]`` for BEFORE and AFTER, and AFTER minus BEFORE;
    ``scores[model]``: the retrieval and transfer tables of the known and new sensor pairs."""

    run: str
    continual: ContinualConfig
    pairs: list[str]  # known->new, new->known
    same_tiles: bool  # embedded on the headline's test tiles (and drawn the same resamples)
    sources: dict[str, str]
    scores: dict[str, dict[str, Any]]
    bootstrap: Bootstrap

    @property
    def columns(self) -> list[tuple[str, str]]:
        """(figure key, label) of the section's table, in order."""
        return [(f"{key} {pair}", f"{label} {pair}") for key, label in METRICS for pair in self.pairs]


def find_continual(runs: Path, run: str, named: str | None) -> Path | None:
    """The continual run reported beside ``run``: ``named`` (it must be exported), else ``run``-continual
    when it is exported, else none."""
    if named is not None:
        folder = runs / safe_name(named, "continual run name")
        if not (folder / "export" / CARD).exists():
            raise UserError(f"--continual {named}: no exported run {named} in {runs}; "
                            f"train it first with `make pretrain config={named}`")
        return folder
    folder = runs / f"{run}{CONTINUAL_SUFFIX}"
    return folder if (folder / "export" / CARD).exists() else None


def _continual_config(checkpoint: dict[str, Any], run_dir: Path) -> ContinualConfig:
    try:
        config = PretrainConfig.model_validate(checkpoint["config"])
    except (KeyError, ValidationError):
        raise UserError(f"{run_dir / CHECKPOINT} holds no preset this version reads; train the run again") from None
    if config.continual is None:
        raise UserError(f"run {run_dir.name} is not a continual run (its preset has no continual: section)")
    return config.continual


def evaluate_continual(run_dir: Path, store: str, reference: dict[str, Split], min_valid: float, batch_size: int,
                       resamples: int, seed: int, quiet: bool) -> ContinualResult:
    """Score the continual run ``run_dir`` before and after adaptation on the tiles of ``reference`` (the
    headline's splits) valid in its sensors, with its bands and normalisation."""
    checkpoint = load_checkpoint(run_dir / CHECKPOINT)
    continual = _continual_config(checkpoint, run_dir)
    export = run_dir / "export"
    card = read_card(export)
    encoders = [continual_start(export, checkpoint["model"], BEFORE), from_export(export, AFTER)]
    splits = {name: embed_split(encoders, store, name, min_valid, batch_size, quiet=quiet, required=name != "val",
                                tiles=reference[name].tiles)
              for name in ("train", "val", "test")}
    labelled = [s.labels for s in (splits["train"], splits["test"]) if s.labels is not None]
    classes = ClassSpace.of(*labelled) if len(labelled) == 2 else None
    results = {e.name: score_encoder(e.name, splits["train"], splits["val"], splits["test"], classes)
               for e in encoders}
    known, new = continual.known_sensor, continual.new_sensor
    pairs = [pair_name(known, new), pair_name(new, known)]
    keys = [f"{key} {pair}" for key, _ in METRICS for pair in pairs]
    outcomes = {name: {k: r.pair_outcomes[k] for k in keys if k in r.pair_outcomes} for name, r in results.items()}
    test = splits["test"].tiles
    intervals = bootstrap(outcomes, Resamples.draw(len(test), resamples, seed))
    scores = {name: {table: {p: r.scores[table][p] for p in pairs if p in r.scores[table]}
                     for table in ("retrieval", "transfer")} for name, r in results.items()}
    init = continual.init
    sources = {BEFORE: f"the frozen copy of continual.init ({init}) in run {run_dir.name}'s checkpoint",
               AFTER: f"run {run_dir.name}, step {card.step}"}
    return ContinualResult(run_dir.name, continual, pairs, test == reference["test"].tiles, sources, scores,
                           intervals)
