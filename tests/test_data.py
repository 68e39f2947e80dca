"""PhotoDataModule: random crops from a folder, bad files skipped and counted, clear errors up front."""

from __future__ import annotations

import logging

import pytest
import torch

from nst.errors import NSTError
from nst.io.image import save_image
from nst.training.data import PhotoDataModule


def _photo(seed: int, h: int = 40, w: int = 56) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(1, 3, h, w, generator=g)


@pytest.fixture
def folder(tmp_path):
    """Five readable photos (two in a subfolder, mixed formats) and two unreadable .jpg files."""
    root = tmp_path / "photos"
    for i, name in enumerate(["a.png", "b.jpg", "sub/c.webp", "sub/deeper/d.bmp", "e.png"]):
        save_image(_photo(i), root / name)
    (root / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    (root / "sub" / "empty.jpg").write_bytes(b"")
    (root / "notes.txt").write_text("not an image, not counted")
    return root


def _drain(dm: PhotoDataModule) -> list[dict]:
    """One epoch as the trainer sees it (the main-process hook included)."""
    return [dm.on_before_batch_transfer(b, 0) for b in dm.train_dataloader()]


def test_crops_have_the_size_and_range(folder):
    dm = PhotoDataModule(str(folder), crop_size=32, batch_size=3, epoch_size=12)
    batches = _drain(dm)
    assert len(batches) == 4
    x = batches[0]["input"]
    assert x.shape == (3, 3, 32, 32) and x.dtype == torch.float32
    assert 0.0 <= x.min() and x.max() <= 1.0


def test_crops_are_random(folder):
    dm = PhotoDataModule(str(folder), crop_size=24, batch_size=1, epoch_size=40, min_images=1)
    dm.setup()
    first = [dm.dataset[0]["input"] for _ in range(6)]  # the same photo, six draws
    assert any(not torch.equal(first[0], other) for other in first[1:])


def test_bad_files_are_skipped_with_a_warning_and_counted(folder, caplog):
    with caplog.at_level(logging.WARNING, logger="nst"):
        dm = PhotoDataModule(str(folder), crop_size=32, batch_size=2, epoch_size=8)
        batches = _drain(dm)
    assert dm.skipped == 2
    assert batches[-1]["skipped"] == 2
    warned = [r.getMessage() for r in caplog.records if "unreadable" in r.getMessage()]
    assert len(warned) == 2 and any("broken.jpg" in m for m in warned)


@pytest.mark.parametrize("workers", [0, 1])
def test_uncached_bad_files_are_counted_once(folder, workers):
    # Read from disk per item (a large folder's path): workers report bad files with the batch.
    dm = PhotoDataModule(str(folder), crop_size=32, batch_size=2, epoch_size=28, cache=False,
                         num_workers=workers, min_images=1)
    batches = _drain(dm)
    assert dm.skipped == 2
    assert batches[-1]["skipped"] == 2
    assert all(b["input"].shape == (2, 3, 32, 32) for b in batches)


def test_empty_folder_is_an_error_before_training(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(NSTError, match="data.root"):
        PhotoDataModule(str(tmp_path / "empty"), crop_size=32).setup()


def test_too_few_readable_images_is_an_error(folder):
    with pytest.raises(NSTError, match="5 readable image.*min_images=6"):
        PhotoDataModule(str(folder), crop_size=32, min_images=6).setup()


def test_too_few_readable_images_uncached(folder):
    with pytest.raises(NSTError, match="min_images=6"):
        PhotoDataModule(str(folder), crop_size=32, min_images=6, cache=False).setup()


def test_resize_smaller_than_crop_is_an_error(folder):
    with pytest.raises(NSTError, match="data.short_side"):
        PhotoDataModule(str(folder), crop_size=32, short_side=24)


def test_resize_sets_the_scale_of_the_crops(tmp_path):
    # A 40x80 photo resized to a shorter side of 64 (128 wide): a 32 px crop sees a quarter of its height.
    y = torch.linspace(0, 1, 40).view(1, 1, 40, 1).expand(1, 3, 40, 80)
    save_image(y, tmp_path / "ramp" / "r.png")
    dm = PhotoDataModule(str(tmp_path / "ramp"), crop_size=32, short_side=64, min_images=1, flip=False)
    dm.setup()
    crop = dm.dataset[0]["input"]
    span = float(crop[0, -1, 0] - crop[0, 0, 0])
    assert 0.35 < span < 0.65  # a full-height crop would span ~1.0
