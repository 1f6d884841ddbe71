"""The France tile grid: one value shared by every stage.

Lambert-93 (EPSG:2154), a fixed upper-left origin that covers metropolitan France and Corsica,
square tiles of ``footprint`` metres, and for each sensor a GSD that divides the footprint.
Tile ``(col, row)`` counts from the origin eastwards and southwards, so a tile id names the same
ground whatever region is processed. Per-sensor pixel grids are odc-geo ``GeoBox`` values: the
mosaic of a sensor over the whole extent, and each tile a slice of it.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np
import shapely
from affine import Affine
from odc.geo.geobox import GeoBox
from odc.geo.geom import BoundingBox, Geometry

from msc_france.errors import UserError
from msc_france.sensors import SENSORS

CRS = "EPSG:2154"
# Upper-left corner of tile (0, 0) and the size of the extent, in Lambert-93 metres. The extent
# covers metropolitan France and Corsica (x 97 km to 1245 km, y 6040 km to 7111 km) with margin.
ORIGIN: tuple[float, float] = (0.0, 7_200_000.0)
EXTENT_SIZE: tuple[float, float] = (1_290_000.0, 1_200_000.0)  # width, height
# The largest tile footprint: one tile as wide as the extent is the most a grid over France can mean.
MAX_FOOTPRINT = min(EXTENT_SIZE)

_TILE_ID = re.compile(r"^(\d{4,})_(\d{4,})$")


class TileId(NamedTuple):
    """A tile's column (from the west edge) and row (from the north edge) in the grid."""

    col: int
    row: int

    def __str__(self) -> str:
        return f"{self.col:04d}_{self.row:04d}"

    @classmethod
    def parse(cls, text: str) -> TileId:
        """``"0297_0481"`` to ``TileId(297, 481)``."""
        match = _TILE_ID.match(text.strip())
        if not match:
            raise UserError(f"bad tile id {text!r}; expected COL_ROW like '0297_0481'")
        return cls(int(match.group(1)), int(match.group(2)))


def _integer_ratio(numerator: float, denominator: float) -> int | None:
    ratio = numerator / denominator
    nearest = round(ratio)
    return nearest if nearest >= 1 and math.isclose(ratio, nearest, rel_tol=0, abs_tol=1e-9) else None


