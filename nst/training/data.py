"""Photos for training a transformation network: random square crops from a folder of images.

Any file :func:`nst.io.image.load_image` reads, found recursively. Each item is a random crop
(3, S, S) in [0, 1] of a photo whose shorter side was resized to ``short_side`` (times a random
``scale``), flipped at random. Unreadable files are skipped with one warning each and counted
(``batch["skipped"]``), never a crash mid-run. Small folders are decoded once and kept in memory
(as uint8), so an "epoch" is just ``epoch_size`` random crops: the step count is what matters.

Departure from Johnson et al.: they resized COCO to 256x256 (squashing the aspect ratio); here the
shorter side is resized and a square is cropped, so shapes keep their proportions.
"""

from __future__ import annotations

import logging
import math
import signal
from collections.abc import Sequence
from pathlib import Path

import pytorch_lightning as pl
import torch
from PIL import Image
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from nst.errors import NSTError
from nst.io.image import list_images, load_image, resize
from nst.training.degrade import degrade as degrade_image
from nst.training.sampling import EpochSampler, ResumableLoader, epoch_generator

log = logging.getLogger("nst")

MAX_BAD_PER_ITEM = 4  # bad-file indices one item reports to the main process (more are found later)


class PhotoDataset(Dataset):
    """``length`` random crops of ``paths``: item i -> {"input": (3, S, S), "bad": (MAX_BAD_PER_ITEM,)}.

    Item i starts from photo ``i % len(paths)`` and moves on past unreadable ones; ``bad`` lists the
    indices of the files it found unreadable (-1 padded). ``cache`` holds decoded (3, h, w) uint8
    images (None for a file that failed), or is None to read files on every access.
    """

    def __init__(self, paths: Sequence[Path], crop: int, resize_to: int, scale: tuple[float, float],
                 flip: bool, length: int, cache: list[Tensor | None] | None = None,
                 degrade: tuple[int, float] | None = None):
        self.paths = list(paths)
        self.crop = crop
        self.resize_to = resize_to
        self.scale = scale
        self.flip = flip
        self.length = length
        self.cache = cache
        self.degrade = degrade
        self.known_bad: set[int] = {i for i, c in enumerate(cache or []) if c is None}

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, i: int | tuple[int, int]) -> dict[str, Tensor]:
        # (index, seed) from EpochSampler: the crop is drawn from the seed, not the global RNG
        gen = None
        if isinstance(i, (tuple, list)):
            i, seed = int(i[0]), int(i[1])
            gen = torch.Generator().manual_seed(seed)
        n = len(self.paths)
        bad: list[int] = []
        for k in range(n):
            j = (i + k) % n
            if j in self.known_bad:
                continue
            img = self._load(j)[0]
            if img is not None:
                break
            self.known_bad.add(j)
            bad.append(j)
        else:
            raise NSTError(f"{self.paths[0].parent}: none of the {n} training images is readable")
        bad = (bad + [-1] * MAX_BAD_PER_ITEM)[:MAX_BAD_PER_ITEM]
        crop = self._crop(img, gen)
        item = {"input": crop, "bad": torch.tensor(bad, dtype=torch.long)}
        if self.degrade is not None:  # super-resolution: learn the crop back from its degraded copy
            factor, sigma = self.degrade
            item.update(input=degrade_image(crop[None], factor, sigma)[0], target=crop)
        return item

    def _load(self, j: int) -> tuple[Tensor | None, str]:
        """(3, h, w) uint8 with shorter side resize_to * max(scale) (None when unreadable), why not."""
        if self.cache is not None:
            return self.cache[j], ""
        return decode(self.paths[j], math.ceil(self.resize_to * self.scale[1]))

    def _crop(self, img: Tensor, gen: torch.Generator | None = None) -> Tensor:
        x = img.float().div_(255.0)[None]
        lo, hi = self.scale
        if hi > lo:
            s = lo + (hi - lo) * torch.rand((), generator=gen).item()
            short = max(self.crop, round(self.resize_to * s))
            h, w = x.shape[-2:]
            x = resize(x, size=(max(short, round(h * short / min(h, w))),
                                max(short, round(w * short / min(h, w)))))
        h, w = x.shape[-2:]
        top = int(torch.randint(0, h - self.crop + 1, (), generator=gen))
        left = int(torch.randint(0, w - self.crop + 1, (), generator=gen))
        x = x[0, :, top: top + self.crop, left: left + self.crop]
        if self.flip and torch.rand((), generator=gen).item() < 0.5:
            x = x.flip(-1)
        return x.contiguous()


