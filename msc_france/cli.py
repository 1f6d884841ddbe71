"""The ``msc-france`` command line: one subcommand per stage, plus the demo world and the grid."""

from __future__ import annotations

import datetime as dt
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from odc.geo.geom import box
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from typer.core import TyperGroup

from msc_france.config import load_catalog, load_recipe
from msc_france.errors import NO_SPACE, Interrupted, UserError, disk_full, disk_full_message
from msc_france.eval.bootstrap import RESAMPLES  # numpy only
from msc_france.grid import parse_lonlat_box
from msc_france.openmp import spin_briefly_when_waiting
from msc_france.redact import redact_text

if TYPE_CHECKING:
    from msc_france.eval.claim import Check
    from msc_france.eval.continual import ContinualResult
    from msc_france.eval.run import EvalSummary  # imported on use: it loads torch

class _Commands(TyperGroup):
    """The subcommands; Ctrl-C where a stage does not count what it kept is :meth:`Interrupted.anywhere`
    (one line and 130 from :func:`main`), not typer's silent exit."""

    def invoke(self, ctx: Any) -> Any:  # noqa: ANN401 - typer's click Context is private; any return
        try:
            return super().invoke(ctx)
        except KeyboardInterrupt:
            raise Interrupted.anywhere() from None


app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False, help=__doc__,
                  cls=_Commands)
demo_app = typer.Typer(no_args_is_help=True, help="The embedded demo world: generate, serve, run everything.")
app.add_typer(demo_app, name="demo")
console = Console()


def _version(show: bool) -> None:
    if show:
        from importlib.metadata import version

        console.print(f"msc-france {version('msc-france')}")
        raise typer.Exit()


@app.callback()
def _options(version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                                   help="print the installed version and exit")] = False) -> None:
    """Multi-sensor datasets over France and X-STARS pretraining (docs in README.md and docs/)."""


DataDir = Annotated[Path, typer.Option("--data", help="where catalogs, stores and runs go")]
RecipeName = Annotated[str, typer.Option("--recipe", help="dataset recipe: a name in pipelines/ or a YAML file")]

@app.command()
def download(
    region: Annotated[str, typer.Option(help="named place, lon/lat box, or GeoJSON/GeoPackage file")] = "demo",
    catalog: Annotated[str, typer.Option(help="catalog name in catalogs/ or a YAML file")] = "planetary-computer",
    start: Annotated[str | None, typer.Option(help="first date, YYYY-MM-DD")] = None,
    end: Annotated[str | None, typer.Option(help="last date, YYYY-MM-DD")] = None,
    max_cloud: Annotated[float | None, typer.Option(help="maximum cloud cover, percent")] = None,
    window: Annotated[int, typer.Option(help="pairing window around the Sentinel-2 date, days")] = 30,
    recipe: Annotated[str | None, typer.Option(help="dataset recipe: a name in pipelines/ or a YAML file "
                                                  "(default: demo for the demo catalog, else msc-france)")] = None,
    data: DataDir = Path("data"),
    dry_run: Annotated[bool, typer.Option("--dry-run", help="print the plan and stop")] = False,
    yes: Annotated[bool, typer.Option("--yes", help="accept a huge region")] = False,
    concurrency: Annotated[int, typer.Option(help="parallel downloads")] = 4,
) -> None:
    """Find co-located imagery over a region and fetch the needed windows into a local STAC catalog."""
    from msc_france.download.run import DownloadRequest, run_download

    request = DownloadRequest(
        region=region, catalog=catalog, recipe=recipe, start=_date(start, "start"), end=_date(end, "end"),
        max_cloud=max_cloud, window_days=window, data=data, dry_run=dry_run, yes=yes, concurrency=concurrency,
    )
    summary = run_download(request, console)
    if summary.plan_files:
        console.print(f"plan per tile: {summary.plan_files[0]} (map {summary.plan_files[1].name})", markup=False)
    if dry_run:
        return
    t = summary.transfer
    console.print(
        f"fetched {len(summary.fetched) - len(summary.skipped)} files ({t.bytes / 1e6:.1f} MB in {t.requests} "
        f"requests, {t.retries} retries, {t.resigned} re-signed), re-fetched {len(summary.refetched)} damaged, "
        f"skipped {len(summary.skipped)} complete, "
        f"failed {len(summary.failed)}"
    )
    for name, reason in summary.failed:
        console.print(f"  failed {name}: {redact_text(reason)}", markup=False)
    for line in summary.uncovered:
        console.print(f"  left out VHR window {line}", markup=False)
    if summary.catalog_path:
        console.print(f"local catalog: {summary.catalog_path}")
    if any(NO_SPACE in reason for _, reason in summary.failed):
        raise UserError(disk_full_message(True))
    if summary.failed:
        raise UserError(f"{len(summary.failed)} downloads failed (listed above); rerun the same command to retry them")


