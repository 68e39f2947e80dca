"""``nst mode=train``: train a TransformerNet for a style on a folder of photos, export it at the end.

The output folder (``output=DIR``, default the run folder) receives ``checkpoints/last.ckpt``,
``samples/step_*.png``, the exported ``<style>.safetensors`` and, with ``stylize_after``, the
stylized photos and ``side_by_side.jpg`` (content | style | result).
"""

from __future__ import annotations

import logging
import os
import sys
import warnings
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from pytorch_lightning.callbacks import ModelCheckpoint
from pytorch_lightning.utilities.exceptions import SIGTERMException

from nst.cli.build import (
    build_callbacks,
    build_logger,
    build_trainer,
    config_loss,
    load_styles,
    set_style,
    set_threads,
)
from nst.cli.values import as_list, output_folder
from nst.errors import NSTError
from nst.inference.batch import stylize_files
from nst.inference.jobs import Job
from nst.inference.stylize import Stylizer
from nst.io.files import ensure_folder, file_digest
from nst.io.grid import grid
from nst.io.image import list_images, load_image, save_image
from nst.models.modelfile import load_network
from nst.perceptual.losses import blend_weights
from nst.training import conditions, runlock
from nst.training.callbacks import ExportOnEnd, ProgressLines
from nst.training.checkpoints import (
    AtomicCheckpointIO,
    GracefulInterrupt,
    check_resumable,
    older_checkpoint_hint,
)
from nst.training.finetune import add_style, warm_start
from nst.training.module import ImageToImageModule

log = logging.getLogger("nst")

# Expected here, not actionable: the bundled photos sit in memory, so the main process needs no workers.
# The frozen VGG is in eval mode on purpose; the pytree notice is Lightning's own business.
_QUIET = (".*does not have many workers.*", ".*dataloader is not resumable.*",
          ".*smaller than the logging interval.*", ".*module\\(s\\) in eval mode.*",
          ".*isinstance\\(treespec, LeafSpec\\).*")


def resume_path(cfg: DictConfig, out: Path) -> Path | None:
    """The checkpoint to continue from: ``resume=PATH``, or ``<output>/checkpoints/last.ckpt`` with
    ``resume=true`` (``ckpt_path=PATH`` is the old spelling of ``resume=PATH``)."""
    resume = cfg.get("resume")
    if cfg.get("ckpt_path"):
        log.warning("ckpt_path= is now resume=PATH (one key for where a run continues from)")
        resume = str(cfg.ckpt_path)
    if isinstance(resume, str) and resume.lower() not in ("true", "false", ""):
        path = Path(resume).expanduser()
        if not path.is_file():
            raise NSTError(f"resume={resume}: no such checkpoint file")
        return path
    if resume is True or (isinstance(resume, str) and resume.lower() == "true"):
        path = out / "checkpoints" / "last.ckpt"
        if not path.is_file():
            raise NSTError(f"resume=true: no checkpoint at {path} (pass output=<the earlier run's folder>, "
                           "or resume=FILE)")
        return path
    return None


def metadata(cfg: DictConfig, loss, style_paths: list[str]) -> dict[str, Any]:
    """Provenance stored in checkpoints and in the exported model (plain JSON types)."""
    loss_cfg = OmegaConf.to_container(cfg.loss, resolve=True)
    loss_cfg.pop("_target_", None)
    opt = OmegaConf.to_container(cfg.model.optimizer, resolve=True) if cfg.model.get("optimizer") else {}
    return {
        "style": [Path(p).name for p in style_paths],
        # the name alone is ambiguous: compare finds the painting by name, and several copies exist
        "style_digest": [file_digest(p) for p in style_paths],
        "name": cfg.get("name"),
        "style_blend": blend_weights(len(style_paths),
                                     [float(b) for b in as_list(cfg.get("style_blend"))] or None)
                       if style_paths and not cfg.get("styles") else [],  # styles=[...] are never blended
        "style_size": cfg.get("style_size"),
        "loss": loss_cfg,
        "vgg": {"arch": loss.vgg.arch, "weights": loss.vgg.weights_source} if hasattr(loss, "vgg") else None,
        "crop": int(cfg.data.crop_size),
        "batch_size": int(cfg.data.batch_size),
        "optimizer": {"name": str(opt.get("_target_", "torch.optim.Adam")).rsplit(".", 1)[-1],
                      **{k: v for k, v in opt.items() if not k.startswith("_")}},
        "data": Path(str(cfg.data.root)).name,
        "degrade": OmegaConf.to_container(cfg.data.degrade) if cfg.data.get("degrade") else None,
        "max_steps": int(cfg.trainer.get("max_steps", -1)),
    }


