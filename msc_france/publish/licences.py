"""The terms of every source of a dataset (Sentinel-2, Landsat, VHR, WorldCover) and where its regions
were downloaded from: which licence each group's pixels carry, and whether they are the demo world's
synthetic imagery."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from msc_france.config import load_catalog
from msc_france.errors import UserError
from msc_france.provenance import catalog_record


@dataclass(frozen=True)
class Licence:
    """The terms of the source that fills one group of the store."""

    group: str
    source: str  # the product
    provider: str
    provider_url: str
    name: str  # the licence
    spdx: str | None  # its SPDX identifier, None where SPDX has none
    url: str  # the licence text
    attribution: str  # the line to print, ``{years}`` replaced by the years of the data used

    def credit(self, years: Iterable[int]) -> str:
        """The attribution line for data of ``years``."""
        return self.attribution.format(years=", ".join(str(y) for y in sorted(set(years))) or "n.d.")


LICENCES: dict[str, Licence] = {licence.group: licence for licence in (
    Licence("s2", "Copernicus Sentinel-2 MSI Level-2A", "European Space Agency (ESA), Copernicus programme",
            "https://sentinels.copernicus.eu", "Legal notice on the use of Copernicus Sentinel Data and Service "
            "Information (free, full and open access)", None,
            "https://sentinels.copernicus.eu/documents/247904/690755/Sentinel_Data_Legal_Notice",
            "Contains modified Copernicus Sentinel data {years}"),
    Licence("l8", "Landsat 8-9 OLI Collection 2 Level-2", "U.S. Geological Survey (USGS)",
            "https://www.usgs.gov/landsat-missions", "Public domain (USGS data policy: no copyright)", None,
            "https://www.usgs.gov/information-policies-and-instructions/copyrights-and-credits",
            "Landsat imagery {years} courtesy of the U.S. Geological Survey"),
    Licence("vhr", "IGN BD ORTHO", "Institut national de l'information géographique et forestière (IGN)",
            "https://geoservices.ign.fr/bdortho", "Licence Ouverte / Open Licence 2.0 (Etalab)", "etalab-2.0",
            "https://www.etalab.gouv.fr/licence-ouverte-open-licence/", "Source: IGN - BD ORTHO, {years}"),
    Licence("labels", "ESA WorldCover 10 m", "ESA WorldCover consortium", "https://esa-worldcover.org",
            "Creative Commons Attribution 4.0 International", "CC-BY-4.0",
            "https://creativecommons.org/licenses/by/4.0/",
            "© ESA WorldCover project {years} / Contains modified Copernicus Sentinel data ({years}) processed by "
            "ESA WorldCover consortium"),
)}


@dataclass(frozen=True)
class Origin:
    """Where the store's regions were downloaded from, as each download recorded it."""

    catalogs: tuple[str, ...]  # catalog names, sorted; empty when no download record was found
    synthetic: bool  # some region came from a demo world (synthetic imagery)


def origin(data: Path, regions: Iterable[str]) -> Origin:
    """The catalogs recorded by the downloads of ``regions`` under ``data/catalogs/``; a region whose
    download is not there (a moved store, a store made in code) adds nothing."""
    names = set()
    for region in regions:
        record = catalog_record(data / "catalogs" / region)
        if record is not None and record.catalog:
            names.add(record.catalog)
    synthetic = False
    for name in names:
        try:
            synthetic = synthetic or load_catalog(name).world is not None
        except UserError:  # a catalog file that is not here any more: its sources cannot be told
            continue
    return Origin(catalogs=tuple(sorted(names)), synthetic=synthetic)