def _date(text: str | None, name: str) -> dt.date | None:
    if text is None:
        return None
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise UserError(f"bad {name} date {text!r}; expected YYYY-MM-DD") from None


@app.command()
def tiles(
    region: Annotated[str | None, typer.Option(help="only the downloaded region with this slug")] = None,
    recipe: Annotated[str | None, typer.Option(help="dataset recipe: a name in pipelines/ or a YAML file "
                                                  "(default: the one the download used)")] = None,
    store: Annotated[str | None, typer.Option(help="Zarr store path or fsspec URL (default DATA/RECIPE.zarr)")] = None,
    scheduler: Annotated[str | None, typer.Option(help="tcp://HOST:PORT of an existing Dask cluster")] = None,
    workers: Annotated[int | None, typer.Option(help="local Dask worker processes (default 2)")] = None,
    data: DataDir = Path("data"),
) -> None:
    """Reproject the local catalogs onto the France tile grid into a Zarr v3 store and a tile index."""
    from msc_france.tiles.run import TilesRequest, run_tiles

    summary = run_tiles(TilesRequest(recipe=recipe, data=data, region=region, store=store, scheduler=scheduler,
                                     workers=workers), console)
    console.print(f"store {summary.store}: {summary.tiles} tiles, {summary.written} shard tasks written, "
                  f"{summary.skipped} already complete; index {summary.index}; quicklooks {summary.quicklooks}")


@app.command(name="import-msc")
def import_msc(
    path: Annotated[Path, typer.Argument(help="the released MSC-France folder: Sentinel/, Landsat/, SPOT/ "
                                              "of CITY/NAME images")],
    store: Annotated[str | None, typer.Option(help="tile store folder (default DATA/msc-paper.zarr)")] = None,
    split: Annotated[str, typer.Option(help="city: held-out cities; block: spatial blocks of 4 x 4 tiles")] = "city",
    test_cities: Annotated[str | None, typer.Option(help="comma-separated test cities (--split city; "
                                                         "default: drawn from a hash of the names)")] = None,
    val_cities: Annotated[str | None, typer.Option(help="comma-separated validation cities (--split city)")] = None,
    data: DataDir = Path("data"),
) -> None:
    """Write the X-STARS paper's released MSC-France images into a tile store and index (docs/import-msc.md)."""
    from msc_france.import_msc.run import ImportRequest, run_import

    if split not in ("city", "block"):
        raise UserError(f"--split must be city or block, not {split!r}")
    if split == "block" and (test_cities or val_cities):
        raise UserError("--test-cities and --val-cities go with --split city")
    summary = run_import(ImportRequest(path=path, data=data, store=store, split="city" if split == "city" else "block",
                                       test_cities=_names(test_cities), val_cities=_names(val_cities)), console)
    splits = ", ".join(f"{city} {name}" for city, name in sorted(summary.cities.items()))
    console.print(f"store {summary.store}: {summary.tiles} footprints ({splits}); tile px "
                  f"{', '.join(f'{g} {n}' for g, n in summary.px.items())}; left out: {summary.unpaired} unpaired "
                  f"files, {summary.unreadable} footprints with an unreadable file; {summary.resized} images "
                  f"resized, {summary.ignored} other files ignored; {summary.written} shards written, "
                  f"{summary.skipped} already complete; index {summary.index}", markup=False, soft_wrap=True)


def _names(text: str | None) -> list[str] | None:
    """A comma-separated list of names, None when not given."""
    return None if text is None else [name.strip() for name in text.split(",") if name.strip()]


