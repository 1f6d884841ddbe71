"""Deterministic stand-ins for Planetary Computer STAC items, built in code (no network, no copied files).

The layout mirrors what the Planetary Computer serves for ``sentinel-2-l2a`` and ``landsat-c2-l2``
items: the same asset keys in the same order, ``eo:bands`` on the band assets, ``raster:bands`` on
every Landsat raster asset (scale/offset/nodata/data_type), ``proj:bbox``/``proj:shape``/
``proj:transform`` per asset for Sentinel-2 but at item level for Landsat, ``classification:bitfields``
on the Landsat QA assets, and the item properties (``s2:processing_baseline``, ``eo:cloud_cover``,
``platform``, ``proj:epsg`` ...). Values vary with ``index`` through a seeded ``random.Random`` so
repeated calls give identical items. The scenes sit over south-west France (UTM 31N).
"""

from __future__ import annotations

import datetime as dt
import random
from typing import Any

PC_API = "https://planetarycomputer.microsoft.com/api/stac/v1"
COG = "image/tiff; application=geotiff; profile=cloud-optimized"

# --- Sentinel-2 L2A -------------------------------------------------------------------------------
# asset key: (resolution in m, title, [eo:bands entries] or None, file suffix)
_S2_EO = {
    "B01": ("coastal", "Band 1 - Coastal aerosol", 0.443, 0.027),
    "B02": ("blue", "Band 2 - Blue", 0.49, 0.098),
    "B03": ("green", "Band 3 - Green", 0.56, 0.045),
    "B04": ("red", "Band 4 - Red", 0.665, 0.038),
    "B05": ("rededge", "Band 5 - Vegetation red edge 1", 0.704, 0.019),
    "B06": ("rededge", "Band 6 - Vegetation red edge 2", 0.74, 0.018),
    "B07": ("rededge", "Band 7 - Vegetation red edge 3", 0.783, 0.028),
    "B08": ("nir", "Band 8 - NIR", 0.842, 0.145),
    "B09": (None, "Band 9 - Water vapor", 0.945, 0.026),  # PC gives B09 no common_name
    "B11": ("swir16", "Band 11 - SWIR (1.6)", 1.61, 0.143),
    "B12": ("swir22", "Band 12 - SWIR (2.2)", 2.19, 0.242),
    "B8A": ("rededge", "Band 8A - Vegetation red edge 4", 0.865, 0.033),
}
_S2_TITLES = {
    "B01": "Band 1 - Coastal aerosol - 60m",
    "B02": "Band 2 - Blue - 10m",
    "B03": "Band 3 - Green - 10m",
    "B04": "Band 4 - Red - 10m",
    "B05": "Band 5 - Vegetation red edge 1 - 20m",
    "B06": "Band 6 - Vegetation red edge 2 - 20m",
    "B07": "Band 7 - Vegetation red edge 3 - 20m",
    "B08": "Band 8 - NIR - 10m",
    "B09": "Band 9 - Water vapor - 60m",
    "B11": "Band 11 - SWIR (1.6) - 20m",
    "B12": "Band 12 - SWIR (2.2) - 20m",
    "B8A": "Band 8A - Vegetation red edge 4 - 20m",
}
# Gridded assets in PC order: key -> (resolution, file token)
S2_RASTER_ASSETS: dict[str, tuple[int, str]] = {
    "AOT": (10, "AOT"),
    "B01": (60, "B01"),
    "B02": (10, "B02"),
    "B03": (10, "B03"),
    "B04": (10, "B04"),
    "B05": (20, "B05"),
    "B06": (20, "B06"),
    "B07": (20, "B07"),
    "B08": (10, "B08"),
    "B09": (60, "B09"),
    "B11": (20, "B11"),
    "B12": (20, "B12"),
    "B8A": (20, "B8A"),
    "SCL": (20, "SCL"),
    "WVP": (10, "WVP"),
    "visual": (10, "TCI"),
}
_S2_OTHER_TITLES = {
    "AOT": "Aerosol optical thickness (AOT)",
    "SCL": "Scene classfication map (SCL)",  # sic, as served
    "WVP": "Water vapour (WVP)",
    "visual": "True color image",
}
S2_METADATA_ASSETS: dict[str, tuple[str, str]] = {
    "safe-manifest": ("SAFE manifest", "manifest.safe"),
    "granule-metadata": ("Granule metadata", "GRANULE/{granule}/MTD_TL.xml"),
    "inspire-metadata": ("INSPIRE metadata", "INSPIRE.xml"),
    "product-metadata": ("Product metadata", "MTD_MSIL2A.xml"),
    "datastrip-metadata": ("Datastrip metadata", "DATASTRIP/{datastrip}/MTD_DS.xml"),
}
S2_ASSET_KEYS: tuple[str, ...] = (
    *S2_RASTER_ASSETS, "preview", *S2_METADATA_ASSETS, "tilejson", "rendered_preview",
)
S2_TILE_SIZE = 109_800  # metres, one MGRS granule


