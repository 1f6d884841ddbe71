"""The download stage: region -> STAC search per source -> plan -> windowed fetch -> local catalog."""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

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
from msc_france.download.fetch import AssetJob, Fetched, declared_crs, fetch_asset
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
from msc_france.download.local_catalog import local_item, write_catalog, write_json
from msc_france.download.plan import Candidate, Plan, candidate, make_plan
from msc_france.download.search import open_api, search_source
from msc_france.download.wms import VhrWindow, WindowResult, fetch_windows, vhr_windows, window_item, wms_candidate
from msc_france.errors import UserError
from msc_france.grid import TileId, tiles_between
from msc_france.lock import exclusive
from msc_france.provenance import RecipeRecord, catalog_record, content, describe
from msc_france.regions import Region, download_estimate, region_tiles, resolve_region
from msc_france.sensors import SENSORS

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
    plan: Plan | None
    fetched: list[Fetched] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)
    uncovered: list[str] = field(default_factory=list)  # VHR windows left out, with the reason
    transfer: Transfer = field(default_factory=Transfer)
    catalog_path: Path | None = None

    @property
    def skipped(self) -> list[Fetched]:
        return [f for f in self.fetched if f.skipped]


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


def _jobs(plan: Plan, recipe: Recipe, catalog: Catalog, root: Path) -> list[AssetJob]:
    grid = recipe.tile_grid
    jobs = []
    for entry in plan.entries:
        if entry.item is None:
            continue
        item = entry.item.to_dict(transform_hrefs=False)
        folder = root / entry.sensor / entry.item_id
        source = catalog.sources[entry.sensor]
        if entry.sensor in ("s2", "l8"):
            sensor = SENSORS[entry.sensor]
            for band in sensor.select(recipe.sensors[entry.sensor].bands):
                jobs.append(AssetJob(entry.sensor, entry.item_id, band.asset, entry.item.assets[band.asset].href,
                                     (band.asset_band,), (band.name,), grid.gsd(entry.sensor), "average",
                                     folder / f"{band.asset}.tif", declared_crs(item, band.asset)))
            assert sensor.mask is not None
            jobs.append(AssetJob(entry.sensor, entry.item_id, sensor.mask.asset,
                                 entry.item.assets[sensor.mask.asset].href, (1,), (sensor.mask.asset,),
                                 grid.gsd(entry.sensor), "nearest", folder / f"{sensor.mask.asset}.tif",
                                 declared_crs(item, sensor.mask.asset)))
        elif entry.sensor == "vhr":
            assert isinstance(source, StacSource)  # WMS entries have no item
            key = source.asset or "image"
            names = tuple(recipe.sensors["vhr"].bands)
            jobs.append(AssetJob("vhr", entry.item_id, key, entry.item.assets[key].href,
                                 vhr_band_indexes(source, names), names, grid.gsd("vhr"),
                                 "average", folder / f"{key}.tif", declared_crs(item, key)))
        else:  # labels
            key = (source.asset if isinstance(source, StacSource) else None) or "map"
            target = grid.gsd("s2") if "s2" in grid.sensors else min(g for _, g in grid.gsds)
            jobs.append(AssetJob("labels", entry.item_id, key, entry.item.assets[key].href, (1,), ("label",),
                                 target, "nearest", folder / f"{key}.tif", declared_crs(item, key)))
    return jobs


def vhr_band_indexes(source: StacSource, names: tuple[str, ...]) -> tuple[int, ...]:
    """1-based indexes in the VHR asset of the recipe's bands ``names``: the source's ``bands``
    mapping, else the default order (R, G, B, NIR)."""
    mapping = source.bands or {b.name: b.asset_band for b in SENSORS["vhr"].bands}
    missing = [n for n in names if n not in mapping]
    if missing:
        raise UserError(f"the vhr source's bands ({', '.join(mapping)}) have no {missing[0]!r}, which the recipe "
                        f"needs: add it to `bands` in the catalog or drop it from the recipe")
    return tuple(mapping[n] for n in names)


def _signer(source: StacSource):
    return planetary_computer_signing if source.signing == "planetary-computer" else no_signing


def _needed_assets(key: str, recipe: Recipe, source: StacSource) -> list[str]:
    """The asset keys of ``source``'s items that the recipe needs for sensor ``key``."""
    if key in ("s2", "l8"):
        sensor = SENSORS[key]
        assert sensor.mask is not None
        return [band.asset for band in sensor.select(recipe.sensors[key].bands)] + [sensor.mask.asset]
    return [source.asset or ("image" if key == "vhr" else "map")]