@dataclass(frozen=True)
class TileGrid:
    """Tile footprint and per-sensor GSDs on the fixed Lambert-93 France grid."""

    footprint: float
    gsds: tuple[tuple[str, float], ...]

    def __post_init__(self) -> None:
        if not (math.isfinite(self.footprint) and self.footprint > 0):
            raise UserError(f"grid footprint must be a positive number of metres, got {self.footprint}")
        if self.footprint > MAX_FOOTPRINT:
            raise UserError(f"grid footprint {self.footprint / 1000:g} km is larger than the France grid's extent; "
                            f"the most is {MAX_FOOTPRINT / 1000:g} km")
        for key, gsd in self.gsds:
            if not (math.isfinite(gsd) and gsd > 0):
                raise UserError(f"grid: the gsd of {key} must be a positive number of metres, got {gsd:g}")
            if _integer_ratio(self.footprint, gsd) is None:
                raise UserError(
                    f"grid: footprint {self.footprint:g} m is not a whole number of {key} pixels of "
                    f"{gsd:g} m; choose a GSD that divides the footprint"
                )

    @classmethod
    def create(cls, footprint: float, gsd: Mapping[str, float]) -> TileGrid:
        """A grid from a footprint in metres and ``{sensor: gsd}`` (sensor order does not matter)."""
        order = list(SENSORS)
        rank = lambda key: (order.index(key) if key in order else len(order), key)  # noqa: E731
        return cls(float(footprint), tuple((k, float(gsd[k])) for k in sorted(gsd, key=rank)))

    # --- description ---------------------------------------------------------------------------
    @property
    def crs(self) -> str:
        return CRS

    @property
    def sensors(self) -> tuple[str, ...]:
        return tuple(k for k, _ in self.gsds)

    @property
    def shape(self) -> tuple[int, int]:
        """Number of tiles as (rows, cols)."""
        return (math.ceil(EXTENT_SIZE[1] / self.footprint), math.ceil(EXTENT_SIZE[0] / self.footprint))

    def gsd(self, sensor: str) -> float:
        for key, value in self.gsds:
            if key == sensor:
                return value
        raise UserError(f"the grid has no sensor {sensor!r}; it has {', '.join(self.sensors)}")

    def tile_px(self, sensor: str) -> int:
        """Pixels along one side of a tile for ``sensor``."""
        return round(self.footprint / self.gsd(sensor))

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able description; equal dicts mean the same grid."""
        return {
            "crs": CRS,
            "origin": list(ORIGIN),
            "extent_size": list(EXTENT_SIZE),
            "footprint": self.footprint,
            "gsd": dict(self.gsds),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TileGrid:
        if data.get("crs") != CRS or list(data.get("origin", [])) != list(ORIGIN):
            raise UserError(f"grid description {dict(data)} is not on the Lambert-93 France grid")
        return cls.create(data["footprint"], data["gsd"])

    # --- tiles ---------------------------------------------------------------------------------
    def _check(self, tile: TileId) -> None:
        rows, cols = self.shape
        if not (0 <= tile.col < cols and 0 <= tile.row < rows):
            raise UserError(f"tile {tile} is outside the France grid ({cols} x {rows} tiles)")

    def tile_bounds(self, tile: TileId) -> BoundingBox:
        """Tile bounds in Lambert-93 metres."""
        self._check(tile)
        left = ORIGIN[0] + tile.col * self.footprint
        top = ORIGIN[1] - tile.row * self.footprint
        return BoundingBox(left, top - self.footprint, left + self.footprint, top, crs=CRS)

    def tile_boxes(self, cols: np.ndarray, rows: np.ndarray) -> np.ndarray:
        """Shapely boxes (Lambert-93) of the tiles ``(cols[i], rows[i])``: :meth:`tile_bounds` for many."""
        left = ORIGIN[0] + np.asarray(cols) * self.footprint
        top = ORIGIN[1] - np.asarray(rows) * self.footprint
        return shapely.box(left, top - self.footprint, left + self.footprint, top)

    def tile_at(self, x: float, y: float) -> TileId:
        """The tile that contains Lambert-93 point ``(x, y)``."""
        tile = TileId(int((x - ORIGIN[0]) // self.footprint), int((ORIGIN[1] - y) // self.footprint))
        self._check(tile)
        return tile

    def tiles_in(self, region: Geometry) -> list[TileId]:
        """Tiles whose footprint intersects ``region`` (any CRS), sorted by row then column."""
        box = region.boundingbox
        # Densify in the region's own units so that edges follow their curve in Lambert-93.
        geom = region.segmented(max(box.span_x, box.span_y) / 512).to_crs(CRS)
        left, bottom, right, top = geom.boundingbox
        rows, cols = self.shape
        col0 = max(int((left - ORIGIN[0]) // self.footprint), 0)
        col1 = min(int((right - ORIGIN[0]) // self.footprint), cols - 1)
        row0 = max(int((ORIGIN[1] - top) // self.footprint), 0)
        row1 = min(int((ORIGIN[1] - bottom) // self.footprint), rows - 1)
        if col1 < col0 or row1 < row0:
            return []
        cc, rr = np.meshgrid(np.arange(col0, col1 + 1), np.arange(row0, row1 + 1))
        x0 = ORIGIN[0] + cc.ravel() * self.footprint
        y1 = ORIGIN[1] - rr.ravel() * self.footprint
        boxes = shapely.box(x0, y1 - self.footprint, x0 + self.footprint, y1)
        hit = _hits(boxes, geom.geom, x0 + self.footprint / 2, y1 - self.footprint / 2)
        return [TileId(int(c), int(r)) for c, r in zip(cc.ravel()[hit], rr.ravel()[hit], strict=True)]

    # --- pixel grids ---------------------------------------------------------------------------
    def geobox(self, sensor: str) -> GeoBox:
        """The sensor's pixel grid over the whole France extent (one mosaic)."""
        gsd = self.gsd(sensor)
        px = self.tile_px(sensor)
        rows, cols = self.shape
        return GeoBox((rows * px, cols * px), Affine(gsd, 0.0, ORIGIN[0], 0.0, -gsd, ORIGIN[1]), CRS)

    def tile_geobox(self, tile: TileId, sensor: str) -> GeoBox:
        """The sensor's pixel grid of one tile: a slice of :meth:`geobox`."""
        self._check(tile)
        px = self.tile_px(sensor)
        return self.geobox(sensor)[tile.row * px : (tile.row + 1) * px, tile.col * px : (tile.col + 1) * px]

    def ratio(self, fine: str, coarse: str) -> int:
        """How many ``fine`` pixels fit along one ``coarse`` pixel (an integer, or an error)."""
        ratio = _integer_ratio(self.gsd(coarse), self.gsd(fine))
        if ratio is None:
            raise UserError(
                f"{coarse} pixels ({self.gsd(coarse):g} m) do not nest {fine} pixels ({self.gsd(fine):g} m)"
            )
        return ratio

    def nested_slices(self, coarse: str, row: int, col: int, fine: str) -> tuple[slice, slice]:
        """The block of ``fine`` pixels under pixel ``(row, col)`` of ``coarse``, in tile coordinates."""
        k = self.ratio(fine, coarse)
        return slice(row * k, (row + 1) * k), slice(col * k, (col + 1) * k)

    def pixel_to_pixel(self, src: str, rows: np.ndarray, cols: np.ndarray, dst: str) -> tuple[np.ndarray, np.ndarray]:
        """Tile pixel indices of ``src`` to the ``dst`` pixels that contain their centres."""
        scale = self.gsd(src) / self.gsd(dst)

        def to_dst(i: np.ndarray) -> np.ndarray:
            return np.floor((np.asarray(i) + 0.5) * scale).astype(np.int64)

        return to_dst(rows), to_dst(cols)