def build_module(cfg: DictConfig) -> tuple[ImageToImageModule, pl.LightningDataModule, list[str]]:
    """The data (checked: NSTError before training when too few photos), the loss with its style
    targets, the network and the LightningModule; also returns the style paths."""
    if cfg.get("size") is not None:  # the old spelling of the crop side
        log.warning("size=%s in mode=train is now data.crop_size=%s (size is the max side in every "
                    "other mode)", cfg.size, cfg.size)
        cfg.data.crop_size = cfg.size
    if OmegaConf.is_missing(cfg.data, "root"):
        raise NSTError("data.root=???: pass the folder of training photos, e.g. data.root=~/coco/train2014")
    data = instantiate(cfg.data)
    data.setup("fit")
    loss = config_loss(cfg)
    paths: list[str] = []
    if getattr(loss, "style_layers", None):  # no style layers (super-resolution): no style image
        images, paths = load_styles(cfg, max_side=cfg.get("style_size"))
        set_style(loss, images, paths, as_list(cfg.get("style_blend")))
    meta = metadata(cfg, loss, paths)
    # model: the LightningModule with its net, optimizer and schedule (configs/model/*.yaml)
    # _convert_: the card reaches hparams as plain dicts and lists (weights_only checkpoints)
    module = instantiate(cfg.model, loss=loss, export_metadata=meta, _convert_="all")
    if not isinstance(module, ImageToImageModule):
        raise NSTError(f"model: mode=train trains an ImageToImageModule, {cfg.model.get('_target_')} is "
                       "not one (model=transformer or model=transformer_small)")
    names = [Path(p).name for p in paths]
    if cfg.get("finetune"):
        if len(names) != 1 or cfg.get("styles"):
            raise NSTError("finetune=norm adds one style: pass style=new.jpg")
        if _decays(cfg):  # before the model file is read
            raise NSTError("finetune=norm with weight decay would move the frozen weights: use Adam with "
                           "model.optimizer.weight_decay=0")
        net, module.condition, card = add_style(cfg.get("init_from"), str(cfg.finetune), names[0])
        module.net = net
        module.hparams["net_config"] = dict(net.config)
        module.hparams.export_metadata.update(card)
    elif cfg.get("init_from"):
        source = warm_start(module.net, str(cfg.init_from))
        module.hparams.export_metadata["init_from"] = {
            "model": str(cfg.init_from), "style": source.get("style"), "steps": source.get("steps")}
        log.info("init_from: the network starts from %s (trained for %s)", cfg.init_from, source.get("style"))
    span = conditions.strength_range(cfg.get("strength_range"))
    ends = conditions.strength_ends(cfg.get("strength_ends"))
    if module.condition is None:
        module.condition = conditions.for_network(module.net, span, ends=ends)
    net = module.net
    if getattr(net, "num_styles", 1) > 1 and not cfg.get("finetune"):
        if len(names) != net.num_styles:
            raise NSTError(f"model.net.num_styles={net.num_styles} but {len(names)} style images: name each "
                           "style in styles=[A,B,...] (the network trains as many as it names)")
        module.hparams.export_metadata["styles"] = names
    if getattr(net, "strength_input", False):
        module.hparams.export_metadata["strength"] = {"conditioned": True, "range": span}
    return module, data, paths


def _decays(cfg: DictConfig) -> bool:
    opt = cfg.model.get("optimizer") or {}
    decay = opt.get("weight_decay")
    return bool(decay) or (decay is None and str(opt.get("_target_", "")).endswith("AdamW"))


def progress(cfg: DictConfig, tty: bool | None = None) -> tuple[bool, list[pl.Callback]]:
    """(Lightning's progress bar on?, extra callbacks) for ``progress.kind``: ``bar`` (tqdm),
    ``lines`` (a log line every ``progress.every`` steps), ``none``, or ``auto``: the bar on a
    terminal (when trainer.enable_progress_bar allows it), lines when stderr is a file or a pipe."""
    spec = cfg.get("progress") or {}
    kind = str(spec.get("kind", "auto"))
    if kind not in ("auto", "bar", "lines", "none"):
        raise NSTError(f"progress.kind={kind!r}: choose auto, bar, lines or none")
    if kind == "auto":
        tty = sys.stderr.isatty() if tty is None else tty
        kind = "bar" if tty and cfg.trainer.get("enable_progress_bar", True) else "lines"
    lines = [ProgressLines(int(spec.get("every", 50)))] if kind == "lines" else []
    return kind == "bar", lines


