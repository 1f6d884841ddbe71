"""The dataset card (``README.md``): the YAML front matter that data hubs read (Hugging Face style), then
what the dataset is, its sensors and bands, splits, files, how to load it, licences and citation; all
from the store, its index and the sensor descriptions."""

from __future__ import annotations

import math

import yaml

from msc_france.publish.collection import open_kwargs
from msc_france.publish.dataset import XSTARS_BIBTEX, XSTARS_URL, DatasetInfo, band_info, group_title, label_classes
from msc_france.publish.layout import CHANGELOG, COLLECTION, CROISSANT, MIRROR, PROVENANCE, Layout
from msc_france.publish.licences import Licence, Origin
from msc_france.publish.source import StoreView
from msc_france.publish.tiles import TileSet

TAGS = {"s2": "sentinel-2", "l8": "landsat-8", "vhr": "very-high-resolution", "labels": "land-cover"}


def render_card(view: StoreView, tiles: TileSet, info: DatasetInfo, licences: list[Licence], origin: Origin,
                layout: Layout) -> str:
    """The card's Markdown."""
    sections = [
        _front_matter(view, tiles, info),
        _intro(view, tiles, info, origin),
        _sensors(view, tiles),
        _splits(tiles),
        _files(layout),
        _loading(view, layout),
        _licences(tiles, licences, origin),
        _citation(info),
    ]
    return "\n\n".join(s.strip("\n") for s in sections) + "\n"


def size_category(count: int) -> str:
    """The Hugging Face size category of ``count`` records (``n<1K``, ``1K<n<10K``, ...)."""
    if count < 1000:
        return "n<1K"
    names = ["1K", "10K", "100K", "1M", "10M", "100M", "1B"]
    step = min(int(math.log10(count)) - 3, len(names) - 2)
    return f"{names[step]}<n<{names[step + 1]}"


def _front_matter(view: StoreView, tiles: TileSet, info: DatasetInfo) -> str:
    tags = ["remote-sensing", "earth-observation", "satellite-imagery", "multi-sensor", "self-supervised-learning",
            "geospatial", "france", "zarr", "stac", *(TAGS[g.name] for g in view.groups if g.name in TAGS)]
    if info.synthetic:
        tags.append("synthetic")
    segmentation = ["image-segmentation"] if any(label_classes(g) for g in view.groups) else []
    tasks = ["image-feature-extraction", *segmentation]
    meta = {
        "pretty_name": f"{info.title} {info.release.version}", "license": "other",
        "license_name": "per-source (Copernicus Sentinel, USGS public domain, Etalab 2.0, CC-BY-4.0)",
        "license_link": "#licences",
        "tags": tags, "task_categories": tasks, "size_categories": [size_category(len(tiles.tiles))],
        "configs": [{"config_name": "tiles", "data_files": MIRROR}],
    }
    return f"---\n{yaml.safe_dump(meta, sort_keys=False, allow_unicode=True)}---"


def _intro(view: StoreView, tiles: TileSet, info: DatasetInfo, origin: Origin) -> str:
    west, south, east, north = tiles.bbox
    span = tiles.interval
    dates = f"{span[0].date().isoformat()} to {span[1].date().isoformat()}" if span else "unknown"
    synthetic = ("\n> **Synthetic data.** The imagery of this store is msc-france's demo world, rendered after the "
                 "real products (same bands, encodings and grids); it is not an observation of the Earth.\n"
                 if origin.synthetic else "")
    catalogs = ", ".join(origin.catalogs) or "not recorded beside the store"
    return f"""# {info.title}
{synthetic}
{info.description}

Version **{info.release.version}**, published {info.release.date.isoformat()} (see [{CHANGELOG}]({CHANGELOG})), \
built with {info.generator}.

| | |
| --- | --- |
| tiles | {len(tiles.tiles)}, {view.recipe.grid.footprint:g} m a side, ids `COL_ROW` of the France grid |
| CRS | Lambert-93 (EPSG:2154) |
| area (lon/lat) | {west:.4f}, {south:.4f} to {east:.4f}, {north:.4f} |
| source dates | {dates} |
| regions | {", ".join(tiles.regions) or "none recorded"} |
| downloaded from | {catalogs} |
| recipe | `{view.recipe.name}` |"""


