"""Pretraining data: the tile dataset (one chunk per sensor, normalised reflectance), the resumable
sampler, and the batched augmentations (co-location of every sensor on one token grid)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import zarr
from torch.utils.data import DataLoader, default_collate

from msc_france.errors import UserError
from msc_france.grid import TileId
from msc_france.pretrain.augment import MultiCrop, crop_resize, gaussian_blur, photometric, random_orientation
from msc_france.pretrain.config import CropConfig
from msc_france.pretrain.dataset import TileDataset, collate_tiles
from msc_france.pretrain.normalise import NormaliseOnDevice
from msc_france.pretrain.sampler import ResumableSampler
from msc_france.store import Normalisation, open_store

RGB = {"s2": ["B04", "B03", "B02"], "l8": ["red", "green", "blue"], "vhr": ["red", "green", "blue"]}


def test_dataset_reads_one_tile_per_sensor_as_normalised_reflectance(tile_store: str) -> None:
    dataset = TileDataset(tile_store, RGB)
    assert len(dataset) == 32
    sample = dataset[5]
    shapes = {k: tuple(v.shape) for k, v in sample.items()}
    assert shapes == {"s2": (3, 48, 48), "l8": (3, 16, 16), "vhr": (3, 120, 120)}
    tile = TileId.parse(dataset.tiles[5])
    group = zarr.open_group(tile_store, mode="r")["s2"]
    dn = group["data"][2, tile.row * 48:(tile.row + 1) * 48, tile.col * 48:(tile.col + 1) * 48]  # B04
    stats = group.attrs["statistics"]["B04"]
    expected = (dn * 1e-4 - 0.1 - stats["mean"]) / stats["std"]
    np.testing.assert_allclose(sample["s2"][0].numpy(), expected, rtol=1e-4, atol=1e-4)


def test_dataset_refuses_missing_bands_and_empty_splits(tile_store: str) -> None:
    with pytest.raises(UserError, match="no band 'B11'"):
        TileDataset(tile_store, {"s2": ["B11"]})
    with pytest.raises(UserError, match="no val tile"):
        TileDataset(tile_store, RGB, split="val")


def test_dataset_loads_in_spawned_workers(tile_store: str) -> None:
    dataset = TileDataset(tile_store, RGB)
    loader = DataLoader(dataset, batch_size=4, num_workers=2, multiprocessing_context="forkserver")
    first = next(iter(loader))
    assert torch.equal(first["vhr"][1], dataset[1]["vhr"])


def test_a_batch_read_at_once_equals_its_samples_stacked(tile_store: str) -> None:
    dataset = TileDataset(tile_store, RGB)
    indices = [5, 1, 30, 7]
    stacked = {s: torch.stack([dataset[i][s] for i in indices]) for s in RGB}
    batch = dataset.__getitems__(indices)
    assert len(batch) == 4 and all(torch.equal(batch[2][s], dataset[30][s]) for s in RGB)
    for collate in (collate_tiles, default_collate):
        collated = collate(batch)
        assert {s: tuple(t.shape) for s, t in collated.items()} == {"s2": (4, 3, 48, 48), "l8": (4, 3, 16, 16),
                                                                    "vhr": (4, 3, 120, 120)}
        assert all(torch.equal(collated[s], stacked[s]) for s in RGB), collate
    assert collate_tiles(batch)["vhr"] is batch.batch["vhr"], "collate_tiles hands the batch over without a copy"
    samples = [dataset[i] for i in indices]
    assert all(torch.equal(collate_tiles(samples)[s], stacked[s]) for s in RGB), "any other list is default_collate's"


def test_the_trainers_loader_gives_the_same_batches_from_workers(tile_store: str) -> None:
    """The trainer's loader: DN as stored from the workers, normalised where the model runs."""
    dataset = TileDataset(tile_store, RGB)
    stored = TileDataset(tile_store, RGB, as_stored=True)
    sampler = ResumableSampler(len(dataset), 8, seed=2)
    loader = DataLoader(stored, batch_size=8, sampler=sampler, num_workers=2, multiprocessing_context="forkserver",
                        collate_fn=collate_tiles, drop_last=True)
    normalise = stored.normaliser()
    batches = list(loader)
    order = list(sampler)
    assert len(batches) == 4
    assert {s: t.dtype for s, t in batches[0].items()} == {"s2": torch.uint16, "l8": torch.uint16, "vhr": torch.uint8}
    for k, batch in enumerate(batches):
        expected = [dataset[i] for i in order[k * 8:(k + 1) * 8]]
        normalised = normalise(batch)
        assert all(torch.equal(normalised[s], torch.stack([e[s] for e in expected])) for s in RGB)


