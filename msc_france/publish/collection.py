"""The STAC Collection of a published store: one asset per store group (Zarr, readable by
``xr.open_dataset(href, **xarray:open_kwargs)`` and xpystac) with its datacube, projection, raster and eo
metadata, the tile index and the provenance list as assets, the stac-geoparquet mirror of the tiles,
the licence of every source, the providers and the version."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pystac
from pystac.extensions.classification import Classification, ClassificationExtension
from pystac.extensions.datacube import DatacubeExtension, Dimension, Variable
from pystac.extensions.eo import Band, EOExtension
from pystac.extensions.projection import ProjectionExtension
from pystac.extensions.raster import DataType, RasterBand, RasterExtension, Sampling
from pystac.extensions.scientific import Publication, ScientificExtension
from pystac.extensions.version import VersionExtension, VersionRelType
from pystac.extensions.xarray_assets import AssetXarrayAssetsExtension, XarrayAssetsExtension

from msc_france.publish.dataset import XSTARS_CITATION, XSTARS_DOI, DatasetInfo, band_info, group_title, label_classes
from msc_france.publish.layout import CARD, CHANGELOG, CROISSANT, MIRROR, PROVENANCE, Layout
from msc_france.publish.licences import Licence
from msc_france.publish.source import GroupView, StoreView
from msc_france.publish.tiles import TileSet, iso

EPSG = 2154
ZARR = "application/vnd.zarr"
PARQUET = "application/vnd.apache.parquet"
ZARR_EXTENSION = "https://stac-extensions.github.io/zarr/v1.1.0/schema.json"


def build_collection(view: StoreView, tiles: TileSet, info: DatasetInfo, licences: list[Licence], layout: Layout,
                     span: tuple[dt.datetime, dt.datetime]) -> pystac.Collection:
    """The Collection of ``view``'s tiles; hrefs relative to the publish folder."""
    collection = pystac.Collection(
        id=info.id, title=info.title, description=info.description, license="other", keywords=list(info.keywords),
        extent=pystac.Extent(pystac.SpatialExtent([list(tiles.bbox)]), pystac.TemporalExtent([list(span)])),
        providers=[*(_provider(licence) for licence in licences),
                   pystac.Provider("msc-france", "reprojection, mosaicking and tiling onto the France tile grid, "
                                   f"quality flags and splits ({info.generator})", [pystac.ProviderRole.PROCESSOR])],
        extra_fields={
            "msc:splits": {name: count for name, (count, _) in tiles.splits.items()},
            "msc:source_items": {group: len(tiles.summary(group).items) for group in tiles.groups},
            "msc:synthetic": info.synthetic,
        },
    )
    collection.summaries = pystac.Summaries({
        "gsd": sorted({g.gsd for g in view.groups}), "proj:code": [f"EPSG:{EPSG}"],
        "msc:split": sorted(tiles.splits),
        **{f"msc:{group}_datetimes": {"minimum": iso(interval[0]), "maximum": iso(interval[1])}
           for group in tiles.groups if (interval := tiles.summary(group).interval)},
    })
    for group in view.groups:
        _group_asset(collection, view, group, layout)
    collection.add_asset("index", pystac.Asset(
        layout.index_href, title="tile index (GeoParquet, EPSG:2154)", media_type=PARQUET, roles=["metadata"],
        description="one row per tile: col, row, region, geometry, per group <group>_datetime, <group>_items, "
                    "<group>_dates, <group>_valid, <group>_cloud, then quality_ok, quality_reason, split"))
    collection.add_asset("provenance", pystac.Asset(
        PROVENANCE, title="source items", media_type=pystac.MediaType.JSON, roles=["metadata"],
        description="per group, every source item used: its id, date and number of tiles"))
    collection.add_links([
        pystac.Link("collection-mirror", MIRROR, PARQUET, "the tiles as STAC items (stac-geoparquet)"),
        pystac.Link("describedby", CARD, "text/markdown", "dataset card"),
        pystac.Link("describedby", CROISSANT, "application/ld+json", "Croissant description"),
        pystac.Link(VersionRelType.HISTORY, CHANGELOG, "text/markdown", "changelog"),
        *(pystac.Link(pystac.RelType.LICENSE, licence.url, pystac.MediaType.HTML, f"{licence.source}: {licence.name}")
          for licence in licences),
    ])
    VersionExtension.ext(collection, add_if_missing=True).apply(version=info.release.version)
    ScientificExtension.ext(collection, add_if_missing=True).apply(
        citation=info.citation, publications=[Publication(doi=XSTARS_DOI, citation=XSTARS_CITATION)])
    return collection


