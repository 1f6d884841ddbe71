"""A SPOT 6/7-like VHR collection for the tests, generated in code (deterministic from a seed).

One 4-band uint16 COG of 12-bit DN (1..4095, 0 = no data) at 1.5 m in Lambert-93 over a world's
scene, bands in SPOT's order (blue, green, red, NIR), with ``raster:bands`` (data_type, nodata,
scale, offset, bits_per_sample) as a user's STAC API would serve it. It is added to a world folder
as an extra collection, so that ``serve_world`` publishes it beside the demo world's:
``python -m tests.data.spot_vhr WORLD_DIR`` adds it to a generated world for a look.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
from affine import Affine
from odc.geo.geobox import GeoBox

from msc_france.cog import write_cog
from msc_france.demo.items import COG, EXT, FILE_EXTENSION, grid_fields

COLLECTION = "spot-vhr"
ASSET = "ms"
ITEM_ID = "SPOT7_MS_20220710T103200_ORT_TEST"
GSD = 1.5
ORDER = ("blue", "green", "red", "nir")  # the band names of the asset's bands 1..4
SCALE, OFFSET = 2.5e-4, -0.01  # DN to reflectance, as the source declares it
PATCH_DN = {"blue": 1100, "green": 2200, "red": 3300, "nir": 4000}  # a uniform square: values known everywhere in it
PATCH = (192.0, 240.0)  # metres from the scene's upper-left corner, on 12 m steps (1.5, 3 and 4 m pixels align)
EDGE = 6.0  # metres of no data along the scene's east edge


def _image(shape: tuple[int, int], seed: int) -> np.ndarray:
    """(4, y, x) smooth 12-bit DN with the patch and the no-data edge, bands in :data:`ORDER`."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0 : shape[0], 0 : shape[1]] * GSD
    out = np.empty((len(ORDER), *shape), np.uint16)
    patch = (slice(*(round(v / GSD) for v in PATCH)),) * 2
    for b, name in enumerate(ORDER):
        field = sum(np.sin(2 * np.pi * (x * np.cos(a) + y * np.sin(a)) / w + p)
                    for a, w, p in rng.uniform((0, 60, 0), (np.pi, 400, 2 * np.pi), (6, 3)))
        dn = 1500 + 400 * b + 350 * field + rng.normal(0, 20, shape)
        out[b] = np.clip(np.rint(dn), 1, 4095)
        out[(b, *patch)] = PATCH_DN[name]
    out[:, :, shape[1] - round(EDGE / GSD) :] = 0
    return out


def _item(geobox: GeoBox, href: str, size: int) -> dict[str, Any]:
    footprint = geobox.extent.to_crs("EPSG:4326")
    eo_bands = [{"name": f"B{i}", "common_name": name} for i, name in enumerate(ORDER)]
    raster_bands = [{"data_type": "uint16", "nodata": 0, "scale": SCALE, "offset": OFFSET, "bits_per_sample": 12,
                     "spatial_resolution": GSD} for _ in ORDER]
    asset = {"href": href, "type": COG, "roles": ["data"], "title": "Multispectral ortho (B, G, R, NIR)",
             "eo:bands": eo_bands, "raster:bands": raster_bands, "file:size": size, **grid_fields(geobox)}
    return {
        "type": "Feature", "stac_version": "1.0.0",
        "stac_extensions": [EXT["eo"], EXT["proj2"], EXT["raster"], FILE_EXTENSION],
        "id": ITEM_ID, "collection": COLLECTION, "geometry": footprint.json, "bbox": list(footprint.boundingbox),
        "properties": {"datetime": "2022-07-10T10:32:00Z", "platform": "SPOT-7", "constellation": "SPOT",
                       "gsd": GSD, "proj:code": "EPSG:2154", "eo:cloud_cover": 0.0},
        "links": [], "assets": {ASSET: asset},
    }


def add_spot_collection(world: Path, seed: int = 6) -> dict[str, Any]:
    """Write the collection into the world folder ``world``; return where the patch is (Lambert-93
    centre of a 4 m pixel inside it) and its DN per band name."""
    left, _, right, top = json.loads((world / "world.json").read_text())["scene"]["bounds"]
    size = round((right - left) / GSD)
    geobox = GeoBox((size, size), Affine(GSD, 0, left, 0, -GSD, top), "EPSG:2154")
    href = f"cogs/{COLLECTION}/{ITEM_ID}/{ASSET}.tif"
    nbytes = write_cog(world / href, _image(geobox.shape, seed), geobox, 0, "average", [f"B{i}" for i in range(4)])
    item = _item(geobox, href, nbytes)
    for rel, doc in ((f"stac/items/{COLLECTION}/{ITEM_ID}.json", item), (f"stac/collections/{COLLECTION}.json", {
        "type": "Collection", "stac_version": "1.0.0", "id": COLLECTION, "license": "proprietary", "links": [],
        "description": "SPOT 6/7-like 12-bit multispectral orthoimages (test fixture)",
        "extent": {"spatial": {"bbox": [item["bbox"]]},
                   "temporal": {"interval": [[item["properties"]["datetime"], None]]}},
    })):
        (world / rel).parent.mkdir(parents=True, exist_ok=True)
        (world / rel).write_text(json.dumps(doc, indent=1))
    centre = PATCH[0] + 26.0  # the centre of a 4 m pixel, 26 m inside the patch's 48 m
    return {"point": (left + centre, top - centre), "dn": dict(PATCH_DN), "east": right, "top": top}


if __name__ == "__main__":
    print(add_spot_collection(Path(sys.argv[1])))