def _hits(boxes: np.ndarray, target: shapely.Geometry, cx: np.ndarray, cy: np.ndarray) -> np.ndarray:
    """Which boxes share interior with ``target``; ``cx, cy`` are the box centres.

    A box that meets no edge of ``target`` lies wholly inside or outside it, so its centre decides;
    only the boxes near an edge go through the exact (slow) predicates: France in a second, not 15.
    """
    def exact(b: np.ndarray) -> np.ndarray:
        return shapely.intersects(b, target) & ~shapely.touches(b, target)

    if shapely.get_type_id(target) not in (3, 6):  # not (multi)polygon: the exact test everywhere
        return exact(boxes)
    lines = shapely.get_parts(shapely.boundary(target))
    coords, line = shapely.get_coordinates(lines, return_index=True)
    same = line[1:] == line[:-1]
    edges = shapely.linestrings(np.stack([coords[:-1][same], coords[1:][same]], axis=1))
    hit = shapely.contains_xy(target, cx, cy)
    near = np.unique(shapely.STRtree(boxes).query(edges)[1])
    hit[near] = exact(boxes[near])
    return hit


def extent_lonlat() -> BoundingBox:
    """The lon/lat box (EPSG:4326) that encloses the grid's extent."""
    left, top = ORIGIN
    extent = Geometry(shapely.box(left, top - EXTENT_SIZE[1], left + EXTENT_SIZE[0], top), CRS)
    return extent.segmented(10_000).to_crs("EPSG:4326").boundingbox


def parse_lonlat_box(text: str, what: str = "box") -> tuple[float, float, float, float]:
    """``minlon,minlat,maxlon,maxlat`` as four numbers, checked by :func:`check_lonlat_box`; a one-line
    error otherwise."""
    try:
        west, south, east, north = (float(v) for v in text.split(","))
    except ValueError:
        raise UserError(f"bad {what} {text!r}; expected minlon,minlat,maxlon,maxlat") from None
    check_lonlat_box(west, south, east, north, what)
    return west, south, east, north


def check_lonlat_box(west: float, south: float, east: float, north: float, what: str = "box") -> None:
    """A one-line error unless ``west, south, east, north`` is a finite lon/lat box, min < max, that lies
    within the grid's extent (so that it projects to Lambert-93)."""
    values = (west, south, east, north)
    if not all(math.isfinite(v) for v in values):
        raise UserError(f"{what} {','.join(f'{v:g}' for v in values)}: every value must be a finite number")
    if not (west < east and south < north):
        raise UserError(f"{what} {west:g},{south:g},{east:g},{north:g}: expected minlon,minlat,maxlon,maxlat "
                        "with minlon < maxlon and minlat < maxlat")
    outer = extent_lonlat()
    if not (outer.left <= west and east <= outer.right and outer.bottom <= south and north <= outer.top):
        raise UserError(f"{what} {west:g},{south:g},{east:g},{north:g} is not within the France grid's extent "
                        f"(lon {outer.left:.2f} to {outer.right:.2f}, lat {outer.bottom:.2f} to {outer.top:.2f})")


def tiles_between(grid: TileGrid, tiles: Iterable[TileId]) -> BoundingBox:
    """Lambert-93 bounds that enclose ``tiles``."""
    bounds = [grid.tile_bounds(t) for t in tiles]
    if not bounds:
        raise UserError("no tiles given")
    return BoundingBox(
        min(b.left for b in bounds), min(b.bottom for b in bounds),
        max(b.right for b in bounds), max(b.top for b in bounds), crs=CRS,
    )
