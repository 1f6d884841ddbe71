"""STAC search of one source over a region with pystac-client: bbox, datetime, collection, all pages,
the cloud cover and platform conditions as a CQL2 filter where the API declares the filter
conformance class, client-side otherwise.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterable
from typing import Any

import numpy as np
import pystac
import shapely
from pystac_client import Client
from pystac_client.conformance import ConformanceClasses
from pystac_client.exceptions import APIError

from msc_france.config import StacSource
from msc_france.download.validate import Rejected, usable_items
from msc_france.errors import UserError
from msc_france.redact import redact, redact_text
from msc_france.regions import Region


def open_api(url: str) -> Client:
    """A pystac-client for ``url`` with a one-line error when it can't be reached."""
    try:
        return Client.open(url)
    except (APIError, OSError, ValueError) as exc:
        reason = redact_text(" ".join(str(exc).split()))[:200]
        raise UserError(
            f"cannot open the STAC API at {redact(url)} ({reason}); check the network or the catalog's url") from None


def _cql2(max_cloud: float | None, platforms: list[str]) -> dict[str, Any] | None:
    clauses: list[dict[str, Any]] = []
    if max_cloud is not None:
        clauses.append({"op": "<=", "args": [{"property": "eo:cloud_cover"}, max_cloud]})
    if platforms:
        clauses.append({"op": "in", "args": [{"property": "platform"}, platforms]})
    if not clauses:
        return None
    return clauses[0] if len(clauses) == 1 else {"op": "and", "args": clauses}


def _keep(item: pystac.Item, max_cloud: float | None, platforms: list[str]) -> bool:
    cloud = item.properties.get("eo:cloud_cover")
    if max_cloud is not None and cloud is not None and float(cloud) > max_cloud:
        return False
    return not platforms or item.properties.get("platform") in platforms


SEARCH_SPAN_DEG = 3.0  # a search box is at most this many degrees a side; larger regions are split


def search_boxes(region: Region, span: float = SEARCH_SPAN_DEG) -> list[tuple[float, float, float, float]]:
    """The region's bounding box cut into boxes of at most ``span`` degrees a side that meet the region,
    one request each: an API answers a small box quickly (and the Planetary Computer times out
    searches that match too much at once)."""
    west, south, east, north = region.geometry.boundingbox
    nx, ny = max(1, math.ceil((east - west) / span)), max(1, math.ceil((north - south) / span))
    xs, ys = np.linspace(west, east, nx + 1), np.linspace(south, north, ny + 1)
    boxes = [(float(xs[i]), float(ys[j]), float(xs[i + 1]), float(ys[j + 1])) for j in range(ny) for i in range(nx)]
    return [b for b in boxes if region.geometry.geom.intersects(shapely.box(*b))]


def search_source(
    client: Client, source: StacSource, region: Region, start: dt.date, end: dt.date,
    max_cloud: float | None, use_cloud: bool = True, assets: Iterable[str] = (),
) -> tuple[list[pystac.Item], list[Rejected]]:
    """Every usable item of ``source`` over ``region`` between ``start`` and ``end`` (inclusive) that
    has ``assets``, and the items left out as unusable (see :mod:`msc_france.download.validate`).
    One paged search per box of :func:`search_boxes`; an item found by two boxes is kept once."""
    max_cloud = max_cloud if use_cloud else None
    server_filter = _cql2(max_cloud, source.platforms) if client.conforms_to(ConformanceClasses.FILTER) else None
    found: dict[str, Any] = {}
    try:
        for box in search_boxes(region):
            search = client.search(
                collections=[source.collection],
                bbox=list(box),  # every API has bbox; exact overlap is computed when planning
                datetime=f"{start.isoformat()}T00:00:00Z/{end.isoformat()}T23:59:59Z",
                filter=server_filter,
                filter_lang="cql2-json" if server_filter else None,
                limit=100,
            )
            for raw in search.items_as_dicts():
                found.setdefault(str(raw.get("id")) if isinstance(raw, dict) else f"?{len(found)}", raw)
    except (APIError, OSError) as exc:
        reason = redact_text(" ".join(str(exc).split()))[:200]
        raise UserError(
            f"STAC search of {source.collection} at {redact(source.url)} failed ({reason}); try again later") from None
    items, rejected = usable_items(found.values(), assets)
    # Client-side as well: harmless when the server filtered, needed when it could not.
    kept = sorted((i for i in items if _keep(i, max_cloud, source.platforms)),
                  key=lambda i: (i.datetime or dt.datetime.min, i.id))
    return kept, rejected