def collection_json(collection: pystac.Collection) -> dict[str, Any]:
    """The Collection as written: relative links, no self link (the folder moves with the store)."""
    return collection.to_dict(include_self_link=False, transform_hrefs=False)


def open_kwargs(view: StoreView, group: GroupView) -> dict[str, Any]:
    """What ``xr.open_dataset(store, **kwargs)`` needs to open ``group`` (lazily, DN as stored)."""
    return {"engine": "zarr", "group": group.name, "consolidated": view.consolidated, "zarr_format": 3,
            "decode_coords": "all"}


def _provider(licence: Licence) -> pystac.Provider:
    return pystac.Provider(licence.provider, f"{licence.source} ({licence.group}): {licence.name}",
                           [pystac.ProviderRole.PRODUCER, pystac.ProviderRole.LICENSOR], licence.provider_url)


def _group_asset(collection: pystac.Collection, view: StoreView, group: GroupView, layout: Layout) -> None:
    """The asset of one store group: the store's href, the group in ``xarray:open_kwargs``."""
    asset = pystac.Asset(
        layout.store_href, title=group_title(group), media_type=ZARR, roles=["data"],
        description=f"Zarr v3 group `{group.name}` of the store: `data` (band, y, x) {group.dtype} DN on the "
                    f"{group.gsd:g} m grid ({group.tile_px} px per tile; value = DN * scale + offset, nodata "
                    f"{group.nodata}), `valid` (y, x) 1 where usable",
        extra_fields={"zarr:consolidated": view.consolidated, "zarr:zarr_format": 3, "zarr:node_type": "group"},
    )
    collection.add_asset(group.name, asset)
    if ZARR_EXTENSION not in collection.stac_extensions:  # pystac has no class for the zarr extension
        collection.stac_extensions.append(ZARR_EXTENSION)
    xarray_assets = XarrayAssetsExtension.ext(asset, add_if_missing=True)
    assert isinstance(xarray_assets, AssetXarrayAssetsExtension)  # what ext() gives for an Asset
    xarray_assets.open_kwargs = open_kwargs(view, group)
    a, b, c, d, e, f = group.transform
    height, width = group.shape
    xs, ys = (c + a / 2, c + a * (width - 0.5)), (f + e / 2, f + e * (height - 0.5))  # first and last pixel centres
    DatacubeExtension.ext(asset, add_if_missing=True).apply(
        dimensions={
            "x": Dimension.from_dict({"type": "spatial", "axis": "x", "extent": sorted(xs), "step": a,
                                      "reference_system": EPSG}),
            "y": Dimension.from_dict({"type": "spatial", "axis": "y", "extent": sorted(ys), "step": e,
                                      "reference_system": EPSG}),
            "band": Dimension.from_dict({"type": "bands", "values": list(group.bands)}),
        },
        variables={
            "data": Variable.from_dict({"type": "data", "dimensions": ["band", "y", "x"],
                                        "description": "DN; physical value = DN * scale + offset (raster:bands)"}),
            "valid": Variable.from_dict({"type": "auxiliary", "dimensions": ["y", "x"], "values": [0, 1],
                                         "description": "1 where usable: not nodata, cloud, cirrus, shadow or snow"}),
        },
    )
    ProjectionExtension.ext(asset, add_if_missing=True).apply(
        code=f"EPSG:{EPSG}", shape=[height, width], transform=[a, b, c, d, e, f],
        bbox=[c, f + e * height, c + a * width, f])
    RasterExtension.ext(asset, add_if_missing=True).bands = [
        RasterBand.create(nodata=group.nodata, data_type=DataType(group.dtype), spatial_resolution=group.gsd,
                          scale=group.scale, offset=group.offset, sampling=Sampling.AREA)
        for _ in group.bands]
    classes = label_classes(group)
    if classes:
        ClassificationExtension.ext(asset, add_if_missing=True).classes = [
            Classification.create(value=c.code, description=c.name, name=_slug(c.name), color_hint=c.color[1:].upper())
            for c in classes]
    else:
        EOExtension.ext(asset, add_if_missing=True).bands = [
            Band.create(name=b.name, common_name=b.common_name, center_wavelength=b.center_wavelength,
                        full_width_half_max=b.fwhm) for b in band_info(group)]


def _slug(name: str) -> str:
    """A class name as the classification extension allows it (letters, digits, - and _)."""
    return "-".join("".join(ch if ch.isalnum() else " " for ch in name).split())
