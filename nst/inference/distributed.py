"""Stylizing many files on several processes or GPUs through Lightning's predict loop.

``nst mode=stylize trainer.devices=N trainer.strategy=ddp`` (or ``trainer=ddp`` on GPUs, or under
torchrun/SLURM): every rank plans the same list of jobs, Lightning's distributed sampler for
prediction (``UnrepeatedDistributedSamplerWrapper``: no index is padded in twice) gives each rank
its own share of them, each rank stylizes and writes its share with
:func:`nst.inference.batch.stylize_files` (so every file is written once, atomically), and rank 0 gathers
the per-rank summaries into one. The single-device path (``nst.inference.stylize``) never imports Lightning.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Any

import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, Dataset

from nst.inference.batch import stylize_files
from nst.inference.jobs import Job, Summary
from nst.inference.stylize import Stylizer


class _Indices(Dataset):
    """0 .. n-1: the jobs are planned on every rank alike, only their indices travel."""

    def __init__(self, n: int) -> None:
        self.n = n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> int:
        return i


def merge(summaries: Sequence[Summary | dict]) -> Summary:
    """One summary from several (ranks'); ``seconds`` is the longest rank's (they ran at once)."""
    out = Summary()
    for s in summaries:
        s = s if isinstance(s, Summary) else Summary(**s)
        out.written += s.written
        out.failed += s.failed
        out.skipped += s.skipped
        out.seconds = max(out.seconds, s.seconds)
    return out


class StylizeFiles(pl.LightningModule):
    """The predict loop's module: ``net`` on the rank's device, stylizing the jobs its batches name.

    ``make_stylizer(net, device)`` builds the Stylizer once the net is on its device (precision,
    tiles, strength...); ``options``: keyword arguments of :func:`nst.inference.batch.stylize_files`.
    """

    def __init__(self, net: torch.nn.Module, jobs: Sequence[Job],
                 make_stylizer: Callable[[torch.nn.Module, torch.device], Stylizer], **options: Any) -> None:
        super().__init__()
        self.net = net
        self.jobs = list(jobs)
        self.make_stylizer = make_stylizer
        self.options = options
        self.stylizer: Stylizer | None = None
        self.summary = Summary()

    def on_predict_start(self) -> None:
        if self.device.type == "cpu":  # N processes on one machine share its cores
            local = int(os.environ.get("LOCAL_WORLD_SIZE", self.trainer.num_devices or 1))
            cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
            torch.set_num_threads(max(1, cores // max(1, local)))
        self.stylizer = self.make_stylizer(self.net, self.device)

    def predict_step(self, batch: torch.Tensor, batch_idx: int) -> None:
        assert self.stylizer is not None
        part = stylize_files(self.stylizer, [self.jobs[int(i)] for i in batch], **self.options)
        seconds = self.summary.seconds + part.seconds  # one rank's chunks run one after another
        self.summary = merge([self.summary, part])
        self.summary.seconds = seconds

    def gathered(self) -> Summary:
        """Every rank's summary merged (call on every rank: it is a collective under DDP)."""
        if not (torch.distributed.is_available() and torch.distributed.is_initialized()):
            return self.summary
        parts: list[Any] = [None] * torch.distributed.get_world_size()
        torch.distributed.all_gather_object(parts, vars(self.summary))
        return merge(parts)


def stylize_distributed(net: torch.nn.Module, jobs: Sequence[Job], trainer: pl.Trainer,
                        make_stylizer: Callable[[torch.nn.Module, torch.device], Stylizer],
                        chunk: int | None = None, **options: Any) -> tuple[Summary, bool]:
    """Stylize ``jobs`` on ``trainer``'s devices; returns (the summary of all ranks, whether this
    process is rank 0). ``chunk``: jobs per predict step (default: 4 batches of ``batch_size``).
    ``trainer`` must use Lightning's distributed sampler (``use_distributed_sampler=True``, its
    default), which is what gives each rank its own share."""
    if not trainer._accelerator_connector.use_distributed_sampler:
        raise ValueError("stylize_distributed needs a trainer with use_distributed_sampler=True")
    chunk = chunk or 4 * int(options.get("batch_size", 4))
    module = StylizeFiles(net, jobs, make_stylizer, **options)
    loader = DataLoader(_Indices(len(jobs)), batch_size=max(1, int(chunk)), shuffle=False)
    trainer.predict(module, dataloaders=loader, return_predictions=False)
    return module.gathered(), trainer.is_global_zero
