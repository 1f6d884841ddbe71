"""A tile store opened for reading: its grid and recipe, its groups in order, one tile's pixels, the
band statistics, the index, and lazy xarray views. Every reader of the project (``open_pairs``, the
torch dataset, eval, ``plan``, publish) goes through :func:`open_store`."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import xarray as xr
import zarr
import zarr.errors

from msc_france.errors import UserError
from msc_france.grid import TileGrid
from msc_france.provenance import STORE_KEY, RecipeRecord
from msc_france.store.index import read_index
from msc_france.store.layout import ROOT_KEY, Layer, group_rank, tile_pixels
from msc_france.store.records import BandStatistics, Normalisation


@dataclass(frozen=True)
class StoreMeta:
    """The root group's record: the grid every group is on, the recipe (name and content), the
    on-disk format version."""

    grid: TileGrid
    recipe: str
    version: int
    recipe_record: RecipeRecord | None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"grid": self.grid.to_dict(), "recipe": self.recipe, "version": self.version}
        if self.recipe_record is not None:
            out[STORE_KEY] = self.recipe_record.to_json()
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any], where: str) -> StoreMeta:
        try:
            grid = TileGrid.from_dict(data["grid"])
            recipe, version = str(data["recipe"]), int(data.get("version", 1))
        except (KeyError, TypeError, ValueError):
            raise UserError(f"the store record of {where} is damaged; build the store again") from None
        record = RecipeRecord.from_json(data[STORE_KEY], f"store {where}") if STORE_KEY in data else None
        return cls(grid, recipe, version, record)


def attributes(node: zarr.Group | zarr.Array[Any]) -> dict[str, Any]:
    """A group's or an array's attributes as a plain dict (zarr types them as any JSON value)."""
    return dict(node.attrs.asdict())


def child_group(parent: zarr.Group, name: str) -> zarr.Group:
    """``parent[name]``, which must be a group (zarr types a child as a group or an array)."""
    found = parent[name]
    if not isinstance(found, zarr.Group):
        raise UserError(f"{name} in store {parent.store_path} is not a group; the store is damaged, build it again")
    return found


def child_array(parent: zarr.Group, name: str) -> zarr.Array[Any]:
    """``parent[name]``, which must be an array (zarr types a child as a group or an array)."""
    found = parent[name]
    if not isinstance(found, zarr.Array):
        raise UserError(f"{name} in store {parent.store_path} is not an array; the store is damaged, build it again")
    return found


class TileStore:
    """A tile store opened read-only (local path or fsspec URL)."""

    def __init__(self, url: str, root: zarr.Group, storage_options: dict[str, Any] | None = None) -> None:
        self.url = url
        self.root = root
        self.storage_options = storage_options or None
        self.meta = StoreMeta.from_json(attributes(root).get(ROOT_KEY) or {}, url)
        self.groups: list[str] = sorted(root.group_keys(), key=group_rank)
        self._opened: dict[str, zarr.Group | zarr.Array[Any]] = {}  # zarr reads metadata on every lookup

    @property
    def grid(self) -> TileGrid:
        return self.meta.grid

    def _group(self, group: str) -> zarr.Group:
        if group not in self.groups:
            raise UserError(f"store {self.url} has no {group} group (it has {', '.join(self.groups)})")
        if group not in self._opened:
            self._opened[group] = self.root[group]
        found = self._opened[group]
        assert isinstance(found, zarr.Group)
        return found

    def array(self, group: str, name: str = "data") -> zarr.Array[Any]:
        """One array of a group: ``data`` (band, y, x) or ``valid`` (y, x)."""
        key = f"{group}/{name}"
        if key not in self._opened:
            self._opened[key] = self._group(group)[name]
        found = self._opened[key]
        assert isinstance(found, zarr.Array)
        return found

    def tile_px(self, group: str) -> int:
        return int(attributes(self._group(group))["tile_px"])

    def layer(self, group: str) -> Layer:
        """What the group holds, read back from its attributes."""
        data = self.array(group)
        attrs = attributes(data)
        return Layer(group, str(attributes(self._group(group))["grid_sensor"]), tuple(attrs["bands"]),
                     str(data.dtype), int(attrs["nodata"]), float(attrs["scale_factor_dn"]),
                     float(attrs["add_offset_dn"]), tuple(float(w) for w in attrs.get("wavelengths", ())))

    def read_tile(self, group: str, col: int, row: int, name: str = "data") -> np.ndarray:
        """One tile of one array: (band, px, px) for ``data``, (px, px) for ``valid``; one chunk."""
        array = self.array(group, name)
        rows, cols = tile_pixels(col, row, self.tile_px(group))
        return np.asarray(array[..., rows, cols])

    def statistics(self, group: str) -> BandStatistics:
        return BandStatistics.from_json(attributes(self._group(group)).get("statistics") or {})

    def normalisation(self, group: str, bands: list[str] | tuple[str, ...] | None = None) -> Normalisation:
        """The encoding and statistics of ``bands`` (default: all) of one group."""
        layer = self.layer(group)
        wanted = tuple(bands or layer.bands)
        missing = [b for b in wanted if b not in layer.bands]
        if missing:
            raise UserError(f"store {self.url} has no band {missing[0]!r} in {group} "
                            f"(it has {', '.join(layer.bands)})")
        stats = self.statistics(group).bands
        if any(b not in stats for b in wanted):
            raise UserError(f"store {self.url} has no statistics for {group}; re-run `make tiles` to compute them")
        return Normalisation(wanted, layer.scale, layer.offset, layer.nodata, tuple(stats[b].mean for b in wanted),
                             tuple(max(stats[b].std, 1e-6) for b in wanted))

    def dataset(self, group: str) -> xr.Dataset:
        """The group as a lazy, georeferenced xarray Dataset (DN, not masked or scaled)."""
        self._group(group)
        opened: xr.Dataset = xr.open_zarr(self.url, group=group, decode_coords="all", mask_and_scale=False,
                                          chunks=None, storage_options=self.storage_options)
        return opened

    def index(self) -> gpd.GeoDataFrame:
        """The tile index (``docs/store.md``)."""
        return read_index(self.url, self.storage_options)

    def stored_bytes(self, group: str) -> int:
        """Bytes the group's data and valid arrays take (shard indexes included)."""
        return int(self.array(group).nbytes_stored() + self.array(group, "valid").nbytes_stored())


