"""The cross-sensor claim checked on bootstrap results whose truth is known."""

from __future__ import annotations

import numpy as np

from msc_france.eval.bootstrap import Resamples, TileMean, bootstrap
from msc_france.eval.claim import claim_checks, verdict

TILES = 64


def _models(msad_retrieval: np.ndarray) -> dict[str, dict[str, TileMean]]:
    half = (np.arange(TILES) % 2).astype(float)
    nan = np.full(TILES, np.nan)
    return {"random init": {"retrieval_R@1": TileMean((half,)), "transfer_accuracy": TileMean((half,)),
                            "segmentation_transfer_miou": TileMean((nan,))},
            "DINO + MSAD": {"retrieval_R@1": TileMean((msad_retrieval,)), "transfer_accuracy": TileMean((half,)),
                            "segmentation_transfer_miou": TileMean((nan,))}}


def test_a_clear_gain_is_met_a_tie_is_not_and_a_missing_score_is_not_measured() -> None:
    result = bootstrap(_models(np.ones(TILES)), Resamples.draw(TILES, 200))
    checks = {c.claim: c for c in claim_checks("DINO + MSAD", result, {"s2->vhr": 0.95, "vhr->s2": 0.93})}
    assert list(checks) == ["R@1 ahead of random init", "transfer ahead of random init",
                            "dense transfer ahead of random init", "R@1 ≥ 90 % for every sensor pair"]
    assert checks["R@1 ahead of random init"].met is True
    assert checks["R@1 ahead of random init"].detail.startswith("+50.0 [")
    assert checks["transfer ahead of random init"].met is False  # identical outcomes: difference 0
    assert checks["dense transfer ahead of random init"].met is None
    assert verdict(checks["dense transfer ahead of random init"]) == "n/a"
    assert checks["R@1 ≥ 90 % for every sensor pair"].met is True


def test_the_worst_pair_decides_the_per_pair_goal() -> None:
    result = bootstrap(_models(np.ones(TILES)), Resamples.draw(TILES, 50))
    goal = claim_checks("DINO + MSAD", result, {"s2->l8": 0.97, "l8->vhr": 0.52, "vhr->s2": 0.91})[-1]
    assert goal.met is False and goal.detail == "worst l8->vhr 52.0" and verdict(goal) == "NOT met"