@app.command()
def publish(
    store: Annotated[str | None, typer.Option(help="tile store folder (default: the one tile store in DATA)")] = None,
    out: Annotated[Path | None, typer.Option(help="where to write (default: STORE.publish/ beside STORE.zarr)")] = None,
    data: DataDir = Path("data"),
) -> None:
    """Write beside a built store what lets others find, read and cite it: STAC Collection, stac-geoparquet
    of the tiles, dataset card, Croissant, versioned changelog (docs/publish.md)."""
    from msc_france.publish import PublishRequest
    from msc_france.publish import publish as run_publish

    summary = run_publish(PublishRequest(data=data, store=store, out=out))
    change = summary.change
    state = {"first": "first publish", "unchanged": "unchanged", "patch": "patch: metadata only"}.get(
        change.kind, f"{change.kind}: {len(change.added)} tiles added, {len(change.removed)} removed")
    console.print(f"published {summary.store} ({summary.tiles} tiles) as version {summary.version} ({state}) "
                  f"in {summary.folder}", markup=False, soft_wrap=True)


@app.command()
def pretrain(
    config: Annotated[str | None, typer.Option(help="training preset in pipelines/ or a YAML file "
                                                  "(default: pretrain-RECIPE of the tile store)")] = None,
    run: Annotated[str | None, typer.Option("--run-name", help="run name (default: the preset's); "
                                               "not --run, which torchrun would take for its --run-path")] = None,
    resume: Annotated[bool, typer.Option(help="continue the run from its last checkpoint")] = False,
    store: Annotated[str | None, typer.Option(help="tile store path or URL (default DATA/<recipe>.zarr)")] = None,
    max_steps: Annotated[int | None, typer.Option(help="stop after this many steps (checkpointed)")] = None,
    baselines: Annotated[bool, typer.Option(help="then train the DINO-alone baseline (MSAD weight 0) "
                                                 "as run NAME-dino")] = False,
    seed: Annotated[int | None, typer.Option(min=0, help="runtime.seed = SEED (initialisation, sampling, "
                                                         "augmentation); the run is named NAME-seedSEED")] = None,
    data: DataDir = Path("data"),
) -> None:
    """X-STARS pretraining (DINO + MSAD) from the Zarr store; under torchrun, one process per GPU."""
    from msc_france.pretrain.trainer import PretrainRequest, run_pretrain

    for dino_only in (False, True) if baselines else (False,):
        summary = run_pretrain(PretrainRequest(config=config, data=data, run=run, store=store, max_steps=max_steps,
                                               resume="auto" if dino_only and resume else resume,  # if it had started
                                               dino_only=dino_only, seed=seed))
        if summary.export is not None:
            loss = summary.last.get("loss", float("nan"))
            console.print(f"run {summary.run_dir}: {summary.steps} steps, loss {loss:.4f}; "
                          f"checkpoint {summary.checkpoint}; backbone {summary.export}; curves {summary.curves}")


@app.command(name="eval")
def evaluate(
    run: Annotated[str | None, typer.Option(help="run name, a folder of DATA/runs (default: that of the "
                                               "preset pretrain-RECIPE of the tile store)")] = None,
    store: Annotated[str | None, typer.Option(help="tile store path or URL (default DATA/<recipe>.zarr)")] = None,
    baselines: Annotated[bool, typer.Option(help="also evaluate a random backbone and the run NAME-dino")] = True,
    downstream: Annotated[list[str] | None, typer.Option(
        help="NAME=FOLDER of a labelled dataset on disk (eurosat=PATH: EuroSAT MS as torchgeo lays it out)")] = None,
    resamples: Annotated[int, typer.Option(help="bootstrap resamples of the test tiles for the intervals")] = RESAMPLES,
    continual: Annotated[str | None, typer.Option(
        help="continual run to report before and after adaptation (default: the run NAME-continual, if any)")] = None,
    data: DataDir = Path("data"),
) -> None:
    """Evaluate a trained backbone on the store's test split: retrieval, probes, segmentation, report."""
    from msc_france.eval.run import EvalRequest, run_eval

    datasets = {}
    for entry in downstream or []:
        name, sep, folder = entry.partition("=")
        if not sep or not folder:
            raise UserError(f"bad --downstream {entry!r}; expected NAME=FOLDER, e.g. eurosat=/data/EuroSAT")
        datasets[name] = folder
    if run is None:
        from msc_france.pretrain.config import default_preset, load_pretrain_config

        run = load_pretrain_config(default_preset(data, store)[0]).name
    summary = run_eval(EvalRequest(run=run, data=data, store=store, baselines=baselines, downstream=datasets,
                                   resamples=resamples, continual=continual))
    _print_headline(summary)


