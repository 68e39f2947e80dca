"""Builders shared by the modes: config -> loss network, style images, trainer, logger, paths."""

from __future__ import annotations

import ctypes
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from nst.cli.values import as_list, require, thread_count
from nst.errors import NSTError
from nst.hardware import resolve_precision
from nst.io.image import load_image
from nst.perceptual.build import loss_layers, loss_on
from nst.perceptual.losses import PerceptualLoss

if TYPE_CHECKING:  # Lightning costs seconds to import; modes that build no Trainer never pay it
    import pytorch_lightning as pl


log = logging.getLogger("nst")

def config_loss(cfg: DictConfig) -> PerceptualLoss:
    """The configured loss (``cfg.loss``) on the VGG the ``vgg`` group instantiates, cut after the
    deepest layer the loss reads (nst.perceptual.build)."""
    spec = OmegaConf.to_container(cfg.loss, resolve=True)
    if not loss_layers(spec):  # no VGG layer read: a pixel loss (loss=sr_pixel), no VGG to load
        return instantiate({k: v for k, v in spec.items() if k != "tuned_for"})
    # compare's vgg.weights is null ("the model's own"); with no model to ask, auto
    vgg = instantiate(cfg.vgg, layers=loss_layers(spec), weights=cfg.vgg.weights or "auto")
    return loss_on(spec, vgg)


def load_styles(cfg: DictConfig, max_side: int | None) -> tuple[list, list[str]]:
    """The style image(s) at ``max_side`` and their paths: ``styles=[A,B,...]`` (one network for
    several styles) or ``style=A`` / ``style=[A,B]`` (one style, blended by ``style_blend``)."""
    many = [str(p) for p in as_list(cfg.get("styles"))]
    if many:
        if cfg.get("style") or cfg.get("style_blend"):
            raise NSTError("styles=[A,B,...] trains one network for several styles, style=A (or [A,B] "
                           "with style_blend) one blended style: pass one of them")
        return [load_image(p, max_side=max_side) for p in many], many
    paths = [str(p) for p in as_list(require(cfg, "style", "a painting, or a list [A,B]"))]
    blend = as_list(cfg.get("style_blend"))
    if blend and len(blend) != len(paths):
        raise NSTError(f"style_blend has {len(blend)} weights for {len(paths)} style images")
    if blend and (any(float(b) < 0 for b in blend) or sum(float(b) for b in blend) <= 0):
        raise NSTError(f"style_blend={list(blend)}: weights must be >= 0 and not all zero")
    return [load_image(p, max_side=max_side) for p in paths], paths


def set_style(loss: PerceptualLoss, images: Sequence, paths: Sequence[str], blend) -> None:
    """``loss.set_style`` with the file named in the error when a style image is too small."""
    loss.set_style(list(images), [float(b) for b in blend] if blend else None, names=[str(p) for p in paths])


def build_logger(cfg: DictConfig, save_dir: str | Path | None = None):
    """The configured Lightning logger, or False for ``logger=none``; ``save_dir`` (a training run's
    output folder) replaces the run folder Hydra made, so a run's logs sit beside its checkpoints."""
    if not cfg.get("logger") or "_target_" not in cfg.logger:
        return False
    folder = Path(save_dir) if save_dir is not None else Path(cfg.paths.output_dir)
    folder.mkdir(parents=True, exist_ok=True)
    extra = {"save_dir": str(folder)} if save_dir is not None and "save_dir" in cfg.logger else {}
    from nst.training.safelogger import Safe

    return Safe(instantiate(cfg.logger, **extra))  # a failing logger warns once and is dropped


def gatys_module(cfg: DictConfig, **kwargs):
    """``cfg.model`` as the factory of GatysModules that mode=gatys and mode=compare run (a
    ``_partial_`` nst.gatys.module.GatysModule); one line when the model group names something else."""
    target = str(cfg.model.get("_target_", ""))
    if target != "nst.gatys.module.GatysModule" or not cfg.model.get("_partial_"):
        raise NSTError(f"model={target or '?'}: mode={cfg.mode} optimizes an image, choose model=gatys "
                       "(L-BFGS) or model=gatys_adam")
    return instantiate(cfg.model, **kwargs)


