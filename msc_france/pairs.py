"""Zarr pairs from notebooks: the co-located images of every sensor for a tile, as georeferenced
xarray objects, with the tile index as a GeoDataFrame.

    pairs = msc_france.open_pairs("data/demo.zarr")
    pairs.tiles                      # GeoDataFrame: tile id, geometry, split, quality, per-sensor fields
    sample = pairs["1176_1932"]      # or pairs[0]: {"s2": Dataset, "l8": Dataset, "vhr": Dataset, ...}
    sample["s2"].data                # (band, y, x) DN, with x/y coordinates and EPSG:2154
    pairs.plot("1176_1932")          # true colour triplet with the invalid mask overlaid
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import geopandas as gpd
import xarray as xr
from matplotlib.figure import Figure

from msc_france.grid import TileGrid, TileId
from msc_france.quicklook import plot_triplet
from msc_france.store import open_store
from msc_france.store.layout import tile_pixels


class Pairs:
    """A tile store opened for reading: ``len``, iteration and ``[tile id or position]``."""

    def __init__(self, store: str, storage_options: dict[str, Any] | None = None) -> None:
        opened = open_store(store, storage_options)
        self.store = store
        self.grid: TileGrid = opened.grid
        self.sensors = opened.groups
        self.tiles: gpd.GeoDataFrame = opened.index()
        self._rows = {t: i for i, t in enumerate(self.tiles["tile"])}
        self._groups = {s: opened.dataset(s) for s in self.sensors}

    def __len__(self) -> int:
        return len(self.tiles)

    def __iter__(self) -> Iterator[dict[str, xr.Dataset]]:
        return (self.tile(t) for t in self.tiles["tile"])

    def __getitem__(self, key: str | int | TileId) -> dict[str, xr.Dataset]:
        return self.tile(key)

    def _tile_id(self, key: str | int | TileId) -> str:
        if isinstance(key, int):
            if not -len(self) <= key < len(self):
                raise IndexError(f"tile position {key} out of range ({len(self)} tiles)")
            return str(self.tiles["tile"].iloc[key])
        name = str(key)
        if name not in self._rows:
            raise KeyError(f"tile {name} is not in the store's index")
        return name

    def tile(self, key: str | int | TileId) -> dict[str, xr.Dataset]:
        """Every sensor's ``data`` (band, y, x) and ``valid`` (y, x) over one tile (lazy, georeferenced)."""
        name = self._tile_id(key)
        tile = TileId.parse(name)
        row = self.tiles.iloc[self._rows[name]]
        out = {}
        for sensor, ds in self._groups.items():
            rows, cols = tile_pixels(tile.col, tile.row, int(ds.attrs["tile_px"]))
            part = ds.isel(y=rows, x=cols)
            part.attrs.update({
                "tile": name, "sensor": sensor, "nodata": ds["data"].attrs.get("nodata"),
                "scale": ds["data"].attrs.get("scale_factor_dn"), "offset": ds["data"].attrs.get("add_offset_dn"),
                "datetime": row.get(f"{sensor}_datetime"),
            })
            part["data"].attrs["datetime"] = row.get(f"{sensor}_datetime")
            out[sensor] = part
        return out

    def plot(self, key: str | int | TileId) -> Figure:
        """The tile's triplet in true colour (robust stretch), labels in WorldCover colours, invalid in magenta."""
        sample = self.tile(key)
        return plot_triplet({s: d["data"] for s, d in sample.items()}, {s: d["valid"] for s, d in sample.items()},
                            title=f"tile {self._tile_id(key)}")


def open_pairs(store: str, storage_options: dict[str, Any] | None = None) -> Pairs:
    """Open a tile store and its index (local path or fsspec URL)."""
    return Pairs(store, storage_options)
