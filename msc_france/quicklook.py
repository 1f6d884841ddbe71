"""Quick looks: true-colour panels of a tile's sensors side by side, and a coverage map of the index.

Figures are built on ``matplotlib.figure.Figure`` with the Agg canvas, never through pyplot, so
nothing opens a window and no global backend state is touched.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Literal, Protocol

import numpy as np
import xarray as xr
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.collections import PatchCollection
from matplotlib.colors import BoundaryNorm, ListedColormap
from matplotlib.figure import Figure
from matplotlib.patches import Patch, Polygon

from msc_france.grid import TileId
from msc_france.landcover import WORLDCOVER, WORLDCOVER_NODATA
from msc_france.sensors import SENSORS
from msc_france.store.layout import LABELS, group_rank

if TYPE_CHECKING:
    import geopandas as gpd
    import pandas as pd
    from shapely.geometry.base import BaseGeometry

INVALID_RGBA = (1.0, 0.0, 1.0, 0.5)  # semi-transparent magenta over pixels with valid == 0
SPLIT_COLORS = {"train": "#1f77b4", "val": "#ff7f0e", "test": "#2ca02c"}


TileKey = str | int | TileId  # a tile id ("0297_0481"), a row of the index, or a TileId
Origin = Literal["upper", "lower"]
Extent = tuple[float, float, float, float]


class PairsLike(Protocol):
    sensors: list[str]

    def tile(self, tile_id: TileKey) -> dict[str, xr.Dataset]: ...


def _new_figure(figsize: tuple[float, float]) -> Figure:
    fig = Figure(figsize=figsize, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


# --- true colour -------------------------------------------------------------------------------
def robust_rgb(data: np.ndarray, nodata: float | None, percentiles: tuple[float, float] = (2, 98)) -> np.ndarray:
    """A (y, x, 3) float32 image in [0, 1] from a (3, y, x) array of red, green, blue.

    Each band is stretched linearly between its ``percentiles`` over the valid pixels (finite and
    not ``nodata`` in every band). Invalid pixels are black.
    """
    array = np.asarray(data)
    if array.ndim != 3 or array.shape[0] != 3:
        raise ValueError(f"robust_rgb needs a (3, y, x) array, got shape {array.shape}")
    values = array.astype(np.float64)
    invalid = ~np.isfinite(values).all(axis=0)
    if nodata is not None and not (isinstance(nodata, float) and np.isnan(nodata)):
        invalid |= (array == nodata).any(axis=0)
    out = np.zeros((*array.shape[1:], 3), dtype=np.float32)
    if invalid.all():
        return out
    for band in range(3):
        good = values[band][~invalid]
        low, high = np.percentile(good, percentiles)
        span = high - low
        stretched = (values[band] - low) / span if span > 0 else np.zeros_like(values[band])
        out[..., band] = np.clip(np.nan_to_num(stretched, nan=0.0), 0.0, 1.0)
    out[invalid] = 0.0
    return out


def _rgb_bands(sensor: str, names: Sequence[str]) -> list[str]:
    """Our band names for red, green, blue of ``sensor`` (by common name), among ``names``."""
    if sensor in SENSORS:
        chosen = []
        for common in ("red", "green", "blue"):
            match = [b.name for b in SENSORS[sensor].bands if b.common_name == common and b.name in names]
            if not match:
                raise ValueError(f"{sensor}: no {common} band among {list(names)}")
            chosen.append(match[0])
        return chosen
    if all(c in names for c in ("red", "green", "blue")):
        return ["red", "green", "blue"]
    if len(names) >= 3:
        return list(names[:3])
    return [names[0]] * 3


def worldcover_colormap() -> tuple[ListedColormap, BoundaryNorm]:
    """Colour map and norm of the WorldCover legend; code 0 (nodata) is black."""
    codes = [WORLDCOVER_NODATA, *(c.code for c in WORLDCOVER)]
    colors = ["#000000", *(c.color for c in WORLDCOVER)]
    edges = [codes[0] - 0.5, *((a + b) / 2 for a, b in itertools.pairwise(codes)), codes[-1] + 0.5]
    cmap = ListedColormap(colors, name="worldcover", under="#000000", over="#000000")
    return cmap, BoundaryNorm(edges, cmap.N)


def _extent(array: xr.DataArray) -> tuple[Extent | None, Origin, float | None]:
    """imshow extent, origin and GSD from the x / y pixel-centre coordinates (None when absent)."""
    if "x" not in array.coords or "y" not in array.coords:
        return None, "upper", None
    x = np.asarray(array["x"].values, dtype=np.float64)
    y = np.asarray(array["y"].values, dtype=np.float64)
    if x.size < 2 or y.size < 2:
        return None, "upper", None
    dx, dy = abs(x[1] - x[0]), abs(y[1] - y[0])
    left, right = x.min() - dx / 2, x.max() + dx / 2
    bottom, top = y.min() - dy / 2, y.max() + dy / 2
    origin: Origin = "upper" if y[0] > y[-1] else "lower"
    return (left, right, bottom, top), origin, float(dx)


def _nodata(array: xr.DataArray) -> float | None:
    value: float | None
    for key in ("nodata", "_FillValue"):
        if array.attrs.get(key) is not None:
            value = array.attrs[key]
            return value
    value = array.encoding.get("_FillValue")
    return value


def _plane(array: xr.DataArray) -> np.ndarray:
    """A (y, x) array from a (y, x) or single-band (band, y, x) DataArray."""
    if "band" in array.dims:
        array = array.isel(band=0)
    return np.asarray(array.transpose("y", "x").values if {"y", "x"} <= set(array.dims) else array.values)


def _panel(ax: Axes, sensor: str, array: xr.DataArray, valid: xr.DataArray | None) -> None:
    extent, origin, gsd = _extent(array)
    if sensor == LABELS:
        cmap, norm = worldcover_colormap()
        ax.imshow(_plane(array), cmap=cmap, norm=norm, interpolation="nearest", extent=extent, origin=origin)
    elif "band" not in array.dims:  # a single plane of another sensor: grey
        plane = _plane(array)
        ax.imshow(robust_rgb(np.stack([plane] * 3), _nodata(array)), interpolation="nearest", extent=extent,
                  origin=origin)
    else:
        names = [str(n) for n in array["band"].values]
        bands = _rgb_bands(sensor, names)
        rgb_da = array.sel(band=bands)
        if {"y", "x"} <= set(rgb_da.dims):
            rgb_da = rgb_da.transpose("band", "y", "x")
        rgb = robust_rgb(np.asarray(rgb_da.values), _nodata(array))
        ax.imshow(rgb, interpolation="nearest", extent=extent, origin=origin)
    if valid is not None:
        bad = _plane(valid) == 0
        if bad.any():
            overlay = np.zeros((*bad.shape, 4), dtype=np.float32)
            overlay[bad] = INVALID_RGBA
            ax.imshow(overlay, interpolation="nearest", extent=extent, origin=origin)
    lines = [f"{sensor}  {gsd:g} m" if gsd is not None else sensor]
    if array.attrs.get("datetime"):
        lines.append(str(array.attrs["datetime"]))
    ax.set_title("\n".join(lines), fontsize=9)
    ax.set_xticks([])
    ax.set_yticks([])


def _ordered(sensors: Sequence[str]) -> list[str]:
    return sorted(sensors, key=group_rank)


def plot_triplet(
    arrays: Mapping[str, xr.DataArray],
    valid: Mapping[str, xr.DataArray] | None,
    title: str,
    ax: Axes | Sequence[Axes] | None = None,
) -> Figure:
    """One panel per sensor (s2, l8, vhr, labels, those present) of one tile; returns the Figure.

    Imaging sensors are shown in true colour (bands picked by common name red / green / blue),
    labels with the WorldCover legend; pixels with ``valid == 0`` are overlaid in magenta. Panel
    titles give the sensor, its GSD (x coordinate spacing) and ``attrs['datetime']`` when set.
    ``ax``: axes to draw in (one per panel); by default a new figure.
    """
    sensors = _ordered(list(arrays))
    if not sensors:
        raise ValueError("plot_triplet: no arrays to plot")
    if ax is None:
        fig = _new_figure((3.2 * len(sensors), 3.6))
        axes = list(np.atleast_1d(fig.subplots(1, len(sensors))))
    else:
        axes = [ax] if isinstance(ax, Axes) else list(ax)
        if len(axes) != len(sensors):
            raise ValueError(f"plot_triplet: {len(sensors)} panels need {len(sensors)} axes, got {len(axes)}")
        fig = axes[0].figure
    for axis, sensor in zip(axes, sensors, strict=True):
        _panel(axis, sensor, arrays[sensor], (valid or {}).get(sensor))
    fig.suptitle(title)
    return fig


def save_triplets(pairs_like: PairsLike, tile_ids: Sequence[TileKey], out_dir: str | os.PathLike[str]) -> list[Path]:
    """Write ``triplet_<tile>.png`` for each tile of ``tile_ids``; returns the paths.

    ``pairs_like.tile(tile_id)`` gives ``{sensor: Dataset}`` with variables ``data`` (band, y, x)
    and ``valid`` (y, x) and attrs ``nodata`` and ``datetime``.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for tile_id in tile_ids:
        datasets = pairs_like.tile(tile_id)
        order = [s for s in pairs_like.sensors if s in datasets] + [s for s in datasets if s not in pairs_like.sensors]
        arrays, valid = {}, {}
        for sensor in order:
            ds = datasets[sensor]
            extra = {k: ds.attrs[k] for k in ("nodata", "datetime") if ds.attrs.get(k) is not None}
            arrays[sensor] = ds["data"].assign_attrs(**extra)
            if "valid" in ds:
                valid[sensor] = ds["valid"]
        fig = plot_triplet(arrays, valid, f"tile {tile_id}")
        path = out / f"triplet_{tile_id}.png"
        fig.savefig(path, dpi=100)
        written.append(path)
    return written