@app.command()
def study(
    name: Annotated[str, typer.Argument(help="study in pipelines/studies/ (e.g. msad) or a YAML file")],
    store: Annotated[str | None, typer.Option(help="tile store path or URL (default DATA/<recipe>.zarr)")] = None,
    resamples: Annotated[int, typer.Option(help="bootstrap resamples of the val and test tiles")] = RESAMPLES,
    data: DataDir = Path("data"),
) -> None:
    """Train every variant of a study (finished runs are kept), choose on val, report test with intervals."""
    from msc_france.study.report import test_rows, val_rows
    from msc_france.study.run import StudyRequest, run_study

    summary = run_study(StudyRequest(study=name, data=data, store=store, resamples=resamples))
    wide = Console(width=max(console.width, 200))
    for title, (header, rows) in ((f"val ({summary.val.tiles} tiles): the choice", val_rows(summary, True)),
                                  (f"test ({summary.test.tiles} tiles), vs: points, † interval excludes 0",
                                   test_rows(summary, True))):
        table = Table(title=f"study {summary.spec.name}, {title}")
        for column in header:
            table.add_column(escape(column))
        for row in rows:
            table.add_row(*(escape(cell) for cell in row))
        wide.print(table)
    console.print(f"chosen on val: {summary.chosen}; report: {summary.folder / 'study.md'}", soft_wrap=True)


def _print_headline(summary: EvalSummary) -> None:
    from msc_france.eval.report import HEADLINE, HEADLINE_NOTE, intervals_note, signed, with_interval

    bootstrap = summary.bootstrap
    table = Table(title=f"evaluation, percent (chance: R@1 {100 * summary.chance['R@1']:.1f}, "
                        f"R@5 {100 * summary.chance['R@5']:.1f})",
                  caption=escape(f"{HEADLINE_NOTE}. {intervals_note(bootstrap)}; vs: difference in points, "
                                 "† where its interval excludes 0"))
    table.add_column("model", no_wrap=True)
    for _, label in HEADLINE:
        table.add_column(label, justify="right")
    for name, figures in bootstrap.figures.items():
        table.add_row(name, *(with_interval(figures.get(key), compact=True) for key, _ in HEADLINE))
    for model, baseline in bootstrap.compared:
        table.add_row(f"{model} vs {baseline}",
                      *(signed(bootstrap.difference(model, baseline, key), compact=True) for key, _ in HEADLINE))
    wide = Console(width=max(console.width, 170))  # the whole table, intervals unwrapped, also in logs
    wide.print(table)
    if summary.claim:
        wide.print(_claim_table(summary.claim))
    if summary.continual is not None:
        wide.print(_continual_table(summary.continual))
    console.print(f"report: {summary.report}", soft_wrap=True)


def _claim_table(claim: list[Check]) -> Table:
    """The cross-sensor claim: each part met or not, with its figure."""
    from msc_france.eval.claim import verdict

    table = Table(title="the cross-sensor claim (differences in points, 95 % interval)")
    for column in ("claim", "verdict", "figure"):
        table.add_column(column, no_wrap=True)
    for check in claim:
        table.add_row(check.claim, verdict(check), check.detail)
    return table


def _continual_table(result: ContinualResult) -> Table:
    """The report's continual section: before and after adaptation, and the difference."""
    from msc_france.eval.report import continual_note, continual_rows

    header, rows = continual_rows(result, compact=True)
    table = Table(title=f"continual run {result.run}, percent", caption=escape(continual_note(result)))
    for i, label in enumerate(header):
        table.add_column(label, no_wrap=i == 0, justify="right" if i else "left")
    for row in rows:
        table.add_row(*row)
    return table


