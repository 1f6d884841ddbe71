"""The tiles stage: local catalogs -> Dask tasks, one per shard and group -> Zarr store + tile index."""

from __future__ import annotations

import contextlib
import signal
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import geopandas as gpd
import zarr
from dask.distributed import Client, LocalCluster, Worker, WorkerPlugin
from rich.console import Console
from tqdm import tqdm

from msc_france.config import Recipe, SplitConfig
from msc_france.download.plan import PLAN_FILE
from msc_france.errors import Interrupted, UserError
from msc_france.grid import TileGrid, TileId
from msc_france.lock import exclusive
from msc_france.store.atomic import is_url, local_path
from msc_france.store.done import all_done, write_done
from msc_france.store.index import build_index, write_index
from msc_france.store.layout import layers, lease_url, lock_path, shard_tiles
from msc_france.store.lease import s3_lease
from msc_france.store.reader import attributes, child_array, child_group
from msc_france.store.records import BandStatistics, ShardRecord
from msc_france.tiles.create import create_or_open
from msc_france.tiles.jobs import Job, build_jobs, by_shard
from msc_france.tiles.shard import process_shard
from msc_france.tiles.sources import (
    SourceItem,
    catalog_dirs,
    downloaded_recipe,
    item_encodings,
    read_items,
    region_geometry,
)
from msc_france.tiles.tileplan import TileOrders, read_plan
from msc_france.tiles.window import bounded, window_size

LOOPBACK = "127.0.0.1"  # where a local cluster listens (scheduler, workers, dashboard)


@dataclass
class TilesRequest:
    recipe: str | None = None  # default: the recipe the downloads used
    data: Path = Path("data")
    region: str | None = None
    store: str | None = None
    scheduler: str | None = None
    workers: int | None = None
    storage_options: dict[str, Any] = field(default_factory=dict)


@dataclass
class TilesSummary:
    store: str
    index: str
    written: int
    skipped: int
    tiles: int
    dashboard: str | None
    quicklooks: Path


def default_store(request: TilesRequest, recipe: Recipe) -> str:
    return request.store or str(request.data / f"{recipe.name}.zarr")


class IgnoreCtrlC(WorkerPlugin):
    """Ctrl-C reaches the worker processes of a local cluster too (a terminal signals its whole process
    group): they ignore it, so that only the client stops the run, and no worker prints a traceback."""

    def setup(self, worker: Worker) -> None:
        signal.signal(signal.SIGINT, signal.SIG_IGN)


@contextlib.contextmanager
def dask_client(scheduler: str | None, workers: int | None) -> Iterator[Client]:
    """A client of an existing cluster, or of a local cluster of worker processes."""
    if scheduler:
        try:
            client = Client(scheduler, timeout="20s")  # type: ignore[no-untyped-call]  # distributed has no annotations
        except OSError as exc:
            raise UserError(f"cannot reach the Dask scheduler at {scheduler} ({exc}); is it running?") from None
        with client:
            yield client
        return
    # Scheduler, workers and dashboard on loopback only: nothing of the run is reachable from the network.
    # distributed's LocalCluster and Client have no annotations
    with (LocalCluster(n_workers=workers or 2, threads_per_worker=1, processes=True,  # type: ignore[no-untyped-call]
                       host=LOOPBACK, dashboard_address=f"{LOOPBACK}:0", silence_logs=40,
                       plugins={IgnoreCtrlC()}) as cluster,
          Client(cluster) as client):  # type: ignore[no-untyped-call]
        yield client


def plan_tiles(recipe: Recipe, folders: list[Path]) -> tuple[dict[TileId, str], list[SourceItem]]:
    """Tiles of every downloaded region (tile -> region) and all their items."""
    grid = recipe.tile_grid
    tiles: dict[TileId, str] = {}
    items: list[SourceItem] = []
    for folder in folders:
        for tile in grid.tiles_in(region_geometry(folder)):
            tiles[tile] = folder.name
        items += read_items(folder)
    return tiles, items


