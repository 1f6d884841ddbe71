"""The Croissant JSON-LD description (``croissant.json``), with the GeoCroissant fields: spatial and temporal
coverage, the CRS, the resolution of each sensor (a record set with one record per store group) and the
spectral bands; the store, its tile index and the tiles' stac-geoparquet as distribution, and the tile
index's columns as a record set that mlcroissant reads."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pandas as pd

from msc_france.publish.dataset import DatasetInfo, band_info, group_title, label_classes
from msc_france.publish.layout import MIRROR, Layout
from msc_france.publish.licences import Licence
from msc_france.publish.source import StoreView
from msc_france.publish.tiles import TileSet, iso

CROISSANT = "http://mlcommons.org/croissant/1.1"
GEOCROISSANT = "http://mlcommons.org/croissant/geo/1.0"
CONTEXT: dict[str, Any] = {
    "@language": "en", "@vocab": "https://schema.org/", "sc": "https://schema.org/",
    "cr": "http://mlcommons.org/croissant/", "rai": "http://mlcommons.org/croissant/RAI/",
    "dct": "http://purl.org/dc/terms/", "geocr": "http://mlcommons.org/croissant/geo/",
    "arrayShape": "cr:arrayShape", "citeAs": "cr:citeAs", "column": "cr:column", "conformsTo": "dct:conformsTo",
    "containedIn": "cr:containedIn", "data": {"@id": "cr:data", "@type": "@json"},
    "dataType": {"@id": "cr:dataType", "@type": "@vocab"}, "description": {"@container": "@language"},
    "equivalentProperty": "cr:equivalentProperty", "examples": {"@id": "cr:examples", "@type": "@json"},
    "extract": "cr:extract", "field": "cr:field", "fileProperty": "cr:fileProperty", "fileObject": "cr:fileObject",
    "fileSet": "cr:fileSet", "format": "cr:format", "includes": "cr:includes", "isArray": "cr:isArray",
    "isLiveDataset": "cr:isLiveDataset", "jsonPath": "cr:jsonPath", "key": "cr:key", "md5": "cr:md5",
    "name": {"@container": "@language"}, "parentField": "cr:parentField", "path": "cr:path",
    "recordSet": "cr:recordSet", "references": "cr:references", "regex": "cr:regex", "repeated": "cr:repeated",
    "replace": "cr:replace", "samplingRate": "cr:samplingRate", "separator": "cr:separator", "source": "cr:source",
    "subField": "cr:subField", "transform": "cr:transform",
}
PARQUET = "application/x-parquet"  # the type mlcroissant reads Parquet by


def build_croissant(view: StoreView, tiles: TileSet, info: DatasetInfo, licences: list[Licence], layout: Layout,
                    span: tuple[dt.datetime, dt.datetime], index_sha256: str, mirror_sha256: str) -> dict[str, Any]:
    """The JSON-LD document; file URLs relative to the publish folder."""
    west, south, east, north = tiles.bbox
    return {
        "@context": CONTEXT, "@type": "sc:Dataset", "conformsTo": [CROISSANT, GEOCROISSANT],
        "name": info.id, "alternateName": info.title, "description": info.description,
        "version": info.release.version, "datePublished": info.release.date.isoformat(),
        "keywords": list(info.keywords), "license": [licence.url for licence in licences],
        "citeAs": info.citation, "isAccessibleForFree": True,
        "spatialCoverage": {"@type": "sc:Place", "geo": {"@type": "sc:GeoShape",
                                                          "box": f"{south} {west} {north} {east}"}},
        "temporalCoverage": f"{iso(span[0])}/{iso(span[1])}",
        "geocr:coordinateReferenceSystem": "EPSG:2154",
        "geocr:samplingStrategy": (f"every tile of {view.recipe.grid.footprint:g} m of the France grid "
                                   "(Lambert-93) over the regions downloaded; splits drawn per block of 4 x 4 tiles "
                                   "from a hash of the block's position"),
        "geocr:spectralBandMetadata": [
            {"@type": "geocr:SpectralBand", "name": f"{group.name}/{band.name}",
             "geocr:centerWavelength": {"@type": "sc:QuantitativeValue",
                                        "value": round(band.center_wavelength * 1000, 3), "unitText": "nm"},
             **({"geocr:bandwidth": {"@type": "sc:QuantitativeValue", "value": round(band.fwhm * 1000, 3),
                                     "unitText": "nm"}} if band.fwhm else {})}
            for group in view.groups for band in band_info(group) if band.center_wavelength],
        "distribution": [
            {"@type": "cr:FileObject", "@id": "tile-index", "name": view.index_path.name,
             "contentUrl": layout.index_href,
             "encodingFormat": PARQUET, "sha256": index_sha256,
             "description": "the tile index (GeoParquet, EPSG:2154): one row per tile"},
            {"@type": "cr:FileObject", "@id": "stac-items", "name": MIRROR, "contentUrl": MIRROR,
             "encodingFormat": PARQUET, "sha256": mirror_sha256,
             "description": "the tiles as STAC items (stac-geoparquet, WGS84)"},
            {"@type": "cr:FileSet", "@id": "store", "name": view.path.name, "encodingFormat": "application/vnd.zarr",
             "includes": f"{layout.store_href}/**",
             "description": "the Zarr v3 store: one group per sensor (data, valid, x, y, band, spatial_ref)"},
        ],
        "recordSet": [_tiles_record_set(view.index), _sensors_record_set(view)],
    }


def _tiles_record_set(index: pd.DataFrame) -> dict[str, Any]:
    """Every column of the tile index but the geometry (WKB), read from the Parquet file."""
    fields = [{"@type": "cr:Field", "@id": f"tiles/{column}", "name": column, "dataType": _data_type(index[column]),
               "source": {"fileObject": {"@id": "tile-index"}, "extract": {"column": column}}}
              for column in index.columns if column != index.geometry.name]
    return {"@type": "cr:RecordSet", "@id": "tiles", "name": "tiles", "key": {"@id": "tiles/tile"},
            "description": "one record per tile: position, region, per group the source items, their dates and "
                           "valid and cloud shares, quality and split", "field": fields}


def _sensors_record_set(view: StoreView) -> dict[str, Any]:
    """One record per store group: its product, resolution, tile size, encoding and bands (GeoCroissant's
    data-level ``spatialResolution``)."""
    columns: dict[str, str] = {"group": "sc:Text", "product": "sc:Text", "spatialResolution": "sc:Text",
                               "tile_px": "sc:Integer", "dtype": "sc:Text", "scale": "sc:Float", "offset": "sc:Float",
                               "nodata": "sc:Integer", "bands": "sc:Text"}
    rows = [{"group": g.name, "product": group_title(g), "spatialResolution": f"{g.gsd:g} m", "tile_px": g.tile_px,
             "dtype": g.dtype, "scale": g.scale, "offset": g.offset, "nodata": g.nodata,
             "bands": " ".join(g.bands) if not label_classes(g) else "label (ESA WorldCover class codes)"}
            for g in view.groups]
    return {"@type": "cr:RecordSet", "@id": "sensors", "name": "sensors", "key": {"@id": "sensors/group"},
            "description": "the groups of the Zarr store, one per sensor (labels on the Sentinel-2 grid)",
            "field": [{"@type": "cr:Field", "@id": f"sensors/{name}", "name": name, "dataType": kind}
                      for name, kind in columns.items()],
            "data": [{f"sensors/{name}": row[name] for name in columns} for row in rows]}


def _data_type(column: pd.Series) -> str:
    if pd.api.types.is_bool_dtype(column):
        return "sc:Boolean"
    if pd.api.types.is_integer_dtype(column):
        return "sc:Integer"
    if pd.api.types.is_float_dtype(column):
        return "sc:Float"
    return "sc:Text"