@app.command()
def grid(
    recipe: RecipeName = "msc-france",
    bbox: Annotated[str | None, typer.Option(help="minlon,minlat,maxlon,maxlat: count its tiles")] = None,
) -> None:
    """Describe the France tile grid of a recipe, and the tiles over a box."""
    tile_grid = load_recipe(recipe).tile_grid
    if bbox:
        west, south, east, north = parse_lonlat_box(bbox, "--bbox")
    rows, cols = tile_grid.shape
    console.print(f"grid {recipe}: EPSG:2154, {tile_grid.footprint:g} m tiles, {cols} x {rows} tiles over France")
    for sensor in tile_grid.sensors:
        console.print(f"  {sensor}: {tile_grid.gsd(sensor):g} m, {tile_grid.tile_px(sensor)} px per tile")
    if bbox:
        found = tile_grid.tiles_in(box(west, south, east, north, "EPSG:4326"))
        console.print(f"{len(found)} tiles" + (f": {found[0]} ... {found[-1]}" if found else ""))


@app.command()
def plan(
    region: Annotated[str, typer.Option(help="named place (France, a région...), lon/lat box, "
                                             "or GeoJSON/GeoPackage file")] = "France",
    recipe: RecipeName = "msc-france",
    catalog: Annotated[str, typer.Option(help="catalog name in catalogs/ or a YAML file")] = "planetary-computer",
    store: Annotated[str | None, typer.Option(help="a finished tile store to measure compression on "
                                                 "(default: figures measured on the demo store)")] = None,
    data: Annotated[Path, typer.Option(help="data folder (where the demo world is, "
                                            "for demo catalogs)")] = Path("data"),
    window_days: Annotated[int, typer.Option(help="days between a tile's Sentinel-2 reference and its Landsat")] = 30,
) -> None:
    """Tiles, full triplets, stored bytes per sensor, bytes to download and compute hours of a region, from
    the download stage's per-tile plan (searches the catalog; fetches nothing)."""
    from msc_france.plan import make_plan, plan_table

    table = plan_table(make_plan(region, recipe, catalog, store, data, window_days))
    Console(width=max(console.width, 150)).print(table)


@app.command()
def doctor(
    data: Annotated[Path, typer.Option(help="the data folder a job will use")] = Path("data"),
    store: Annotated[str | None, typer.Option(help="tile store to time (default: the first under DATA)")] = None,
) -> None:
    """Check this machine before a long job: torch, CUDA, GPUs, bf16, torch.compile, the all-reduce, the data
    folder, the store's read rate and the matmul peak. Exit 1 when a required check fails."""
    from msc_france.doctor.run import doctor_table, failed, run_doctor

    checks = run_doctor(data, store)
    Console(width=max(console.width, 120)).print(doctor_table(checks))
    if failed(checks):
        raise typer.Exit(1)


def _world_dir(data: Path) -> Path:
    return data / "demo-world"


@demo_app.command("generate")
def demo_generate(data: DataDir = Path("data"), catalog: str = "demo") -> None:
    """Generate the demo world (skips what is already complete)."""
    from msc_france.demo.world import generate_world

    world = load_catalog(catalog).world
    if world is None:
        raise UserError(f"catalog {catalog!r} has no `world` section: it is not a demo world")
    started = time.perf_counter()
    manifest = generate_world(world, _world_dir(data))
    console.print(
        f"demo world in {_world_dir(data)}: {manifest['files']} files, {manifest['bytes'] / 1e6:.1f} MB "
        f"({time.perf_counter() - started:.1f} s)"
    )


@demo_app.command("serve")
def demo_serve(data: DataDir = Path("data"), catalog: str = "demo") -> None:
    """Serve the demo world on loopback until interrupted (Ctrl-C)."""
    from msc_france.demo.server import serve_world

    demo_generate(data, catalog)
    with serve_world(_world_dir(data)) as server:
        console.print(f"STAC API  {server.stac_url}\nCOG files {server.files_url}\n"
                      f"WMS       {server.resolve('demo://wms-r')}\nWMTS      {server.resolve('demo://wmts')}\n"
                      f"WFS       {server.resolve('demo://wfs')}\n"
                      "Ctrl-C to stop.")
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            console.print("stopping")