def tile_orders(groups: list[str], folders: list[Path], items: list[SourceItem], console: Console) -> TileOrders:
    """The regions' plans in one; says once what is mosaicked least cloudy first (no plan, or a sensor
    it does not order) and which planned items the catalogs lack (left out)."""
    plans = []
    for folder in folders:
        plan = read_plan(folder)
        if plan is None:
            console.print(f"{folder.name}: no {PLAN_FILE} (downloaded by an earlier version): "
                          "items are mosaicked least cloudy first on every tile")
            continue
        if unplanned := [g for g in groups if g not in plan.groups]:
            console.print(f"{folder.name}: {PLAN_FILE} orders no {', '.join(unplanned)} items: least cloudy first")
        plans.append(plan)
    orders = TileOrders.combine(plans)
    if missing := sorted(orders.keys() - {i.key for i in items}):
        console.print(f"[yellow]{len(missing)} planned item(s) are not in the local catalogs and are left out "
                      f"(first: {missing[0]}); download the region again to fetch them[/yellow]")
    return orders


SYSTEM_FOLDERS = (Path("/proc"), Path("/sys"), Path("/dev"))


def check_store_path(store: str) -> None:
    """A one-line error unless a local ``store`` can be a store folder: not a file, not under a system
    folder (/proc, /sys, /dev), its parent creatable. URLs are left to their filesystem."""
    if is_url(store):
        return
    path = local_path(store)
    if "\x00" in store:  # found by fuzzing: ValueError from the OS calls below
        raise UserError(f"store {store!r} holds a NUL character; give a folder path such as DATA/RECIPE.zarr")
    try:
        is_file = path.exists() and not path.is_dir()
        resolved = path.resolve()
    except OSError as exc:  # found by fuzzing: a name too long (ENAMETOOLONG), a loop of links
        raise UserError(f"store {store} cannot be a store folder ({exc.strerror or type(exc).__name__}); "
                        "give a folder path such as DATA/RECIPE.zarr") from None
    if is_file:
        raise UserError(f"store {store} is a file, not a store folder; give a folder path such as DATA/RECIPE.zarr")
    for system in SYSTEM_FOLDERS:
        if resolved.is_relative_to(system):
            raise UserError(f"store {store} is under {system}, a system folder; give a folder on a disk")
    try:
        lock_path(store)
    except ValueError as exc:
        raise UserError(f"{exc}; give a folder path such as DATA/RECIPE.zarr") from None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"cannot create the folder of store {store} ({exc.strerror or type(exc).__name__}); "
                        "give a folder you can write to") from None


def run_tiles(request: TilesRequest, console: Console) -> TilesSummary:
    """Build or complete the store of ``request``; one run at a time on a local store. The recipe is
    the downloads' unless the request names one that they can serve (checked before any Dask work)."""
    if request.store:  # before the catalogs are read
        check_store_path(request.store)
    folders = catalog_dirs(request.data, request.region)
    recipe = downloaded_recipe(folders, request.recipe)
    store = default_store(request, recipe)
    if not request.store:
        check_store_path(store)
    lock, lease = lock_path(store), lease_url(store)
    if lease:  # s3://: a lease object, renewed while the run lives
        with s3_lease(lease, request.storage_options, f"store {store}") as held:
            return _run_tiles(request, recipe, folders, store, console, held.check)
    with exclusive(lock, f"store {store}") if lock else contextlib.nullcontext():
        return _run_tiles(request, recipe, folders, store, console)


def _run_tiles(request: TilesRequest, recipe: Recipe, folders: list[Path], store: str,
               console: Console, still_ours: Callable[[], None] = lambda: None) -> TilesSummary:
    """The run; ``still_ours`` raises if this run lost its store to another writer (s3 lease), checked
    before each completion record and before the index and statistics are written. A record is
    trusted only while the shard's objects are as it recorded them."""
    grid = recipe.tile_grid
    tiles, items = plan_tiles(recipe, folders)
    orders = tile_orders([layer.group for layer in layers(recipe)], folders, items, console)
    encodings = item_encodings(items)
    create_or_open(store, recipe, request.storage_options, encodings)
    k = shard_tiles(recipe)
    found = build_jobs(store, grid, layers(recipe, encodings), by_shard(tiles, k), items, orders,
                       request.storage_options)
    jobs, skipped, damaged = found.jobs, found.skipped, found.damaged
    if damaged:
        console.print(f"{damaged} shard(s) recorded as complete are not as recorded (lost or changed since they "
                      "were written, e.g. by a power loss): written again", markup=False)
    dashboard = _run_jobs(request, store, grid, k, jobs, orders, skipped, console, still_ours) if jobs else None
    still_ours()
    index, table = finish_store(store, grid, request.storage_options, recipe.splits)
    quicklooks = write_quicklooks(store, table, request.data / "quicklooks" / Path(store.rstrip("/")).stem,
                                  request.storage_options)
    return TilesSummary(store, index, len(jobs), skipped, len(tiles), dashboard, quicklooks)