def _search(catalog: Catalog, recipe: Recipe, region: Region, start: dt.date, end: dt.date,
            max_cloud: float | None, console: Console) -> dict[str, list[Candidate]]:
    region_l93 = region.geometry.to_crs("EPSG:2154")
    found: dict[str, list[Candidate]] = {}
    wanted = [k for k in ("s2", "l8", "vhr") if k in recipe.sensors] + (["labels"] if recipe.labels else [])
    for key in wanted:
        source = catalog.sources.get(key)
        if source is None:
            raise UserError(f"catalog {catalog.name!r} has no source for {key}, which the recipe {recipe.name!r} needs")
        if isinstance(source, WmsSource):
            found[key] = [wms_candidate(key, source, region_l93)]
            continue
        client = open_api(source.url)
        # VHR and labels are acquired rarely: search all dates, and pair by season when planning.
        rare = key in ("vhr", "labels")
        items, rejected = search_source(client, source, region, dt.date(1980, 1, 1) if rare else start,
                                        dt.date(2100, 1, 1) if rare else end, max_cloud, use_cloud=key != "labels",
                                        assets=_needed_assets(key, recipe, source))
        if rejected:
            console.print(f"left out {len(rejected)} unusable {source.collection} items from {source.url}: "
                          + "; ".join(f"{r.item_id!r}: {r.reason}" for r in rejected[:5])
                          + (" ..." if len(rejected) > 5 else ""), markup=False)
        found[key] = [c for c in (candidate(key, i, region_l93) for i in items) if c.coverage > 0]
        if not found[key]:
            when = "" if rare else f" between {start} and {end}"
            cloud = f" with cloud <= {max_cloud:g} %" if max_cloud is not None and key != "labels" else ""
            raise UserError(f"no {SENSOR_TITLES[key]} item over {region.name}{when}{cloud} in {source.url} "
                            f"({source.collection}); widen the dates or max_cloud")
    return found


def _fetch_vhr_windows(plan: Plan, catalog: Catalog, base_catalog: Catalog, recipe: Recipe, tiles: list[TileId],
                       root: Path, summary: Summary) -> list[dict[str, Any]]:
    """Fetch the VHR of WMS/WMTS sources window by window; the local items of the covered windows."""
    items: list[dict[str, Any]] = []
    for entry in plan.entries:
        source = catalog.sources[entry.sensor]
        if entry.item is not None or not isinstance(source, WmsSource):
            continue
        windows = vhr_windows(recipe.tile_grid, tiles, source.window_px)
        api_url = strip_query(base_catalog.sources[entry.sensor].url)
        with tqdm(total=len(windows), unit="window", desc="vhr", dynamic_ncols=True) as bar:
            def done(window: VhrWindow, result: WindowResult | None, problem: str | None,
                     bar: tqdm = bar, api_url: str = api_url) -> None:
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

            fetch_windows(windows, source, recipe, root, done)
    return items


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
    if len(tiles) > HUGE_TILES and not request.yes and not request.dry_run:
        count, size = download_estimate(region, recipe)
        raise UserError(f"{region.name} is {count} tiles, about {size / 1e9:.1f} GB to download; rerun with --yes")
    start, end = _dates(request, base_catalog)
    root = request.data / "catalogs" / region.slug
    with resolved(base_catalog, request.data) as catalog, contextlib.ExitStack() as held:
        found = _search(catalog, recipe, region, start, end, request.max_cloud, console)
        plan = make_plan(region, found, request.window_days)
        console.print(plan.table())
        summary = Summary(plan)
        if request.dry_run:
            return summary
        # One download of a region at a time: a second would remove the first one's .partial files.
        held.enter_context(exclusive(root / ".download.lock", f"the download folder {root}"))
        _same_recipe(root, recipe)
        root.mkdir(parents=True, exist_ok=True)
        write_json(root / "region.geojson", region.geometry.json)
        for partial in root.rglob(".*.partial"):
            partial.unlink()
        area = tiles_between(recipe.tile_grid, tiles)
        jobs = _jobs(plan, recipe, catalog, root)
        client = http_client()
        openers = {
            key: HttpOpener(client, _signer(s), RetryPolicy(), summary.transfer)
            for key, s in catalog.sources.items() if isinstance(s, StacSource)
        }
        results: dict[str, list[Fetched]] = {}
        with tqdm(total=len(jobs), unit="file", desc="download", dynamic_ncols=True) as bar, \
                ThreadPoolExecutor(max_workers=request.concurrency) as pool:
            futures = {pool.submit(fetch_asset, job, area, openers[job.sensor]): job for job in jobs}
            for future in as_completed(futures):
                job = futures[future]
                try:
                    fetched = future.result()
                    summary.fetched.append(fetched)
                    results.setdefault(job.item_id, []).append(fetched)
                except (FetchError, UserError, OSError, RuntimeError) as exc:
                    summary.failed.append((f"{job.item_id}/{job.key}", " ".join(str(exc).split())[:300]))
                bar.update(1)
                bar.set_postfix_str(f"{summary.transfer.bytes / 1e6:.1f} MB")
        items = _fetch_vhr_windows(plan, catalog, base_catalog, recipe, tiles, root, summary)

        def provenance(url: str, key: str) -> str:
            """The catalog's own URL for demo sources (the loopback port changes every run)."""
            configured = base_catalog.sources[key]
            return "demo://" + url.split("://", 1)[1].split("/", 1)[-1] if (
                isinstance(configured, StacSource) and configured.url.startswith("demo://")) else url

        failed_items = {name.split("/")[0] for name, _ in summary.failed}
        for entry in plan.entries:
            if entry.item_id in results and entry.item_id not in failed_items:
                items.append(local_item(entry, sorted(results[entry.item_id], key=lambda f: f.job.key), root,
                                        strip_query(base_catalog.sources[entry.sensor].url),
                                        lambda href, key=entry.sensor: provenance(strip_query(href), key)))
        write_json(root / "plan.json", {
            "region": region.name, "reference_date": plan.reference_date,
            "entries": [{"sensor": e.sensor, "item": e.item_id, "date": e.date, "cloud": e.cloud,
                         "coverage": round(e.coverage, 6) if e.item is not None else None} for e in plan.entries],
        })
        if items:
            summary.catalog_path = write_catalog(root, region.name, items, RecipeRecord(recipe=recipe,
                                                                                       catalog=base_catalog.name))
    return summary
