"""The download stage: region -> STAC search per source -> plan -> windowed fetch -> local catalog."""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import functools
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import shapely
from odc.geo.geom import BoundingBox
from rich.console import Console
from tqdm import tqdm

from msc_france.config import (
    Catalog,
    Recipe,
    StacSource,
    WfsDates,
    WmsSource,
    WmtsEndpoint,
    load_catalog,
    load_recipe,
)
from msc_france.download.candidates import Candidate, candidate, one_per_acquisition
from msc_france.download.fetch import AssetJob, Fetched, FileRecord, declared_crs, fetch_asset
from msc_france.download.http import (
    FetchError,
    HttpOpener,
    RetryPolicy,
    Transfer,
    http_client,
    no_signing,
    planetary_computer_signing,
    strip_query,
)
from msc_france.download.local_catalog import local_item, recorded_files, write_catalog, write_json
from msc_france.download.plan import RegionPlan, SensorCandidates, plan_tiles
from msc_france.download.plan_report import fetch_bytes, plan_report, write_plan
from msc_france.download.search import open_api, search_source
from msc_france.download.tile_cloud import tile_cloud
from msc_france.download.wms import (
    VhrWindow,
    WindowResult,
    fetch_windows,
    vhr_windows,
    window_id,
    window_item,
    window_side,
    wms_sensor,
)
from msc_france.errors import Interrupted, UserError
from msc_france.grid import TileId, tiles_between
from msc_france.lock import exclusive
from msc_france.provenance import RecipeRecord, catalog_record, content, describe
from msc_france.redact import redact, redact_text
from msc_france.regions import Region, region_tiles, resolve_region
from msc_france.sensors import SENSORS
from msc_france.store.atomic import PARTIAL_GLOB
from msc_france.store.layout import IMAGING, LABELS

if TYPE_CHECKING:
    from msc_france.demo.server import DemoServer

HUGE_TILES = 2000  # above this many tiles, ask for --yes
SENSOR_TITLES = {"s2": "Sentinel-2 L2A", "l8": "Landsat", "vhr": "VHR", "labels": "label"}


@dataclass
class DownloadRequest:
    region: str
    catalog: str = "planetary-computer"
    recipe: str | None = None  # default: demo for the demo catalog, else msc-france
    start: dt.date | None = None
    end: dt.date | None = None
    max_cloud: float | None = None
    window_days: int = 30
    data: Path = Path("data")
    dry_run: bool = False
    yes: bool = False
    concurrency: int = 4


@dataclass
class Summary:
    plan: RegionPlan | None
    fetched: list[Fetched] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)
    uncovered: list[str] = field(default_factory=list)  # VHR windows left out, with the reason
    transfer: Transfer = field(default_factory=Transfer)
    catalog_path: Path | None = None
    plan_files: tuple[Path, Path] | None = None  # plan.parquet and its map
    tile_cloud: dict[tuple[str, str], float] = field(default_factory=dict)  # measured, by (item, tile)

    @property
    def skipped(self) -> list[Fetched]:
        return [f for f in self.fetched if f.skipped]

    @property
    def refetched(self) -> list[Fetched]:
        """Files that were there but damaged (not as the local catalog recorded them), fetched again."""
        return [f for f in self.fetched if f.refetched]


def _endpoints(source: StacSource | WmsSource) -> dict[str, StacSource | WmsSource | WmtsEndpoint | WfsDates]:
    """The parts of a source that hold a URL, by field name (``""``: the source itself)."""
    parts: dict[str, StacSource | WmsSource | WmtsEndpoint | WfsDates] = {"": source}
    if isinstance(source, WmsSource):
        parts.update({k: v for k, v in (("wmts", source.wmts), ("dates_wfs", source.dates_wfs)) if v is not None})
    return parts


def _demo_urls(source: StacSource | WmsSource) -> list[str]:
    return [p.url for p in _endpoints(source).values() if p.url.startswith("demo://")]


def _on_server(source: StacSource | WmsSource, server: DemoServer) -> StacSource | WmsSource:
    """``source`` with its ``demo://`` URLs pointing at the running demo servers."""
    update: dict[str, object] = {
        name: part.model_copy(update={"url": server.resolve(part.url)})
        for name, part in _endpoints(source).items() if name and part.url.startswith("demo://")
    }
    if source.url.startswith("demo://"):
        update["url"] = server.resolve(source.url)
    return source.model_copy(update=update)


