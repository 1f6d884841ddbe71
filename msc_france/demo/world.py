"""Generate the demo world into a folder: ground truth, every acquisition as COGs, STAC items.

Layout of the folder::

    world.json                      manifest (written last: its presence means complete)
    truth/worldcover.tif            fine land-cover truth in Lambert-93 (WorldCover codes)
    cogs/<collection>/<item>/*.tif  the products, on their native grids
    stac/collections/<id>.json      collections
    stac/items/<collection>/*.json  items, hrefs relative to the folder
    stac/item-collections/<id>.json the footprint world over France (items only: footprint_items.py)

Generation is deterministic from the seed and resumable: an acquisition whose item file exists
is not rendered again, and a change of configuration starts afresh.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
from affine import Affine
from odc.geo.geobox import GeoBox
from pyproj import Transformer
from rasterio.enums import Resampling
from tqdm import tqdm

from msc_france.cog import write_cog
from msc_france.config import DemoWorldConfig, WorldDates
from msc_france.demo import items as stac
from msc_france.demo.footprint_items import write_footprints
from msc_france.demo.footprints import footprints
from msc_france.demo.landscape import Landscape, generate_landscape
from msc_france.demo.native import landsat_grid, sentinel2_grid, worldcover_grid
from msc_france.demo.ogc import OGC_DIR, render_caches
from msc_france.demo.render import (
    OPTICS,
    ORTHO_TONE,
    Acquisition,
    Sky,
    blur_and_noise,
    ground_and_sky,
    qa_pixel,
    scene_classification,
    warp,
)
from msc_france.sensors import LANDSAT8, SENTINEL2, VHR, s2_encoding
from msc_france.store.atomic import atomic_write

GENERATOR_VERSION = "4"  # 4: footprint world over France (items only), France-wide mosaic graph
MANIFEST = "world.json"
SCENE_SNAP = 1920.0  # scene edges fall on tile edges of the France grid for 1920 m and its divisors
OVERPASS = {"s2": dt.time(10, 50, 31), "l8": dt.time(10, 35, 12), "vhr": dt.time(11, 0, 0)}
DEFAULT_PLATFORM = {"s2": "Sentinel-2A", "l8": "landsat-8", "vhr": "demo-vhr"}


def config_digest(cfg: DemoWorldConfig) -> str:
    payload = json.dumps({"version": GENERATOR_VERSION, "config": cfg.model_dump(mode="json")}, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def scene_geobox(cfg: DemoWorldConfig) -> GeoBox:
    """The truth grid: a Lambert-93 rectangle (``size`` east-west, ``height`` north-south) around
    ``cfg.center`` with edges on tile edges."""
    x, y = Transformer.from_crs("EPSG:4326", "EPSG:2154", always_xy=True).transform(*cfg.center)
    width, height = cfg.size, cfg.height or cfg.size
    nx, ny = round(width / cfg.truth_gsd), round(height / cfg.truth_gsd)
    for side, n in ((width, nx), (height, ny)):
        if not math.isclose(n * cfg.truth_gsd, side):
            raise ValueError(f"world side {side} is not a multiple of truth_gsd {cfg.truth_gsd}")
    left = math.floor((x - width / 2) / SCENE_SNAP) * SCENE_SNAP
    top = math.floor((y + height / 2) / SCENE_SNAP) * SCENE_SNAP
    return GeoBox((ny, nx), Affine(cfg.truth_gsd, 0, left, 0, -cfg.truth_gsd, top), "EPSG:2154")


_T = TypeVar("_T")
_D = TypeVar("_D")


def _nth(values: Sequence[_T], i: int, default: _D) -> _T | _D:
    """``values[i]``, or ``default`` when the config leaves ``values`` empty (one per date or none)."""
    return values[i] if values else default


def acquisitions(cfg: DemoWorldConfig) -> list[Acquisition]:
    out = []
    for key in ("s2", "l8", "vhr"):
        dates: WorldDates = getattr(cfg, key)
        for i, date in enumerate(dates.dates):
            out.append(Acquisition(
                sensor=key, index=i, date=date, cloud_cover=_nth(dates.cloud_cover, i, 0.0),
                platform=_nth(dates.platforms, i, DEFAULT_PLATFORM[key]),
                processing_baseline=_nth(dates.processing_baselines, i, None),
                nodata_fraction=_nth(dates.nodata_fraction, i, 0.0),
            ))
    return out


def _write_json(path: Path, data: object) -> None:
    atomic_write(path, json.dumps(data, indent=1, sort_keys=True))


class WorldWriter:
    """Renders acquisitions of one landscape into the world folder."""

    def __init__(self, root: Path, cfg: DemoWorldConfig, land: Landscape) -> None:
        self.root, self.cfg, self.land = root, cfg, land
        self.lon, self.lat = cfg.center

    def _cog(self, rel: str, data: np.ndarray, grid: GeoBox, nodata: int, resampling: str, names: list[str]) -> str:
        write_cog(self.root / rel, data, grid, nodata, resampling, names)
        return rel

    def _rng(self, acq: Acquisition) -> np.random.Generator:
        return np.random.default_rng([self.cfg.seed, 200, ["s2", "l8", "vhr"].index(acq.sensor), acq.index])

    def sentinel2(self, acq: Acquisition, when: dt.datetime) -> dict[str, Any]:
        sky = Sky(self.land, acq, self.cfg.seed, self.lat)
        grids = {}
        for gsd in (10.0, 20.0, 60.0):
            grids[gsd], tile = sentinel2_grid(self.land.geobox, self.lon, gsd)
        encoding = s2_encoding(acq.processing_baseline or "05.10")
        rng = self._rng(acq)
        folder = f"cogs/{stac.COLLECTIONS['s2']}/{acq.sensor}-{acq.index}"
        hrefs: dict[str, str] = {}
        at20: dict[str, np.ndarray] = {}
        wavelengths = np.array([b.center_wavelength for b in SENTINEL2.bands])
        # one reflectance per wavelength, one wavelength per band
        for band, refl in zip(SENTINEL2.bands, ground_and_sky(self.land, sky, acq.date, wavelengths), strict=True):
            warped = warp(refl, self.land.geobox, grids[band.gsd], Resampling.average)
            values = blur_and_noise(warped, OPTICS["s2"], rng)
            hrefs[band.asset] = self._cog(f"{folder}/{band.asset}.tif", encoding.encode(values), grids[band.gsd],
                                          encoding.nodata, "average", [band.name])
            if band.name in ("B03", "B04"):
                at20[band.name] = warp(refl, self.land.geobox, grids[20.0], Resampling.average)
            if band.name == "B8A":
                at20[band.name] = values
        cloud = warp(sky.cloud, self.land.geobox, grids[20.0], Resampling.average)
        shadow = warp(sky.shadow, self.land.geobox, grids[20.0], Resampling.average)
        scl = scene_classification(at20["B03"], at20["B04"], at20["B8A"], cloud, shadow)
        hrefs["SCL"] = self._cog(f"{folder}/SCL.tif", scl, grids[20.0], 0, "nearest", ["SCL"])
        valid = scl != 0

        def share(codes: list[int]) -> float:
            return 100 * float(np.isin(scl[valid], codes).mean()) if valid.any() else 0.0

        stats = {"cloud": share([8, 9, 10]), "shadow": share([3]), "water": share([6]), "vegetation": share([4]),
                 "nodata": 100 * float((~valid).mean())}
        return stac.sentinel2_item(SENTINEL2, when, acq.platform, acq.processing_baseline or "05.10", tile,
                                   grids, hrefs, stats)

    def landsat(self, acq: Acquisition, when: dt.datetime) -> dict[str, Any]:
        sky = Sky(self.land, acq, self.cfg.seed, self.lat)
        grid = landsat_grid(self.land.geobox, self.lon)
        rng = self._rng(acq)
        mission = "LC08" if acq.platform == "landsat-8" else "LC09"
        folder = f"cogs/{stac.COLLECTIONS['l8']}/{mission}-{acq.index}"
        hrefs: dict[str, str] = {}
        kept: dict[str, np.ndarray] = {}
        wavelengths = np.array([b.center_wavelength for b in LANDSAT8.bands])
        # one reflectance per wavelength, one wavelength per band
        for band, refl in zip(LANDSAT8.bands, ground_and_sky(self.land, sky, acq.date, wavelengths), strict=True):
            values = blur_and_noise(warp(refl, self.land.geobox, grid, Resampling.average), OPTICS["l8"], rng)
            hrefs[band.asset] = self._cog(f"{folder}/{band.asset}.tif", LANDSAT8.encoding.encode(values), grid,
                                          LANDSAT8.encoding.nodata, "average", [band.name])
            kept[band.name] = values
        cloud = warp(sky.cloud, self.land.geobox, grid, Resampling.average)
        shadow = warp(sky.shadow, self.land.geobox, grid, Resampling.average)
        qa = qa_pixel(kept["green"], kept["nir08"], cloud, shadow)
        hrefs["qa_pixel"] = self._cog(f"{folder}/qa_pixel.tif", qa, grid, 1, "nearest", ["qa_pixel"])
        valid = qa != 1
        cloudy = LANDSAT8.mask.cloudy(qa) if LANDSAT8.mask else np.zeros_like(valid)
        stats = {"cloud": 100 * float(cloudy[valid].mean()) if valid.any() else 0.0}
        return stac.landsat_item(LANDSAT8, when, acq.platform, grid, hrefs, stats)

    def vhr(self, acq: Acquisition, when: dt.datetime) -> dict[str, Any]:
        """An orthophoto as IGN delivers it: 8-bit display values (tone-mapped), no reflectance scale."""
        sky = Sky(self.land, acq, self.cfg.seed, self.lat)
        rng = self._rng(acq)
        wavelengths = np.array([b.center_wavelength for b in VHR.bands])
        stack = np.stack([
            ORTHO_TONE.encode(blur_and_noise(refl, OPTICS["vhr"], rng), band)
            for band, refl in enumerate(ground_and_sky(self.land, sky, acq.date, wavelengths))
        ])
        rel = self._cog(f"cogs/{stac.COLLECTIONS['vhr']}/{acq.index}/image.tif", stack, self.land.geobox, 0,
                        "average", list(VHR.band_names))
        return stac.vhr_item(VHR, when, self.land.geobox, rel)

    def labels(self) -> dict[str, Any]:
        grid = worldcover_grid(self.land.geobox)
        codes = warp(self.land.worldcover(), self.land.geobox, grid, Resampling.mode)
        rel = self._cog(f"cogs/{stac.COLLECTIONS['labels']}/map.tif", codes, grid, 0, "mode", ["map"])
        return stac.worldcover_item(grid, rel)


def _record_sizes(root: Path, item: dict[str, Any]) -> dict[str, Any]:
    """Add ``file:size`` to each asset (STAC file extension), so a resumed run can check completeness."""
    for asset in item["assets"].values():
        asset["file:size"] = (root / asset["href"]).stat().st_size
    item["stac_extensions"].append(stac.FILE_EXTENSION)
    return item


def _complete(root: Path, item_file: Path) -> dict[str, Any] | None:
    """The item in ``item_file`` if it and all its assets were written completely."""
    if not item_file.exists():
        return None
    item: dict[str, Any] = json.loads(item_file.read_text())
    for asset in item["assets"].values():
        path = root / asset["href"]
        if not path.exists() or path.stat().st_size != asset.get("file:size"):
            return None
    return item


def generate_world(cfg: DemoWorldConfig, root: Path, show_progress: bool = True) -> dict[str, Any]:
    """Generate (or finish generating) the world described by ``cfg`` into ``root``; return its manifest."""
    digest = config_digest(cfg)
    manifest_path = root / MANIFEST
    if manifest_path.exists():
        manifest: dict[str, Any] = json.loads(manifest_path.read_text())
        if manifest.get("digest") == digest:
            return manifest
    stamp = root / ".digest"
    if stamp.exists() and stamp.read_text() != digest:
        for sub in ("truth", "cogs", "stac", OGC_DIR, MANIFEST):
            if (root / sub).is_dir():
                shutil.rmtree(root / sub, ignore_errors=True)
            else:
                (root / sub).unlink(missing_ok=True)
    root.mkdir(parents=True, exist_ok=True)
    stamp.write_text(digest)

    scene = scene_geobox(cfg)
    land = generate_landscape(scene, cfg.seed)
    write_cog(root / "truth" / "worldcover.tif", land.worldcover(), scene, 0, "mode", ["worldcover"])
    writer = WorldWriter(root, cfg, land)
    render: dict[str, Callable[[Acquisition, dt.datetime], dict[str, Any]]] = {
        "s2": writer.sentinel2, "l8": writer.landsat, "vhr": writer.vhr,
    }
    jobs = acquisitions(cfg)
    by_collection: dict[str, list[dict[str, Any]]] = {}
    for acq in tqdm(jobs, desc="demo world", unit="scene", disable=not show_progress):
        collection = stac.COLLECTIONS[acq.sensor]
        item_file = root / "stac" / "items" / collection / f"{acq.sensor}-{acq.index}.json"
        item = _complete(root, item_file)
        if item is None:
            item = render[acq.sensor](acq, dt.datetime.combine(acq.date, OVERPASS[acq.sensor]))
            _write_json(item_file, _record_sizes(root, item))
        by_collection.setdefault(collection, []).append(item)
    labels_file = root / "stac" / "items" / stac.COLLECTIONS["labels"] / "map.json"
    labels = _complete(root, labels_file)
    if labels is None:
        labels = _record_sizes(root, writer.labels())
        _write_json(labels_file, labels)
    by_collection[stac.COLLECTIONS["labels"]] = [labels]

    descriptions = {"s2": "Sentinel-2 L2A (demo world)", "l8": "Landsat Collection 2 Level-2 (demo world)",
                    "vhr": "Very-high-resolution RGB+NIR orthoimages (demo world)",
                    "labels": "ESA WorldCover-like land cover (demo world)"}
    for key, collection in stac.COLLECTIONS.items():
        _write_json(root / "stac" / "collections" / f"{collection}.json",
                    stac.collection(collection, by_collection[collection], descriptions[key]))
    footprint_counts = write_footprints(root, footprints(cfg.footprints, cfg.seed))
    render_caches(root)  # the orthophotos as the WMS/WMTS serve them
    files = [p for p in root.rglob("*") if p.is_file() and not p.name.startswith(".")]
    lonlat = scene.extent.to_crs("EPSG:4326").boundingbox
    manifest = {
        "digest": digest,
        "seed": cfg.seed,
        "scene": {"crs": "EPSG:2154", "bounds": list(scene.boundingbox), "shape": list(scene.shape),
                  "gsd": cfg.truth_gsd, "bbox_lonlat": list(lonlat)},
        "features": land.features,
        "items": {c: sorted(i["id"] for i in v) for c, v in by_collection.items()},
        "footprint_items": footprint_counts,
        "bytes": sum(p.stat().st_size for p in files),
        "files": len(files),
    }
    _write_json(manifest_path, manifest)
    return manifest
