"""The mosaic laid item by item over the part of the target each may fill (files on the target's grid),
read straight into the mosaic where nothing was laid yet: the same arrays as every item rendered over
the whole target, the way the tiler mosaicked before."""

from __future__ import annotations

import contextlib
import itertools
from pathlib import Path

import numpy as np
import pytest
import rasterio
import shapely
from odc.geo.geobox import GeoBox
from rasterio.transform import from_origin

from msc_france.store.layout import Layer
from msc_france.tiles.sources import SourceItem
from msc_france.tiles.tileplan import UNUSED
from msc_france.tiles.warp import (
    CLEAR,
    GDAL_OPTIONS,
    NODATA,
    Rendered,
    _box,
    _item_bands,
    _open,
    _quality,
    _rank_over,
    render,
)
from tests.test_tiles_fast import UTM, _source

LAMBERT = "EPSG:2154"
LEFT, TOP, GSD = 560_000.0, 6_280_000.0, 4.0
BANDS = ("red", "green", "blue", "nir")
VHR = Layer("vhr", "vhr", BANDS, "uint8", 0, 1 / 255, 0.0, (0.66, 0.56, 0.485, 0.825))
TARGET = GeoBox((96, 96), from_origin(LEFT, TOP, GSD, GSD), LAMBERT)  # 4 x 4 tiles of 24 px
# (first row, first column, rows, columns) of each file on the target's grid: overlapping, past the
# target's edge, apart from a, b and c (d, without holes: laid at once, all clear), wholly outside it,
# and over d and b
FILES = {"a": (0, 0, 60, 60), "b": (40, 30, 60, 60), "c": (70, 0, 26, 40), "d": (0, 70, 30, 26),
         "e": (200, 200, 20, 20), "f": (20, 60, 30, 36)}


def _on_grid(path: Path, row: int, col: int, rows: int, cols: int, seed: int) -> Path:
    """A 4-band uint8 image on the target's grid, with holes (some in one band only, some in all) but
    for file d, wholly data."""
    rng = np.random.default_rng(seed)
    data = rng.integers(1, 256, (4, rows, cols)).astype(np.uint8)
    for r, c, k in rng.integers(0, min(rows, cols), (12 if path.stem != "d" else 0, 3)):
        data[: 1 + k % 4, r : r + 1 + k % 5, c : c + 1 + k % 3] = 0
    profile = {"driver": "GTiff", "width": cols, "height": rows, "count": 4, "dtype": "uint8", "nodata": 0,
               "crs": LAMBERT, "transform": from_origin(LEFT + col * GSD, TOP - row * GSD, GSD, GSD)}
    with rasterio.open(path, "w", **profile) as out:
        out.write(data)
        out.descriptions = BANDS
    return path


def _items(folder: Path) -> list[SourceItem]:
    footprint = shapely.box(*TARGET.boundingbox).wkt  # every footprint meets the target: the files decide
    return [SourceItem(sensor="vhr", item_id=name, region="test", datetime="2023-06-01T10:30:00Z", cloud=0.0,
                       baseline=None, footprint_wkt=footprint,
                       assets=(("image", str(_on_grid(folder / f"{name}.tif", *place, seed=k))),))
            for k, (name, place) in enumerate(FILES.items())]