def _sensors(view: StoreView, tiles: TileSet) -> str:
    rows = ["| group | product | GSD (m) | px per tile | DN type | scale | offset | nodata | tiles | source items |",
            "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    bands = ["| group | band | common name | centre (µm) | FWHM (µm) | mean | std |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    classes = []
    for group in view.groups:
        summary = tiles.summary(group.name)
        rows.append(f"| `{group.name}` | {group_title(group)} | {group.gsd:g} | {group.tile_px} | {group.dtype} | "
                    f"{group.scale:.6g} | {group.offset:g} | {group.nodata} | {summary.tiles} | {len(summary.items)} |")
        for band in band_info(group) if not label_classes(group) else ():
            stats = group.statistics.get(band.name)
            mean, std = (f"{stats.mean:.4f}", f"{stats.std:.4f}") if stats else ("", "")
            bands.append(f"| `{group.name}` | {band.name} | {band.common_name or ''} | "
                         f"{band.center_wavelength or ''} | {band.fwhm or ''} | {mean} | {std} |")
        if label_classes(group):
            classes = [f"`{c.code}` {c.name}" for c in label_classes(group)]
    labels = (f"\n\nLabels (`labels`, class codes of ESA WorldCover, 0 is nodata): {', '.join(classes)}."
              if classes else "")
    return f"""## Sensors and bands

Each group of the store is one mosaic over the France extent on its own pixel grid; the tiles of all
groups cover exactly the same ground. Physical value = DN * scale + offset (reflectance for imagery).

{chr(10).join(rows)}

Bands, with the mean and standard deviation of the physical values (DN * scale + offset) over the valid
pixels of the store:

{chr(10).join(bands)}{labels}"""


def _splits(tiles: TileSet) -> str:
    rows = ["| split | tiles | pass quality |", "| --- | --- | --- |"]
    rows += [f"| {name} | {count} | {good} |" for name, (count, good) in tiles.splits.items()]
    return f"""## Splits

Splits are drawn per block of 4 x 4 tiles from a hash of the block's position, so neighbouring tiles share
a split and the split of a tile never changes as the dataset grows. A tile passes quality when every imaging
sensor has at least 95 % valid pixels; the others keep their split and say why in `quality_reason`.

{chr(10).join(rows)}"""


def _files(layout: Layout) -> str:
    return f"""## Files

Paths are relative to this folder.

| path | what |
| --- | --- |
| `{layout.store_href}` | Zarr v3 store, one group per sensor: `data` (band, y, x), `valid` (y, x), \
`x`, `y`, `band`, `spatial_ref` |
| `{layout.index_href}` | tile index (GeoParquet, EPSG:2154): one row per tile, split, quality, \
source items and dates per group |
| `{COLLECTION}` | STAC Collection: one asset per group, licences, providers, extents |
| `{MIRROR}` | the tiles as STAC items (stac-geoparquet, WGS84 footprints) |
| `{PROVENANCE}` | every source item per group, with its date and number of tiles |
| `{CROISSANT}` | Croissant (GeoCroissant) JSON-LD |
| `{CHANGELOG}` | versions and the tiles each added |"""


def _loading(view: StoreView, layout: Layout) -> str:
    first = view.groups[0]
    kwargs = ", ".join(f"{k}={v!r}" for k, v in open_kwargs(view, first).items())
    return f"""## How to load

```python
import msc_france                      # pip install msc-france
pairs = msc_france.open_pairs("{layout.store_href}")
pairs.tiles                            # the tile index as a GeoDataFrame
sample = pairs[0]                      # {{group: xarray.Dataset}} of one tile
```

```python
import xarray as xr                    # one group as a map over France (lazy)
ds = xr.open_dataset("{layout.store_href}", {kwargs})
```

```python
import pystac, xarray as xr            # from the STAC Collection alone
collection = pystac.read_file("{COLLECTION}")
asset = collection.assets["{first.name}"]
ds = xr.open_dataset(asset.get_absolute_href(), **asset.extra_fields["xarray:open_kwargs"])
ds = xr.open_dataset(asset)            # the same, with xpystac installed
```

```python
import geopandas as gpd                # the tiles as STAC items
tiles = gpd.read_parquet("{MIRROR}")
```"""


def _licences(tiles: TileSet, licences: list[Licence], origin: Origin) -> str:
    rows = []
    for licence in licences:
        years = tiles.summary(licence.group).years
        rows.append(f"- `{licence.group}`: {licence.source} ({licence.provider}), "
                    f"[{licence.name}]({licence.url}){f' (SPDX `{licence.spdx}`)' if licence.spdx else ''}. "
                    f"Attribution: \"{licence.credit(years)}\".")
    synthetic = ("\n\nThis store holds synthetic imagery, not these products: the terms above are those of the "
                 "sources the same recipe reads for real data, and apply to a store built from them."
                 if origin.synthetic else "")
    return f"""## Licences

The pixels of each group keep the licence of their source, so the dataset's licence is `other`: use and
redistribution follow every licence below, with its attribution.

{chr(10).join(rows)}{synthetic}"""


def _citation(info: DatasetInfo) -> str:
    return f"""## Citation

Cite the dataset as: {info.citation}

It is built for X-STARS, cross-sensor self-supervised pretraining ([arXiv:2405.09922]({XSTARS_URL})):

```bibtex
{XSTARS_BIBTEX}
```"""