@contextlib.contextmanager
def resolved(catalog: Catalog, data: Path) -> Iterator[Catalog]:
    """The catalog with ``demo://`` replaced by the running demo world, started here if needed."""
    if not any(_demo_urls(s) for s in catalog.sources.values()):
        yield catalog
        return
    from msc_france.demo.server import running_server, serve_world
    from msc_france.demo.world import generate_world

    world_dir = data / "demo-world"
    server = running_server(world_dir)
    with contextlib.ExitStack() as stack:
        if server is None:
            if catalog.world is None:
                raise UserError("catalog uses demo:// but has no `world` section to generate it from")
            generate_world(catalog.world, world_dir)
            server = stack.enter_context(serve_world(world_dir))
        sources = {key: _on_server(s, server) for key, s in catalog.sources.items()}
        yield catalog.model_copy(update={"sources": sources})


def _dates(request: DownloadRequest, catalog: Catalog) -> tuple[dt.date, dt.date]:
    if catalog.dates:
        start, end = catalog.dates.start, catalog.dates.end
    else:  # the last complete growing season
        year = dt.date.today().year - 1
        start, end = dt.date(year, 4, 1), dt.date(year, 10, 31)
    start, end = request.start or start, request.end or end
    if end < start:
        raise UserError(f"end date {end} is before start date {start}")
    return start, end


def _band_jobs(cand: Candidate, recipe: Recipe, catalog: Catalog, root: Path) -> list[AssetJob]:
    """The files of one planned STAC item: the recipe's bands, and the quality mask of s2 and l8."""
    assert cand.item is not None, "a WMS has no item jobs"
    grid = recipe.tile_grid
    item = cand.item.to_dict(transform_hrefs=False)
    folder = root / cand.sensor / cand.item_id
    source = catalog.sources[cand.sensor]
    if cand.sensor in ("s2", "l8"):
        sensor = SENSORS[cand.sensor]
        return [AssetJob(cand.sensor, cand.item_id, band.asset, cand.item.assets[band.asset].href,
                         (band.asset_band,), (band.name,), grid.gsd(cand.sensor), "average",
                         folder / f"{band.asset}.tif", declared_crs(item, band.asset))
                for band in sensor.select(recipe.sensors[cand.sensor].bands)] + [_mask_job(cand, recipe, root)]
    if cand.sensor == "vhr":
        assert isinstance(source, StacSource)  # WMS sources have no item
        key = source.asset or "image"
        names = tuple(recipe.sensors["vhr"].bands)
        return [AssetJob("vhr", cand.item_id, key, cand.item.assets[key].href, vhr_band_indexes(source, names), names,
                         grid.gsd("vhr"), "average", folder / f"{key}.tif", declared_crs(item, key))]
    key = (source.asset if isinstance(source, StacSource) else None) or "map"
    target = grid.gsd("s2") if "s2" in grid.sensors else min(g for _, g in grid.gsds)
    return [AssetJob("labels", cand.item_id, key, cand.item.assets[key].href, (1,), ("label",), target, "nearest",
                     folder / f"{key}.tif", declared_crs(item, key))]


def _mask_job(cand: Candidate, recipe: Recipe, root: Path) -> AssetJob:
    mask = SENSORS[cand.sensor].mask
    assert mask is not None and cand.item is not None
    path = root / cand.sensor / cand.item_id / f"{mask.asset}.tif"
    return AssetJob(cand.sensor, cand.item_id, mask.asset, cand.item.assets[mask.asset].href, (1,), (mask.asset,),
                    recipe.tile_grid.gsd(cand.sensor), "nearest", path,
                    declared_crs(cand.item.to_dict(transform_hrefs=False), mask.asset))


def vhr_band_indexes(source: StacSource, names: tuple[str, ...]) -> tuple[int, ...]:
    """1-based indexes in the VHR asset of the recipe's bands ``names``: the source's ``bands``
    mapping, else the default order (R, G, B, NIR)."""
    mapping = source.bands or {b.name: b.asset_band for b in SENSORS["vhr"].bands}
    missing = [n for n in names if n not in mapping]
    if missing:
        raise UserError(f"the vhr source's bands ({', '.join(mapping)}) have no {missing[0]!r}, which the recipe "
                        f"needs: add it to `bands` in the catalog or drop it from the recipe")
    return tuple(mapping[n] for n in names)


