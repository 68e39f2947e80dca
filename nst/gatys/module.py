"""The Gatys, Ecker & Bethge (2015) optimizer as a LightningModule whose parameter is the image.

An ordinary ``pl.Trainer`` runs it, so devices, precision, progress bar, loggers and callbacks are
the same as for training. One trainer step is one optimizer step:

- Adam: one step = one VGG forward/backward.
- L-BFGS: one step = one L-BFGS iteration (``max_iter=1``; its memory persists between
  steps). Without a line search that is one forward/backward (Gatys et al.'s and Johnson's
  L-BFGS), and nothing stops a step that raises the loss. With ``line_search="strong_wolfe"`` (the
  config's default) every iteration lowers it, and still costs about one forward/backward: torch
  re-evaluates each ``step``'s start point, and the module answers from the line search's last
  evaluation of the same pixels.

The module keeps the best iterate (the result, and ``best_image`` for snapshots): the reference
never goes backwards whatever the optimizer does.

Departure from the paper (which clips only when saving): VGG never sees colours the saved image
cannot have. Adam's pixels are clamped after every step (projected gradient descent); L-BFGS's
are clamped in the loss instead, since a clamp between steps moves the image off the step L-BFGS
took, corrupts its curvature pairs and blows runs from noise up after hundreds of iterations.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytorch_lightning as pl
import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset

from nst.errors import NSTError
from nst.gatys.initial_image import initial_image
from nst.gatys.optimizers import OptimizerFactory, gatys_optimizer, is_lbfgs
from nst.io.image import save_image
from nst.perceptual.losses import PerceptualLoss


@dataclass
class GatysResult:
    """The optimized image (1, 3, H, W) on the CPU, the loss terms of that final image, one dict
    of loss terms per step (taken before that step's update), and the seconds ``fit`` took."""

    image: Tensor
    losses: dict[str, float]
    history: list[dict[str, float]] = field(default_factory=list)
    seconds: float = 0.0


class _Repeat(Dataset):
    """The content image, ``length`` times: the data of one Gatys run (one item per step)."""

    def __init__(self, content: Tensor, length: int):
        self.content, self.length = content, length

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, i: int) -> dict[str, Tensor]:
        return {"content": self.content}


def content_loader(content: Tensor, steps: int) -> DataLoader:
    """Yields ``{"content": (1, 3, H, W)}`` once per step (no collation, no worker processes)."""
    return DataLoader(_Repeat(content.detach().float().cpu(), steps), batch_size=None, shuffle=False)


