"""What a stage was run with, recorded in what it writes so that the next stage follows it: the
recipe (its name and full content) and, for a download, the catalog. The download records it in
its local catalog, the tiles stage in the store's root attrs (``docs/design.md``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from msc_france.config import Recipe, Strict
from msc_france.errors import UserError

CATALOG_KEY = "msc:download"  # the record's key in a local catalog's catalog.json
STORE_KEY = "recipe_record"  # its key in the store's root attrs ``msc_france``


class RecipeRecord(Strict):
    """The recipe a stage used and, for a download, the catalog it searched."""

    recipe: Recipe
    catalog: str | None = None

    def to_json(self) -> dict[str, Any]:
        return self.model_dump(mode="json", exclude_none=True)

    @classmethod
    def from_json(cls, data: object, where: str) -> RecipeRecord:
        """The record read back; a damaged one is a one-line error naming ``where`` it was read."""
        try:
            return cls.model_validate(data)
        except (ValidationError, UserError):
            raise UserError(f"the recipe recorded in {where} is unreadable; "
                            "run the stage that wrote it again") from None


def catalog_record(folder: Path) -> RecipeRecord | None:
    """The record of the download in ``folder`` (``catalog.json``); None when it has none or no catalog."""
    path = folder / "catalog.json"
    try:
        data = json.loads(path.read_text()).get(CATALOG_KEY)
    except FileNotFoundError:
        return None
    except ValueError:
        raise UserError(f"{path} is damaged; download the region again") from None
    return None if data is None else RecipeRecord.from_json(data, str(path))


def content(recipe: Recipe) -> dict[str, Any]:
    """What a recipe makes (grid, sensors and bands, labels), whatever its name, description and splits
    (the splits are the index's, drawn when tiling, not the downloaded pixels')."""
    return recipe.model_dump(mode="json", exclude={"name", "description", "splits"})


def describe(recipe: Recipe) -> str:
    """A recipe in a few words: its name, tile size and bands."""
    sensors = "; ".join(f"{key} {' '.join(s.bands)} at {recipe.grid.gsd[key]:g} m" for key, s in recipe.sensors.items())
    return f"{recipe.name} ({recipe.grid.footprint:g} m tiles; {sensors}{'; labels' if recipe.labels else ''})"


def lacks(downloaded: Recipe, wanted: Recipe) -> str | None:
    """What stops ``wanted`` from tiling a download made with ``downloaded``; None if nothing."""
    if wanted.grid.footprint != downloaded.grid.footprint or any(
            wanted.grid.gsd[key] != downloaded.grid.gsd.get(key) for key in wanted.sensors):
        return "it is on another grid"
    missing = []
    for key, selection in wanted.sensors.items():
        have = downloaded.sensors.get(key)
        bands = selection.bands if have is None else [b for b in selection.bands if b not in have.bands]
        if bands:
            missing.append(f"{key} {' '.join(bands)}")
    if wanted.labels and not downloaded.labels:
        missing.append("labels")
    return f"the download lacks {'; '.join(missing)}" if missing else None