def _signer(source: StacSource) -> Callable[[str], str]:
    return planetary_computer_signing if source.signing == "planetary-computer" else no_signing


def _needed_assets(key: str, recipe: Recipe, source: StacSource) -> list[str]:
    """The asset keys of ``source``'s items that the recipe needs for sensor ``key``."""
    if key in ("s2", "l8"):
        sensor = SENSORS[key]
        assert sensor.mask is not None
        return [band.asset for band in sensor.select(recipe.sensors[key].bands)] + [sensor.mask.asset]
    return [source.asset or ("image" if key == "vhr" else "map")]


ORDERS = {"s2": "reference", "l8": "nearest", "vhr": "season", "labels": "cover"}  # see download/plan.py


def _search(catalog: Catalog, recipe: Recipe, region: Region, start: dt.date, end: dt.date, max_cloud: float | None,
            console: Console) -> tuple[dict[str, SensorCandidates], dict[str, list[Candidate]]]:
    """Per sensor the deduplicated candidates over the region, and the duplicates dropped."""
    region_l93 = region.geometry.to_crs("EPSG:2154")
    sensors: dict[str, SensorCandidates] = {}
    duplicates: dict[str, list[Candidate]] = {}
    wanted = [k for k in IMAGING if k in recipe.sensors] + ([LABELS] if recipe.labels else [])
    for key in wanted:
        source = catalog.sources.get(key)
        if source is None:
            raise UserError(f"catalog {catalog.name!r} has no source for {key}, which the recipe {recipe.name!r} needs")
        if isinstance(source, WmsSource):
            sensors[key], note = wms_sensor(key, source, region_l93)
            if note:
                console.print(note, markup=False)
            continue
        client = open_api(source.url)
        # VHR and labels are acquired rarely: search all dates, and pair by season when planning.
        rare = key in ("vhr", "labels")
        items, rejected = search_source(client, source, region, dt.date(1980, 1, 1) if rare else start,
                                        dt.date(2100, 1, 1) if rare else end, max_cloud, use_cloud=key != "labels",
                                        assets=_needed_assets(key, recipe, source))
        if rejected:
            console.print(f"left out {len(rejected)} unusable {source.collection} items from {redact(source.url)}: "
                          + "; ".join(f"{r.item_id!r}: {r.reason}" for r in rejected[:5])
                          + (" ..." if len(rejected) > 5 else ""), markup=False)
        over = [c for c in (candidate(key, i) for i in items) if c.footprint.geom.intersects(region_l93.geom)]
        kept, duplicates[key] = one_per_acquisition(over)
        if not kept:
            when = "" if rare else f" between {start} and {end}"
            cloud = f" with cloud <= {max_cloud:g} %" if max_cloud is not None and key != "labels" else ""
            raise UserError(f"no {SENSOR_TITLES[key]} item over {region.name}{when}{cloud} in {redact(source.url)} "
                            f"({source.collection}); widen the dates or max_cloud")
        sensors[key] = SensorCandidates(key, kept, ORDERS[key])
    return sensors, duplicates


def _empty_sensor(plan: RegionPlan) -> str | None:
    """Why no tile can be made, when some sensor has no item on any tile."""
    for key in plan.sensors:
        if not plan.tiles[f"{key}_items"].map(len).gt(0).any():
            reasons = plan.reasons()
            why = reasons.index[0] if len(reasons) else f"no {SENSOR_TITLES[key]} item"
            hint = ("widen the pairing window (--window, make window_days=) or the dates" if "within" in why
                    else "widen the dates or max_cloud")
            return f"no tile of {plan.region.name} gets a {SENSOR_TITLES[key]} item ({why}); {hint}"
    return None


def make_region_plan(request: DownloadRequest, catalog: Catalog, recipe: Recipe, region: Region,
                     tiles: list[TileId], console: Console) -> RegionPlan:
    """Search every source of ``catalog`` over ``region`` and plan its ``tiles`` (scene cloud cover)."""
    start, end = _dates(request, catalog)
    sensors, duplicates = _search(catalog, recipe, region, start, end, request.max_cloud, console)
    return plan_tiles(region, recipe.tile_grid, tiles, sensors, request.window_days, duplicates=duplicates)


