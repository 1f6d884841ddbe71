"""The local catalogs of the download stage, read as plain picklable records for the tile workers."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pystac
from odc.geo.geom import Geometry

from msc_france.config import Recipe, load_recipe
from msc_france.errors import UserError
from msc_france.provenance import catalog_record, content, describe, lacks
from msc_france.sensors import Encoding

FROM_ITEMS = ("vhr",)  # groups whose stored type, scale, offset and nodata come from the items (sources vary)


@dataclass(frozen=True)
class SourceItem:
    """One downloaded item: where its files are and what the tiles stage needs to know of it."""

    sensor: str
    item_id: str
    region: str
    datetime: str | None
    cloud: float
    baseline: str | None
    footprint_wkt: str  # EPSG:2154
    assets: tuple[tuple[str, str], ...]  # (asset key, local path)
    nodata: tuple[tuple[str, float], ...] = ()  # (asset key, nodata its raster:bands declare)
    encodings: tuple[Encoding, ...] = ()  # distinct ``raster:bands`` encodings of its assets' bands

    @property
    def key(self) -> str:
        """``region/item id``: unique across regions (the same source item downloaded twice is two windows)."""
        return f"{self.region}/{self.item_id}"

    def asset(self, key: str) -> str:
        return dict(self.assets)[key]

    def declared_nodata(self, key: str) -> float | None:
        """The nodata the item's ``raster:bands`` declare for asset ``key``, if any."""
        return dict(self.nodata).get(key)


def catalog_dirs(data: Path, region: str | None) -> list[Path]:
    """Region folders under ``DATA/catalogs`` that hold a complete download."""
    base = data / "catalogs"
    folders = sorted(p.parent for p in base.glob("*/catalog.json")) if base.exists() else []
    if region is not None:
        folders = [f for f in folders if f.name == region]
    if not folders:
        where = f" for region {region!r}" if region else ""
        raise UserError(f"no downloaded catalog{where} under {base}; run `make download` first")
    return folders


def downloaded_recipe(folders: list[Path], asked: str | None) -> Recipe:
    """The recipe to tile ``folders`` with: the one their downloads used (all must agree), or the
    ``asked`` one when every download holds what it needs (its grid, sensors and bands)."""
    records = {folder: catalog_record(folder) for folder in folders}
    if asked is None:
        unknown = [folder for folder, record in records.items() if record is None]
        if unknown:
            raise UserError(f"{unknown[0]} does not record the recipe of its download (an older version made it); "
                            "give --recipe (make tiles recipe=NAME) or download it again")
        recipes = {folder.name: record.recipe for folder, record in records.items() if record is not None}
        first = next(iter(recipes.values()))
        if any(content(r) != content(first) for r in recipes.values()):
            used = ", ".join(f"{name}: {r.name}" for name, r in recipes.items())
            raise UserError(f"the downloads to tile were made with different recipes ({used}); "
                            "tile one region at a time with --region and its own --store")
        return first
    recipe = load_recipe(asked)
    for folder, record in records.items():
        gap = None if record is None else lacks(record.recipe, recipe)
        if record is not None and gap is not None:
            raise UserError(f"--recipe {describe(recipe)} does not fit the download in {folder}, made with recipe "
                            f"{describe(record.recipe)} from catalog {record.catalog}: {gap}; run tiles without "
                            f"--recipe to use {record.recipe.name}, or download again with --recipe {recipe.name}")
    return recipe


def region_geometry(folder: Path) -> Geometry:
    """The region the download was made for (``region.geojson`` written by the download stage)."""
    path = folder / "region.geojson"
    if not path.exists():
        raise UserError(f"{folder} has no region.geojson; download the region again")
    return Geometry(json.loads(path.read_text()), "EPSG:4326")


def _asset_paths(item: pystac.Item, folder: Path) -> tuple[tuple[str, str], ...]:
    """(asset key, absolute path) of each of a local item's assets, sorted."""
    paths = []
    for key, asset in item.assets.items():
        href = asset.get_absolute_href()
        if href is None:  # a relative href in an item read without its own path: not a catalog of ours
            raise UserError(f"asset {key} of item {item.id} of {folder} has no path; download the region again")
        paths.append((key, href))
    return tuple(sorted(paths))


def read_items(folder: Path) -> list[SourceItem]:
    """Every item of one local catalog."""
    catalog = pystac.Catalog.from_file(str(folder / "catalog.json"))
    items = []
    for item in catalog.get_items(recursive=True):
        props = item.properties
        if item.geometry is None:
            raise UserError(f"item {item.id} of {folder} has no footprint; download the region again")
        footprint = Geometry(item.geometry, "EPSG:4326").to_crs("EPSG:2154")
        items.append(SourceItem(
            sensor=props["msc:sensor"], item_id=item.id, region=folder.name,
            datetime=props.get("datetime") or props.get("start_datetime"),
            cloud=float(props.get("eo:cloud_cover", 0.0)), baseline=props.get("s2:processing_baseline"),
            footprint_wkt=footprint.wkt,
            assets=_asset_paths(item, folder),
            nodata=tuple(sorted((k, float(bands[0]["nodata"])) for k, a in item.assets.items()
                                if (bands := a.extra_fields.get("raster:bands"))
                                and bands[0].get("nodata") is not None)),
            encodings=_encodings(item),
        ))
    return sorted(items, key=lambda i: (i.sensor, i.cloud, i.item_id))


def _encodings(item: pystac.Item) -> tuple[Encoding, ...]:
    """The distinct encodings the local item records in ``raster:bands``, in asset and band order."""
    found = [Encoding(rb["data_type"], int(rb["nodata"]), float(rb["scale"]), float(rb["offset"]))
             for _, asset in sorted(item.assets.items()) for rb in asset.extra_fields.get("raster:bands", [])]
    return tuple(dict.fromkeys(found))


def item_encodings(items: list[SourceItem]) -> dict[str, Encoding]:
    """For each group of :data:`FROM_ITEMS` with items, the one encoding they all record: a store
    layer has one type, scale, offset and nodata."""
    out: dict[str, Encoding] = {}
    for group in FROM_ITEMS:
        seen: dict[Encoding, str] = {}
        for item in items:
            if item.sensor == group:
                seen.update({e: item.item_id for e in item.encodings if e not in seen})
        if len(seen) > 1:
            (a, first), (b, second) = list(seen.items())[:2]
            raise UserError(f"{group} items disagree: {first} is {a}, {second} is {b}; one store "
                            f"holds one {group} encoding: tile them into separate stores (--region, --store)")
        if seen:
            out[group] = next(iter(seen))
    return out