def build_callbacks(cfg: DictConfig) -> list[pl.Callback]:
    """The callbacks ``cfg.callbacks`` lists by name (a ``_target_`` each; a null entry is dropped)."""
    specs = cfg.get("callbacks") or {}
    callbacks = []
    for name, spec in specs.items():
        if spec is None or spec is False:
            continue
        if not OmegaConf.is_dict(spec) or "_target_" not in spec:
            raise NSTError(f"callbacks.{name}: needs a _target_ (a Lightning callback class), "
                           f"got {spec}")
        callbacks.append(instantiate(spec))
    return callbacks


def build_trainer(cfg: DictConfig, callbacks: Sequence[pl.Callback] = (), **overrides) -> pl.Trainer:
    """A ``pl.Trainer`` from ``cfg.trainer`` with the configured logger and the given callbacks."""
    # overrides win (mode=train passes its own default_root_dir): dict(a=..., **o) would raise on a repeat
    kwargs = {"default_root_dir": cfg.paths.output_dir, "callbacks": list(callbacks), **overrides}
    if "logger" not in kwargs:
        kwargs["logger"] = build_logger(cfg)
    if cfg.trainer.get("precision") == "auto":
        kwargs.setdefault("precision", precision(cfg))
    return instantiate(cfg.trainer, **kwargs)


def precision(cfg: DictConfig) -> str:
    """``trainer.precision`` made concrete. ``auto`` means bf16 autocast for training where the
    hardware runs it natively (nst.hardware); every other mode keeps float32 for ``auto``: the Gatys
    reference should be the exact optimizer, and bf16-mixed inference, though it holds the bound of
    docs/benchmarks.md, is not yet timed against the float32 runtimes on a CPU with native bf16."""
    value = str(cfg.trainer.get("precision", "32-true"))
    if value != "auto":
        return value
    if cfg.get("mode") == "train":
        return resolve_precision("auto", str(cfg.trainer.get("accelerator", "cpu")))
    return "32-true"


def device_settings(cfg: DictConfig) -> dict:
    """``trainer.accelerator``/``trainer.precision``/``perf.channels_last`` -> Stylizer keyword arguments;
    on the CPU, ``threads`` is applied too (:func:`set_threads`)."""
    accel = str(cfg.trainer.get("accelerator", "cpu"))
    if accel == "auto":
        accel = "cuda" if torch.cuda.is_available() else "cpu"
    device = {"gpu": "cuda", "cuda": "cuda", "cpu": "cpu", "mps": "mps"}.get(accel)
    if device is None:
        raise NSTError(f"trainer.accelerator={accel}: stylize runs on cpu, gpu (cuda) or mps")
    if device == "cuda" and not torch.cuda.is_available():
        raise NSTError("trainer.accelerator=gpu but no CUDA device is available here (use trainer=cpu)")
    if device == "cpu":
        set_threads(cfg.get("threads"))
    perf = cfg.get("perf") or {}
    # NHWC pays on GPUs; on the CPU the network's fused instance norm runs NCHW, and NCHW was
    # faster at every precision measured (docs/benchmarks.md)
    return {"device": device, "precision": precision(cfg),
            "channels_last": bool(perf.get("channels_last", False)) and device != "cpu"}


def set_threads(value) -> None:
    """``threads``: a number, or ``auto``: the cores not busy right now (sampled over a fraction of a
    second, see nst.hardware.busy_cores), at least one. PyTorch's OpenMP threads spin while they
    wait, so on a shared machine two threads fighting other processes for two cores run a training
    step slower than one thread (docs/benchmarks.md)."""
    count = thread_count(value, torch.get_num_threads())
    if count is None:
        return
    torch.set_num_threads(count)
    log.info("torch CPU threads: %d", count)


def keep_freed_memory() -> None:
    """Make glibc keep and reuse freed blocks up to 256 MB instead of unmapping every one over its
    threshold (dynamic, at most 32 MB): a 1024 px tile allocates many ~135 MB activations, and
    faulting their pages back in on each allocation cost as much system time as the convolutions
    (docs/benchmarks.md). Process-wide, so in the CLI and not in the library."""
    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(-3, 256 << 20)  # M_MMAP_THRESHOLD
        libc.mallopt(-1, 1 << 30)  # M_TRIM_THRESHOLD: keep up to 1 GB free at the heap top
    except (OSError, AttributeError):  # not glibc
        pass