def _fetch_all(jobs: list[tuple[AssetJob, BoundingBox]], openers: dict[str, HttpOpener], transfer: Transfer,
               concurrency: int, desc: str, records: dict[Path, FileRecord], what: str = "files",
               ) -> tuple[dict[str, list[Fetched]], list[tuple[str, str]]]:
    """Fetch ``jobs`` (each with its area) in threads, a local file counting as complete only if it is as
    ``records`` (the local catalog) has it: the files by item, and the failures; the bar shows the
    megabytes ``transfer`` has counted. Ctrl-C raises :class:`Interrupted` (the complete ``what``) within
    seconds: no file is queued any more, and the running fetches stop at their next request."""
    results: dict[str, list[Fetched]] = {}
    failed: list[tuple[str, str]] = []
    pool = ThreadPoolExecutor(max_workers=concurrency)
    futures: dict[Future[Fetched], AssetJob] = {}
    try:
        with tqdm(total=len(jobs), unit="file", desc=desc, dynamic_ncols=True) as bar:
            futures.update({pool.submit(fetch_asset, job, area, openers[job.sensor],
                                        records.get(job.path.resolve())): job for job, area in jobs})
            for future in as_completed(futures):
                job = futures[future]
                try:
                    results.setdefault(job.item_id, []).append(future.result())
                except (FetchError, UserError, OSError, RuntimeError) as exc:
                    failed.append((f"{job.item_id}/{job.key}", redact_text(" ".join(str(exc).split()))[:300]))
                bar.update(1)
                bar.set_postfix_str(f"{transfer.bytes / 1e6:.1f} MB")
    except KeyboardInterrupt:
        # Ctrl-C: drop the queued fetches, stop the running ones at their next request (each writes
        # under a .partial name, removed on error), and count the files left complete.
        transfer.cancelled.set()
        pool.shutdown(wait=True, cancel_futures=True)
        kept = sum(1 for f in futures if not f.cancelled() and f.exception() is None)
        raise Interrupted(kept, len(jobs), what) from None
    finally:
        pool.shutdown(wait=True)
    return results, failed


def _measure_clouds(plan: RegionPlan, recipe: Recipe, root: Path, openers: dict[str, HttpOpener],
                    transfer: Transfer, concurrency: int, records: dict[Path, FileRecord],
                    ) -> tuple[dict[tuple[str, str], float], dict[Path, Fetched]]:
    """Cloud over each tile, by (item, tile), from the masks of the candidates that could serve it: the
    Sentinel-2 and Landsat items within the window of some tile's reference date. A mask that cannot be
    fetched leaves the scene's figure in place (the item's files are fetched, or fail, later)."""
    grid = recipe.tile_grid
    references = {dt.date.fromisoformat(d) for d in plan.tiles["reference_date"].dropna().unique()}
    cols, rows = plan.tiles["col"].to_numpy(), plan.tiles["row"].to_numpy()
    boxes = grid.tile_boxes(cols, rows)
    tree = shapely.STRtree(boxes)
    jobs: list[tuple[AssetJob, BoundingBox]] = []
    served: dict[str, list[TileId]] = {}
    for key in ("s2", "l8"):
        sensor = plan.sensors.get(key)
        for cand in sensor.candidates if sensor else []:
            if cand.date is None or not any(abs((cand.date - r).days) <= plan.window_days for r in references):
                continue
            hits = tree.query(cand.footprint.geom, predicate="intersects")
            tiles = [TileId(int(cols[i]), int(rows[i])) for i in sorted(hits)]
            if tiles:
                served[cand.item_id] = tiles
                jobs.append((_mask_job(cand, recipe, root), tiles_between(grid, tiles)))
    fetched, _ = _fetch_all(jobs, openers, transfer, concurrency, "masks", records, "cloud masks")
    measured: dict[tuple[str, str], float] = {}
    for job, _area in jobs:
        if job.item_id in fetched:
            for tile, cloud in tile_cloud(job.path, job.sensor, grid, served[job.item_id]).items():
                measured[(job.item_id, tile)] = cloud
    return measured, {f.job.path: f for files in fetched.values() for f in files}