@pytest.mark.parametrize("bands", [RGB, dict.fromkeys(RGB)], ids=["reordered", "as-stored-order"])
def test_a_batch_as_stored_is_the_dn_and_normalises_to_the_same_values(tile_store: str,
                                                                      bands: dict[str, list[str] | None]) -> None:
    """Every band in the stored order is decoded straight into the batch; a subset is copied in; either
    way the batch holds the stored DN, which ``normaliser()`` turns into exactly the normalised batch."""
    normalised = TileDataset(tile_store, bands)
    stored = TileDataset(tile_store, bands, as_stored=True)
    indices = [3, 30, 0]
    batch = collate_tiles(stored.__getitems__(indices))
    store = zarr.open_group(tile_store, mode="r")
    for sensor, tiles in batch.items():
        px = tiles.shape[-1]
        tile = TileId.parse(stored.tiles[30])
        chunk = store[sensor]["data"][:, tile.row * px:(tile.row + 1) * px, tile.col * px:(tile.col + 1) * px]
        names = open_store(tile_store).layer(sensor).bands
        order = [names.index(b) for b in bands[sensor]] if bands[sensor] else slice(None)
        np.testing.assert_array_equal(tiles[1].numpy(), chunk[order])
        assert torch.equal(stored[30][sensor], tiles[1])
    expected = collate_tiles(normalised.__getitems__(indices))
    assert all(torch.equal(v, expected[s]) for s, v in stored.normaliser()(batch).items())


def test_normalising_on_the_device_gives_the_loaders_values_nodata_included() -> None:
    norm = Normalisation(("a", "b"), 2.75e-5, -0.2, 0, (0.11, 0.2), (0.05, 0.07))
    dn = np.random.default_rng(0).integers(0, 65535, size=(2, 2, 16, 16), dtype=np.uint16)
    dn[0, 1, :4] = 0
    expected = np.stack([norm.normalise(d) for d in dn])
    got = NormaliseOnDevice({"l8": norm})({"l8": torch.from_numpy(dn)})["l8"]
    assert got.dtype == torch.float32 and (got[0, 1, :4] == 0).all()
    np.testing.assert_array_equal(got.numpy(), expected)


def test_sampler_splits_ranks_and_resumes_mid_epoch() -> None:
    whole = ResumableSampler(40, batch_size=4, seed=1)
    whole.set_epoch(3)
    order = list(whole)
    assert sorted(order) == list(range(40))
    resumed = ResumableSampler(40, batch_size=4, seed=1)
    resumed.set_epoch(3, start_batch=6)
    assert list(resumed) == order[24:] and len(resumed) == 16
    ranks = [ResumableSampler(40, batch_size=4, seed=1, rank=r, world=2) for r in range(2)]
    for s in ranks:
        s.set_epoch(3)
    a, b = (list(s) for s in ranks)
    assert len(a) == len(b) == 20 and not set(a) & set(b)
    whole.set_epoch(4)
    assert list(whole) != order


def ramps(px: int, n: int = 2) -> torch.Tensor:
    """Images whose bands are the ground x and y of each pixel centre, in tile units [0, 1]."""
    centres = (torch.arange(px) + 0.5) / px
    y, x = torch.meshgrid(centres, centres, indexing="ij")
    return torch.stack([x, y, x * y])[None].repeat(n, 1, 1, 1)


def test_aligned_views_put_the_same_ground_under_each_token() -> None:
    crops = CropConfig(global_size=64, local_size=32, local_number=0, msad_scale=(0.3, 0.8))
    batch = {"s2": ramps(48), "l8": ramps(16), "vhr": ramps(120)}
    views = MultiCrop(crops).aligned(batch, ["s2", "l8", "vhr"], torch.Generator().manual_seed(4))
    tokens = {s: torch.nn.functional.avg_pool2d(v, 16) for s, v in views.items()}  # ground under each 16 px token
    assert not torch.allclose(tokens["s2"][0], ramps(4, 1)[0], atol=0.05)  # cropped and turned, not the identity
    for sensor in ("l8", "vhr"):
        torch.testing.assert_close(tokens[sensor], tokens["s2"], atol=1 / 32, rtol=0)  # half a Landsat pixel