TASK_PREFIX = "process_shard"


def task_name(call: tuple[Any, ...]) -> str:
    """A shard task's key prefix, ``process_shard_<group>``: the dashboard and Dask's metrics count each group
    apart (a ``-`` or digit-led word would be cut off Dask's prefix, hence ``_``)."""
    return f"{TASK_PREFIX}_{call[2].group}"


def _run_jobs(request: TilesRequest, store: str, grid: TileGrid, k: int, jobs: list[Job], orders: TileOrders,
              skipped: int, console: Console, still_ours: Callable[[], None]) -> str | None:
    """Run the shard tasks on Dask, a bounded window of them in flight (:mod:`msc_france.tiles.window`), writing
    each completion record as its task returns it; the dashboard link. Ctrl-C cancels those in flight and closes
    a local cluster (a running task stops with its worker), then raises :class:`Interrupted` with the shards
    recorded."""
    recorded = 0
    try:
        with dask_client(request.scheduler, request.workers) as client:
            dashboard: str | None = client.dashboard_link
            console.print(f"Dask dashboard: {dashboard}  ({len(jobs)} shard tasks, {skipped} already complete)")
            calls = ((store, grid, job.layer, job.shard, k, job.tiles, job.items(), request.storage_options,
                      orders.for_shard(job.layer.group, job.tiles)) for job in jobs)
            with (tqdm(total=len(jobs), unit="shard", desc="tiles", dynamic_ncols=True) as bar,
                  contextlib.closing(bounded(client, process_shard, calls, window_size(client), name=task_name,
                                             pure=False, retries=2)) as done):
                for future in done:
                    record = future.result()
                    still_ours()  # a run that lost its store records nothing more
                    write_done(store, record, request.storage_options)
                    recorded += 1
                    bar.update(1)
    except KeyboardInterrupt:  # only this client writes records: the shards kept are those it recorded
        raise Interrupted(skipped + recorded, skipped + len(jobs), "shards") from None
    return dashboard


def finish_store(store: str, grid: TileGrid, storage_options: dict[str, Any],
                 splits: SplitConfig | None = None) -> tuple[str, gpd.GeoDataFrame]:
    """From the shards' completion records: band statistics, consolidated metadata and the tile index."""
    records = finish_groups(store, storage_options)
    table = build_index([r for record in records for r in record.tiles.values()], grid, splits=splits)
    return write_index(table, store, storage_options or None), table


def finish_groups(store: str, storage_options: dict[str, Any]) -> list[ShardRecord]:
    """Band statistics and consolidated metadata from the shards' completion records; return the records."""
    records = all_done(store, storage_options)
    _write_statistics(store, records, storage_options)
    with warnings.catch_warnings():  # consolidated metadata are not in the v3 spec yet; xarray opens faster with them
        warnings.filterwarnings("ignore", message="Consolidated metadata is currently not part")
        root = zarr.open_group(store, mode="r+", zarr_format=3, storage_options=storage_options or None)
        zarr.consolidate_metadata(root.store)
    return records


def write_quicklooks(store: str, table: gpd.GeoDataFrame, out: Path, storage_options: dict[str, Any],
                     most: int = 6) -> Path:
    """A coverage map of the index and the triplets of a spread sample of good tiles."""
    from msc_france.pairs import open_pairs
    from msc_france.quicklook import coverage_map, save_triplets

    good = list(table.loc[table["quality_ok"], "tile"]) or list(table["tile"])
    step = max(1, len(good) // most)
    save_triplets(open_pairs(store, storage_options), good[::step][:most], out)
    coverage_map(table, out / "coverage.png")
    return out


def _write_statistics(store: str, records: list[ShardRecord], storage_options: dict[str, Any]) -> None:
    """Per-band mean and standard deviation (physical units, valid pixels) into each group's attrs."""
    root = zarr.open_group(store, mode="r+", zarr_format=3, storage_options=storage_options or None)
    for group_name in {r.group for r in records}:
        sums = [r.sums for r in records if r.group == group_name]
        total = sum(sums[1:], sums[0])
        group = child_group(root, group_name)
        bands = attributes(child_array(group, "data"))["bands"]
        group.attrs["statistics"] = BandStatistics.of(bands, total).to_json()
