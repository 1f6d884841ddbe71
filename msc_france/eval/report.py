"""``report.json`` (every score), ``report.md`` (the tables) and figures: retrieval recall per sensor
pair, confusion matrices of the linear probe, and test triplets beside their predicted maps."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from msc_france.eval.bootstrap import Bootstrap, Interval
from msc_france.eval.claim import Check, verdict
from msc_france.eval.continual import AFTER, BEFORE, ContinualResult
from msc_france.eval.embeddings import Split
from msc_france.eval.labels import ClassSpace
from msc_france.eval.retrieval import chance
from msc_france.eval.scores import EncoderScores
from msc_france.pairs import open_pairs
from msc_france.quicklook import plot_triplet
from msc_france.store import ModelCard, atomic_write

HEADLINE = (("retrieval_R@1", "R@1"), ("retrieval_R@5", "R@5"), ("knn_accuracy", "kNN"),
            ("linear_accuracy", "linear"), ("transfer_accuracy", "transfer"),
            ("transfer_balanced_accuracy", "transfer bal."), ("segmentation_miou", "mIoU"),
            ("segmentation_transfer_miou", "mIoU transfer"))
EMBEDDING_LABELS = {"retrieval_R@1": "class + mean patch", "retrieval_R@1_cls": "class token",
                    "retrieval_R@1_mean": "mean patch token"}
HEADLINE_NOTE = ("R@k: cross-sensor retrieval, mean over sensor pairs; kNN, linear: dominant land cover, "
                 "mean over sensors; transfer: linear probe trained on one sensor, tested on another, mean "
                 "over pairs (accuracy, balanced accuracy: mean recall over the classes with at least 2 % of the test "
                 "tiles); mIoU: linear segmentation on patch tokens, mean over "
                 "sensors; mIoU transfer: the segmentation probe of one sensor's patch tokens applied to another's, "
                 "mean over pairs")
NO_LABELS_NOTE = ("The store has no land-cover labels (no `labels` group): the label tasks (kNN and linear "
                  "probes, cross-sensor transfer, segmentation) are skipped and read n/a; retrieval needs none.")
TRIPLET_TILES = 3


def _figure(width: float, height: float) -> Figure:
    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _pct(value: float) -> str:
    return "n/a" if value is None or math.isnan(value) else f"{100 * value:.1f}"


def markdown_table(header: list[str], rows: list[list[str]]) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header),
            *("| " + " | ".join(r) + " |" for r in rows), ""]


def with_interval(interval: Interval | None, compact: bool = False) -> str:
    """``70.1 [64.6, 75.7]`` in percent (``70.1 [64,76]`` when ``compact``: bounds rounded outwards);
    ``n/a`` without a score."""
    if interval is None or math.isnan(interval.value):
        return "n/a"
    if compact:
        return f"{100 * interval.value:.1f} [{math.floor(100 * interval.low)},{math.ceil(100 * interval.high)}]"
    return f"{_pct(interval.value)} [{_pct(interval.low)}, {_pct(interval.high)}]"


def signed(interval: Interval | None, compact: bool = False) -> str:
    """A difference in points with its interval, ``†`` when the interval excludes 0."""
    if interval is None or math.isnan(interval.value):
        return "n/a"
    mark = "†" if interval.significant else ""
    if compact:
        return f"{100 * interval.value:+.1f}{mark}"
    return f"{100 * interval.value:+.1f} [{100 * interval.low:+.1f}, {100 * interval.high:+.1f}]{mark}"


def intervals_note(bootstrap: Bootstrap) -> str:
    return (f"[low, high]: {100 * bootstrap.level:.0f} % percentile interval of a paired bootstrap over the "
            f"{bootstrap.tiles} test tiles ({bootstrap.resamples} resamples of the tiles, seed {bootstrap.seed}, "
            f"the same resamples for every model); one test tile is {100 / bootstrap.tiles:.1f} points of a score "
            "of one sensor or sensor pair")


def headline_rows(bootstrap: Bootstrap) -> tuple[list[str], list[list[str]]]:
    header = ["model", *(label for _, label in HEADLINE)]
    rows = [[name, *(with_interval(figures.get(key)) for key, _ in HEADLINE)]
            for name, figures in bootstrap.figures.items()]
    return header, rows


def difference_rows(bootstrap: Bootstrap) -> tuple[list[str], list[list[str]]]:
    """One row per model and model before it in the table (its baselines): the difference in points."""
    header = ["difference", *(label for _, label in HEADLINE)]
    rows = [[f"{model} vs {baseline}", *(signed(bootstrap.difference(model, baseline, key)) for key, _ in HEADLINE)]
            for model, baseline in bootstrap.compared]
    return header, rows


def continual_note(result: ContinualResult) -> str:
    c = result.continual
    tiles = (f"the same {result.bootstrap.tiles} test tiles and resamples as the headline" if result.same_tiles else
             f"the {result.bootstrap.tiles} headline test tiles valid in its sensors ({result.bootstrap.resamples} "
             f"resamples, seed {result.bootstrap.seed})")
    return (f"Run `{result.run}` adapts the model it started from (continual.init `{c.init}`) to {c.new_sensor}, "
            f"aligned against a frozen copy of it on {c.known_sensor}. {BEFORE}: those initial weights; {AFTER}: "
            f"the run's export; both with the run's bands and normalisation, on {tiles}. R@k: retrieval from the "
            "first sensor's test tiles among the second's; transfer: the linear probe trained on the first "
            "sensor's train tiles classifies the second's test tiles (accuracy); after - before in points, "
            "† where its interval excludes 0")


def continual_rows(result: ContinualResult, compact: bool = False) -> tuple[list[str], list[list[str]]]:
    """Before and after adaptation with their intervals, and the difference after - before."""
    header = ["model", *(label for _, label in result.columns)]
    rows = [[name, *(with_interval(result.bootstrap.figures[name].get(key), compact) for key, _ in result.columns)]
            for name in (BEFORE, AFTER)]
    rows.append(["after - before", *(signed(result.bootstrap.difference(AFTER, BEFORE, key), compact)
                                     for key, _ in result.columns)])
    return header, rows


def _claim_markdown(claim: list[Check]) -> list[str]:
    if not claim:
        return []
    lines = ["### The cross-sensor claim", "",
             ("The run against each baseline (the 95 % interval of the difference above 0) and the per-pair "
              "goal of Recall@1."), ""]
    return lines + markdown_table(["claim", "verdict", "figure"], [[c.claim, verdict(c), c.detail] for c in claim])


def _continual_markdown(result: ContinualResult | None) -> list[str]:
    if result is None:
        return []
    c = result.continual
    lines = [f"## Continual: {c.known_sensor} model adapted to {c.new_sensor} (run `{result.run}`)", "",
             f"{continual_note(result)}.", ""]
    lines += markdown_table(*continual_rows(result))
    lines += [f"- {name}: {source}" for name, source in result.sources.items()] + [""]
    return lines


def _continual_json(result: ContinualResult | None) -> dict[str, Any] | None:
    if result is None:
        return None
    return {"run": result.run, **result.continual.model_dump(), "pairs": result.pairs,
            "same_tiles": result.same_tiles, "sources": result.sources,
            "bootstrap": _bootstrap_json(result.bootstrap),
            "models": {name: {**scores, "intervals": {k: dataclasses.asdict(v)
                                                      for k, v in result.bootstrap.figures[name].items()}}
                       for name, scores in result.scores.items()}}


def retrieval_figure(results: dict[str, EncoderScores], n_test: int, path: Path) -> Path:
    pairs = list(next(iter(results.values())).scores["retrieval"])
    fig = _figure(max(6.0, 1.1 * len(pairs)), 3.4)
    ax = fig.add_subplot()
    width = 0.8 / len(results)
    for i, (name, r) in enumerate(results.items()):
        ax.bar(np.arange(len(pairs)) + i * width, [r.scores["retrieval"][p]["R@1"] for p in pairs], width, label=name)
    ax.axhline(chance(n_test)["R@1"], color="k", ls="--", lw=1, label=f"chance ({n_test} test tiles)")
    ax.set_xticks(np.arange(len(pairs)) + 0.4 - width / 2, pairs)
    ax.set_ylabel("Recall@1")
    ax.set_ylim(0, 1)
    ax.legend(fontsize=7)
    ax.set_title("cross-sensor retrieval among the test tiles")
    fig.savefig(path, dpi=110)
    return path


def confusion_figure(scores: EncoderScores, classes: ClassSpace, title: str, path: Path) -> Path:
    matrices = scores.scores["confusion"]
    fig = _figure(3.3 * len(matrices), 3.4)
    for ax, (sensor, matrix) in zip(np.atleast_1d(fig.subplots(1, len(matrices))), matrices.items(), strict=True):
        counts = np.asarray(matrix)
        ax.imshow(counts, cmap="Blues")
        for (i, j), v in np.ndenumerate(counts):
            ax.text(j, i, str(v), ha="center", va="center", fontsize=7)
        ax.set_xticks(range(len(classes)), classes.names, rotation=60, ha="right", fontsize=7)
        ax.set_yticks(range(len(classes)), classes.names, fontsize=7)
        ax.set_title(f"{sensor}: linear probe", fontsize=9)
        ax.set_xlabel("predicted", fontsize=8)
    fig.suptitle(title, fontsize=9)
    fig.savefig(path, dpi=110)
    return path


def triplets_figure(store: str, test: Split, scores: EncoderScores, classes: ClassSpace, path: Path) -> Path:
    """A few test tiles: every sensor in true colour, the true label map, and the map predicted from
    each sensor's patch tokens."""
    pairs = open_pairs(store)
    chosen = np.linspace(0, len(test.tiles) - 1, min(TRIPLET_TILES, len(test.tiles))).round().astype(int)
    predicted = scores.segmentation_maps
    columns = len(pairs.sensors) + len(predicted)
    fig = _figure(2.4 * columns, 2.7 * len(chosen))
    grid = fig.subplots(len(chosen), columns, squeeze=False)  # one row per tile, even with one column
    codes = np.array([0, *classes.codes], dtype=np.uint8)
    for axes, index in zip(grid, chosen, strict=True):
        sample = pairs.tile(test.tiles[index])
        plot_triplet({s: d["data"] for s, d in sample.items()}, {s: d["valid"] for s, d in sample.items()},
                     "", ax=list(axes[:len(sample)]))
        truth = sample.get("labels")
        # the columns after the store's sensors (every sensor is in every tile): one per predicted map
        for ax, (sensor, maps) in zip(axes[len(sample):], predicted.items(), strict=True):
            plane = codes[maps[index].numpy() + 1]
            coords = {"y": truth["y"].values, "x": truth["x"].values} if truth is not None else None
            array = xr.DataArray(plane, dims=("y", "x"), coords=coords)
            plot_triplet({"labels": array}, None, "", ax=[ax])
            ax.set_title(f"predicted from {sensor}", fontsize=9)
        axes[0].set_ylabel(test.tiles[index], fontsize=8)
    fig.suptitle("test tiles and linear segmentation from each sensor's patch tokens", fontsize=10)
    fig.savefig(path, dpi=100)
    return path


