"""Surface reflectance of the demo world's materials, with the seasonal cycle of vegetation.

Each material's spectrum is a mix of endmembers (green leaves, dry straw, bare soil, ...) whose
weights follow the crop calendar of south-west France: winter wheat green in spring and
harvested in July, maize and sunflower green in summer, deciduous woods leafing out in April.
Endmember spectra are tabulated at Sentinel-2 band centres and interpolated to any band.
"""

from __future__ import annotations

import datetime as dt

import numpy as np

from msc_france.demo.landscape import Material

# Band centres (micrometres) at which the endmembers are tabulated.
WAVELENGTHS = np.array([0.443, 0.490, 0.560, 0.665, 0.705, 0.740, 0.783, 0.842, 0.865, 0.945, 1.610, 2.190])

ENDMEMBERS: dict[str, list[float]] = {
    "green_crop": [0.020, 0.030, 0.080, 0.035, 0.110, 0.300, 0.400, 0.450, 0.460, 0.440, 0.230, 0.110],
    "dry_straw": [0.060, 0.080, 0.130, 0.180, 0.220, 0.260, 0.280, 0.300, 0.310, 0.300, 0.380, 0.300],
    "soil": [0.055, 0.075, 0.115, 0.165, 0.195, 0.215, 0.235, 0.255, 0.265, 0.270, 0.340, 0.300],
    "broadleaf": [0.020, 0.028, 0.060, 0.030, 0.090, 0.280, 0.380, 0.420, 0.430, 0.410, 0.200, 0.090],
    "needleleaf": [0.015, 0.020, 0.045, 0.022, 0.060, 0.180, 0.240, 0.270, 0.280, 0.260, 0.130, 0.050],
    "litter": [0.040, 0.050, 0.075, 0.095, 0.120, 0.150, 0.170, 0.190, 0.200, 0.200, 0.280, 0.220],
    "water": [0.050, 0.052, 0.062, 0.040, 0.030, 0.020, 0.015, 0.012, 0.011, 0.006, 0.004, 0.003],
    "roof_tile": [0.060, 0.070, 0.095, 0.210, 0.245, 0.265, 0.280, 0.300, 0.310, 0.310, 0.380, 0.330],
    "roof_grey": [0.180, 0.195, 0.215, 0.235, 0.245, 0.255, 0.262, 0.270, 0.275, 0.275, 0.295, 0.270],
    "asphalt": [0.050, 0.058, 0.068, 0.078, 0.083, 0.088, 0.091, 0.097, 0.100, 0.100, 0.120, 0.110],
    "gravel": [0.140, 0.160, 0.190, 0.220, 0.235, 0.245, 0.255, 0.265, 0.270, 0.270, 0.320, 0.290],
    "cloud": [0.560, 0.555, 0.560, 0.570, 0.570, 0.570, 0.570, 0.565, 0.565, 0.500, 0.430, 0.330],
}
ENDMEMBER_NAMES = tuple(ENDMEMBERS)

