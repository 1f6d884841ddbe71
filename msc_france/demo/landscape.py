"""The demo world's ground truth: a land-cover map with spatial structure on a Lambert-93 grid.

Cropland of several kinds in field parcels, woods, a meandering river with riparian forest,
gravel-pit lakes, a town of street blocks and buildings, and main roads that cross. Each pixel
holds a *material* (what the spectra are drawn from) and a *unit* (a parcel, or the material
itself) so that each field has its own crop, brightness and phenology.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum

import numpy as np
from odc.geo.geobox import GeoBox
from scipy import ndimage
from scipy.spatial import cKDTree


class Material(IntEnum):
    WATER = 0
    DECIDUOUS = 1
    CONIFER = 2
    GRASS = 3
    WHEAT = 4
    MAIZE = 5
    SUNFLOWER = 6
    FALLOW = 7
    GRAVEL = 8
    ROOF_TILE = 9
    ROOF_GREY = 10
    ASPHALT = 11
    SHRUB = 12


# Material -> ESA WorldCover class code.
WORLDCOVER_OF: dict[Material, int] = {
    Material.WATER: 80,
    Material.DECIDUOUS: 10,
    Material.CONIFER: 10,
    Material.GRASS: 30,
    Material.WHEAT: 40,
    Material.MAIZE: 40,
    Material.SUNFLOWER: 40,
    Material.FALLOW: 40,
    Material.GRAVEL: 60,
    Material.ROOF_TILE: 50,
    Material.ROOF_GREY: 50,
    Material.ASPHALT: 50,
    Material.SHRUB: 20,
}
CROPS = (Material.WHEAT, Material.MAIZE, Material.SUNFLOWER, Material.GRASS, Material.FALLOW)
CROP_SHARES = (0.30, 0.22, 0.18, 0.15, 0.15)


@dataclass
class Landscape:
    """Ground truth on ``geobox``: materials, units and per-unit traits, plus named features."""

    geobox: GeoBox
    material: np.ndarray  # uint8 (Material)
    unit: np.ndarray  # int32: parcel index, or n_parcels + material for non-field pixels
    unit_material: np.ndarray  # uint8 per unit
    unit_brightness: np.ndarray  # float32 per unit, multiplicative
    unit_phase_days: np.ndarray  # float32 per unit, phenology shift
    texture: np.ndarray  # float32, multiplicative, around 1
    shade: np.ndarray  # float32, 1 in sun, < 1 in building shadows
    features: dict[str, list[float]] = field(default_factory=dict)  # Lambert-93 points

    def worldcover(self) -> np.ndarray:
        """WorldCover class code per truth pixel."""
        lut = np.zeros(len(Material), dtype=np.uint8)
        for material, code in WORLDCOVER_OF.items():
            lut[material] = code
        codes: np.ndarray = lut[self.material]
        return codes


def smooth_noise(shape: tuple[int, int], scale_px: float, rng: np.random.Generator) -> np.ndarray:
    """Zero-mean, unit-variance noise with features about ``scale_px`` pixels across."""
    coarse = (max(2, int(np.ceil(shape[0] / scale_px)) + 3), max(2, int(np.ceil(shape[1] / scale_px)) + 3))
    field_: np.ndarray = ndimage.zoom(rng.standard_normal(coarse), scale_px, order=3, mode="nearest")
    field_ = field_[: shape[0], : shape[1]]
    noise: np.ndarray = ((field_ - field_.mean()) / (field_.std() + 1e-9)).astype(np.float32)
    return noise


def _rng(seed: int, purpose: int) -> np.random.Generator:
    return np.random.default_rng([seed, purpose])


def _parcels(shape: tuple[int, int], gsd: float, rng: np.random.Generator) -> np.ndarray:
    """Field parcel ids from an anisotropic Voronoi tessellation of a jittered lattice."""
    spacing = 260.0 / gsd
    angle = rng.uniform(0, np.pi)
    ny, nx = shape
    span = int(np.hypot(ny, nx) / spacing) + 3
    iu, iv = np.meshgrid(np.arange(-span, span), np.arange(-span, span))
    u = (iu + rng.uniform(-0.35, 0.35, iu.shape)) * spacing * 1.6  # elongated fields
    v = (iv + rng.uniform(-0.35, 0.35, iv.shape)) * spacing
    cx, cy = nx / 2, ny / 2
    sx = cx + u * np.cos(angle) - v * np.sin(angle)
    sy = cy + u * np.sin(angle) + v * np.cos(angle)
    inside = (sx > -spacing) & (sx < nx + spacing) & (sy > -spacing) & (sy < ny + spacing)
    seeds = np.column_stack([sy[inside], sx[inside]])
    # Stretch along the elongation axis so cells become rectangular-ish strips.
    rot = np.array([[np.cos(angle), np.sin(angle)], [-np.sin(angle), np.cos(angle)]])
    stretch = np.array([0.6, 1.0])
    step = 2
    yy, xx = np.mgrid[0:ny:step, 0:nx:step]
    points = np.column_stack([yy.ravel(), xx.ravel()]).astype(np.float32)
    tree = cKDTree((seeds[:, ::-1] @ rot.T) * stretch)
    _, nearest = tree.query((points[:, ::-1] @ rot.T) * stretch, workers=1)
    ids = nearest.reshape(yy.shape).astype(np.int32)
    full: np.ndarray = np.repeat(np.repeat(ids, step, axis=0), step, axis=1)[:ny, :nx]
    return full


def _line_distance(xx: np.ndarray, yy: np.ndarray, p: tuple[float, float], angle: float) -> np.ndarray:
    """Distance of each pixel centre to the infinite line through ``p`` at ``angle``."""
    distance: np.ndarray = np.abs(-(xx - p[0]) * np.sin(angle) + (yy - p[1]) * np.cos(angle))
    return distance


def generate_landscape(geobox: GeoBox, seed: int) -> Landscape:
    """Draw the ground truth on ``geobox`` (square Lambert-93 pixels), deterministically from ``seed``."""
    ny, nx = geobox.shape
    gsd = abs(geobox.resolution.x)
    yy, xx = np.mgrid[0:ny, 0:nx].astype(np.float32)

    def m(metres: float) -> float:
        """Metres to pixels."""
        return metres / gsd

    # Fields everywhere first.
    rng = _rng(seed, 1)
    parcel = _parcels((ny, nx), gsd, rng)
    n_parcels = int(parcel.max()) + 1
    parcel_crop = rng.choice(np.array(CROPS, dtype=np.uint8), size=n_parcels, p=CROP_SHARES)
    material = parcel_crop[parcel]
    edges = (np.diff(parcel, axis=0, prepend=parcel[:1]) != 0) | (np.diff(parcel, axis=1, prepend=parcel[:, :1]) != 0)
    margins = ndimage.binary_dilation(edges, iterations=max(1, round(m(3))))
    material = np.where(margins, np.uint8(Material.GRASS), material)
    in_field = ~margins

    # Woods and scrub from smooth noise.
    rng = _rng(seed, 2)
    wood = smooth_noise((ny, nx), m(450), rng)
    kind = smooth_noise((ny, nx), m(900), rng)
    trees = np.where(kind > 0.3, np.uint8(Material.CONIFER), np.uint8(Material.DECIDUOUS))
    material = np.where(wood > 1.05, trees, material)
    material = np.where((wood > 0.8) & (wood <= 1.05), np.uint8(Material.SHRUB), material)
    in_field &= wood <= 0.8

    # A town towards the north-east corner, with streets and buildings on rotated lots.
    rng = _rng(seed, 3)
    urban_field = (xx / nx + (1 - yy / ny)) * 1.3 + 0.35 * smooth_noise((ny, nx), m(500), rng)
    urban = urban_field > 1.75
    theta = rng.uniform(-0.4, 0.4)
    u = xx * np.cos(theta) + yy * np.sin(theta)
    v = -xx * np.sin(theta) + yy * np.cos(theta)
    block = m(rng.uniform(100, 130))
    street = (np.mod(u, block) < m(9)) | (np.mod(v, block) < m(9))
    industrial = urban & (smooth_noise((ny, nx), m(400), rng) > 0.9)
    lot = np.where(industrial, m(48), m(18))
    lot_u = np.floor(u / lot).astype(np.int64)
    lot_v = np.floor(v / lot).astype(np.int64)
    table = rng.random((4096,))
    draw = table[(lot_u * 7919 + lot_v * 104729) % table.size]
    inset = np.minimum(np.mod(u, lot), np.mod(v, lot)) < m(2.5)
    building = urban & ~street & ~inset & (draw < np.where(industrial, 0.85, 0.68))
    roof = np.where(industrial | (draw < 0.12), np.uint8(Material.ROOF_GREY), np.uint8(Material.ROOF_TILE))
    garden = np.where(draw > 0.9, np.uint8(Material.DECIDUOUS), np.uint8(Material.GRASS))
    material = np.where(urban, np.where(street, np.uint8(Material.ASPHALT), np.where(building, roof, garden)), material)
    in_field &= ~urban

    # A meandering river from north to south with riparian forest, and gravel-pit lakes beside it.
    rng = _rng(seed, 4)
    phase = rng.uniform(0, 2 * np.pi)
    centre = nx * 0.3 + m(260) * np.sin(2 * np.pi * yy / m(2400) + phase) + m(90) * np.sin(2 * np.pi * yy / m(700))
    offset = np.abs(xx - centre)
    river = offset < m(38)
    riparian = (offset < m(38 + 45)) & ~river & ~urban
    material = np.where(riparian, np.uint8(Material.DECIDUOUS), material)
    material = np.where(river, np.uint8(Material.WATER), material)
    in_field &= ~(river | riparian)
    features: dict[str, list[float]] = {}
    lakes = np.zeros((ny, nx), dtype=bool)
    for k in range(3):
        ly = ny * (0.25 + 0.25 * k) + rng.uniform(-m(80), m(80))
        lx = float(centre[int(ly), 0]) + m(rng.uniform(230, 330)) * (1 if k != 1 else -1)
        ax, ay = m(rng.uniform(110, 180)), m(rng.uniform(80, 130))
        lake = ((xx - lx) / ax) ** 2 + ((yy - ly) / ay) ** 2 < 1
        ring = (((xx - lx) / (ax + m(12))) ** 2 + ((yy - ly) / (ay + m(12))) ** 2 < 1) & ~lake
        material = np.where(ring & ~river, np.uint8(Material.GRAVEL), material)
        lakes |= lake
        if k == 1:
            features["lake_center"] = list(geobox.affine @ (lx + 0.5, ly + 0.5))
            features["lake_east_edge"] = list(geobox.affine @ (lx + ax, ly + 0.5))
            features["lake_semi_axes_m"] = [ax * gsd, ay * gsd]
    material = np.where(lakes, np.uint8(Material.WATER), material)
    in_field &= ~lakes

    # Two main roads that cross near the middle of the scene.
    rng = _rng(seed, 5)
    cross = (nx * rng.uniform(0.45, 0.6), ny * rng.uniform(0.45, 0.6))
    for angle in (rng.uniform(0.15, 0.45), rng.uniform(1.2, 1.45)):
        material = np.where(_line_distance(xx, yy, cross, angle) < m(6), np.uint8(Material.ASPHALT), material)
    features["road_crossing"] = list(geobox.affine @ (cross[0], cross[1]))
    in_field &= material != Material.ASPHALT

    # Units: one per field parcel, then one per material for everything else.
    unit = np.where(in_field, parcel, n_parcels + material.astype(np.int32)).astype(np.int32)
    n_units = n_parcels + len(Material)
    rng = _rng(seed, 6)
    unit_material = np.concatenate([parcel_crop, np.arange(len(Material), dtype=np.uint8)])
    unit_brightness = rng.uniform(0.88, 1.12, n_units).astype(np.float32)
    unit_brightness[n_parcels:] = 1.0
    unit_phase = rng.normal(0, 9, n_units).astype(np.float32)
    unit_phase[n_parcels:] = 0.0
    fine, broad = smooth_noise((ny, nx), m(12), rng), smooth_noise((ny, nx), m(60), rng)
    texture = (1 + 0.035 * fine + 0.02 * broad).astype(np.float32)

    # Building shadows: sun from the south-east mid-morning, buildings cast 2-3 px to the north-west.
    is_roof = (material == Material.ROOF_TILE) | (material == Material.ROOF_GREY)
    reach = max(1, round(m(5)))
    cast = ndimage.shift(is_roof.astype(np.float32), (-reach, -reach), order=0, mode="constant") > 0.5
    shade = np.where(cast & ~is_roof, np.float32(0.45), np.float32(1.0))

    return Landscape(
        geobox=geobox,
        material=material.astype(np.uint8),
        unit=unit,
        unit_material=unit_material,
        unit_brightness=unit_brightness,
        unit_phase_days=unit_phase,
        texture=texture,
        shade=shade.astype(np.float32),
        features=features,
    )
