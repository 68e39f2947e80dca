"""The order of the training data as a function of (seed, epoch) alone, so a run resumes exactly.

Lightning restores the step, the optimizer and the RNG from a checkpoint, but starts a fresh pass
over the DataLoader: from a mid-epoch checkpoint a plain shuffling DataLoader would repeat some
photos, skip others and draw other crops. Here:

- :class:`EpochSampler` draws each epoch's permutation, and one augmentation seed per sample, from
  a generator seeded by (seed, epoch) only. Its epoch is its own count of passes over the data,
  not Lightning's: a run that stopped at ``max_steps`` part way through a pass and is resumed with
  a larger one makes Lightning start a new epoch, while the data goes on with the rest of the pass.
  It yields ``(index, sample_seed)``: the dataset draws the crop, scale and flip of that sample
  from ``sample_seed``, never from the global RNG, so a sample is the same whichever process,
  worker or rank makes it.
- It shards the epoch across DDP ranks itself (``rank::num_replicas`` of one global order, as
  torch's DistributedSampler, which it subclasses so that Lightning keeps it instead of wrapping
  it in another), and skips the samples already trained on in the epoch.
- :class:`ResumableLoader` is a DataLoader with ``state_dict``/``load_state_dict``: Lightning saves
  it in every checkpoint and loads it before it iterates again (``fit_loop.setup_data``). What
  was consumed is counted by the data module as each batch reaches the training step
  (``on_before_batch_transfer``), not by the loader, whose workers and Lightning's fetcher read
  batches ahead of the step.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import torch
from torch.utils.data import DataLoader, DistributedSampler

log = logging.getLogger("nst")

_MIX = 0x9E3779B97F4A7C15  # golden-ratio constant: (seed, epoch) pairs map to distinct, unrelated seeds


def epoch_generator(seed: int, epoch: int) -> torch.Generator:
    """The generator of epoch ``epoch`` of a run seeded ``seed``."""
    return torch.Generator().manual_seed((int(seed) * _MIX + int(epoch)) % 2 ** 63)


class EpochSampler(DistributedSampler):
    """``(index, sample_seed)`` for each sample of this rank's share of the epoch, minus the first
    ``skip`` already consumed; a pass that starts with the share all consumed starts the next
    epoch. ``len`` is always the whole share (Lightning counts an epoch's batches from it)."""

    def __init__(self, length: int, seed: int = 0, num_replicas: int = 1, rank: int = 0,
                 batch_size: int = 1) -> None:
        # drop_last: every rank gets the same count (an uneven tail would leave ranks waiting in
        # DDP's all-reduce); range(length) stands in for the dataset, only its len is read.
        super().__init__(range(int(length)), num_replicas=int(num_replicas), rank=int(rank), shuffle=True,
                         seed=int(seed), drop_last=True)
        self.length = int(length)
        # Whole batches only (the loader's drop_last, decided here): a share that ends part way
        # through a batch would make "the epoch is over" depend on who counts.
        self.num_samples -= self.num_samples % max(1, int(batch_size))
        self.skip = 0  # samples of this epoch this rank has trained on

    def set_epoch(self, epoch: int) -> None:
        """Ignored: Lightning calls it with its own epoch count, which a resumed run restarts
        (see the module doc); the sampler moves on when a pass is consumed, and a checkpoint holds
        where it is."""

    def order(self) -> tuple[list[int], list[int]]:
        """This rank's whole share of the epoch: (indices, sample seeds)."""
        g = epoch_generator(self.seed, self.epoch)
        perm = torch.randperm(self.length, generator=g)
        seeds = torch.randint(0, 2 ** 62, (self.length,), generator=g)
        used = self.num_samples * self.num_replicas
        return (perm[:used][self.rank:: self.num_replicas].tolist(),
                seeds[:used][self.rank:: self.num_replicas].tolist())

    def __len__(self) -> int:
        return self.num_samples

    def __iter__(self) -> Iterator[tuple[int, int]]:
        if self.skip >= self.num_samples:
            self.epoch, self.skip = self.epoch + 1, 0
        indices, seeds = self.order()
        return iter(list(zip(indices, seeds))[self.skip:])

    def consumed(self, samples: int) -> None:
        """``samples`` more of this epoch reached the training step."""
        self.skip += int(samples)

    def state_dict(self) -> dict[str, Any]:
        # The position is global (skip x ranks): ranks consume in lockstep, so the first
        # skip * num_replicas samples of the epoch's order are the ones trained on, and a run
        # resumed on another number of ranks still trains on each remaining sample once.
        return {"seed": self.seed, "epoch": self.epoch, "position": self.skip * self.num_replicas,
                "length": self.length}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        seed, length = int(state.get("seed", self.seed)), int(state.get("length", self.length))
        if seed != self.seed or length != self.length:
            log.warning("resume: the data order was saved for seed %s and %s samples an epoch, this run has "
                        "seed %s and %s; the epoch's order is this run's from the same position",
                        state.get("seed"), state.get("length"), self.seed, self.length)
        self.epoch, self.skip = int(state["epoch"]), int(state["position"]) // self.num_replicas


class ResumableLoader(DataLoader):
    """A DataLoader over an :class:`EpochSampler` whose position Lightning saves and restores."""

    sampler: EpochSampler

    def state_dict(self) -> dict[str, Any]:
        return self.sampler.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.sampler.load_state_dict(state)
