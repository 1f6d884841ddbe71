"""``studies/NAME/study.md`` and ``study.json``: every variant on val (where the choice is made) and on
test, with the paired bootstrap's intervals and the differences against the study's reference."""

from __future__ import annotations

import json
import math
from dataclasses import asdict
from typing import Any

from msc_france.eval.bootstrap import Bootstrap, Interval
from msc_france.eval.report import EMBEDDING_LABELS, markdown_table, signed, with_interval
from msc_france.store import atomic_write
from msc_france.study.run import RANDOM, StudySummary, VariantResult

VAL_SCORES = (*EMBEDDING_LABELS, "transfer_accuracy", "segmentation_transfer_miou")
TEST_SCORES = {"retrieval_R@1": "R@1", "transfer_accuracy": "transfer", "segmentation_transfer_miou": "mIoU transfer"}


def _pct(value: float) -> str:
    return "n/a" if math.isnan(value) else f"{100 * value:.1f}"


def _interval(boot: Bootstrap, model: str, key: str) -> Interval | None:
    return boot.figures.get(model, {}).get(key)


def val_rows(summary: StudySummary, compact: bool = False) -> tuple[list[str], list[list[str]]]:
    header = ["variant", "choice score", *(f"R@1 {label}" for label in EMBEDDING_LABELS.values()),
              "transfer", "mIoU transfer"]
    rows = [[f"{r.name}{' ★' if r.chosen else ''}", _pct(r.choice),
             *(with_interval(_interval(summary.val, r.name, k), compact) for k in VAL_SCORES)]
            for r in summary.variants]
    rows.append([RANDOM, "", *(with_interval(_interval(summary.val, RANDOM, k), compact) for k in VAL_SCORES)])
    return header, rows


def test_rows(summary: StudySummary, compact: bool = False) -> tuple[list[str], list[list[str]]]:
    ref = summary.spec.reference
    header = ["variant", "change", *TEST_SCORES.values(), "worst pair R@1",
              *(f"{label} vs {ref}" for label in TEST_SCORES.values()),
              *(f"{label} vs random" for label in TEST_SCORES.values())]
    rows = []
    for r in summary.variants:
        spread = f" ±{100 * r.seed_spread['retrieval_R@1']:.1f}" if r.seed_spread else ""
        rows.append([f"{r.name}{' ★' if r.chosen else ''}", r.note,
                     *(with_interval(_interval(summary.test, r.name, k), compact) + (spread if k == "retrieval_R@1"
                                                                                     else "")
                       for k in TEST_SCORES),
                     _worst(r),
                     *(signed(summary.test.difference(r.name, ref, k), compact) if r.name != ref else ""
                       for k in TEST_SCORES),
                     *(signed(summary.test.difference(r.name, RANDOM, k), compact) for k in TEST_SCORES)])
    rows.append([RANDOM, "", *(with_interval(_interval(summary.test, RANDOM, k), compact) for k in TEST_SCORES),
                 "", *([""] * 2 * len(TEST_SCORES))])
    return header, rows


def _worst(result: VariantResult) -> str:
    if not result.pair_recall:
        return "n/a"
    pair, value = min(result.pair_recall.items(), key=lambda item: item[1])
    return f"{_pct(value)} ({pair})"


def _intervals(boot: Bootstrap) -> dict[str, Any]:
    return {"tiles": boot.tiles, "resamples": boot.resamples, "seed": boot.seed, "level": boot.level,
            "figures": {m: {k: asdict(i) for k, i in f.items()} for m, f in boot.figures.items()},
            "differences": [{"model": d.model, "baseline": d.baseline, "metric": d.metric, **asdict(d.interval),
                             "significant": d.interval.significant} for d in boot.differences]}


def write_study(summary: StudySummary) -> None:
    spec = summary.spec
    data = {"study": spec.model_dump(mode="json"), "chosen": summary.chosen, "chosen_by": summary.chosen_by,
            "variants": [asdict(r) for r in summary.variants],
            "val": _intervals(summary.val), "test": _intervals(summary.test)}
    atomic_write(summary.folder / "study.json", json.dumps(data, indent=1, allow_nan=True))
    lines = [f"# Study `{spec.name}`", "", spec.description, "",
             (f"Base preset `{spec.base}`; seeds {', '.join(map(str, spec.seeds))} (unless a variant says); "
              f"reference `{spec.reference}`. Chosen on val by the mean of {', '.join(summary.chosen_by)}: "
              f"**{summary.chosen}** (★)."), "",
             f"## Val ({summary.val.tiles} tiles): where the choice is made", "",
             ("Probes with a fixed L2 (val is what they would otherwise choose it on). 95 % intervals of a "
              f"paired bootstrap over the val tiles ({summary.val.resamples} resamples)."), ""]
    lines += markdown_table(*val_rows(summary))
    lines += [f"## Test ({summary.test.tiles} tiles): reported", "",
              ("Probes with the L2 chosen on val, as `msc-france eval`. Differences in points, † where the 95 % "
               "interval excludes 0; ± the standard deviation over training seeds where a variant has several; "
               "worst pair: the lowest R@1 of the ordered sensor pairs."), ""]
    lines += markdown_table(*test_rows(summary))
    atomic_write(summary.folder / "study.md", "\n".join(lines))