def _markdown(meta: dict[str, Any], results: dict[str, EncoderScores], classes: ClassSpace | None,
              figures: dict[str, str], bootstrap: Bootstrap, continual: ContinualResult | None,
              claim: list[Check]) -> str:
    n_test = meta["splits"]["test"]
    c = chance(n_test)
    lines = [f"# Evaluation of run `{meta['run']}`", "",
             (f"Store `{meta['store']}` (recipe `{meta['recipe']}`), preset `{meta['preset']}` "
              f"(`{meta['arch']}` at {meta['img_size']} px, {meta['step']} steps), "
              f"{meta['splits']['train']} train / {meta['splits']['val']} val / {n_test} test tiles; "
              f"evaluated {meta['created']} in {meta['seconds']:.0f} s. Scores in percent."), "",
             "## Headline", "", f"Chance: R@1 {_pct(c['R@1'])}, R@5 {_pct(c['R@5'])}. {HEADLINE_NOTE}.", ""]
    lines += markdown_table(*headline_rows(bootstrap))
    lines += [f"- {name}: {source}" for name, source in meta["sources"].items()] + [""]
    lines += [f"{intervals_note(bootstrap)}.", ""]
    if bootstrap.differences:
        lines += ["### Differences between models", "",
                  ("Each model minus each baseline before it in the table, in points, on the same resamples; "
                   "† marks an interval above or below zero, a difference that tile sampling alone does not "
                   "explain."), ""]
        lines += markdown_table(*difference_rows(bootstrap))
    lines += _claim_markdown(claim)
    lines += _continual_markdown(continual)
    pairs = list(next(iter(results.values())).scores["retrieval"])
    lines += ["## Cross-sensor retrieval (Recall@1 / Recall@5)", "",
              ("Each test tile of the query sensor looks for the same tile among all test tiles of the "
               "gallery sensor (cosine similarity of class token and mean patch token)."), ""]
    lines += markdown_table(["model", *pairs], [[name, *(f"{_pct(r.scores['retrieval'][p]['R@1'])} / "
                                                 f"{_pct(r.scores['retrieval'][p]['R@5'])}" for p in pairs)]
                                        for name, r in results.items()])
    if figures.get("retrieval"):
        lines += [f"![retrieval]({figures['retrieval']})", ""]
    lines += ["### Which embedding retrieves", "",
              ("Recall@1 (mean over sensor pairs, 95 % interval) with the tile embedding (class token and mean "
               "patch token), the class token alone and the mean patch token alone."), ""]
    lines += markdown_table(["model", *EMBEDDING_LABELS.values()],
                    [[name, *(with_interval(bootstrap.figures[name].get(key)) for key in EMBEDDING_LABELS)]
                     for name in results])
    if classes is None:
        lines += [NO_LABELS_NOTE, ""]
    else:
        sensors = list(next(iter(results.values())).scores["linear"])
        lines += ["## Dominant land cover of each tile", "",
                  (f"Classes: {', '.join(classes.names)}. kNN (k = 20, cosine) and a linear probe "
                   "(L2 chosen on val) per sensor: accuracy / balanced accuracy."), ""]
        rows = [[name, method, *(f"{_pct(r.scores[method][s]['accuracy'])} / "
                                 f"{_pct(r.scores[method][s]['balanced_accuracy'])}" for s in sensors)]
                for name, r in results.items() for method in ("knn", "linear")]
        lines += markdown_table(["model", "probe", *sensors], rows)
        lines += ["## Cross-sensor transfer", "",
                  ("The linear probe trained on one sensor's embeddings (rows) classifies another sensor's "
                   "test tiles (columns): accuracy; the diagonal is the same-sensor probe."), ""]
        for name, r in results.items():
            lines += [f"**{name}**", ""]
            rows = [[a, *(_pct(r.scores["linear"][a]["accuracy"]) if a == b else
                          _pct(r.scores["transfer"][f"{a}->{b}"]["accuracy"]) for b in sensors)] for a in sensors]
            lines += markdown_table(["train \\ test", *sensors], rows)
        lines += ["## Segmentation (linear probe on patch tokens)", "", "mIoU over the classes of the test maps.", ""]
        lines += markdown_table(["model", *sensors],
                                [[name, *(_pct(r.scores["segmentation"][s]["miou"]) for s in sensors)]
                                 for name, r in results.items()])
        lines += [("Dense transfer: the segmentation probe trained on one sensor's patch tokens (rows) maps "
                   "another sensor's test tiles (columns): mIoU."), ""]
        for name, r in results.items():
            rows = [[a, *(_pct(r.scores["segmentation"][a]["miou"]) if a == b else
                          _pct(r.scores["segmentation_transfer"][f"{a}->{b}"]["miou"]) for b in sensors)]
                    for a in sensors]
            lines += [f"**{name}**", "", *markdown_table(["train \\ test", *sensors], rows)]
        for key, title in (("confusion", "Confusion matrices (linear probe, evaluated run)"),
                           ("triplets", "Test tiles and predicted maps (evaluated run)")):
            if figures.get(key):
                lines += [f"### {title}", "", f"![{key}]({figures[key]})", ""]
    return "\n".join(lines)


