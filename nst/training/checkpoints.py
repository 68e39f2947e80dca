"""Saving a run's state safely: atomic checkpoint files, ``last.ckpt`` every N steps and at the
end, and Ctrl-C/SIGTERM that stop between two steps with a checkpoint written first."""

from __future__ import annotations

import io
import logging
import os
import signal
import threading
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from lightning_fabric.plugins import TorchCheckpointIO
from pytorch_lightning.callbacks import ModelCheckpoint
from pytorch_lightning.utilities.exceptions import SIGTERMException

from nst.errors import NSTError
from nst.io.files import atomic_write_bytes
from nst.models.modelfile import checkpoint_net, read_checkpoint

log = logging.getLogger("nst")


class AtomicCheckpointIO(TorchCheckpointIO):
    """torch.save to a temporary file beside the target, then rename: a killed run never leaves a
    half-written ``last.ckpt``. (Lightning's own fsspec transaction stages the file in the system
    temp folder and *moves* it, which is a copy, not atomic, when /tmp is another file system.)"""

    def save_checkpoint(self, checkpoint: dict[str, Any], path, storage_options: Any | None = None) -> None:
        # serialized in memory first: a full disk is then one line with the size it needed
        buffer = io.BytesIO()
        torch.save(checkpoint, buffer)
        atomic_write_bytes(path, buffer.getbuffer())


class StepCheckpoint(ModelCheckpoint):
    """``last.ckpt`` every ``every_n_train_steps`` and at the end of training; with ``keep_all``
    also ``step_NNNNNN.ckpt`` at each of them. ``dirpath`` None: ``<trainer.default_root_dir>/checkpoints``
    (the run's output folder), not Lightning's logger-version folder.

    Lightning's ModelCheckpoint skips the final save when it saved at least once before, so a run
    of 600 steps checkpointed every 500 would resume from 500: :meth:`on_train_end` saves again.
    Always the same ``last.ckpt`` (no ``last-v1.ckpt`` when resuming into the same folder).
    """

    def __init__(self, dirpath: str | Path | None = None, every_n_train_steps: int = 500,
                 keep_all: bool = False, **kwargs: Any) -> None:
        kwargs.setdefault("filename", "step_{step:06d}")
        kwargs.setdefault("save_last", True)
        kwargs.setdefault("save_top_k", -1 if keep_all else 0)
        kwargs.setdefault("enable_version_counter", False)
        kwargs.setdefault("auto_insert_metric_name", False)
        super().__init__(dirpath=dirpath, every_n_train_steps=int(every_n_train_steps), **kwargs)

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if self.dirpath is None:
            # as ModelCheckpoint.__init__ stores a given dirpath: a resumed run compares them
            folder = Path(trainer.default_root_dir).expanduser() / "checkpoints"
            self.dirpath = os.path.realpath(folder)
        super().setup(trainer, pl_module, stage)

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
        self.terminated = False  # the stop was a SIGTERM (exit 143), on any rank
        self._sigterm = False
        self.interrupted_at: int | None = None
        self.checkpoint: str | None = None
        self._previous: Any = None
        self._previous_term: Any = None

    def _term_handler(self, signum, frame) -> None:
        # Instead of Lightning's, which raises on each rank at its own next step: under DDP a rank
        # that stopped first left the others in a collective ("connection closed by peer"). Here
        # SIGTERM is a stop request like Ctrl-C's, and on_train_batch_end stops every rank together.
        self._sigterm = self.requested = True
        log.warning("SIGTERM: stopping after this step and saving a checkpoint")

    def _handler(self, signum, frame) -> None:
        if self.requested:  # second Ctrl-C: the user means it
            signal.signal(signal.SIGINT, self._previous or signal.default_int_handler)
            raise KeyboardInterrupt
        self.requested = True
        log.warning("Ctrl-C: stopping after this step and saving a checkpoint (press again to quit at once)")

    def request(self) -> None:
        """Ask to stop as a Ctrl-C would (tests, other front ends)."""
        self.requested = True

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # Not on_fit_start: Lightning registers its own SIGTERM handler after that hook and would
        # chain ours behind it; its handler forwards the signal to the other ranks and broadcasts
        # from inside the signal handler, which under load met the other rank mid-collective
        # ("connection reset by peer"). Installed here, ours replaces it for the training loop.
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._handler)
            self._previous_term = signal.signal(signal.SIGTERM, self._term_handler)

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs, batch,
                           batch_idx: int) -> None:
        stop = trainer.strategy.reduce_boolean_decision(self.requested, all=False)
        if not stop or self.interrupted_at is not None:
            return
        # every rank learns whether any rank got a SIGTERM (one signal to rank 0 stops them all)
        self.terminated = trainer.strategy.reduce_boolean_decision(self._sigterm, all=False)
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
            self.terminated = True
            self.interrupted_at = trainer.global_step
            ckpt = trainer.checkpoint_callback
            if isinstance(ckpt, StepCheckpoint) and trainer.global_step > 0:
                self.checkpoint = ckpt.save_last_now(trainer)

    def teardown(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if self._previous is not None and threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGINT, self._previous)
            self._previous = None
        if self._previous_term is not None and threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, self._previous_term)
            self._previous_term = None


def interrupted(trainer: pl.Trainer) -> bool:
    """Whether a GracefulInterrupt stopped this run (then the end-of-training work is skipped)."""
    return any(isinstance(cb, GracefulInterrupt) and cb.interrupted_at is not None
               for cb in trainer.callbacks)


def older_checkpoint_hint(broken: Path) -> str:
    """For an unreadable checkpoint: the newest readable ``step_*.ckpt`` beside it (ckpt_keep_all)
    and how to resume from it, or nothing."""
    if broken.name != "last.ckpt":
        return ""
    for older in sorted(broken.parent.glob("step_*.ckpt"), reverse=True):
        try:
            read_checkpoint(older)
        except NSTError:
            continue
        return f"; the newest readable checkpoint is {older}: resume from it with resume={older}"
    return ""


def check_resumable(path: Path, net_config: dict, styles: list[str], max_steps: int | None = None) -> None:
    """Refuse a checkpoint of another architecture in one line (not a state_dict size-mismatch dump),
    and one whose learning-rate schedule ends before ``max_steps`` (a one-cycle schedule restored
    from the checkpoint keeps its own length, and torch raises once it is stepped past it)."""
    ckpt = read_checkpoint(path)  # read once: its network and card, then its schedules
    _, meta = checkpoint_net(path, ckpt)
    for state in ckpt.get("lr_schedulers") or []:
        total = state.get("total_steps") if isinstance(state, dict) else None
        if isinstance(total, int) and max_steps is not None and max_steps > total:
            raise NSTError(f"{path}: its learning-rate schedule ends at step {total}, this run asks for "
                           f"trainer.max_steps={max_steps} (resume with trainer.max_steps={total}, or start "
                           "a new run with init_from= the exported model)")
    if meta.get("args") != net_config:
        raise NSTError(f"{path}: trained with model {meta.get('args')}, this run builds {net_config} "
                       "(pass the original run's model=... settings)")
    if meta.get("style") and meta["style"] != styles:
        log.warning("%s was trained for style %s, this run uses %s", path, meta["style"], styles)