class GatysModule(pl.LightningModule):
    """Optimizes ``image`` (1, 3, H, W) against ``loss`` (style targets already set).

    The batch brings the content image; its VGG targets are taken on the first step and reused.
    Every term ``loss`` returns is logged as ``<log_prefix>/<term>`` (per layer too).
    """

    def __init__(self, loss: PerceptualLoss, init: Tensor, optimizer: str | OptimizerFactory = "lbfgs",
                 lr: float | None = None, history_size: int = 100, line_search: str | None = None,
                 channels_last: bool = False, log_prefix: str = "gatys"):
        """``optimizer``: a factory called with ``[image]`` (the config's ``_partial_``
        ``model.optimizer``), or a name, ``lbfgs`` or ``adam``, built with ``lr``, ``history_size``
        and ``line_search`` (:func:`gatys_optimizer`)."""
        super().__init__()
        if isinstance(optimizer, str):
            optimizer = gatys_optimizer(optimizer, lr, history_size, line_search)
        self._optimizer = optimizer
        self.save_hyperparameters(ignore=["loss", "init", "optimizer", "lr", "history_size", "line_search"])
        self.hparams["optimizer"] = getattr(getattr(optimizer, "func", optimizer), "__name__", str(optimizer))
        self.loss = loss
        if channels_last:  # the VGG's convolutions too (in place, like .to()): NHWC kernels on GPU
            self.loss.to(memory_format=torch.channels_last)
        # Kept contiguous: L-BFGS flattens gradients with .view(-1); channels_last is applied per forward.
        self.image = nn.Parameter(init.detach().float().clone().contiguous())
        self._targets: dict[str, Tensor] | None = None
        self._last: dict[str, Tensor] = {}
        # (pixels, gradient, terms) of the latest evaluation: the next step's first evaluation of
        # the same pixels is answered from it (see the module doc)
        self._seen: tuple[Tensor, Tensor, dict[str, Tensor]] | None = None
        self._pending: dict[str, Tensor] = {}
        self._best_loss: Tensor | None = None
        self._best_image: Tensor | None = None
        # L-BFGS: pixels clamped in the loss, not between steps, and its repeated evaluations
        # answered from _seen (see the module doc); Adam: projected steps, no evaluation repeats
        self._lbfgs = is_lbfgs(optimizer)
        self.history: list[dict[str, Tensor]] = []
        self.final: dict[str, Tensor] = {}

    def _input(self, img: Tensor) -> Tensor:
        return img.contiguous(memory_format=torch.channels_last) if self.hparams.channels_last else img

    def on_train_batch_start(self, batch, batch_idx: int) -> None:
        self._last = {}

    def _pixels(self) -> Tensor:
        """The image the loss sees: in [0, 1]."""
        return self.image.clamp(0.0, 1.0) if self._lbfgs else self.image

    def _evaluate(self) -> dict[str, Tensor]:
        """The loss terms of the current image; a repeat of the latest evaluation's pixels gets its
        terms and a loss whose gradient is that evaluation's (no VGG pass)."""
        seen = self._seen
        if seen is not None and torch.equal(seen[0], self.image.detach()):
            grad, terms = seen[1], seen[2]
            linear = (self.image * grad).sum()
            return {**terms, "loss": linear - linear.detach() + terms["loss"]}
        return self.loss(self._input(self._pixels()), self._targets)

    def _remember(self, loss: Tensor) -> None:
        """Keep the image if its loss is the lowest so far (on the device: no host sync)."""
        loss, image = loss.detach().float(), self._pixels().detach()
        if self._best_image is None:
            self._best_loss, self._best_image = loss.clone(), image.clone()
            return
        better = loss < self._best_loss
        self._best_loss = torch.where(better, loss, self._best_loss)
        self._best_image = torch.where(better, image, self._best_image)

    @torch.no_grad()
    def best_image(self) -> Tensor:
        """The iterate with the lowest loss so far, the current image included (one more forward
        when the current image has not been evaluated yet)."""
        self._remember(self._evaluate()["loss"])
        return self._best_image

    def training_step(self, batch: dict[str, Tensor], batch_idx: int) -> Tensor:
        if self._targets is None:  # once: the content never changes during a run
            self._targets = self.loss.content_targets(self._input(batch["content"]))
        out = self._evaluate()
        self._pending = {k: v.detach() for k, v in out.items()}
        if not self._last:
            # The step's first evaluation (the image before the update) is the one logged: a line
            # search evaluates trial points after it, which are not iterates.
            self._last = dict(self._pending)
            self._remember(out["loss"])
            prefix = self.hparams.log_prefix
            self.log_dict({f"{prefix}/{k}": v for k, v in self._last.items()}, on_step=True, on_epoch=False,
                          batch_size=1)
            self.log_dict({k: self._last[k] for k in ("content", "style")}, prog_bar=True, logger=False,
                          on_step=True, on_epoch=False, batch_size=1)
        return out["loss"]

    def on_after_backward(self) -> None:
        if self._lbfgs and self.image.grad is not None:
            self._seen = (self.image.detach().clone(), self.image.grad.detach().clone(), self._pending)

    def on_train_batch_end(self, outputs, batch, batch_idx: int) -> None:
        self.history.append(self._last)  # device tensors: no host sync per step

    def optimizer_step(self, *args, **kwargs) -> None:
        super().optimizer_step(*args, **kwargs)
        if not self._lbfgs:
            with torch.no_grad():
                self.image.clamp_(0.0, 1.0)

    @torch.no_grad()
    def on_train_end(self) -> None:
        # The best iterate is the result, with its terms (one more forward at most, unless it is
        # an earlier iterate: then one for the last image and one for it).
        if self._targets is None:
            return
        out = self._evaluate()
        self._remember(out["loss"])
        if not torch.equal(self._best_image, self._pixels().detach()):
            out = self.loss(self._input(self._best_image), self._targets)
        self.image.copy_(self._best_image)
        self._seen = None
        self.final = {k: v.detach() for k, v in out.items()}

    def configure_optimizers(self) -> torch.optim.Optimizer:
        opt = self._optimizer([self.image])
        if isinstance(opt, torch.optim.LBFGS):
            # One trainer step = one L-BFGS iteration (max_iter 1; its memory persists between steps),
            # tolerance 0: run every requested iteration (the defaults stop early on small-gradient
            # images). max_eval: torch derives it from max_iter, which would leave a line search no
            # evaluations at all (it then never moves); 25 trial points per iteration, as its default.
            for group in opt.param_groups:
                if group["line_search_fn"] not in (None, "strong_wolfe"):
                    raise NSTError(f"model.optimizer.line_search_fn={group['line_search_fn']!r}: "
                                   "choose null or strong_wolfe")
                group.update(max_iter=1, max_eval=26, tolerance_grad=0.0, tolerance_change=0.0)
        return opt