def _eo_band(name: str, common: str | None, description: str, cw: float, fwhm: float) -> dict[str, Any]:
    band: dict[str, Any] = {"name": name}
    if common is not None:
        band["common_name"] = common
    band.update({"description": description, "center_wavelength": cw, "full_width_half_max": fwhm})
    return band


def _polygon(left: float, bottom: float, right: float, top: float) -> dict[str, Any]:
    ring = [[right, top], [right, bottom], [left, bottom], [left, top], [right, top]]
    return {"type": "Polygon", "coordinates": [ring]}


def _lonlat_bbox(epsg: int, left: float, bottom: float, right: float, top: float) -> list[float]:
    from pyproj import Transformer

    tr = Transformer.from_crs(epsg, 4326, always_xy=True)
    xs = [left, right, right, left]
    ys = [top, top, bottom, bottom]
    lon, lat = tr.transform(xs, ys)
    return [round(min(lon), 8), round(min(lat), 8), round(max(lon), 8), round(max(lat), 8)]


def sentinel2_item(
    index: int = 0,
    *,
    processing_baseline: str = "05.10",
    platform: str | None = None,
    cloud_cover: float | None = None,
    mgrs_tile: str = "31TCJ",
    epsg: int = 32631,
    ul: tuple[float, float] = (300_000.0, 4_900_020.0),
) -> dict[str, Any]:
    """A ``sentinel-2-l2a`` item shaped like the Planetary Computer's."""
    rng = random.Random(f"s2-{index}")
    platform = platform or ("Sentinel-2A", "Sentinel-2B")[index % 2]
    short = "S2A" if platform.endswith("2A") else "S2C" if platform.endswith("2C") else "S2B"
    start = dt.datetime(2023, 4, 2, 10, 56, 19) + dt.timedelta(days=5 * index)
    gen = start + dt.timedelta(hours=2, minutes=rng.randrange(60), seconds=rng.randrange(60))
    start_s, gen_s = start.strftime("%Y%m%dT%H%M%S"), gen.strftime("%Y%m%dT%H%M%S")
    rel_orbit = 51
    abs_orbit = 30_000 + 14 * index
    baseline_token = processing_baseline.replace(".", "")
    product_uri = f"{short}_MSIL2A_{start_s}_N{baseline_token}_R{rel_orbit:03d}_T{mgrs_tile}_{gen_s}.SAFE"
    item_id = f"{short}_MSIL2A_{start_s}_R{rel_orbit:03d}_T{mgrs_tile}_{gen_s}"
    granule = f"L2A_T{mgrs_tile}_A{abs_orbit:06d}_{start_s}"
    datastrip = f"DS_MSFT_{gen_s}_S{start_s}"
    zone, band_letter, square = mgrs_tile[:2], mgrs_tile[2], mgrs_tile[3:]
    base = (
        f"https://sentinel2l2a01.blob.core.windows.net/sentinel2-l2/{zone}/{band_letter}/{square}/"
        f"{start:%Y/%m/%d}/{product_uri}"
    )
    left, top = ul
    right, bottom = left + S2_TILE_SIZE, top - S2_TILE_SIZE
    proj_bbox = [left, bottom, right, top]

    assets: dict[str, Any] = {}
    for key, (res, token) in S2_RASTER_ASSETS.items():
        asset: dict[str, Any] = {
            "href": f"{base}/GRANULE/{granule}/IMG_DATA/R{res}m/T{mgrs_tile}_{start_s}_{token}_{res}m.tif",
            "proj:bbox": list(proj_bbox),
            "proj:shape": [S2_TILE_SIZE // res, S2_TILE_SIZE // res],
            "proj:transform": [float(res), 0.0, left, 0.0, -float(res), top],
            "gsd": float(res),
            "type": COG,
            "roles": ["data"],
            "title": _S2_TITLES.get(key) or _S2_OTHER_TITLES[key],
        }
        if key in _S2_EO:
            common, description, cw, fwhm = _S2_EO[key]
            asset["eo:bands"] = [_eo_band(key, common, description, cw, fwhm)]
        elif key == "visual":
            asset["eo:bands"] = [
                _eo_band(b, _S2_EO[b][0], _S2_EO[b][1], _S2_EO[b][2], _S2_EO[b][3]) for b in ("B04", "B03", "B02")
            ]
        assets[key] = asset
    assets["preview"] = {
        "href": f"{base}/GRANULE/{granule}/QI_DATA/T{mgrs_tile}_{start_s}_PVI.tif",
        "type": COG,
        "roles": ["thumbnail"],
        "title": "Thumbnail",
    }
    for key, (title, path) in S2_METADATA_ASSETS.items():
        assets[key] = {
            "href": f"{base}/{path.format(granule=granule, datastrip=datastrip)}",
            "type": "application/xml",
            "roles": ["metadata"],
            "title": title,
        }
    render = f"collection=sentinel-2-l2a&item={item_id}&assets=visual&asset_bidx=visual%7C1%2C2%2C3&nodata=0&format=png"
    assets["tilejson"] = {
        "href": f"{PC_API.replace('/stac/v1', '/data/v1')}/item/tilejson.json?{render}",
        "type": "application/json",
        "roles": ["tiles"],
        "title": "TileJSON with default rendering",
    }
    assets["rendered_preview"] = {
        "href": f"{PC_API.replace('/stac/v1', '/data/v1')}/item/preview.png?{render}",
        "rel": "preview",
        "type": "image/png",
        "roles": ["overview"],
        "title": "Rendered preview",
    }

    cloud = round(rng.uniform(0, 100), 6) if cloud_cover is None else cloud_cover
    high, medium = round(cloud * 0.6, 6), round(cloud * 0.3, 6)
    properties: dict[str, Any] = {
        "datetime": start.strftime("%Y-%m-%dT%H:%M:%S.024000Z"),
        "platform": platform,
        "proj:epsg": epsg,
        "instruments": ["msi"],
        "s2:mgrs_tile": mgrs_tile,
        "constellation": "Sentinel 2",
        "s2:granule_id": f"{short}_OPER_MSI_L2A_TL_MSFT_{gen_s}_A{abs_orbit:06d}_T{mgrs_tile}_N{processing_baseline}",
        "eo:cloud_cover": cloud,
        "s2:datatake_id": f"G{short}_{start_s}_{abs_orbit:06d}_N{processing_baseline}",
        "s2:product_uri": product_uri,
        "s2:datastrip_id": f"{short}_OPER_MSI_L2A_DS_MSFT_{gen_s}_S{start_s}_N{processing_baseline}",
        "s2:product_type": "S2MSI2A",
        "sat:orbit_state": "descending",
        "s2:datatake_type": "INS-NOBS",
        "s2:generation_time": gen.strftime("%Y-%m-%dT%H:%M:%S.000000Z"),
        "sat:relative_orbit": rel_orbit,
        "s2:water_percentage": round(rng.uniform(0, 5), 6),
        "s2:mean_solar_zenith": round(rng.uniform(25, 65), 6),
        "s2:mean_solar_azimuth": round(rng.uniform(140, 170), 6),
        "s2:processing_baseline": processing_baseline,
        "s2:snow_ice_percentage": 0.0,
        "s2:vegetation_percentage": round(rng.uniform(0, 100 - cloud), 6),
        "s2:thin_cirrus_percentage": round(cloud - high - medium, 6),
        "s2:cloud_shadow_percentage": round(rng.uniform(0, 3), 6),
        "s2:nodata_pixel_percentage": round(rng.uniform(0, 50), 6),
        "s2:unclassified_percentage": 0.0,
        "s2:dark_features_percentage": 0.0,
        "s2:not_vegetated_percentage": round(rng.uniform(0, 20), 6),
        "s2:degraded_msi_data_percentage": 0.0,
        "s2:high_proba_clouds_percentage": high,
        "s2:reflectance_conversion_factor": round(rng.uniform(0.967, 1.034), 12),
        "s2:medium_proba_clouds_percentage": medium,
        "s2:saturated_defective_pixel_percentage": 0.0,
    }
    lonlat = _lonlat_bbox(epsg, left, bottom, right, top)
    return {
        "id": item_id,
        "bbox": lonlat,
        "type": "Feature",
        "links": _links("sentinel-2-l2a", item_id, [
            {"rel": "license", "href": "https://sentinel.esa.int/documents/247904/690755/Sentinel_Data_Legal_Notice"},
        ]),
        "geometry": _polygon(*lonlat),
        "collection": "sentinel-2-l2a",
        "properties": properties,
        "stac_extensions": [
            "https://stac-extensions.github.io/eo/v1.0.0/schema.json",
            "https://stac-extensions.github.io/sat/v1.0.0/schema.json",
            "https://stac-extensions.github.io/projection/v1.1.0/schema.json",
        ],
        "stac_version": "1.0.0",
        "assets": assets,
    }


# --- Landsat Collection 2 Level-2 ------------------------------------------------------------------
_SR = {"scale": 2.75e-05, "nodata": 0, "offset": -0.2, "data_type": "uint16", "spatial_resolution": 30}


def _st(unit: str | None, scale: float) -> dict[str, Any]:
    rb: dict[str, Any] = {} if unit is None else {"unit": unit}
    rb.update({"scale": scale, "nodata": -9999, "data_type": "int16", "spatial_resolution": 30})
    return rb


# key -> (file suffix, title, description, roles, raster:bands entry or None, eo:bands entry or None)
_L_REFLECTANCE = {
    "red": ("SR_B4", "Red Band", "Red Band (SR_B4)", ("OLI_B4", "red", "Visible red", 0.65, 0.04)),
    "blue": ("SR_B2", "Blue Band", "Blue Band (SR_B2)", ("OLI_B2", "blue", "Visible blue", 0.48, 0.06)),
    "green": ("SR_B3", "Green Band", "Green Band (SR_B3)", ("OLI_B3", "green", "Visible green", 0.56, 0.06)),
    "nir08": ("SR_B5", "Near Infrared Band 0.8", "Near Infrared Band 0.8 (SR_B5)",
              ("OLI_B5", "nir08", "Near infrared", 0.87, 0.03)),
    "swir16": ("SR_B6", "Short-wave Infrared Band 1.6", "Short-wave Infrared Band 1.6 (SR_B6)",
               ("OLI_B6", "swir16", "Short-wave infrared", 1.61, 0.09)),
    "swir22": ("SR_B7", "Short-wave Infrared Band 2.2", "Short-wave Infrared Band 2.2 (SR_B7)",
               ("OLI_B7", "swir22", "Short-wave infrared", 2.2, 0.19)),
    "coastal": ("SR_B1", "Coastal/Aerosol Band", "Coastal/Aerosol Band (SR_B1)",
                ("OLI_B1", "coastal", "Coastal/Aerosol", 0.44, 0.02)),
}
_L_ST = {
    "qa": ("ST_QA", "Surface Temperature Quality Assessment Band", "Quality Assessment Band (ST_QA)",
           _st("kelvin", 0.01)),
    "drad": ("ST_DRAD", "Downwelled Radiance Band", "Downwelled Radiance Band (ST_DRAD)",
             _st("watt/steradian/square_meter/micrometer", 0.001)),
    "emis": ("ST_EMIS", "Emissivity Band", "Emissivity Band (ST_EMIS)", _st("emissivity coefficient", 0.0001)),
    "emsd": ("ST_EMSD", "Emissivity Standard Deviation Band", "Emissivity Standard Deviation Band (ST_EMSD)",
             _st("emissivity coefficient", 0.0001)),
    "trad": ("ST_TRAD", "Thermal Radiance Band", "Thermal Radiance Band (ST_TRAD)",
             _st("watt/steradian/square_meter/micrometer", 0.001)),
    "urad": ("ST_URAD", "Upwelled Radiance Band", "Upwelled Radiance Band (ST_URAD)",
             _st("watt/steradian/square_meter/micrometer", 0.001)),
    "atran": ("ST_ATRAN", "Atmospheric Transmittance Band", "Atmospheric Transmittance Band (ST_ATRAN)",
              _st(None, 0.0001)),
    "cdist": ("ST_CDIST", "Cloud Distance Band", "Cloud Distance Band (ST_CDIST)", _st("kilometer", 0.01)),
}
LANDSAT_ASSET_KEYS: tuple[str, ...] = (
    "qa", "ang", "red", "blue", "drad", "emis", "emsd", "trad", "urad", "atran", "cdist", "green", "nir08",
    "lwir11", "swir16", "swir22", "coastal", "mtl.txt", "mtl.xml", "mtl.json", "qa_pixel", "qa_radsat",
    "qa_aerosol", "tilejson", "rendered_preview",
)


def _bitfield(
    name: str, offset: int, length: int, description: str, classes: list[tuple[str, int, str]]
) -> dict[str, Any]:
    return {
        "name": name,
        "length": length,
        "offset": offset,
        "classes": [{"name": n, "value": v, "description": d} for n, v, d in classes],
        "description": description,
    }


def _one_bit(name: str, offset: int, description: str, off: tuple[str, str], on: tuple[str, str]) -> dict[str, Any]:
    return _bitfield(name, offset, 1, description, [(off[0], 0, off[1]), (on[0], 1, on[1])])


def _confidence(name: str, offset: int, what: str, description: str, reserved: bool = True) -> dict[str, Any]:
    medium = ("reserved", 2, "Reserved - value not used") if reserved else ("medium", 2, f"Medium confidence {what}")
    return _bitfield(name, offset, 2, description, [
        ("not_set", 0, "No confidence level set"),
        ("low", 1, f"Low confidence {what}"),
        medium,
        ("high", 3, f"High confidence {what}"),
    ])


QA_PIXEL_BITFIELDS: list[dict[str, Any]] = [
    _one_bit("fill", 0, "Image or fill data", ("not_fill", "Image data"), ("fill", "Fill data")),
    _one_bit("dilated_cloud", 1, "Dilated cloud", ("not_dilated", "Cloud is not dilated or no cloud"),
             ("dilated", "Cloud dilation")),
    _one_bit("cirrus", 2, "Cirrus mask", ("not_cirrus", "Cirrus confidence is not high"),
             ("cirrus", "High confidence cirrus")),
    _one_bit("cloud", 3, "Cloud mask", ("not_cloud", "Cloud confidence is not high"),
             ("cloud", "High confidence cloud")),
    _one_bit("cloud_shadow", 4, "Cloud shadow mask", ("not_shadow", "Cloud shadow confidence is not high"),
             ("shadow", "High confidence cloud shadow")),
    _one_bit("snow", 5, "Snow/Ice mask", ("not_snow", "Snow/Ice confidence is not high"),
             ("snow", "High confidence snow cover")),
    _one_bit("clear", 6, "Clear mask", ("not_clear", "Cloud or dilated cloud bits are set"),
             ("clear", "Cloud and dilated cloud bits are not set")),
    _one_bit("water", 7, "Water mask", ("not_water", "Land or cloud"), ("water", "Water")),
    _confidence("cloud_confidence", 8, "cloud", "Cloud confidence levels", reserved=False),
    _confidence("cloud_shadow_confidence", 10, "cloud shadow", "Cloud shadow confidence levels"),
    _confidence("snow_confidence", 12, "snow/ice", "Snow/Ice confidence levels"),
    _confidence("cirrus_confidence", 14, "cirrus", "Cirrus confidence levels"),
]
QA_RADSAT_BITFIELDS: list[dict[str, Any]] = [
    *(
        _one_bit(f"band{b}", offset, f"Band {b} radiometric saturation", ("not_saturated", f"Band {b} not saturated"),
                 ("saturated", f"Band {b} saturated"))
        for b, offset in ((1, 0), (2, 1), (3, 2), (4, 3), (5, 4), (6, 5), (7, 6), (9, 8))
    ),
    _one_bit("occlusion", 11, "Terrain not visible from sensor due to intervening terrain",
             ("not_occluded", "Terrain is not occluded"), ("occluded", "Terrain is occluded")),
]
QA_AEROSOL_BITFIELDS: list[dict[str, Any]] = [
    _one_bit("fill", 0, "Image or fill data", ("not_fill", "Pixel is not fill"), ("fill", "Pixel is fill")),
    _one_bit("retrieval", 1, "Valid aerosol retrieval", ("not_valid", "Pixel retrieval is not valid"),
             ("valid", "Pixel retrieval is valid")),
    _one_bit("water", 2, "Water mask", ("not_water", "Pixel is not water"), ("water", "Pixel is water")),
    _one_bit("interpolated", 5, "Aerosol interpolation", ("not_interpolated", "Pixel is not interpolated aerosol"),
             ("interpolated", "Pixel is interpolated aerosol")),
    _bitfield("level", 6, 2, "Aerosol level", [
        ("climatology", 0, "No aerosol correction applied"), ("low", 1, "Low aerosol level"),
        ("medium", 2, "Medium aerosol level"), ("high", 3, "High aerosol level"),
    ]),
]


def landsat_item(
    index: int = 0,
    *,
    platform: str = "landsat-8",
    cloud_cover: float | None = None,
    wrs: tuple[int, int] = (198, 30),
    epsg: int = 32631,
) -> dict[str, Any]:
    """A ``landsat-c2-l2`` item shaped like the Planetary Computer's (Landsat 8 or 9 OLI-TIRS)."""
    rng = random.Random(f"landsat-{index}")
    number = 9 if platform.endswith("9") else 8
    path, row = wrs
    acquired = dt.datetime(2023, 5, 2, 10, 36, 40, 123456) + dt.timedelta(days=16 * index)
    processed = acquired + dt.timedelta(days=1)
    category = "T1"
    product = f"LC0{number}_L2SP_{path:03d}{row:03d}_{acquired:%Y%m%d}_{processed:%Y%m%d}_02_{category}"
    item_id = f"LC0{number}_L2SP_{path:03d}{row:03d}_{acquired:%Y%m%d}_02_{category}"
    base = (
        f"https://landsateuwest.blob.core.windows.net/landsat-c2/level-2/standard/oli-tirs/"
        f"{acquired:%Y}/{path:03d}/{row:03d}/{product}/{product}"
    )
    left, top = 262_785.0 + 30.0 * rng.randrange(100), 4_922_715.0 - 30.0 * rng.randrange(100)
    shape = [7_801 + rng.randrange(200), 7_661 + rng.randrange(200)]
    right, bottom = left + 30.0 * shape[1], top - 30.0 * shape[0]

    def raster(suffix: str, title: str, description: str, roles: list[str], rb: dict[str, Any]) -> dict[str, Any]:
        return {
            "href": f"{base}_{suffix}.TIF",
            "type": COG,
            "roles": roles,
            "title": title,
            "description": description,
            "raster:bands": [dict(rb)],
        }

    def metadata(suffix: str, media: str, title: str, level: int = 2) -> dict[str, Any]:
        return {
            "href": f"{base}_{suffix}",
            "type": media,
            "roles": ["metadata"],
            "title": title,
            "description": f"Collection 2 Level-{level} {title}",
        }

    assets: dict[str, Any] = {}
    for key in LANDSAT_ASSET_KEYS:
        if key in _L_REFLECTANCE:
            suffix, title, what, (eo_name, common, eo_desc, cw, fwhm) = _L_REFLECTANCE[key]
            description = f"Collection 2 Level-2 {what} Surface Reflectance"
            asset = raster(suffix, title, description, ["data", "reflectance"], _SR)
            asset["eo:bands"] = [{
                "name": eo_name, "center_wavelength": cw, "full_width_half_max": fwhm,
                "common_name": common, "description": eo_desc,
            }]
        elif key in _L_ST:
            suffix, title, what, rb = _L_ST[key]
            asset = raster(suffix, title, f"Collection 2 Level-2 {what} Surface Temperature Product", ["data"], rb)
        elif key == "lwir11":
            asset = raster(
                "ST_B10", "Surface Temperature Band",
                "Collection 2 Level-2 Thermal Infrared Band (ST_B10) Surface Temperature", ["data", "temperature"],
                {"unit": "kelvin", "scale": 0.00341802, "nodata": 0, "offset": 149.0, "data_type": "uint16",
                 "spatial_resolution": 30},
            )
            asset["gsd"] = 100
            asset["eo:bands"] = [{
                "name": "TIRS_B10", "common_name": "lwir11", "description": "Long-wave infrared",
                "center_wavelength": 10.9, "full_width_half_max": 0.59,
            }]
        elif key == "qa_pixel":
            asset = raster(
                "QA_PIXEL", "Pixel Quality Assessment Band",
                "Collection 2 Level-1 Pixel Quality Assessment Band (QA_PIXEL)",
                ["cloud", "cloud-shadow", "snow-ice", "water-mask"],
                {"unit": "bit index", "nodata": 1, "data_type": "uint16", "spatial_resolution": 30},
            )
            asset["classification:bitfields"] = [dict(b) for b in QA_PIXEL_BITFIELDS]
        elif key == "qa_radsat":
            asset = raster(
                "QA_RADSAT", "Radiometric Saturation and Terrain Occlusion Quality Assessment Band",
                "Collection 2 Level-1 Radiometric Saturation and Terrain Occlusion Quality Assessment Band (QA_RADSAT)",
                ["saturation"], {"unit": "bit index", "data_type": "uint16", "spatial_resolution": 30},
            )
            asset["classification:bitfields"] = [dict(b) for b in QA_RADSAT_BITFIELDS]
        elif key == "qa_aerosol":
            asset = raster(
                "SR_QA_AEROSOL", "Aerosol Quality Assessment Band",
                "Collection 2 Level-2 Aerosol Quality Assessment Band (SR_QA_AEROSOL) Surface Reflectance Product",
                ["data-mask", "water-mask"],
                {"unit": "bit index", "nodata": 1, "data_type": "uint8", "spatial_resolution": 30},
            )
            asset["classification:bitfields"] = [dict(b) for b in QA_AEROSOL_BITFIELDS]
        elif key == "ang":
            asset = metadata("ANG.txt", "text/plain", "Angle Coefficients File", level=1)
        elif key == "mtl.txt":
            asset = metadata("MTL.txt", "text/plain", "Product Metadata File (txt)")
        elif key == "mtl.xml":
            asset = metadata("MTL.xml", "application/xml", "Product Metadata File (xml)")
        elif key == "mtl.json":
            asset = metadata("MTL.json", "application/json", "Product Metadata File (json)")
        else:  # tilejson, rendered_preview
            render = (
                f"collection=landsat-c2-l2&item={item_id}&assets=red&assets=green&assets=blue"
                "&color_formula=gamma+RGB+2.7%2C+saturation+1.5%2C+sigmoidal+RGB+15+0.55&format=png"
            )
            data_api = PC_API.replace("/stac/v1", "/data/v1")
            if key == "tilejson":
                asset = {"title": "TileJSON with default rendering", "href": f"{data_api}/item/tilejson.json?{render}",
                         "type": "application/json", "roles": ["tiles"]}
            else:
                asset = {"title": "Rendered preview", "rel": "preview", "href": f"{data_api}/item/preview.png?{render}",
                         "roles": ["overview"], "type": "image/png"}
        assets[key] = asset

    cloud = round(rng.uniform(0, 100), 2) if cloud_cover is None else cloud_cover
    properties: dict[str, Any] = {
        "gsd": 30,
        "created": processed.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        "sci:doi": "10.5066/P9OGBGM6",
        "datetime": acquired.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        "platform": platform,
        "proj:epsg": epsg,
        "proj:shape": shape,
        "description": "Landsat Collection 2 Level-2",
        "instruments": ["oli", "tirs"],
        "eo:cloud_cover": cloud,
        "proj:transform": [30.0, 0.0, left, 0.0, -30.0, top],
        "view:off_nadir": 0,
        "landsat:wrs_row": f"{row:03d}",
        "landsat:scene_id": f"LC{number}{path:03d}{row:03d}{acquired:%Y%j}LGN00",
        "landsat:wrs_path": f"{path:03d}",
        "landsat:wrs_type": "2",
        "view:sun_azimuth": round(rng.uniform(130, 160), 8),
        "landsat:correction": "L2SP",
        "view:sun_elevation": round(rng.uniform(30, 65), 8),
        "landsat:cloud_cover_land": round(min(100.0, cloud * 1.05), 2),
        "landsat:collection_number": "02",
        "landsat:collection_category": category,
    }
    lonlat = _lonlat_bbox(epsg, left, bottom, right, top)
    return {
        "id": item_id,
        "bbox": lonlat,
        "type": "Feature",
        "links": _links("landsat-c2-l2", item_id, [
            {"rel": "cite-as", "href": "https://doi.org/10.5066/P9OGBGM6",
             "title": "Landsat 8-9 OLI/TIRS Collection 2 Level-2"},
        ]),
        "geometry": _polygon(*lonlat),
        "collection": "landsat-c2-l2",
        "properties": properties,
        "stac_extensions": [
            "https://stac-extensions.github.io/raster/v1.1.0/schema.json",
            "https://stac-extensions.github.io/eo/v1.0.0/schema.json",
            "https://stac-extensions.github.io/view/v1.0.0/schema.json",
            "https://stac-extensions.github.io/projection/v1.1.0/schema.json",
            "https://landsat.usgs.gov/stac/landsat-extension/v1.1.1/schema.json",
            "https://stac-extensions.github.io/classification/v1.0.0/schema.json",
            "https://stac-extensions.github.io/scientific/v1.0.0/schema.json",
        ],
        "stac_version": "1.0.0",
        "assets": assets,
    }


def _links(collection: str, item_id: str, extra: list[dict[str, Any]]) -> list[dict[str, Any]]:
    coll = f"{PC_API}/collections/{collection}"
    return [
        {"rel": "collection", "type": "application/json", "href": coll},
        {"rel": "parent", "type": "application/json", "href": coll},
        {"rel": "root", "type": "application/json", "href": f"{PC_API}/"},
        {"rel": "self", "type": "application/geo+json", "href": f"{coll}/items/{item_id}"},
        *extra,
        {"rel": "preview",
         "href": f"{PC_API.replace('/stac/v1', '/data/v1')}/item/map?collection={collection}&item={item_id}",
         "title": "Map of item", "type": "text/html"},
    ]


def sentinel2_items(n: int, **kwargs: Any) -> list[dict[str, Any]]:
    return [sentinel2_item(i, **kwargs) for i in range(n)]


def landsat_items(n: int, **kwargs: Any) -> list[dict[str, Any]]:
    return [landsat_item(i, **kwargs) for i in range(n)]
