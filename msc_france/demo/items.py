"""STAC collections and items of the demo world, with the Planetary Computer's structure:
collection ids, asset keys, ``eo:bands``, ``raster:bands``, ``proj:*``, ``eo:cloud_cover``,
``s2:processing_baseline``, ``platform``. Asset hrefs are relative to the world folder; the demo
server makes them absolute.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from odc.geo.geobox import GeoBox

from msc_france.landcover import WORLDCOVER
from msc_france.sensors import QA_PIXEL_BITS, Sensor

COG = "image/tiff; application=geotiff; profile=cloud-optimized"
EXT = {
    "eo": "https://stac-extensions.github.io/eo/v1.0.0/schema.json",
    "sat": "https://stac-extensions.github.io/sat/v1.0.0/schema.json",
    "proj": "https://stac-extensions.github.io/projection/v1.1.0/schema.json",
    "proj2": "https://stac-extensions.github.io/projection/v2.0.0/schema.json",
    "raster": "https://stac-extensions.github.io/raster/v1.1.0/schema.json",
    "view": "https://stac-extensions.github.io/view/v1.0.0/schema.json",
    "landsat": "https://landsat.usgs.gov/stac/landsat-extension/v1.1.1/schema.json",
    "classification": "https://stac-extensions.github.io/classification/v1.0.0/schema.json",
}
FILE_EXTENSION = "https://stac-extensions.github.io/file/v2.1.0/schema.json"
COLLECTIONS = {
    "s2": "sentinel-2-l2a",
    "l8": "landsat-c2-l2",
    "vhr": "demo-vhr",
    "labels": "esa-worldcover",
}


def grid_fields(geobox: GeoBox) -> dict[str, Any]:
    """``proj:shape`` / ``proj:transform`` / ``proj:bbox`` of a grid, as the Planetary Computer writes them."""
    a = geobox.affine
    return {
        "proj:shape": list(geobox.shape),
        "proj:transform": [a.a, a.b, a.c, a.d, a.e, a.f],
        "proj:bbox": list(geobox.boundingbox),
    }


def _epsg(geobox: GeoBox) -> int:
    """The EPSG code of a grid's CRS (the demo's grids are all on one)."""
    epsg = geobox.crs.epsg if geobox.crs is not None else None
    if epsg is None:
        raise ValueError(f"the grid's CRS has no EPSG code: {geobox.crs}")
    return epsg


def _eo_band(band_name: str, common_name: str | None, wavelength: float, fwhm: float,
             description: str) -> dict[str, Any]:
    entry: dict[str, Any] = {"name": band_name, "description": description}
    if common_name:
        entry["common_name"] = common_name
    entry.update({"center_wavelength": wavelength, "full_width_half_max": fwhm})
    return entry


def _footprint(geobox: GeoBox) -> tuple[dict[str, Any], list[float]]:
    extent = geobox.extent.to_crs("EPSG:4326", resolution=max(geobox.extent.boundingbox.span_x, 1) / 32)
    return extent.json, list(extent.boundingbox)


def _item(item_id: str, collection: str, geobox: GeoBox, when: dt.datetime, properties: dict[str, Any],
          assets: dict[str, Any], extensions: list[str]) -> dict[str, Any]:
    geometry, bbox = _footprint(geobox)
    return {
        "type": "Feature",
        "stac_version": "1.0.0",
        "stac_extensions": [EXT[e] for e in extensions],
        "id": item_id,
        "collection": collection,
        "geometry": geometry,
        "bbox": bbox,
        "properties": {"datetime": when.strftime("%Y-%m-%dT%H:%M:%S.%fZ"), **properties},
        "links": [],
        "assets": assets,
    }


def sentinel2_item(sensor: Sensor, when: dt.datetime, platform: str, baseline: str, tile: str,
                   grids: dict[float, GeoBox], hrefs: dict[str, str], stats: dict[str, float]) -> dict[str, Any]:
    """An ``sentinel-2-l2a`` item: one COG per band at its native GSD, plus SCL at 20 m."""
    stamp = when.strftime("%Y%m%dT%H%M%S")
    item_id = f"S2{platform[-1]}_MSIL2A_{stamp}_R051_T{tile}_{when:%Y%m%d}T170000"
    assets: dict[str, Any] = {}
    for band in sensor.bands:
        number = band.name[1:].lstrip("0")
        assets[band.asset] = {
            "href": hrefs[band.asset], "type": COG, "roles": ["data"], "gsd": float(band.gsd),
            "title": f"Band {number} - {band.common_name} - {band.gsd:g}m",
            **grid_fields(grids[band.gsd]),
            "eo:bands": [_eo_band(band.name, band.common_name, band.center_wavelength, band.fwhm, f"Band {number}")],
        }
    assets["SCL"] = {"href": hrefs["SCL"], "type": COG, "roles": ["data"], "gsd": 20.0,
                     "title": "Scene classfication map (SCL)", **grid_fields(grids[20.0])}
    properties = {
        "platform": platform, "constellation": "Sentinel 2", "instruments": ["msi"],
        "proj:epsg": _epsg(grids[10.0]),
        "s2:mgrs_tile": tile, "s2:processing_baseline": baseline, "s2:product_type": "S2MSI2A",
        "s2:product_uri":
            f"S2{platform[-1]}_MSIL2A_{stamp}_N{baseline.replace('.', '')}_R051_T{tile}_{when:%Y%m%d}T170000.SAFE",
        "sat:orbit_state": "descending", "sat:relative_orbit": 51,
        "eo:cloud_cover": round(stats["cloud"], 6),
        "s2:cloud_shadow_percentage": round(stats["shadow"], 6),
        "s2:nodata_pixel_percentage": round(stats["nodata"], 6),
        "s2:water_percentage": round(stats["water"], 6),
        "s2:vegetation_percentage": round(stats["vegetation"], 6),
    }
    return _item(item_id, COLLECTIONS["s2"], grids[10.0], when, properties, assets, ["eo", "sat", "proj"])


def landsat_item(sensor: Sensor, when: dt.datetime, platform: str, grid: GeoBox,
                 hrefs: dict[str, str], stats: dict[str, float]) -> dict[str, Any]:
    """A ``landsat-c2-l2`` item: one COG per OLI band with ``raster:bands`` scale/offset, plus QA_PIXEL."""
    mission = "LC08" if platform == "landsat-8" else "LC09"
    item_id = f"{mission}_L2SP_198030_{when:%Y%m%d}_02_T1"
    numbers = {"coastal": 1, "blue": 2, "green": 3, "red": 4, "nir08": 5, "swir16": 6, "swir22": 7}
    assets: dict[str, Any] = {}
    enc = sensor.encoding
    for band in sensor.bands:
        assets[band.asset] = {
            "href": hrefs[band.asset], "type": COG, "roles": ["data", "reflectance"],
            "title": f"{band.common_name} band",
            "eo:bands": [_eo_band(f"OLI_B{numbers[band.name]}", band.common_name, band.center_wavelength, band.fwhm,
                                  f"Surface reflectance {band.name}")],
            "raster:bands": [{"scale": enc.scale, "nodata": enc.nodata, "offset": enc.offset,
                              "data_type": enc.dtype, "spatial_resolution": 30}],
        }
    assets["qa_pixel"] = {
        "href": hrefs["qa_pixel"], "type": COG, "roles": ["cloud", "cloud-shadow", "snow-ice", "water-mask"],
        "title": "Pixel Quality Assessment Band",
        "classification:bitfields":
            [{"name": name, "offset": offset, "length": 1} for name, offset in QA_PIXEL_BITS.items()],
        "raster:bands": [{"unit": "bit index", "nodata": 1, "data_type": "uint16", "spatial_resolution": 30}],
    }
    properties = {
        "gsd": 30, "platform": platform, "instruments": ["oli", "tirs"],
        "proj:epsg": _epsg(grid), **{k: v for k, v in grid_fields(grid).items() if k != "proj:bbox"},
        "eo:cloud_cover": round(stats["cloud"], 2),
        "landsat:wrs_path": "198", "landsat:wrs_row": "030", "landsat:collection_category": "T1",
        "landsat:collection_number": "02", "landsat:correction": "L2SP",
        "view:off_nadir": 0,
    }
    return _item(item_id, COLLECTIONS["l8"], grid, when, properties, assets,
                 ["raster", "eo", "view", "proj", "landsat", "classification"])


def vhr_item(sensor: Sensor, when: dt.datetime, grid: GeoBox, href: str) -> dict[str, Any]:
    """A VHR item: one 4-band 8-bit display COG (red, green, blue, nir) in Lambert-93, ``proj:code`` style,
    with no radiometric scale (as IGN's orthophotos)."""
    gsd = abs(grid.resolution.x)
    asset = {
        "href": href, "type": COG, "roles": ["data"], "title": "Orthoimage (R, G, B, NIR)", "gsd": gsd,
        "eo:bands": [_eo_band(b.name, b.common_name, b.center_wavelength, b.fwhm, b.name) for b in sensor.bands],
        "raster:bands": [{"nodata": 0, "data_type": "uint8", "spatial_resolution": gsd}
                         for _ in sensor.bands],
        **grid_fields(grid),
    }
    properties = {"platform": "demo-vhr", "gsd": gsd, "proj:code": "EPSG:2154", "eo:cloud_cover": 0.0}
    return _item(f"DEMO_VHR_{when:%Y%m%d}", COLLECTIONS["vhr"], grid, when, properties, {"image": asset},
                 ["eo", "proj2", "raster"])


def worldcover_item(grid: GeoBox, href: str) -> dict[str, Any]:
    """An ``esa-worldcover`` item: the ``map`` asset with its classification."""
    asset = {
        "href": href, "type": COG, "roles": ["data"], "title": "Land cover classes",
        "classification:classes":
            [{"value": c.code, "description": c.name, "color-hint": c.color[1:]} for c in WORLDCOVER],
        "raster:bands": [{"nodata": 0, "data_type": "uint8", "spatial_resolution": 10}],
        **grid_fields(grid),
    }
    properties = {"proj:epsg": 4326, "esa_worldcover:product_version": "demo", "start_datetime": "2021-01-01T00:00:00Z",
                  "end_datetime": "2021-12-31T23:59:59Z"}
    return _item("ESA_WorldCover_10m_2021_demo_Map", COLLECTIONS["labels"], grid,
                 dt.datetime(2021, 1, 1), properties, {"map": asset}, ["proj", "raster", "classification"])


def collection(collection_id: str, items: list[dict[str, Any]], description: str) -> dict[str, Any]:
    """A collection whose extent covers ``items``."""
    west = min(i["bbox"][0] for i in items)
    south = min(i["bbox"][1] for i in items)
    east = max(i["bbox"][2] for i in items)
    north = max(i["bbox"][3] for i in items)
    times = sorted(i["properties"]["datetime"] for i in items)
    return {
        "type": "Collection", "stac_version": "1.0.0", "id": collection_id, "description": description,
        "license": "CC-BY-4.0", "links": [],
        "extent": {"spatial": {"bbox": [[west, south, east, north]]},
                   "temporal": {"interval": [[times[0], times[-1]]]}},
        "summaries": {"platform": sorted({i["properties"].get("platform", "") for i in items} - {""})},
    }