class SaveEvery(pl.Callback):
    """Saves the image every ``every`` steps as ``folder/<prefix>step_00010.png`` (after ``transform``)."""

    def __init__(self, every: int, folder: str | Path, prefix: str = "",
                 transform: Callable[[Tensor], Tensor] | None = None):
        self.every, self.folder, self.prefix, self.transform = int(every), Path(folder), prefix, transform

    def on_train_batch_end(self, trainer: pl.Trainer, module: GatysModule, outputs, batch,
                           batch_idx: int) -> None:
        step = trainer.global_step
        if self.every > 0 and step % self.every == 0 and trainer.is_global_zero:
            img = module._pixels().detach().float().cpu()
            save_image(self.transform(img) if self.transform else img,
                       self.folder / f"{self.prefix}step_{step:05d}.png")


def default_trainer(iterations: int, callbacks: Sequence[pl.Callback] = (), **kwargs) -> pl.Trainer:
    """A quiet single-device trainer: no logger, checkpoints, progress bar or summary."""
    opts = dict(accelerator="auto", devices=1, logger=False, enable_checkpointing=False,
                enable_progress_bar=False, enable_model_summary=False, max_steps=iterations,
                callbacks=list(callbacks))
    opts.update(kwargs)
    return pl.Trainer(**opts)


def optimize(content: Tensor, loss: PerceptualLoss, *, iterations: int,
             optimizer: str | OptimizerFactory = "lbfgs", lr: float | None = None,
             init: str | Path | Tensor = "content", seed: int = 0,
             trainer: pl.Trainer | None = None, trainer_kwargs: dict | None = None,
             callbacks: Sequence[pl.Callback] = (), history_size: int = 100, line_search: str | None = None,
             channels_last: bool = False, log_prefix: str = "gatys",
             module: Callable[..., GatysModule] | None = None) -> GatysResult:
    """Optimize an image (1, 3, H, W) in [0, 1] so its VGG features match ``content``'s and its Gram
    matrices ``loss``'s style targets (``loss.set_style`` must have been called).

    ``trainer``: a ready ``pl.Trainer`` whose ``max_steps`` is ``iterations``; without one, a quiet
    one is built from ``trainer_kwargs`` and ``callbacks`` (see :func:`default_trainer`).
    ``module``: builds the GatysModule from ``loss=``, ``init=`` and ``log_prefix=`` (the config's
    ``_partial_`` ``model``, which brings its own optimizer); without it, one is built from
    ``optimizer``, ``lr``, ``history_size``, ``line_search`` and ``channels_last``.
    """
    if iterations < 1:
        raise NSTError(f"iterations={iterations}: must be at least 1")
    if content.dim() != 4 or content.shape[:2] != (1, 3):
        raise ValueError(f"content must be (1, 3, H, W), got {tuple(content.shape)}")
    need = loss.vgg.min_size()
    if min(content.shape[-2:]) < need:
        raise NSTError(f"content image of {content.shape[-1]}x{content.shape[-2]} px is too small for the "
                       f"VGG layers used (needs at least {need} px per side)")
    if trainer is None:
        trainer = default_trainer(iterations, callbacks, **(trainer_kwargs or {}))
    elif trainer.max_steps != iterations:
        raise ValueError(f"trainer.max_steps={trainer.max_steps} but iterations={iterations}")
    if trainer.world_size > 1:
        raise NSTError(f"mode=gatys optimizes one image on one device, not {trainer.world_size} "
                       "(use trainer.devices=1)")
    start_image = initial_image(content, init, seed)
    if module is not None:
        gatys = module(loss=loss, init=start_image, log_prefix=log_prefix)
    else:
        gatys = GatysModule(loss, start_image, optimizer=optimizer, lr=lr, history_size=history_size,
                            line_search=line_search, channels_last=channels_last, log_prefix=log_prefix)
    fp16 = "16-mixed" in str(trainer.precision) and "bf16" not in str(trainer.precision)
    if fp16 and is_lbfgs(gatys._optimizer):
        raise NSTError("L-BFGS cannot run with precision=16-mixed (its gradient scaler has no closure "
                       "support): use bf16-mixed, 32-true or model=gatys_adam")
    start = time.perf_counter()
    with warnings.catch_warnings():
        # The frozen VGG is in eval mode on purpose.
        warnings.filterwarnings("ignore", ".*module\\(s\\) in eval mode.*")
        trainer.fit(gatys, train_dataloaders=content_loader(content, iterations))
    seconds = time.perf_counter() - start
    history = [{k: float(v) for k, v in h.items()} for h in gatys.history]
    final = {k: float(v) for k, v in gatys.final.items()}
    return GatysResult(gatys.image.detach().float().cpu().clamp(0, 1), final, history, seconds)
