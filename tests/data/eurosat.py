"""A tiny EuroSAT (multispectral) in torchgeo's on-disk layout, generated in code from a seed: class
folders of 13-band uint16 GeoTIFFs (DN = reflectance x 10000) and torchgeo's split files.

``python -m tests.data.eurosat OUT`` writes one for a look.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import rasterio
from rasterio.transform import from_origin

from msc_france.eval.downstream import EUROSAT_TIF

CLASSES = {  # mean reflectance of the 13 bands (B01 ... B12, B8A): water, forest, bare soil
    "River": [0.06, 0.05, 0.04, 0.03, 0.03, 0.02, 0.02, 0.02, 0.01, 0.005, 0.01, 0.01, 0.02],
    "Forest": [0.03, 0.03, 0.05, 0.03, 0.08, 0.22, 0.28, 0.30, 0.10, 0.01, 0.15, 0.07, 0.36],
    "Industrial": [0.12, 0.13, 0.15, 0.18, 0.2, 0.22, 0.23, 0.24, 0.08, 0.01, 0.30, 0.25, 0.25],
}


def write_eurosat(root: str | Path, per_class: int = 12, size: int = 32, seed: int = 0) -> Path:
    root = Path(root)
    rng = np.random.default_rng(seed)
    names: dict[str, list[str]] = {"train": [], "test": []}
    for name, spectrum in CLASSES.items():
        folder = root / EUROSAT_TIF / name
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            texture = 1 + 0.15 * rng.standard_normal((size, size))
            image = np.asarray(spectrum)[:, None, None] * texture * rng.uniform(0.85, 1.15)
            dn = np.clip(image * 10000, 1, 65535).astype(np.uint16)
            path = folder / f"{name}_{i + 1}.tif"
            with rasterio.open(path, "w", driver="GTiff", width=size, height=size, count=13, dtype="uint16",
                               crs="EPSG:32631", transform=from_origin(500000, 4800000, 10, 10)) as dst:
                dst.write(dn)
            names["train" if i < per_class * 2 // 3 else "test"].append(path.with_suffix(".jpg").name)
    for split, files in names.items():
        (root / f"eurosat-{split}.txt").write_text("\n".join(files) + "\n")
    return root


if __name__ == "__main__":
    print(write_eurosat(sys.argv[1]))
