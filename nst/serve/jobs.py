"""Bounded work for a small machine: a pool of ``workers`` threads with at most ``queue`` requests
waiting or running (one more is refused: HTTP 503), and the Gatys jobs a page starts and follows.

A Gatys job runs the reference optimizer (nst.gatys) on the uploaded photo under the model's own
loss, from white noise as Johnson et al. compared (``init``), keeping its best image after every
step for the page to poll; cancelling stops it after the current step.
"""

from __future__ import annotations

import asyncio
import itertools
import threading
import time
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Callable

import pytorch_lightning as pl
from torch import Tensor

from nst.serve.errors import ApiError


class Worker:
    """``await worker.run(fn, *args)``: ``fn`` on a pool thread; ApiError 503 when ``queue`` calls
    are already waiting or running."""

    def __init__(self, workers: int = 1, queue: int = 8, name: str = "nst-serve") -> None:
        self.pool = ThreadPoolExecutor(max_workers=max(1, int(workers)), thread_name_prefix=name)
        self.limit = max(1, int(queue))
        self.pending = 0
        self._lock = threading.Lock()

    def _enter(self) -> None:
        with self._lock:
            if self.pending >= self.limit:
                raise ApiError(503, f"busy: {self.pending} requests waiting or running; try again shortly")
            self.pending += 1

    def _leave(self, *_: Any) -> None:
        with self._lock:
            self.pending -= 1

    async def run(self, fn: Callable[..., Any], *args: Any) -> Any:
        self._enter()
        try:
            future = self.pool.submit(fn, *args)
        except BaseException:
            self._leave()
            raise
        future.add_done_callback(self._leave)
        return await asyncio.wrap_future(future)

    def submit(self, fn: Callable[..., Any], *args: Any) -> None:
        """Start ``fn`` without waiting for it (a Gatys job); 503 when the queue is full."""
        self._enter()
        self.pool.submit(fn, *args).add_done_callback(self._leave)

    def close(self) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)


@dataclass
class GatysJob:
    id: str
    iterations: int
    state: str = "queued"  # queued | running | done | cancelled | failed
    step: int = 0
    loss: float | None = None
    error: str | None = None
    image: Tensor | None = None  # the best image so far, (1, 3, H, W) on the CPU
    seconds: float = 0.0
    cancel: threading.Event = field(default_factory=threading.Event)

    def status(self) -> dict[str, Any]:
        return {"id": self.id, "state": self.state, "step": self.step, "iterations": self.iterations,
                "loss": self.loss, "seconds": round(self.seconds, 3), "error": self.error,
                "image": self.image is not None}


class Follow(pl.Callback):
    """Copies the optimizer's best image and loss into ``job`` after every step; stops on cancel."""

    def __init__(self, job: GatysJob) -> None:
        self.job, self._start = job, time.perf_counter()

    def on_train_batch_end(self, trainer: pl.Trainer, module: pl.LightningModule, *args: Any) -> None:
        job = self.job
        job.step = trainer.global_step
        job.image = module.best_image().detach().float().cpu().clamp(0, 1).clone()
        if module.history:
            job.loss = float(min(float(h["loss"]) for h in module.history))
        job.seconds = time.perf_counter() - self._start
        if job.cancel.is_set():
            trainer.should_stop = True


class GatysJobs:
    """The jobs of this server, newest last; the oldest finished ones are forgotten past ``keep``."""

    def __init__(self, worker: Worker, keep: int = 16) -> None:
        self.worker, self.keep = worker, keep
        self.jobs: OrderedDict[str, GatysJob] = OrderedDict()
        self._ids = itertools.count(1)
        self._lock = threading.Lock()

    def start(self, iterations: int, work: Callable[[GatysJob], None]) -> GatysJob:
        with self._lock:
            job = GatysJob(id=f"g{next(self._ids)}", iterations=iterations)
            self.worker.submit(self._run, job, work)  # 503 before the job is listed
            self.jobs[job.id] = job
            finished = [k for k, j in self.jobs.items() if j.state in ("done", "cancelled", "failed")]
            for k in finished[: max(0, len(self.jobs) - self.keep)]:
                del self.jobs[k]
        return job

    @staticmethod
    def _run(job: GatysJob, work: Callable[[GatysJob], None]) -> None:
        if job.cancel.is_set():
            job.state = "cancelled"
            return
        job.state = "running"
        try:
            work(job)
            job.state = "cancelled" if job.cancel.is_set() else "done"
        except Exception as e:  # the page shows it; the server goes on
            job.state, job.error = "failed", " ".join(str(e).split()) or type(e).__name__

    def get(self, job_id: str) -> GatysJob:
        job = self.jobs.get(job_id)
        if job is None:
            raise ApiError(404, f"Gatys job {job_id!r}: unknown (finished jobs are kept for a while)")
        return job