# --- coverage map ------------------------------------------------------------------------------
def _polygons(geometry: BaseGeometry) -> list[np.ndarray]:
    parts = getattr(geometry, "geoms", [geometry])
    return [np.asarray(p.exterior.coords) for p in parts if not p.is_empty]


def coverage_map(gdf: gpd.GeoDataFrame, path: str | os.PathLike[str]) -> Path:
    """A PNG map of the tile index: tiles coloured by split, grey and hatched where not quality_ok."""
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig = _new_figure((8, 6.5))
    ax = fig.subplots()
    n = len(gdf)
    if n == 0:
        ax.text(0.5, 0.5, "no tiles", ha="center", va="center", transform=ax.transAxes)
        ax.set_title("tile index: 0 tiles")
    else:
        ok = gdf["quality_ok"].astype(bool).to_numpy() if "quality_ok" in gdf else np.ones(n, bool)
        splits = gdf["split"].astype(str).to_numpy() if "split" in gdf else np.array(["train"] * n)
        geoms = list(gdf.geometry)
        for good in (True, False):
            patches, faces, edges = [], [], []
            for geom, split, is_ok in zip(geoms, splits, ok, strict=True):
                if bool(is_ok) != good or geom is None:
                    continue
                colour = SPLIT_COLORS.get(split, "#7f7f7f")
                for ring in _polygons(geom):
                    patches.append(Polygon(ring, closed=True))
                    faces.append(colour if good else "#c8c8c8")
                    edges.append("white" if good else colour)
            if patches:
                collection = PatchCollection(patches, facecolors=faces, edgecolors=edges, linewidths=0.5)
                if not good:
                    collection.set_hatch("///")
                ax.add_collection(collection)
        left, bottom, right, top = gdf.total_bounds
        pad = 0.02 * max(right - left, top - bottom)
        ax.set_xlim(left - pad, right + pad)
        ax.set_ylim(bottom - pad, top + pad)
        ax.set_aspect("equal")
        counts = {s: int((splits == s).sum()) for s in SPLIT_COLORS}
        bad = int((~ok).sum())
        ax.set_title(
            f"tile index: {n} tiles ({', '.join(f'{s} {c}' for s, c in counts.items())}); "
            f"{n - bad} quality ok, {bad} not",
            fontsize=10,
        )
        handles = [Patch(facecolor=c, label=s) for s, c in SPLIT_COLORS.items()]
        handles.append(Patch(facecolor="#c8c8c8", edgecolor="#555555", hatch="///", label="not quality_ok"))
        ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8)
        ax.set_xlabel("x (m, EPSG:2154)")
        ax.set_ylabel("y (m, EPSG:2154)")
        ax.ticklabel_format(style="plain", useOffset=False)
    fig.savefig(out, dpi=100)
    return out


