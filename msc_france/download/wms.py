"""VHR from an OGC WMS (IGN Géoplateforme BD ORTHO, key-free) through GDAL's WMS driver, fetched
straight in Lambert-93 at the recipe's VHR GSD over the region's tiles.
"""

from __future__ import annotations

from pathlib import Path
from xml.sax.saxutils import escape

import numpy as np
import rasterio
from affine import Affine
from odc.geo.geobox import GeoBox
from odc.geo.geom import BoundingBox, Geometry

from msc_france.cog import write_cog
from msc_france.config import Recipe, WmsSource
from msc_france.download.fetch import AssetJob, describe, Fetched
from msc_france.download.plan import Candidate
from msc_france.grid import EXTENT_SIZE, ORIGIN
from msc_france.sensors import SENSORS


def wms_candidate(sensor: str, source: WmsSource, region_l93: Geometry) -> Candidate:
    """A WMS covers all of France: one plan entry, no date, no cloud."""
    return Candidate(sensor, None, f"wms-{source.layer.lower().replace('.', '-')}", None, 0.0, 1.0, region_l93)


def gdal_wms_xml(source: WmsSource) -> str:
    """A GDAL WMS service description over the France grid extent at the layer's native GSD."""
    width = int(EXTENT_SIZE[0] / source.native_gsd)
    height = int(EXTENT_SIZE[1] / source.native_gsd)
    url = source.url if source.url.endswith("?") else f"{source.url}?"
    return (
        "<GDAL_WMS><Service name=\"WMS\"><Version>1.3.0</Version>"
        f"<ServerUrl>{escape(url)}</ServerUrl><CRS>EPSG:2154</CRS>"
        f"<ImageFormat>{escape(source.format)}</ImageFormat><Layers>{escape(source.layer)}</Layers></Service>"
        f"<DataWindow><UpperLeftX>{ORIGIN[0]}</UpperLeftX><UpperLeftY>{ORIGIN[1]}</UpperLeftY>"
        f"<LowerRightX>{ORIGIN[0] + EXTENT_SIZE[0]}</LowerRightX><LowerRightY>{ORIGIN[1] - EXTENT_SIZE[1]}</LowerRightY>"
        f"<SizeX>{width}</SizeX><SizeY>{height}</SizeY></DataWindow>"
        "<BandsCount>3</BandsCount><BlockSizeX>512</BlockSizeX><BlockSizeY>512</BlockSizeY>"
        "<OverviewCount>20</OverviewCount><MaxConnections>4</MaxConnections>"
        "<Cache/><ZeroBlockHttpCodes>204,404</ZeroBlockHttpCodes></GDAL_WMS>"
    )


def fetch_wms(entry: Candidate, source: WmsSource, recipe: Recipe, area: BoundingBox, root: Path) -> Fetched:
    """Read the tiles' area from the WMS at the recipe's VHR GSD and write it as a local COG."""
    gsd = recipe.tile_grid.gsd("vhr")
    bands = SENSORS["vhr"].select([b for b in recipe.sensors["vhr"].bands if b != "nir"])
    job = AssetJob("vhr", entry.item_id, "image", source.url, tuple(b.asset_band for b in bands),
                   tuple(b.name for b in bands), gsd, "average", root / "vhr" / entry.item_id / "image.tif")
    if job.path.exists():
        return describe(job, skipped=True)
    shape = (round(area.span_y / gsd), round(area.span_x / gsd))
    with rasterio.open(gdal_wms_xml(source)) as dataset:
        window = rasterio.windows.from_bounds(*area, transform=dataset.transform)
        data = dataset.read(list(job.bands), window=window, out_shape=(len(job.bands), *shape),
                            resampling=rasterio.enums.Resampling.average)
    geobox = GeoBox(shape, Affine(gsd, 0, area.left, 0, -gsd, area.top), "EPSG:2154")
    write_cog(job.path, np.ascontiguousarray(data), geobox, 0, "average", list(job.band_names))
    return describe(job, skipped=False)
