"""What every published document says about the dataset: its name, description, keywords, release, the
sensors' band descriptions and the citation of X-STARS."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from importlib.metadata import version as package_version

from msc_france.landcover import WORLDCOVER, LandCoverClass
from msc_france.provenance import describe
from msc_france.publish.licences import Origin
from msc_france.publish.source import GroupView, StoreView
from msc_france.publish.tiles import TileSet
from msc_france.sensors import SENSORS

XSTARS_URL = "https://arxiv.org/abs/2405.09922"
XSTARS_DOI = "10.48550/arXiv.2405.09922"  # arXiv's DataCite DOI of the preprint
XSTARS_CITATION = ("Marsocci, V. and Audebert, N. (2025). Cross-sensor self-supervised training and alignment for "
                   "remote sensing. IEEE Journal of Selected Topics in Applied Earth Observations and Remote Sensing. "
                   "arXiv:2405.09922.")
XSTARS_BIBTEX = """@article{marsocci2025xstars,
  title         = {Cross-sensor self-supervised training and alignment for remote sensing},
  author        = {Marsocci, Valerio and Audebert, Nicolas},
  journal       = {IEEE Journal of Selected Topics in Applied Earth Observations and Remote Sensing},
  year          = {2025},
  eprint        = {2405.09922},
  archivePrefix = {arXiv}
}"""
KEYWORDS = {"s2": "Sentinel-2", "l8": "Landsat-8", "vhr": "very high resolution", "labels": "ESA WorldCover"}
LABELS_TITLE = "ESA WorldCover land cover (labels on the Sentinel-2 grid)"


@dataclass(frozen=True)
class Release:
    """A published version of the dataset and the day it was published."""

    version: str
    date: dt.date


@dataclass(frozen=True)
class BandInfo:
    """One band of a group, as the sensor descriptions define it."""

    name: str
    common_name: str | None
    center_wavelength: float | None  # micrometres
    fwhm: float | None  # micrometres


@dataclass(frozen=True)
class DatasetInfo:
    """The dataset as every document names and describes it."""

    id: str
    title: str
    description: str
    keywords: tuple[str, ...]
    release: Release
    synthetic: bool
    generator: str  # "msc-france X.Y.Z"

    @property
    def citation(self) -> str:
        """How to cite this dataset (the X-STARS paper is cited beside it)."""
        return (f"{self.title}, version {self.release.version} ({self.release.date.isoformat()}), "
                f"built with {self.generator}.")


def dataset_info(view: StoreView, tiles: TileSet, origin: Origin, release: Release) -> DatasetInfo:
    """The names and description of the dataset in ``view``."""
    recipe = view.recipe
    sensors = ", ".join(group_title(g) for g in view.groups)
    synthetic = (" Its imagery is the synthetic demo world of msc-france, rendered after the real products: "
                 "not real observations." if origin.synthetic else "")
    description = (f"{len(tiles.tiles)} co-located tiles of {recipe.grid.footprint:g} m on the Lambert-93 (EPSG:2154) "
                   f"France tile grid, built with the msc-france recipe {describe(recipe)}: {sensors}, in one Zarr v3 "
                   f"store with a GeoParquet tile index (splits, quality, source items), for cross-sensor "
                   f"self-supervised pretraining (X-STARS).{synthetic}")
    keywords = ("remote sensing", "earth observation", "multi-sensor", "self-supervised learning", "France",
                "Lambert-93", "Zarr", *(KEYWORDS[g.name] for g in view.groups if g.name in KEYWORDS))
    return DatasetInfo(id=f"msc-france-{view.name}", title=f"MSC-France {view.name}", description=description,
                       keywords=keywords, release=release, synthetic=origin.synthetic,
                       generator=f"msc-france {package_version('msc-france')}")


def group_title(group: GroupView) -> str:
    """The product a group holds."""
    return SENSORS[group.name].title if group.name in SENSORS else LABELS_TITLE


def band_info(group: GroupView) -> tuple[BandInfo, ...]:
    """The bands of ``group`` with their common names and widths (labels: one band, no wavelength)."""
    sensor = SENSORS.get(group.name)
    out = []
    for name, wavelength in zip(group.bands, group.wavelengths, strict=True):
        band = sensor.band(name) if sensor is not None else None
        out.append(BandInfo(name, band.common_name if band else None, wavelength or None, band.fwhm if band else None))
    return tuple(out)


def label_classes(group: GroupView) -> tuple[LandCoverClass, ...]:
    """The classes of a labels group (WorldCover); none for imagery."""
    return WORLDCOVER if group.name not in SENSORS else ()
