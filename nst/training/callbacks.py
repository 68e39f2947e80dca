"""Lightning callbacks for training: atomic checkpoints, Ctrl-C, NaN guard, sample grids, export at
the end."""

from __future__ import annotations

import logging
import math
import signal
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from lightning_fabric.plugins import TorchCheckpointIO
from pytorch_lightning.callbacks import ModelCheckpoint
from pytorch_lightning.loggers import WandbLogger
from pytorch_lightning.utilities.exceptions import SIGTERMException
from torch import Tensor

from nst.errors import NSTError
from nst.files import atomic_path
from nst.grid import grid
from nst.image import save_image, to_pil
from nst.modelfile import save_model

log = logging.getLogger("nst")


class AtomicCheckpointIO(TorchCheckpointIO):
    """torch.save to a temporary file beside the target, then rename: a killed run never leaves a
    half-written ``last.ckpt``. (Lightning's own fsspec transaction stages the file in the system
    temp folder and *moves* it, which is a copy, not atomic, when /tmp is another file system.)"""

    def save_checkpoint(self, checkpoint: dict[str, Any], path, storage_options: Any | None = None) -> None:
        with atomic_path(path) as tmp:
            torch.save(checkpoint, tmp)


class StepCheckpoint(ModelCheckpoint):
    """``last.ckpt`` every ``every_n_train_steps`` and at the end of training.

    Lightning's ModelCheckpoint skips the final save when it saved at least once before, so a run
    of 600 steps checkpointed every 500 would resume from 500: :meth:`on_train_end` saves again.
    Always the same ``last.ckpt`` (no ``last-v1.ckpt`` when resuming into the same folder).
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("enable_version_counter", False)
        kwargs.setdefault("auto_insert_metric_name", False)
        super().__init__(*args, **kwargs)

    def save_last_now(self, trainer: pl.Trainer) -> str:
        """Write ``last.ckpt`` now (unless already saved at this step); returns its path."""
        if self._last_global_step_saved != trainer.global_step or not self.last_model_path:
            self._save_last_checkpoint(trainer, self._monitor_candidates(trainer))
        return self.last_model_path

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.global_step > 0:
            self.save_last_now(trainer)


class GracefulInterrupt(pl.Callback):
    """First Ctrl-C (SIGINT): finish the current step, save ``last.ckpt``, stop. A second one
    interrupts at once. SIGTERM also saves ``last.ckpt`` before the process ends. (Saving from inside the
    KeyboardInterrupt could catch the optimizer
    half-way through its update and store an inconsistent state.)"""

    def __init__(self) -> None:
        self.requested = False
        self.interrupted_at: int | None = None
        self.checkpoint: str | None = None
        self._previous: Any = None

    def _handler(self, signum, frame) -> None:
        if self.requested:  # second Ctrl-C: the user means it
            signal.signal(signal.SIGINT, self._previous or signal.default_int_handler)
            raise KeyboardInterrupt
        self.requested = True
        log.warning("Ctrl-C: stopping after this step and saving a checkpoint (press again to quit at once)")

    def request(self) -> None:
        """Ask to stop as a Ctrl-C would (tests, other front ends)."""
        self.requested = True

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._handler)

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs, batch,
                           batch_idx: int) -> None:
        stop = trainer.strategy.reduce_boolean_decision(self.requested, all=False)
        if not stop or self.interrupted_at is not None:
            return
        self.interrupted_at = trainer.global_step
        ckpt = trainer.checkpoint_callback
        if isinstance(ckpt, StepCheckpoint):
            self.checkpoint = ckpt.save_last_now(trainer)
        trainer.should_stop = True

    def on_exception(self, trainer: pl.Trainer, pl_module: pl.LightningModule,
                     exception: BaseException) -> None:
        # SIGTERM (kill, a scheduler's pre-emption): Lightning raises this between two steps, where
        # the state is consistent, so the checkpoint is safe to write.
        if isinstance(exception, SIGTERMException) and self.interrupted_at is None:
            self.interrupted_at = trainer.global_step
            ckpt = trainer.checkpoint_callback
            if isinstance(ckpt, StepCheckpoint) and trainer.global_step > 0:
                self.checkpoint = ckpt.save_last_now(trainer)

    def teardown(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if self._previous is not None and threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGINT, self._previous)
            self._previous = None


def interrupted(trainer: pl.Trainer) -> bool:
    """Whether a GracefulInterrupt stopped this run (then the end-of-training work is skipped)."""
    return any(isinstance(cb, GracefulInterrupt) and cb.interrupted_at is not None
               for cb in trainer.callbacks)


class ProgressLines(pl.Callback):
    """A log line every ``every`` steps (and at the last): step, loss, speed and time left. For
    logs that are files, where tqdm's redraws come to ~100 KB of carriage returns per 500 steps."""

    def __init__(self, every: int = 50) -> None:
        self.every = max(1, int(every))
        self._start: tuple[float, int] | None = None

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._start = (time.monotonic(), trainer.global_step)

    def line(self, trainer: pl.Trainer) -> str:
        step, total = trainer.global_step, trainer.max_steps
        t0, s0 = self._start or (time.monotonic(), step)
        rate = (step - s0) / max(time.monotonic() - t0, 1e-9)
        parts = [f"step {step}/{total} ({100 * step // total} %)" if total and total > 0 else f"step {step}"]
        loss = trainer.callback_metrics.get("train/loss")
        if loss is not None:
            parts.append(f"loss {float(loss):.4g}")
        if step > s0:
            parts.append(f"{rate:.2f} steps/s")
            if total and total > step:
                left = int((total - step) / rate)
                parts.append(f"{left // 60} min {left % 60:02d} s left")
        return ", ".join(parts)

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs, batch,
                           batch_idx: int) -> None:
        step = trainer.global_step
        if trainer.is_global_zero and (step % self.every == 0 or step == trainer.max_steps):
            log.info("%s", self.line(trainer))


