"""Land-cover classes of ESA WorldCover (the label layer of real data and of the demo world)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class LandCoverClass:
    code: int
    name: str
    color: str  # hex, the WorldCover legend


WORLDCOVER: tuple[LandCoverClass, ...] = (
    LandCoverClass(10, "tree cover", "#006400"),
    LandCoverClass(20, "shrubland", "#ffbb22"),
    LandCoverClass(30, "grassland", "#ffff4c"),
    LandCoverClass(40, "cropland", "#f096ff"),
    LandCoverClass(50, "built-up", "#fa0000"),
    LandCoverClass(60, "bare / sparse vegetation", "#b4b4b4"),
    LandCoverClass(70, "snow and ice", "#f0f0f0"),
    LandCoverClass(80, "permanent water bodies", "#0064c8"),
    LandCoverClass(90, "herbaceous wetland", "#0096a0"),
    LandCoverClass(95, "mangroves", "#00cf75"),
    LandCoverClass(100, "moss and lichen", "#fae6a0"),
)
WORLDCOVER_NODATA = 0