@demo_app.command("run")
def demo_run(
    data: DataDir = Path("data"),
    catalog: str = "demo",
    pretrain_config: Annotated[str, typer.Option("--pretrain-config", help="pretraining preset")] = "pretrain-demo",
    s2_config: Annotated[str, typer.Option("--s2-config", help="preset of the Sentinel-2 model that the "
                                           "continual preset adapts")] = "pretrain-demo-s2",
    continual_config: Annotated[str, typer.Option("--continual-config", help="continual preset, reported "
                                                  "before and after adaptation")] = "pretrain-demo-continual",
) -> None:
    """Everything offline: demo world, download, tiles, publish, pretraining (DINO + MSAD and DINO alone;
    a Sentinel-2 model and its continual adaptation to VHR), evaluation."""
    import json

    from pystac_client import Client

    from msc_france.demo.server import serve_world
    from msc_france.demo.smoke import read_window, search_sources
    from msc_france.eval.run import EvalRequest, run_eval
    from msc_france.pretrain.config import load_pretrain_config
    from msc_france.pretrain.trainer import PretrainRequest, run_pretrain

    started = time.perf_counter()
    demo_generate(data, catalog)
    world_dir = _world_dir(data)
    bbox = json.loads((world_dir / "world.json").read_text())["scene"]["bbox_lonlat"]
    with serve_world(world_dir) as server:
        console.print(f"serving: STAC API {server.stac_url}, COGs {server.files_url}, WMS/WMTS {server.ogc_url}")
        table = Table(title="STAC search over region demo")
        for column in ("source", "collection", "items", "first item"):
            table.add_column(column)
        results = search_sources(load_catalog(catalog), server, bbox)
        for row in results:
            table.add_row(row.source, row.collection, str(row.items), row.first_item)
        console.print(table)
        missing = [r.source for r in results if r.items == 0]
        if missing:
            raise UserError(f"the served demo world has no items for {', '.join(missing)}; "
                            f"delete {world_dir} and rerun")
        item = next(Client.open(server.stac_url).search(collections=["sentinel-2-l2a"], bbox=bbox).items())
        window = read_window(item.assets["B04"].href)
        console.print(f"read a {window.shape[0]}x{window.shape[1]} window of {item.id} B04 over HTTP "
                      f"(DN {int(window.min())}..{int(window.max())})")
        download(region="demo", catalog=catalog, recipe="demo", data=data)
    tiles(data=data)  # with the recipe of the download
    publish(data=data)  # about 2 s: collection, card, Croissant, changelog beside the store
    name = load_pretrain_config(pretrain_config).name
    for dino_only in (False, True):  # DINO + MSAD, then the DINO-alone baseline with the same budget
        summary = run_pretrain(PretrainRequest(config=pretrain_config, data=data, dino_only=dino_only,
                                               resume="auto"))  # a finished run only re-exports
        console.print(f"run {summary.run_dir}: {summary.steps} steps; backbone {summary.export}")
    for preset in (s2_config, continual_config):  # the continual one starts from the Sentinel-2 one
        summary = run_pretrain(PretrainRequest(config=preset, data=data, resume="auto"))
        console.print(f"run {summary.run_dir}: {summary.steps} steps; backbone {summary.export}")
    continual = load_pretrain_config(continual_config).name
    _print_headline(run_eval(EvalRequest(run=name, data=data, continual=continual)))
    console.print(f"demo done in {time.perf_counter() - started:.0f} s")


def main() -> None:
    """Entry point: user errors and a full disk print one line and exit 2, Ctrl-C one line and 130; no traceback."""
    spin_briefly_when_waiting()  # before any command imports torch
    try:
        app()
    except UserError as exc:
        print(f"error: {redact_text(str(exc))}", file=sys.stderr)
        sys.exit(2)
    except Interrupted as exc:  # Ctrl-C: what was kept, and how to resume
        print(exc, file=sys.stderr)
        sys.exit(130)
    except Exception as exc:
        full = disk_full(exc)
        if not full:
            raise
        print(f"error: {disk_full_message(full)}", file=sys.stderr)
        sys.exit(2)
