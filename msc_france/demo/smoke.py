"""Check a served demo world the way the pipeline will use it: STAC search, then a COG window over HTTP."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import rasterio
from pystac_client import Client
from rasterio.windows import Window

from msc_france.config import Catalog, StacSource
from msc_france.demo.server import DemoServer


@dataclass(frozen=True)
class SearchResult:
    source: str
    collection: str
    items: int
    first_item: str


def search_sources(catalog: Catalog, server: DemoServer, bbox: list[float]) -> list[SearchResult]:
    """Items per catalog source over ``bbox`` (lon/lat) in the served STAC API."""
    client = Client.open(server.stac_url)
    results = []
    for key, source in catalog.sources.items():
        if not isinstance(source, StacSource):
            continue
        found = list(client.search(collections=[source.collection], bbox=bbox).items())
        if source.platforms:
            found = [i for i in found if i.properties.get("platform") in source.platforms]
        results.append(SearchResult(key, source.collection, len(found), found[0].id if found else "-"))
    return results


def read_window(href: str, size: int = 64) -> np.ndarray:
    """A ``size`` x ``size`` window from the middle of a COG, read over HTTP range requests."""
    with rasterio.Env(GDAL_DISABLE_READDIR_ON_OPEN="EMPTY_DIR"), rasterio.open(href) as dataset:
        row = max(dataset.height // 2 - size // 2, 0)
        col = max(dataset.width // 2 - size // 2, 0)
        data: np.ndarray = dataset.read(1, window=Window(col, row, min(size, dataset.width), min(size, dataset.height)))
        return data