def test_msad_augment_recolours_each_sensor_on_the_same_geometry(monkeypatch: pytest.MonkeyPatch) -> None:
    """Two sensors with the same images: the plain aligned views are equal; with crops.msad_augment each
    gets its own photometric draw, applied to exactly the plain views (same boxes and turns)."""
    images = torch.randn(4, 3, 48, 48, generator=torch.Generator().manual_seed(1))
    batch = {"s2": images, "vhr": images.clone()}
    plain_crops = CropConfig(global_size=32, local_size=16, local_number=0, msad_scale=(0.3, 0.8))
    plain = MultiCrop(plain_crops).aligned(batch, ["s2", "vhr"], torch.Generator().manual_seed(4))
    assert not plain_crops.msad_augment and torch.equal(plain["s2"], plain["vhr"])
    seen: list[torch.Tensor] = []

    def spy(views: torch.Tensor, generator: torch.Generator, p_blur: float, p_solarize: float) -> torch.Tensor:
        seen.append(views)
        return photometric(views, generator, p_blur=p_blur, p_solarize=p_solarize)

    monkeypatch.setattr("msc_france.pretrain.augment.photometric", spy)
    crops = plain_crops.model_copy(update={"msad_augment": True})
    augmented = MultiCrop(crops).aligned(batch, ["s2", "vhr"], torch.Generator().manual_seed(4))
    assert len(seen) == 2 and all(torch.equal(view, plain["s2"]) for view in seen)  # geometry unchanged
    for sensor in ("s2", "vhr"):
        assert augmented[sensor].shape == plain[sensor].shape and not torch.allclose(augmented[sensor], plain[sensor])
    assert not torch.allclose(augmented["s2"], augmented["vhr"])  # each sensor its own colour


def test_crop_resize_of_the_whole_tile_is_the_identity_and_turns_are_exact() -> None:
    images = torch.randn(4, 2, 16, 16)
    whole = torch.tensor([[0.0, 0.0, 1.0, 1.0]] * 4)
    torch.testing.assert_close(crop_resize(images, whole, torch.eye(2).repeat(4, 1, 1), 16), images)
    turns = random_orientation(4, torch.Generator().manual_seed(0), torch.device("cpu"))
    out = crop_resize(images, whole, turns, 16)
    for i in range(4):
        assert any(torch.allclose(out[i], torch.rot90(img, k, dims=(1, 2)), atol=1e-5)
                   for img in (images[i], images[i].flip(-1)) for k in range(4))


def test_multicrop_shapes_determinism_and_photometric_sanity() -> None:
    crops = CropConfig(global_size=32, local_size=16, local_number=3)
    batch = {"s2": torch.randn(5, 3, 48, 48), "vhr": torch.randn(5, 3, 120, 120)}
    views = MultiCrop(crops)(batch, seed=7, dino_sensor="vhr", msad_sensors=["s2", "vhr"])
    assert views.globals.shape == (10, 3, 32, 32) and views.locals.shape == (15, 3, 16, 16)
    again = MultiCrop(crops)(batch, seed=7, dino_sensor="vhr", msad_sensors=["s2", "vhr"])
    other = MultiCrop(crops)(batch, seed=8, dino_sensor="vhr", msad_sensors=["s2", "vhr"])
    assert torch.equal(views.globals, again.globals) and not torch.equal(views.globals, other.globals)
    flat = torch.full((2, 3, 20, 20), 0.7)
    assert torch.allclose(gaussian_blur(flat, torch.tensor([0.0, 1.5])), flat, atol=1e-6)
    spike = torch.zeros(1, 1, 21, 21)
    spike[0, 0, 10, 10] = 1
    blurred = gaussian_blur(spike, torch.tensor([1.0]))
    assert blurred.sum().item() == pytest.approx(1.0, abs=1e-5) and blurred.max() < 0.2