def plan_map(tiles: pd.DataFrame, path: str | os.PathLike[str], title: str) -> Path:
    """A PNG map of a download plan: one pixel per grid tile, green where the tile has a full triplet,
    else coloured by its reason (the legend counts tiles)."""
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig = _new_figure((8, 7))
    ax = fig.subplots()
    if len(tiles) == 0:
        ax.text(0.5, 0.5, "no tiles", ha="center", va="center", transform=ax.transAxes)
    else:
        cols, rows = tiles["col"].to_numpy(), tiles["row"].to_numpy()
        kinds = np.where(tiles["triplet"].to_numpy(), "full triplet",
                         tiles["reason"].fillna("").str.replace(r" within .*$", "", regex=True))
        names = ["full triplet", *sorted(set(kinds) - {"full triplet"})]
        palette = ["#2ca02c", "#d62728", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"]
        grid = np.full((rows.max() - rows.min() + 1, cols.max() - cols.min() + 1), -1, dtype=np.int16)
        code = {name: i for i, name in enumerate(names)}
        grid[rows - rows.min(), cols - cols.min()] = [code[k] for k in kinds]
        colours = ListedColormap(["#ffffff", *(palette[i % len(palette)] for i in range(len(names)))])
        ax.imshow(grid + 1, cmap=colours, vmin=0, vmax=len(names), interpolation="nearest")
        counts = {name: int((kinds == name).sum()) for name in names}
        ax.legend(handles=[Patch(color=palette[i % len(palette)], label=f"{name}: {counts[name]:,}")
                           for i, name in enumerate(names)], loc="lower left", fontsize=8)
        ax.set_xticks([])
        ax.set_yticks([])
    ax.set_title(title, fontsize=10)
    fig.savefig(out, dpi=100)
    return out