# Phenology: day of year -> endmember weights; between nodes weights are interpolated linearly.
# Unlisted endmembers weigh 0; the rest of each row's weight (to 1) goes to the background.
PHENOLOGY: dict[Material, tuple[str, dict[int, dict[str, float]]]] = {
    Material.WHEAT: ("soil", {
        30: {"green_crop": 0.30}, 110: {"green_crop": 0.90}, 150: {"green_crop": 0.55, "dry_straw": 0.35},
        175: {"green_crop": 0.05, "dry_straw": 0.90}, 195: {"dry_straw": 0.45}, 260: {"dry_straw": 0.20},
        330: {"green_crop": 0.15}}),
    Material.MAIZE: ("soil", {
        110: {}, 145: {"green_crop": 0.10}, 180: {"green_crop": 0.60}, 210: {"green_crop": 0.95},
        245: {"green_crop": 0.60, "dry_straw": 0.30}, 275: {"green_crop": 0.10, "dry_straw": 0.60},
        300: {"dry_straw": 0.20}}),
    Material.SUNFLOWER: ("soil", {
        100: {}, 130: {"green_crop": 0.15}, 165: {"green_crop": 0.80}, 195: {"green_crop": 0.85},
        220: {"green_crop": 0.30, "dry_straw": 0.25, "litter": 0.25}, 250: {"litter": 0.60}, 280: {"dry_straw": 0.15}}),
    Material.GRASS: ("soil", {
        40: {"green_crop": 0.65, "dry_straw": 0.10}, 120: {"green_crop": 0.92},
        180: {"green_crop": 0.60, "dry_straw": 0.30},
        225: {"green_crop": 0.40, "dry_straw": 0.50}, 280: {"green_crop": 0.70, "dry_straw": 0.10}}),
    Material.FALLOW: ("soil", {
        60: {"green_crop": 0.15, "dry_straw": 0.10}, 200: {"green_crop": 0.25, "dry_straw": 0.25}}),
    Material.SHRUB: ("soil", {60: {"broadleaf": 0.35, "litter": 0.30}, 150: {"broadleaf": 0.55, "litter": 0.25},
                              240: {"broadleaf": 0.40, "litter": 0.35}}),
    Material.DECIDUOUS: ("litter", {60: {"broadleaf": 0.15}, 105: {"broadleaf": 0.70}, 140: {"broadleaf": 1.0},
                                    260: {"broadleaf": 0.95}, 300: {"broadleaf": 0.55}}),
    Material.CONIFER: ("litter", {1: {"needleleaf": 0.92}}),
    Material.WATER: ("water", {1: {}}),
    Material.GRAVEL: ("gravel", {1: {}}),
    Material.ROOF_TILE: ("roof_tile", {1: {}}),
    Material.ROOF_GREY: ("roof_grey", {1: {}}),
    Material.ASPHALT: ("asphalt", {1: {}}),
}


def endmember_matrix(wavelengths: np.ndarray) -> np.ndarray:
    """Endmember reflectance at the given band centres: (n_endmembers, n_bands)."""
    table = np.array([ENDMEMBERS[name] for name in ENDMEMBER_NAMES])
    return np.stack([np.interp(wavelengths, WAVELENGTHS, row) for row in table]).astype(np.float32)


def _weights_at(material: Material, day: float) -> np.ndarray:
    background, nodes = PHENOLOGY[material]
    days = np.array(sorted(nodes), dtype=float)
    rows = np.zeros((len(days), len(ENDMEMBER_NAMES)))
    for i, d in enumerate(days):
        for name, w in nodes[int(d)].items():
            rows[i, ENDMEMBER_NAMES.index(name)] = w
        rows[i, ENDMEMBER_NAMES.index(background)] += 1 - rows[i].sum()
    day = float(np.clip(day, days[0], days[-1]))
    return np.array([np.interp(day, days, rows[:, k]) for k in range(rows.shape[1])])


def unit_weights(unit_material: np.ndarray, unit_phase_days: np.ndarray, date: dt.date) -> np.ndarray:
    """Endmember weights of every unit on ``date``: (n_units, n_endmembers)."""
    day = date.timetuple().tm_yday
    out = np.empty((len(unit_material), len(ENDMEMBER_NAMES)), dtype=np.float32)
    cache: dict[tuple[int, float], np.ndarray] = {}
    for i, (material, shift) in enumerate(zip(unit_material, np.round(unit_phase_days), strict=True)):
        key = (int(material), float(shift))
        if key not in cache:
            cache[key] = _weights_at(Material(material), day - shift)
        out[i] = cache[key]
    return out


def cloud_spectrum(wavelengths: np.ndarray) -> np.ndarray:
    """Reflectance of an optically thick cloud at the given band centres."""
    spectrum: np.ndarray = np.interp(wavelengths, WAVELENGTHS, ENDMEMBERS["cloud"]).astype(np.float32)
    return spectrum