def _downstream_markdown(downstream: dict[str, dict[str, Any]]) -> str:
    lines: list[str] = []
    for dataset, models in downstream.items():
        first = next(iter(models.values()))
        lines += [f"## Downstream: {dataset}", "", (f"{first['train']} train / {first['test']} test images, "
                                                     f"{first['sensor']} backbone; accuracy / balanced accuracy."), ""]
        rows = [[name, *(f"{_pct(m[p]['accuracy'])} / {_pct(m[p]['balanced_accuracy'])}" for p in ("knn", "linear"))]
                for name, m in models.items()]
        lines += markdown_table(["model", "kNN", "linear"], rows)
    return "\n".join(lines)


def _bootstrap_json(bootstrap: Bootstrap) -> dict[str, Any]:
    return {"tiles": bootstrap.tiles, "resamples": bootstrap.resamples, "seed": bootstrap.seed,
            "level": bootstrap.level, "tile_points": 100 / bootstrap.tiles,
            "differences": [{"model": d.model, "baseline": d.baseline, "metric": d.metric,
                             **dataclasses.asdict(d.interval), "significant": d.interval.significant}
                            for d in bootstrap.differences]}


def write_report(run_dir: Path, run: str, card: ModelCard, store: str, splits: dict[str, Split],
                 classes: ClassSpace | None, results: dict[str, EncoderScores], reported: str,
                 sources: dict[str, str], downstream: dict[str, dict[str, Any]], bootstrap: Bootstrap,
                 continual: ContinualResult | None, claim: list[Check], seconds: float) -> Path:
    """Write report.json, report.md and the figures under ``run_dir`` for the encoder named ``reported``
    (the run's own; the others are baselines), with the ``continual`` run's section when given and the
    checks of the cross-sensor ``claim``; returns report.md's path."""
    figures_dir = run_dir / "eval"
    figures_dir.mkdir(parents=True, exist_ok=True)
    n_test = len(splits["test"].tiles)
    main_name, main = reported, results[reported]
    figures = {"retrieval": retrieval_figure(results, n_test, figures_dir / "retrieval.png")}
    if classes is not None and main.scores["confusion"]:
        figures["confusion"] = confusion_figure(main, classes, main_name, figures_dir / "confusion.png")
        figures["triplets"] = triplets_figure(store, splits["test"], main, classes, figures_dir / "triplets.png")
    relative = {k: str(v.relative_to(run_dir)) for k, v in figures.items()}
    meta = {"run": run, "store": store, "recipe": card.recipe, "preset": card.preset,
            "arch": card.arch, "img_size": card.img_size, "step": card.step,
            "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"), "seconds": seconds,
            "splits": {k: len(v.tiles) for k, v in splits.items()}, "sources": sources}
    document = {**meta, "chance": chance(n_test), "classes": classes.names if classes else None,
                "figures": relative, "bootstrap": _bootstrap_json(bootstrap),
                "models": {name: {**r.scores, "intervals": {k: dataclasses.asdict(v)
                                                             for k, v in bootstrap.figures[name].items()}}
                           for name, r in results.items()},
                "downstream": downstream, "continual": _continual_json(continual),
                "claim": [dataclasses.asdict(c) for c in claim]}
    atomic_write(run_dir / "report.json", json.dumps(document, indent=2, default=float))
    path = run_dir / "report.md"
    atomic_write(path, _markdown(meta, results, classes, relative, bootstrap, continual, claim)
                 + _downstream_markdown(downstream))
    return path
