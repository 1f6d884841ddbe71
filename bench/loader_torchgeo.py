"""torchgeo's side of ``bench/loader.py``, written as its users write it: one ``RasterDataset`` subclass
per product over the downloaded COGs (found from the items of the download's local STAC catalog),
the sensors intersected with ``&`` (torchgeo resamples every sensor to the first one's resolution:
10 m), a ``GridGeoSampler`` of one 480 m tile, stride 480 m, and ``stack_samples``. Its samples stay
DN as float32: no normalisation, which only favours it. Nothing runs on import.
"""

from __future__ import annotations

import multiprocessing
from pathlib import Path
from typing import Any

import pystac
import shapely
from rasterio.crs import CRS
from torch.utils.data import DataLoader

from msc_france.grid import TileId
from msc_france.pretrain.backbone import import_timm
from msc_france.store import open_store

import_timm()  # torchvision (which torchgeo imports) beside the CPU torch: README, "The timm / torchvision note"
from torchgeo.datasets import IntersectionDataset, RasterDataset, stack_samples  # noqa: E402
from torchgeo.samplers import GridGeoSampler, Units  # noqa: E402

L93 = CRS.from_epsg(2154)


class SeparateBands(RasterDataset):
    """Sentinel-2 and Landsat as downloaded: one COG per band (``B02.tif``, ``blue.tif``, ...) per item."""

    filename_regex = r"^(?P<band>.+)\.tif$"
    separate_files = True

    def __init__(self, files: list[str], bands: tuple[str, ...], **kwargs: Any) -> None:
        self.all_bands, self.filename_glob = bands, Path(files[0]).name
        super().__init__(files, bands=bands, **kwargs)


class AllBands(RasterDataset):
    """VHR as downloaded: one COG of all bands per window."""

    filename_glob = "*.tif"

    def __init__(self, files: list[str], bands: tuple[str, ...], **kwargs: Any) -> None:
        self.all_bands = bands
        super().__init__(files, bands=bands, **kwargs)


def cog_files(catalog: Path, sensor: str, asset: str) -> list[str]:
    """The local files of ``asset`` in every item of the download's ``sensor`` sub-catalog."""
    child = pystac.Catalog.from_file(str(catalog / "catalog.json")).get_child(sensor)
    if child is None:
        raise SystemExit(f"the download in {catalog} has no {sensor} catalog")
    return sorted(item.assets[asset].get_absolute_href() or "" for item in child.get_items() if asset in item.assets)


def intersection(store: str, catalog: Path) -> IntersectionDataset:
    """``s2 & l8 & vhr`` (the store's sensors and bands) in Lambert-93 at the first sensor's resolution."""
    opened = open_store(store)
    sensors = [g for g in opened.groups if g != "labels"]
    res = opened.grid.gsd(sensors[0])
    datasets: list[RasterDataset] = []
    for sensor in sensors:
        bands = opened.layer(sensor).bands
        if sensor == "vhr":
            datasets.append(AllBands(cog_files(catalog, sensor, "image"), bands, crs=L93, res=res))
        else:
            datasets.append(SeparateBands(cog_files(catalog, sensor, bands[0]), bands, crs=L93, res=res))
    joined = datasets[0] & datasets[1]
    for other in datasets[2:]:
        joined = joined & other
    return joined


def grid_queries(dataset: IntersectionDataset, store: str, tiles: list[str]) -> list[Any]:
    """One ``GridGeoSampler`` chip per tile: the sampler on the tile's box (480 m chips, stride 480 m). Over
    the whole area its chips would start at each file's edge (the VHR windows overlap), not on the grid."""
    grid = open_store(store).grid
    queries = []
    for tile in tiles:
        box = grid.tile_bounds(TileId.parse(tile))
        sampler = GridGeoSampler(dataset, size=grid.footprint, stride=grid.footprint,
                                 roi=shapely.box(box.left, box.bottom, box.right, box.top), units=Units.CRS)
        queries.append(next(iter(sampler)))
    return queries


def torchgeo_loader(store: str, catalog: Path, tiles: list[str], batch: int, options: dict[str, Any]) -> DataLoader:
    """The DataLoader of the tiles ``tiles`` (in that order). The forkserver imports this module before it
    forks the workers, so that :func:`import_timm` runs before torchgeo is unpickled there."""
    dataset = intersection(store, catalog)
    if options["num_workers"]:
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload(["__main__", __name__])
        options = {**options, "multiprocessing_context": context}
    return DataLoader(dataset, batch_size=batch, sampler=grid_queries(dataset, store, tiles), collate_fn=stack_samples,
                      drop_last=True, **options)