def run(cfg: DictConfig) -> Path:
    """Train, export ``<output>/<style>.safetensors`` and return its path (exit 130 after Ctrl-C, 143
    after SIGTERM)."""
    set_threads(cfg.get("threads"))
    pl.seed_everything(int(cfg.seed), workers=True, verbose=False)
    out = output_folder(cfg)
    with runlock.hold(out):  # one run per folder: a second one refuses, naming the first
        return _train(cfg, out)


def _train(cfg: DictConfig, out: Path) -> Path:
    ckpt = resume_path(cfg, out)
    module, data, style_paths = build_module(cfg)
    if ckpt is not None:
        try:
            check_resumable(ckpt, module.hparams.net_config, module.hparams.export_metadata["style"],
                            int(cfg.trainer.get("max_steps", -1)))
        except NSTError as e:
            raise NSTError(f"{e}{older_checkpoint_hint(ckpt)}") from e
    ensure_folder(out / "checkpoints")  # an unwritable output fails now, not at the first checkpoint
    callbacks = build_callbacks(cfg)  # configs/mode/train.yaml: callbacks
    interrupt = next((cb for cb in callbacks if isinstance(cb, GracefulInterrupt)), None)
    export = next((cb for cb in callbacks if isinstance(cb, ExportOnEnd)), None)
    bar, lines = progress(cfg)
    # callbacks.checkpoint=null means no checkpoints, not Lightning's default ModelCheckpoint
    saves = any(isinstance(cb, ModelCheckpoint) for cb in callbacks)
    trainer = build_trainer(cfg, callbacks + lines, default_root_dir=str(out), plugins=[AtomicCheckpointIO()],
                            logger=build_logger(cfg, save_dir=out), enable_progress_bar=bar,
                            enable_checkpointing=saves)
    with warnings.catch_warnings():
        for pattern in _QUIET:
            warnings.filterwarnings("ignore", message=pattern)
        try:
            trainer.fit(module, datamodule=data, ckpt_path=ckpt, weights_only=True)
        except SIGTERMException:
            if interrupt is None or interrupt.interrupted_at is None:
                raise
        code = 143 if interrupt is not None and interrupt.terminated else 130
    if interrupt is not None and interrupt.interrupted_at is not None:
        rank = os.environ.get("LOCAL_RANK", "0")
        print(f"nst: interrupted at step {interrupt.interrupted_at} (rank {rank}, exit {code}); checkpoint: "
              f"{interrupt.checkpoint}; "
              f"continue with: nst mode=train ... output={out} resume=true", file=sys.stderr)
        raise SystemExit(code)
    if export is None or export.exported is None:  # callbacks.export=null, or another rank
        last = out / "checkpoints" / "last.ckpt"
        if trainer.is_global_zero:
            print("no model exported (callbacks.export is off)"
                  + (f"; checkpoint: {last}" if last.is_file() else "; no checkpoint either"))
        return last
    model_path = export.exported
    print(f"model: {model_path}")
    if cfg.get("stylize_after") and style_paths:
        stylize_after(model_path, cfg.stylize_after, style_paths, out)
    return model_path


@torch.no_grad()
def stylize_after(model_path: Path, spec: str, style_paths: list[str], out: Path, height: int = 256) -> Path:
    """Stylize ``spec`` with the *exported* file through the batch stylizer (as ``nst mode=stylize``
    does: large photos in tiles, atomic writes, a bad file reported), then ``side_by_side.jpg``:
    a row per photo, content | style | result."""
    jobs = [Job(path, out / f"{path.stem}_{model_path.stem}.jpg") for path in list_images(spec)]
    summary = stylize_files(Stylizer(*load_network(model_path)), jobs, overwrite=True)
    print(summary.line())
    style = load_image(style_paths[0], max_side=2 * height)
    rows = [[load_image(job.source), style, load_image(job.target)] for job in jobs
            if job.target in summary.written]
    sbs = save_image(grid(rows, height), out / "side_by_side.jpg", quality=90)
    print(f"side by side (content | style | result): {sbs}")
    return sbs
