"""ImageToImageModule: trains any image-to-image network (nst.networks) through a loss on its output.

A batch is a dict ``{"input": (N,3,H,W), "target": ...}`` in [0, 1]; without ``target`` the target
is the input itself, as for a style network (Johnson et al. 2016: content targets are the photo's
own activations). Super-resolution passes the high-resolution image as ``target``, a stability
loss the shifted frame. The loss is called as ``loss(output, target)`` and returns a dict of
terms with ``loss`` (PerceptualLoss, PixelLoss).

The loss network (VGG) is frozen and never stored in checkpoints (VGGFeatures drops its weights
from ``state_dict``; the style Gram targets are non-persistent buffers recomputed from the style
images), so a checkpoint holds the network, the optimizer state and ``hyper_parameters`` with
``network``, ``net_config`` and ``export_metadata`` (see nst.models.modelfile).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Any

import pytorch_lightning as pl
import torch
from torch import Tensor

from nst import networks

OptimizerFactory = Callable[[Iterable[torch.nn.Parameter]], torch.optim.Optimizer]
SchedulerFactory = Callable[[torch.optim.Optimizer], torch.optim.lr_scheduler.LRScheduler]


class ImageToImageModule(pl.LightningModule):
    """Training of a feed-forward image network.

    Args:
        net: a registered network (nst.networks) to train.
        loss: called as ``loss(output, target)``, returns ``{"loss": ..., other terms}``; e.g. a
            PerceptualLoss whose style targets are set (``loss.set_style``).
        optimizer: builds the optimizer from the net's parameters (e.g. a Hydra ``_partial_``
            ``torch.optim.Adam``); None: Adam with ``lr``.
        scheduler: builds a learning-rate schedule from the optimizer, stepped every training step
            (e.g. a ``_partial_`` ``torch.optim.lr_scheduler.OneCycleLR``); None: a constant rate.
        lr: learning rate of the default Adam.
        channels_last: keep the net, VGG and batches in channels-last memory format (GPU tensor cores).
        compile: ``torch.compile`` the net in place (its state_dict keys stay the same).
        export_metadata: plain-JSON provenance for the exported model (style, loss, vgg, sizes).
        pair: turns a sample image into (input, target) for :meth:`sample` when its target is not
            the image itself (super-resolution: ``nst.training.degrade.Degrade``); None: (image, image).
        condition: what a conditional network is told each step, and its loss with it (a style
            drawn per batch, a strength: nst.training.conditions); None: nothing (plain networks).

    A batch is a dict with ``input``, optionally ``target`` and ``skipped`` (the count of
    unreadable files so far, logged as ``data/skipped``), or a bare (N, 3, S, S) tensor.
    """

    def __init__(self, net: torch.nn.Module, loss: torch.nn.Module, optimizer: OptimizerFactory | None = None,
                 scheduler: SchedulerFactory | None = None, lr: float = 1e-3, channels_last: bool = False,
                 compile: bool = False, export_metadata: dict[str, Any] | None = None,
                 pair: Callable[[Tensor], tuple[Tensor, Tensor]] | None = None,
                 condition: Callable[..., tuple[dict, dict]] | None = None):
        super().__init__()
        self.net = net
        self.loss = loss
        self.condition = condition
        self._optimizer = optimizer
        self._scheduler = scheduler
        self.pair = pair
        self.last_loss: Tensor | None = None  # read by callbacks.NaNGuard before each optimizer step
        # wall seconds of training, carried across resumes in the checkpoint: a quality-against-time
        # curve reads them from each checkpoint (docs/training.md)
        self._seconds_before, self._clock = 0.0, None
        # Plain types only: checkpoints are read back with torch.load(weights_only=True).
        self.save_hyperparameters(ignore=["net", "loss", "optimizer", "scheduler", "pair", "condition"])
        self.hparams["network"] = networks.name_of(net)
        self.hparams["net_config"] = dict(getattr(networks.unwrap(net), "config", {}))
        self.hparams["export_metadata"] = dict(export_metadata or {})

    def setup(self, stage: str) -> None:
        if self.hparams.channels_last:
            self.net.to(memory_format=torch.channels_last)
            if getattr(self.loss, "vgg", None) is not None:  # a PixelLoss has no loss network
                self.loss.vgg.to(memory_format=torch.channels_last)
        if self.hparams.compile and not getattr(self, "_compiled", False):
            self.net.compile()  # in place: no "_orig_mod." prefix in checkpoints
            self._compiled = True

    def forward(self, x: Tensor) -> Tensor:
        """(N, 3, H, W) in [0, 1] -> the network's output in [0, 1]."""
        return self.net(self._layout(x))

    @staticmethod
    def split(batch: Tensor | dict[str, Any]) -> tuple[Tensor, Tensor]:
        """(input, target) of a batch; the target is the input where the batch has none."""
        if not isinstance(batch, dict):
            return batch, batch
        x = batch["input"]
        return x, batch.get("target", x)

    @torch.no_grad()
    def sample(self, x: Tensor, target: Tensor | None = None) -> tuple[Tensor, dict[str, float]]:
        """The network's output for one (1, 3, H, W) image in eval mode, and the loss terms on it
        (for sample grids and ``val/*`` logs; the module's train/eval mode is restored)."""
        if target is None and self.pair is not None:
            x, target = self.pair(x)
        was_training = self.training
        self.eval()
        try:
            x = x.to(self.device)
            net_kw, loss_kw = ({}, {}) if self.condition is None else \
                self.condition.sample_kwargs(x.shape[0], self.device)
            y = self.net(self._layout(x), **net_kw).float()
            terms = self.loss(y, x if target is None else target.to(self.device), **loss_kw)
        finally:
            self.train(was_training)
        return y, {k: float(v) for k, v in terms.items()}

    def _layout(self, x: Tensor) -> Tensor:
        return x.contiguous(memory_format=torch.channels_last) if self.hparams.channels_last else x

    def training_step(self, batch: Tensor | dict[str, Any], batch_idx: int) -> Tensor:
        x, target = self.split(batch)
        x, target = self._layout(x), self._layout(target)
        # a conditional network draws its style or strength for this batch (nst.training.conditions)
        net_kw, loss_kw = self.condition(x.shape[0], x.device) if self.condition else ({}, {})
        y = self.net(x, **net_kw)
        terms = self.loss(y, target, **loss_kw)
        stability = getattr(self.loss, "stability", None)
        if stability is not None:  # loss.stability_weight: the network's own terms (it runs twice more)
            extra = stability(self.net, x, y, **net_kw)
            weighted = extra.pop("stability")
            terms = {**terms, **extra, "stability": weighted.detach(), "loss": terms["loss"] + weighted}
        self.last_loss = terms["loss"].detach()
        logs = {f"train/{k}": v for k, v in terms.items()}
        if isinstance(batch, dict) and "skipped" in batch:
            logs["data/skipped"] = float(batch["skipped"])
        self.log("train/loss", logs.pop("train/loss"), prog_bar=True, on_step=True, batch_size=x.shape[0])
        self.log_dict(logs, on_step=True, on_epoch=False, batch_size=x.shape[0])
        return terms["loss"]

    def on_train_start(self) -> None:
        self._clock = time.perf_counter()

    @property
    def train_seconds(self) -> float:
        """Wall seconds spent training so far, over every resumed part of the run."""
        return self._seconds_before + (0.0 if self._clock is None else time.perf_counter() - self._clock)

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["train_seconds"] = self.train_seconds
        # The data draws its order and crops from (seed, epoch) (nst.training.sampling); what the
        # training step draws itself (a strength, a style, a warp) comes from torch's global RNG:
        # storing it lets a resumed run continue the same stream.
        checkpoint["torch_rng_state"] = torch.get_rng_state()

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        self._seconds_before = float(checkpoint.get("train_seconds", 0.0))
        state = checkpoint.get("torch_rng_state")
        if isinstance(state, Tensor):
            torch.set_rng_state(state)

    def configure_optimizers(self) -> torch.optim.Optimizer | dict[str, Any]:
        params = [p for p in self.net.parameters() if p.requires_grad]
        if self._optimizer is not None:
            opt = self._optimizer(params)
        else:
            opt = torch.optim.Adam(params, lr=self.hparams.lr)
        if self._scheduler is None:
            return opt
        # Stepped per training step, not per epoch: an "epoch" here is an arbitrary count of crops.
        return {"optimizer": opt, "lr_scheduler": {"scheduler": self._scheduler(opt), "interval": "step"}}