def _planned_windows(plan: RegionPlan, catalog: Catalog, recipe: Recipe) -> list[VhrWindow]:
    """The VHR windows of a WMS/WMTS source over the tiles planned with it (none for a STAC source)."""
    source = catalog.sources.get("vhr")
    if "vhr" not in plan.sensors or not isinstance(source, WmsSource):
        return []
    planned = plan.tiles[plan.tiles["vhr_items"].map(len).gt(0)]
    tiles = [TileId(int(c), int(r)) for c, r in zip(planned["col"], planned["row"], strict=True)]
    return vhr_windows(recipe.tile_grid, tiles, source.window_px)


def _fetch_vhr_windows(plan: RegionPlan, catalog: Catalog, base_catalog: Catalog, recipe: Recipe, root: Path,
                       summary: Summary, planned_before: int) -> list[dict[str, Any]]:
    """Fetch the VHR of a WMS/WMTS source window by window over the tiles planned with it; the local
    items of the covered windows. On Ctrl-C, :class:`Interrupted` counts the files kept of the
    ``planned_before`` item files and these windows."""
    source = catalog.sources.get("vhr")
    windows = _planned_windows(plan, catalog, recipe)
    if not windows or not isinstance(source, WmsSource):
        return []
    api_url = redact(strip_query(base_catalog.sources["vhr"].url))
    items: list[dict[str, Any]] = []
    with tqdm(total=len(windows), unit="window", desc="vhr", dynamic_ncols=True) as bar:
        def done(window: VhrWindow, result: WindowResult | None, problem: str | None) -> None:
            bar.update(1)
            if result is None:
                summary.failed.append((window.window_id, problem or "failed"))
                return
            summary.fetched.append(result.fetched)
            if result.record.coverage == 0:
                summary.uncovered.append(f"{window.window_id}: the service has no imagery there")
            elif result.record.year is None:
                summary.uncovered.append(f"{window.window_id}: no acquisition date ({result.record.date_source})")
            else:
                items.append(window_item(result, root, api_url))

        try:
            fetch_windows(windows, source, recipe, root, done)
        except KeyboardInterrupt:  # in this thread: the window being written is under a .partial name
            raise Interrupted(len(summary.fetched), planned_before + len(windows)) from None
    return items


def _with_windows(plan: RegionPlan, source: StacSource | WmsSource | None, recipe: Recipe) -> RegionPlan:
    """The plan with a WMS's VHR named by the window item of each tile, as the local catalog has it."""
    if not isinstance(source, WmsSource) or "vhr" not in plan.sensors:
        return plan
    side = window_side(recipe.tile_grid, source.window_px)
    tiles = plan.tiles.copy()
    tiles["vhr_items"] = [[window_id(TileId(int(c), int(r)), side)] if len(ids) else []
                          for c, r, ids in zip(tiles["col"], tiles["row"], tiles["vhr_items"], strict=True)]
    return dataclasses.replace(plan, tiles=tiles)


def _same_recipe(root: Path, recipe: Recipe) -> None:
    """Refuse to download into a folder made with another recipe: its files (other bands or GSD)
    would be taken for complete ones."""
    earlier = catalog_record(root)
    if earlier is not None and content(earlier.recipe) != content(recipe):
        raise UserError(f"{root} was downloaded with recipe {describe(earlier.recipe)}, not {describe(recipe)}; "
                        f"delete {root} or give another --data to download with recipe {recipe.name}")


