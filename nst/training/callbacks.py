"""Lightning callbacks for training: progress lines, NaN guard, sample grids, export at the end
(checkpoints and Ctrl-C: nst.training.checkpoints)."""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from pytorch_lightning.loggers import WandbLogger
from torch import Tensor

from nst.errors import NSTError
from nst.io.grid import grid
from nst.io.image import list_images, load_image, save_image, to_pil
from nst.models.modelfile import save_model
from nst.training.checkpoints import interrupted

log = logging.getLogger("nst")


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
                       f"update (last good checkpoint: {kept}); lower model.optimizer.lr or the loss weights")


class SampleGrid(pl.Callback):
    """Every ``every_n_steps`` (and at the end): run the module on fixed content images
    (``module.sample``), write ``<out_dir>/step_000500.png`` (row per image: content | result), log
    the grid to wandb and the loss on these images as ``val/loss``, ``val/content``, ``val/style``...

    ``images``: tensors (1, 3, H, W), or a file, folder or glob read at setup at ``size`` (their max side)
    (None: no samples). ``out_dir`` None: ``<trainer.default_root_dir>/samples``.
    """

    def __init__(self, images: Sequence[Tensor] | str | None = None, out_dir: str | Path | None = None,
                 every_n_steps: int = 500, height: int = 256, size: int | None = None) -> None:
        self.spec = images if isinstance(images, (str, Path)) else None
        tensors = images is not None and self.spec is None
        self.images = [img.detach().cpu() for img in images] if tensors else []
        self.size = size
        self.out_dir = Path(out_dir) if out_dir is not None else None
        self.every = int(every_n_steps or 0)
        self.height = int(height)
        self._last = -1
        self.written: list[Path] = []

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if self.out_dir is None:
            self.out_dir = Path(trainer.default_root_dir) / "samples"
        if self.spec is not None and not self.images:  # once, before the first step: a bad file fails now
            self.images = [load_image(p, max_side=self.size) for p in list_images(self.spec)]

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
            inner = getattr(logger, "inner", logger)  # under nst.training.safelogger.Safe
            if isinstance(inner, WandbLogger) and not getattr(logger, "failed", None):
                logger.log_image(key="samples", images=[to_pil(picture)], step=step)
        terms = ", ".join(f"{k[4:]} {v:.4g}" for k, v in totals.items() if k != "val/loss")
        log.info("step %d: val/loss %.4g (%s), samples %s", step, totals.get("val/loss", float("nan")),
                 terms, path)
        return path


def model_name(styles: Sequence[str]) -> str:
    """The exported model's file stem: the style file's stem (``a+b`` for a blend)."""
    return "+".join(Path(str(p)).stem for p in styles) or "model"


class ExportOnEnd(pl.Callback):
    """When training ends (not when interrupted), write the net to ``path`` with ``metadata``
    (plus ``steps``) via :func:`nst.models.modelfile.save_model`, which refuses NaN/inf weights.

    ``metadata`` None: the module's ``hparams.export_metadata``; ``path`` None:
    ``<trainer.default_root_dir>/<style stem>.safetensors`` (:func:`model_name`).
    """

    def __init__(self, path: str | Path | None = None, metadata: dict[str, Any] | None = None) -> None:
        self.path = Path(path) if path is not None else None
        self.metadata = dict(metadata) if metadata is not None else None
        self.exported: Path | None = None

    def target(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> Path:
        """Where the model goes (resolved the same way before and after training)."""
        if self.path is not None:
            return self.path
        meta = self.metadata if self.metadata is not None else pl_module.hparams.get("export_metadata", {})
        name = meta.get("name") or model_name(meta.get("style") or [])
        return Path(trainer.default_root_dir) / f"{name}.safetensors"

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.is_global_zero and not interrupted(trainer):
            meta = self.metadata if self.metadata is not None else dict(pl_module.hparams.export_metadata)
            path = self.target(trainer, pl_module)
            self.exported = save_model(path, pl_module.net, {**meta, "steps": trainer.global_step})
            log.info("model exported: %s (%d steps)", path, trainer.global_step)
