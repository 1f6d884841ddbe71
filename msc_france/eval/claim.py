"""The cross-sensor claim of X-STARS checked on an evaluation: the pretrained model ahead of each baseline
on cross-sensor retrieval, transfer and dense transfer (the 95 % interval of the difference above 0), and
Recall@1 at least 90 % for every ordered sensor pair."""

from __future__ import annotations

import math
from dataclasses import dataclass

from msc_france.eval.bootstrap import Bootstrap

CLAIM_SCORES = (("retrieval_R@1", "R@1"), ("transfer_accuracy", "transfer"),
                ("segmentation_transfer_miou", "dense transfer"))
PAIR_RECALL_GOAL = 0.90


@dataclass(frozen=True)
class Check:
    """One part of the claim: met, not met, or None where the store cannot measure it (no labels)."""

    claim: str
    met: bool | None
    detail: str


def _ahead(bootstrap: Bootstrap, model: str, baseline: str, key: str, label: str) -> Check:
    claim = f"{label} ahead of {baseline}"
    diff = bootstrap.difference(model, baseline, key)
    if diff is None or math.isnan(diff.value):
        return Check(claim, None, "not measured (no labels)")
    return Check(claim, diff.low > 0, f"{100 * diff.value:+.1f} [{100 * diff.low:+.1f}, {100 * diff.high:+.1f}]")


def claim_checks(model: str, bootstrap: Bootstrap, pair_recall: dict[str, float]) -> list[Check]:
    """The checks of ``model`` against every baseline it is compared with, then the per-pair goal (none for a
    model of one sensor)."""
    baselines = [b for m, b in bootstrap.compared if m == model]
    checks = [_ahead(bootstrap, model, b, key, label) for b in baselines for key, label in CLAIM_SCORES]
    if not pair_recall:
        return checks
    worst = min(pair_recall, key=lambda pair: pair_recall[pair])
    checks.append(Check(f"R@1 ≥ {100 * PAIR_RECALL_GOAL:.0f} % for every sensor pair",
                        pair_recall[worst] >= PAIR_RECALL_GOAL,
                        f"worst {worst} {100 * pair_recall[worst]:.1f}"))
    return checks


def verdict(check: Check) -> str:
    return {True: "met", False: "NOT met", None: "n/a"}[check.met]