def decode(path: Path, short: int) -> tuple[Tensor | None, str]:
    """Photo -> ((3, h, w) uint8 with shorter side ``short``, ""), or (None, the reason) when unreadable."""
    try:
        with Image.open(path) as im:  # header only: lets JPEG decode at a reduced size
            w, h = im.size
        long_side = math.ceil(max(w, h) * short / max(1, min(w, h)))
        x = load_image(path, max_side=long_side)
    except Exception as e:  # noqa: BLE001 - one bad training file must never end a long run
        return None, str(e).replace(str(path) + ": ", "") or type(e).__name__
    h, w = x.shape[-2:]
    if min(h, w) != short:  # rounding of max_side: make the shorter side exact
        x = resize(x, size=(max(short, round(h * short / min(h, w))),
                            max(short, round(w * short / min(h, w)))))
    return x[0].mul(255.0).round_().to(torch.uint8), ""


def _worker_init(worker_id: int) -> None:
    # Ctrl-C goes to the whole process group: workers ignore it so the main process can finish
    # the step, save a checkpoint and stop them itself (see nst.training.checkpoints.GracefulInterrupt).
    signal.signal(signal.SIGINT, signal.SIG_IGN)


class PhotoDataModule(pl.LightningDataModule):
    """Random crops from a folder of photos (recursive) for training.

    Args:
        root: a folder, a file or a glob of images.
        crop_size: side of the square crops (``data.crop_size``).
        batch_size, num_workers: as for a DataLoader (workers are persistent).
        short_side: the shorter side before cropping (None: ``crop_size``); must be >= crop_size.
        scale: [lo, hi] random factor on ``short_side`` per crop (scale augmentation; [1, 1]: none).
        flip: random horizontal flips.
        epoch_size: crops per epoch (None: the number of photos, at least 50 batches).
        cache: keep decoded photos in memory: True, False or "auto" (up to ``cache_max`` photos).
        min_images: fewer readable photos than this is an error before training starts.
        degrade: ``{factor, sigma}`` for super-resolution: each item's ``input`` is its crop blurred
            and downsampled by ``factor`` (nst.training.degrade), its ``target`` the crop; None: the
            crop only.
        seed: the data order and every crop are a function of (seed, epoch) alone
            (:mod:`nst.training.sampling`): a run resumed from any step sees the same batches.
    """

    def __init__(self, root: str, crop_size: int = 256, batch_size: int = 4, num_workers: int = 0,
                 short_side: int | None = None, scale: Sequence[float] = (1.0, 1.0), flip: bool = True,
                 epoch_size: int | None = None, cache: bool | str = "auto", cache_max: int = 2000,
                 min_images: int = 4, degrade: dict | None = None, seed: int = 0):
        super().__init__()
        if crop_size is None or int(crop_size) < 1:
            raise NSTError(f"data.crop_size={crop_size}: the crop size must be a positive number of "
                           "pixels (set data.crop_size=...)")
        self.root = str(root)
        self.crop = int(crop_size)
        self.batch_size = int(batch_size)
        self.num_workers = int(num_workers)
        self.resize_to = int(short_side) if short_side else self.crop
        self.scale = (float(scale[0]), float(scale[1]))
        if not 0 < self.scale[0] <= self.scale[1]:
            raise NSTError(f"data.scale={list(scale)}: need 0 < lo <= hi")
        if self.resize_to * self.scale[0] < self.crop - 0.5:
            raise NSTError(f"data.short_side={self.resize_to} x data.scale[0]={self.scale[0]} is smaller "
                           f"than the crop size {self.crop}: the crops would not fit")
        if self.batch_size < 1 or self.num_workers < 0:
            raise NSTError(f"data.batch_size={batch_size}, data.num_workers={num_workers}: "
                           "need >= 1 and >= 0")
        self.flip = bool(flip)
        self.epoch_size = epoch_size
        if cache not in (True, False, "auto"):
            raise NSTError(f"data.cache={cache!r}: choose true, false or auto")
        self.cache, self.cache_max, self.min_images = cache, int(cache_max), int(min_images)
        self.degrade: tuple[int, float] | None = None
        if degrade:
            factor, sigma = int(degrade.get("factor", 4)), float(degrade.get("sigma", 1.0))
            if factor < 2 or self.crop % factor:
                raise NSTError(f"data.crop_size={self.crop} is not a multiple of "
                               f"data.degrade.factor={factor} (super-resolution needs whole "
                               "low-resolution pixels)")
            self.degrade = (factor, sigma)
        self.seed = int(seed)
        self.dataset: PhotoDataset | None = None
        self.sampler: EpochSampler | None = None
        self.bad: set[int] = set()

    @property
    def skipped(self) -> int:
        """How many distinct files were found unreadable so far."""
        return len(self.bad)

    def setup(self, stage: str | None = None) -> None:
        """List and check the photos (NSTError when too few are readable); idempotent."""
        if self.dataset is not None:
            return
        try:
            paths = list_images(self.root)
        except NSTError as e:
            raise NSTError(f"data.root: {e}") from None
        short = math.ceil(self.resize_to * self.scale[1])
        use_cache = self.cache is True or (self.cache == "auto" and len(paths) <= self.cache_max)
        cache: list[Tensor | None] | None = None
        good = 0
        if use_cache:
            cache = []
            for i, p in enumerate(paths):
                img, why = decode(p, short)
                cache.append(img)
                good += img is not None
                self._note_bad([i] if img is None else [], paths, why)
        else:  # a large folder: probe only until min_images readable ones are found
            for i, p in enumerate(paths[: self.min_images + 100]):
                if good >= self.min_images:
                    break
                img, why = decode(p, short)
                good += img is not None
                self._note_bad([i] if img is None else [], paths, why)
        if good < self.min_images:
            raise NSTError(f"data.root={self.root}: {good} readable image(s) of {len(paths)} found, training "
                           f"needs at least data.min_images={self.min_images}")
        length = self.epoch_size or max(len(paths), 50 * self.batch_size)
        self.dataset = PhotoDataset(paths, self.crop, self.resize_to, self.scale, self.flip,
                                    int(length), cache, self.degrade)
        self.dataset.known_bad |= self.bad
        log.info("data: %d photos in %s (%s), %d px crops, batch %d", len(paths) - self.skipped, self.root,
                 "cached in memory" if use_cache else "read from disk", self.crop, self.batch_size)

    def _note_bad(self, indices: Sequence[int], paths: Sequence[Path], why: str = "") -> None:
        for i in indices:
            if i >= 0 and i not in self.bad:
                self.bad.add(i)
                log.warning("skipping unreadable training image %s%s", paths[i], f" ({why})" if why else "")

    def train_dataloader(self) -> DataLoader:
        if self.dataset is None:
            self.setup("fit")
        workers = self.num_workers
        trainer = self.trainer
        self.sampler = EpochSampler(len(self.dataset), self.seed,
                                    num_replicas=trainer.world_size if trainer is not None else 1,
                                    rank=trainer.global_rank if trainer is not None else 0,
                                    batch_size=self.batch_size)
        # The loader's own generator: each pass draws its workers' base seed from it, not from the
        # global RNG, whose stream the training step's own draws (strengths, warps) must keep.
        return ResumableLoader(self.dataset, batch_size=self.batch_size, sampler=self.sampler, drop_last=True,
                               num_workers=workers, persistent_workers=workers > 0,
                               worker_init_fn=_worker_init if workers > 0 else None,
                               generator=epoch_generator(self.seed, -1),
                               pin_memory=torch.cuda.is_available())

    def on_before_batch_transfer(self, batch: dict, dataloader_idx: int) -> dict:
        """Count the files the workers found unreadable (each warned once, here in the main process),
        and the samples that reached the training step (the position a checkpoint saves)."""
        training = self.trainer is None or self.trainer.training
        if self.sampler is not None and training and isinstance(batch, dict) \
                and isinstance(batch.get("input"), Tensor):
            self.sampler.consumed(batch["input"].shape[0])
        if isinstance(batch, dict) and "bad" in batch:
            found = batch.pop("bad").flatten().tolist()
            if any(i >= 0 for i in found):
                self._note_bad(found, self.dataset.paths)
            batch["skipped"] = self.skipped
        return batch