def open_store(store: str, storage_options: dict[str, Any] | None = None) -> TileStore:
    """A tile store opened read-only; a missing one is a one-line user error."""
    if "\x00" in store:
        raise UserError(f"no tile store at {store!r} (a path cannot hold a NUL character); run `make tiles` first")
    try:
        root = zarr.open_group(store, mode="r", zarr_format=3, storage_options=storage_options or None)
    except (FileNotFoundError, zarr.errors.GroupNotFoundError):
        raise UserError(f"no tile store at {store}; run `make tiles` first") from None
    except _DAMAGED as exc:
        raise UserError(_damaged(store, "zarr.json", exc)) from None
    except OSError as exc:  # a name too long, a folder that cannot be read (found by fuzzing)
        raise UserError(f"cannot read a tile store at {store} ({exc.strerror or type(exc).__name__}); "
                        "give the path of a store built by `msc-france tiles`") from None
    if not root.attrs.get(ROOT_KEY):
        raise UserError(f"{store} is not an msc-france tile store")
    try:
        return TileStore(store, root, storage_options)
    except _DAMAGED as exc:  # a group's zarr.json (read for the list of groups)
        raise UserError(_damaged(store, "the zarr.json of a group", exc)) from None


# What zarr raises on metadata that is not JSON (JSONDecodeError and UnicodeDecodeError are ValueErrors)
# or not the JSON it expects.
_DAMAGED = (ValueError, TypeError, KeyError, zarr.errors.MetadataValidationError, zarr.errors.NodeTypeValidationError)


def _damaged(store: str, what: str, exc: BaseException) -> str:
    reason = " ".join(str(exc).split())[:120] or type(exc).__name__
    return (f"the tile store at {store} is damaged: {what} is not valid Zarr metadata ({reason}); "
            "delete the store and build it again with `msc-france tiles`")


def stores_in(data: Path) -> list[str]:
    """The tile stores directly under ``data`` (``*.zarr`` with the msc-france root attrs)."""
    found = []
    for path in sorted(data.glob("*.zarr")):
        try:
            meta = json.loads((path / "zarr.json").read_text()).get("attributes", {}).get(ROOT_KEY)
        except (OSError, ValueError):
            continue
        if meta:
            found.append(str(path))
    return found