def run_download(request: DownloadRequest, console: Console) -> Summary:
    """Plan and fetch; returns the summary (failures are listed, not raised)."""
    base_catalog = load_catalog(request.catalog)
    region = resolve_region(request.region, base_catalog.world)
    recipe = load_recipe(request.recipe or ("demo" if base_catalog.name == "demo" else "msc-france"))
    tiles = region_tiles(region, recipe.tile_grid)
    if not tiles:
        raise UserError(f"region {region.name} covers no tile of the France grid")
    root = request.data / "catalogs" / region.slug
    try:
        with resolved(base_catalog, request.data) as catalog, contextlib.ExitStack() as held:
            plan = make_region_plan(request, catalog, recipe, region, tiles, console)
            if len(tiles) > HUGE_TILES and not request.yes and not request.dry_run:
                size = sum(fetch_bytes(plan, recipe).values())
                raise UserError(f"{region.name} is {len(tiles):,} tiles, {size / 1e9:,.1f} GB to fetch as planned "
                                f"(raw); rerun with --yes (or --dry-run to see the plan)")
            empty = _empty_sensor(plan)
            if request.dry_run:
                console.print(plan_report(plan, recipe))
                if empty:
                    console.print(f"warning: {empty}", markup=False)
                held.enter_context(exclusive(root / ".download.lock", f"the download folder {root}"))
                summary = Summary(plan)
                summary.plan_files = write_plan(plan, root)
                return summary
            if empty:
                raise UserError(empty)
            # One download of a region at a time: a second would remove the first one's .partial files.
            held.enter_context(exclusive(root / ".download.lock", f"the download folder {root}"))
            _same_recipe(root, recipe)
            root.mkdir(parents=True, exist_ok=True)
            write_json(root / "region.geojson", region.geometry.json)
            for partial in root.rglob(PARTIAL_GLOB):
                partial.unlink()
            transfer = Transfer()
            client = http_client()
            openers = {
                key: HttpOpener(client, _signer(s), RetryPolicy(), transfer)
                for key, s in catalog.sources.items() if isinstance(s, StacSource)
            }
            records = recorded_files(root)  # before anything is fetched: what the last complete run wrote
            measured, masks = _measure_clouds(plan, recipe, root, openers, transfer, request.concurrency, records)
            if measured:
                plan = plan_tiles(region, recipe.tile_grid, tiles, plan.sensors, request.window_days, measured,
                                  plan.duplicates)
                console.print(f"cloud measured from the items' masks over {len({t for _, t in measured}):,} tiles "
                              f"({len({i for i, _ in measured}):,} items)", markup=False)
            console.print(plan_report(plan, recipe))
            summary = Summary(plan, transfer=transfer, tile_cloud=measured)
            jobs: list[tuple[AssetJob, BoundingBox]] = []
            planned: dict[str, Candidate] = {}
            for key in plan.sensors:
                item_tiles = plan.item_tiles(key)
                for cand in plan.used(key):
                    if cand.item is not None:
                        planned[cand.item_id] = cand
                        area = tiles_between(recipe.tile_grid, item_tiles[cand.item_id])
                        jobs += [(job, area) for job in _band_jobs(cand, recipe, catalog, root)]
            try:
                results, failed = _fetch_all([(j, a) for j, a in jobs if j.path not in masks], openers, transfer,
                                             request.concurrency, "download", records)
            except Interrupted as stop:  # the masks fetched to measure clouds are kept files of the items too
                windows = len(_planned_windows(plan, catalog, recipe))
                assert stop.total is not None
                raise Interrupted(len(masks) + stop.kept, len(masks) + stop.total + windows) from None
            summary.fetched += [*masks.values(), *(f for files in results.values() for f in files)]
            for job, _area in jobs:  # the masks fetched to measure clouds are the items' own
                if job.path in masks:
                    results.setdefault(job.item_id, []).append(masks[job.path])
            summary.failed += failed
            items = _fetch_vhr_windows(plan, catalog, base_catalog, recipe, root, summary, len(jobs))

            def provenance(key: str, href: str) -> str:
                """The catalog's own URL for demo sources (the loopback port changes every run)."""
                url = redact(strip_query(href))  # no token, no password in the catalog
                configured = base_catalog.sources[key]
                return "demo://" + url.split("://", 1)[1].split("/", 1)[-1] if (
                    isinstance(configured, StacSource) and configured.url.startswith("demo://")) else url

            failed_items = {name.split("/")[0] for name, _ in summary.failed}
            for item_id, cand in sorted(planned.items()):
                if item_id in results and item_id not in failed_items:
                    items.append(local_item(cand, sorted(results[item_id], key=lambda f: f.job.key), root,
                                            redact(strip_query(base_catalog.sources[cand.sensor].url)),
                                            functools.partial(provenance, cand.sensor)))
            summary.plan = _with_windows(plan, catalog.sources.get("vhr"), recipe)
            summary.plan_files = write_plan(summary.plan, root)
            if items:
                summary.catalog_path = write_catalog(root, region.name, items, RecipeRecord(recipe=recipe,
                                                                                           catalog=base_catalog.name))
        return summary
    except KeyboardInterrupt:  # Ctrl-C outside the fetches (searching, planning): what is there is kept
        raise Interrupted(sum(1 for _ in root.rglob("*.tif")) if root.is_dir() else 0, None) from None