class NaNGuard(pl.Callback):
    """Stop with an NSTError when the loss or a gradient is NaN/inf, *before* the optimizer step,
    so no NaN ever reaches the weights, a checkpoint or an exported model."""

    def on_before_optimizer_step(self, trainer: pl.Trainer, pl_module: pl.LightningModule, optimizer) -> None:
        loss = getattr(pl_module, "last_loss", None)
        checks = [torch.isfinite(loss).all()] if loss is not None else []
        checks += [torch.isfinite(p.grad).all() for p in pl_module.parameters() if p.grad is not None]
        if not checks or bool(torch.stack(checks).all()):  # one device sync per step
            return
        value = float(loss) if loss is not None else float("nan")
        what = f"the loss is {value}" if not math.isfinite(value) else "a gradient is NaN/inf"
        ckpt = trainer.checkpoint_callback
        kept = getattr(ckpt, "last_model_path", "") or "none yet"
        raise NSTError(f"training diverged at step {trainer.global_step + 1}: {what}; stopped before the "
                       f"update (last good checkpoint: {kept}); lower optimizer.lr or the loss weights")


class SampleGrid(pl.Callback):
    """Every ``every_n_steps`` (and at the end): stylize fixed content images, write
    ``<out_dir>/step_000500.png`` (row per image: content | result), log the grid to wandb and the
    loss on these images as ``val/loss``, ``val/content``, ``val/style``, ``val/tv``."""

    def __init__(self, images: Sequence[Tensor], out_dir: str | Path, every_n_steps: int = 500,
                 height: int = 256) -> None:
        self.images = [img.detach().cpu() for img in images]
        self.out_dir = Path(out_dir)
        self.every = int(every_n_steps)
        self.height = int(height)
        self._last = -1
        self.written: list[Path] = []

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs, batch,
                           batch_idx: int) -> None:
        if self.every > 0 and trainer.global_step % self.every == 0:
            self.render(trainer, pl_module)

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not interrupted(trainer):
            self.render(trainer, pl_module)

    @torch.no_grad()
    def render(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> Path | None:
        step = trainer.global_step
        if not self.images or step == self._last or not trainer.is_global_zero:
            return None
        self._last = step
        rows, totals = [], {}
        for img in self.images:
            y, terms = pl_module.sample(img)  # the module knows its network, loss and target
            for k in ("loss", "content", "style", "tv"):
                if k in terms:
                    totals[f"val/{k}"] = totals.get(f"val/{k}", 0.0) + terms[k] / len(self.images)
            rows.append([img, y.cpu()])
        picture = grid(rows, self.height)
        path = save_image(picture, self.out_dir / f"step_{step:06d}.png")
        self.written.append(path)
        for logger in trainer.loggers:
            logger.log_metrics(totals, step=step)
            if isinstance(logger, WandbLogger):
                logger.log_image(key="samples", images=[to_pil(picture)], step=step)
        terms = ", ".join(f"{k[4:]} {v:.4g}" for k, v in totals.items() if k != "val/loss")
        log.info("step %d: val/loss %.4g (%s), samples %s", step, totals.get("val/loss", float("nan")),
                 terms, path)
        return path


class ExportOnEnd(pl.Callback):
    """When training ends (not when interrupted), write the net to ``path`` with ``metadata``
    (plus ``steps``) via :func:`nst.modelfile.save_model`, which refuses NaN/inf weights."""

    def __init__(self, path: str | Path, metadata: dict[str, Any]) -> None:
        self.path = Path(path)
        self.metadata = dict(metadata)
        self.exported: Path | None = None

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.is_global_zero and not interrupted(trainer):
            self.exported = save_model(self.path, pl_module.net,
                                       {**self.metadata, "steps": trainer.global_step})
            log.info("model exported: %s (%d steps)", self.path, trainer.global_step)