def _over_the_whole_target(layer: Layer, items: list[SourceItem], target: GeoBox,
                           ranks: np.ndarray) -> tuple[np.ndarray, ...]:
    """The mosaic as the tiler built it before (commit c90db5e): every item rendered over the whole
    target, the best-ranked clear pixel kept, else the best-ranked data."""
    shape = target.shape
    data = np.full((len(layer.bands), *shape), layer.nodata, layer.dtype)
    valid, has_data = np.zeros(shape, bool), np.zeros(shape, bool)
    first, cause = np.full(shape, -1, np.int16), np.full(shape, NODATA, np.uint8)
    clear_rank, data_rank = np.full(shape, UNUSED, np.int16), np.full(shape, UNUSED, np.int16)
    kept = [k for k in range(len(items)) if (ranks[k] < UNUSED).any()]
    with rasterio.Env(**GDAL_OPTIONS):
        for k, item in enumerate([items[k] for k in kept]):
            with contextlib.ExitStack() as files:
                opened = _open(layer, item, files)
                bands, present = _item_bands(layer, item, target, opened)
                quality = _quality(layer, target, opened)
            rank = np.repeat(np.repeat(ranks[kept[k]], shape[0] // ranks.shape[1], axis=0),
                             shape[1] // ranks.shape[2], axis=1)
            present &= rank < UNUSED
            here = np.where(present, np.uint8(CLEAR) if quality is None else quality, np.uint8(NODATA))
            take = (here == CLEAR) & (rank < clear_rank)
            put = take | (present & ~valid & (rank < data_rank))
            np.copyto(data, bands, where=put)
            np.copyto(first, k, where=put)
            np.copyto(cause, here, where=put)
            np.copyto(clear_rank, rank, where=take)
            np.copyto(data_rank, rank, where=present & (rank < data_rank))
            valid |= take
            has_data |= present
    return data, valid, has_data, first, cause


def _arrays(rendered: Rendered) -> tuple[np.ndarray, ...]:
    return rendered.data, rendered.valid, rendered.has_data, rendered.first_item, rendered.cause


@pytest.mark.parametrize("seed", range(4))
def test_items_laid_over_their_part_equal_the_whole_target_render(tmp_path: Path, seed: int) -> None:
    """Every order of the items, with ranks drawn per tile (some tiles not using an item): byte-identical."""
    items = _items(tmp_path)
    rng = np.random.default_rng(seed)
    ranks = np.stack([rng.permutation(len(items)) for _ in range(16)], axis=1).reshape(len(items), 4, 4)
    ranks = np.where(rng.random(ranks.shape) < 0.25, UNUSED, ranks).astype(np.int16)
    default = np.broadcast_to(np.arange(len(items), dtype=np.int16)[:, None, None], (len(items), 1, 1))
    for order in itertools.islice(itertools.permutations(range(len(items))), seed, None, 29):
        chosen = [items[k] for k in order]
        for ranked in (None, ranks[list(order)]):
            rendered = render(VHR, chosen, TARGET, ranked)
            expected = _over_the_whole_target(VHR, chosen, TARGET, default if ranked is None else ranked)
            assert all(e.dtype == f.dtype and e.tobytes() == f.tobytes()
                       for e, f in zip(expected, _arrays(rendered), strict=True))
    whole = render(VHR, items, TARGET)
    assert whole.has_data.mean() > 0.6 and not whole.valid.all(), "the premise: holes and empty parts"
    assert (whole.first_item == 1).any() and (whole.first_item == 0).any(), "the premise: a and b overlap"
    assert (whole.first_item == 3).sum() == 30 * 26, "the premise: d, without holes, kept whole over f"
    assert (whole.first_item == 5).any(), "the premise: f fills where d and b do not reach"


def test_the_part_an_item_may_fill(tmp_path: Path) -> None:
    items = _items(tmp_path)
    every = np.zeros((4, 4), np.int16)
    with contextlib.ExitStack() as files:
        opened = [_open(VHR, item, files) for item in items]
        assert _box(opened[0], TARGET, every) == (slice(0, 60), slice(0, 60)), "where its file lies"
        assert _box(opened[1], TARGET, every) == (slice(40, 96), slice(30, 90)), "clipped to the target"
        assert _box(opened[4], TARGET, every) is None, "a file outside the target"
        one_tile = np.full((4, 4), UNUSED, np.int16)
        one_tile[1, 2] = 0
        assert _box(opened[1], TARGET, one_tile) == (slice(40, 48), slice(48, 72)), "within the tiles using it"
        assert _box(opened[2], TARGET, one_tile) is None, "no tile using it lies over its file"
        warped = GeoBox((48, 48), from_origin(LEFT + 2, TOP, GSD, GSD), LAMBERT)  # off the files' grid
        assert _box(opened[0], warped, every[:2, :2]) == (slice(0, 48), slice(0, 48)), "warped: the whole target"


def test_ranks_over_a_box(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    ranks = rng.integers(0, 5, (4, 6)).astype(np.int16)
    whole = np.repeat(np.repeat(ranks, 10, axis=0), 8, axis=1)  # tiles of 10 x 8 px
    for _ in range(50):
        r0, c0 = rng.integers(0, 40), rng.integers(0, 48)
        box = (slice(r0, rng.integers(r0 + 1, 41)), slice(c0, rng.integers(c0 + 1, 49)))
        over = _rank_over(ranks, (40, 48), box)
        assert np.array_equal(np.broadcast_to(over, whole[box].shape), whole[box])
        assert over.ndim == 0 or len(np.unique(whole[box])) > 1, "one rank (0-d) where the box's tiles share it"


def test_bands_read_as_they_are_go_straight_into_the_given_array(tmp_path: Path) -> None:
    item = _items(tmp_path)[0]
    part = TARGET[10:50, 5:45]
    mosaic = np.zeros((4, 96, 96), np.uint8)
    view = mosaic[:, 10:50, 5:45]
    with contextlib.ExitStack() as files:
        opened = _open(VHR, item, files)
        bands, present = _item_bands(VHR, item, part, opened, view)
        alone, _ = _item_bands(VHR, item, part, opened)
        wider = Layer("vhr", "vhr", BANDS, "uint16", 0, 1 / 255, 0.0, VHR.wavelengths)  # a type to convert to
        converted, _ = _item_bands(wider, item, part, opened, view.copy())
    assert np.shares_memory(bands, mosaic) and np.array_equal(bands, alone) and not np.shares_memory(alone, mosaic)
    assert converted.dtype == np.uint16 and np.array_equal(converted[:, present], alone[:, present])
    assert not present.all() and present.any(), "the premise: holes"


def test_a_warped_source_is_not_read_into_the_mosaic(tmp_path: Path) -> None:
    """Off the target's grid the bands are warped into their own array, whatever array is offered."""
    path = _source(tmp_path / "src.tif", holes=False, bands=4)
    with rasterio.open(path, "r+") as ds:
        ds.descriptions = BANDS
    item = SourceItem(sensor="vhr", item_id="utm", region="test", datetime="2023-06-01T10:30:00Z", cloud=0.0,
                      baseline=None, footprint_wkt="POINT (0 0)", assets=(("image", str(path)),))
    with rasterio.open(path) as ds:
        left, top = ds.bounds.left, ds.bounds.top
    target = GeoBox((40, 40), from_origin(left + 505, top - 505, 10, 10), UTM)  # half a pixel off its grid
    layer = Layer("vhr", "vhr", BANDS, "uint16", 0, 1.0, 0.0, VHR.wavelengths)
    offered = np.zeros((4, 40, 40), np.uint16)
    with contextlib.ExitStack() as files:
        bands, present = _item_bands(layer, item, target, _open(layer, item, files), offered)
    assert present.all() and not np.shares_memory(bands, offered) and (bands > 0).all()
    assert not offered.any(), "the offered array is left as it was"
