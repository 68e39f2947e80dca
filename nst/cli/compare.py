"""``nst mode=compare checkpoint=MODEL input=PHOTOS``: the network against Gatys under one loss.

For each photo: the network's result and the Gatys snapshots at each ``snapshots`` count, their
loss terms and times (see :mod:`nst.evaluation.compare`); writes ``results.json``, ``results.md`` and one
picture per photo (content | Gatys at each count | network) into ``output`` (default
``<run folder>/compare``).
"""

from __future__ import annotations

import contextlib
import json
import logging
import warnings
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf

from nst.cli.build import config_loss, device_settings, gatys_module, precision
from nst.cli.values import as_list, output_folder, pixels, require
from nst.errors import NSTError
from nst.evaluation.compare import (
    average,
    compare_photo,
    loss_settings,
    model_loss,
    one_style,
    resolve_styles,
    set_styles,
)
from nst.evaluation.report import markdown
from nst.hardware import describe
from nst.inference.styles import pick, style_names
from nst.inference.stylize import Stylizer
from nst.io.files import atomic_write_text, cache_dir, ensure_folder
from nst.io.grid import grid
from nst.io.image import list_images, load_image, save_image
from nst.models.modelfile import load_any

log = logging.getLogger("nst")
# Lightning's notes on every Gatys fit that say nothing here: the one image needs no workers, the VGG is
# meant to be in eval mode, and an internal deprecation of Lightning's own.
_QUIET = r".*(does not have many workers|module\(s\) in eval mode|LeafSpec).*"


@contextlib.contextmanager
def quiet_lightning():
    """Lightning's per-fit notes (GPU available, tips, max_steps reached) once per photo are noise here."""
    logger = logging.getLogger("pytorch_lightning.utilities.rank_zero")
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        logger.setLevel(level)


def vgg_weights(cfg: DictConfig) -> str | None:
    """``vgg.weights`` (null: the model's own source), or the old spelling ``vgg_weights``."""
    if cfg.get("vgg_weights"):
        log.warning("vgg_weights= is now vgg.weights= (the same key as in every other mode)")
        return str(cfg.vgg_weights)
    return cfg.vgg.get("weights")


def counts(value) -> list[int]:
    """``snapshots`` as a sorted list of distinct whole numbers >= 1."""
    items = as_list(value)
    if not items or not all(isinstance(i, int) and not isinstance(i, bool) and i >= 1 for i in items):
        raise NSTError(f"snapshots={value}: give whole numbers >= 1, e.g. [50,100,300]")
    return sorted(set(items))


def _json(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))


def run(cfg: DictConfig) -> dict[str, Any]:
    checkpoint = Path(str(require(cfg, "checkpoint", "an exported .safetensors model or a Lightning .ckpt")))
    spec = str(require(cfg, "input", "a folder or glob of content photos"))
    its = counts(cfg.snapshots)
    size = pixels(cfg, "size")
    limit = cfg.get("limit")
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise NSTError(f"limit={limit!r}: must be a whole number >= 1 (or null)")
    settings = device_settings(cfg)  # and threads=, on the CPU
    # configs/model/gatys.yaml: the GatysModule and its optimizer (checked before anything loads)
    module = gatys_module(cfg, channels_last=settings["channels_last"])
    device = torch.device(settings["device"])
    net, meta = load_any(checkpoint, device)
    override = [str(s) for s in as_list(cfg.get("style"))]
    chosen = {}
    if getattr(net, "num_styles", 1) > 1:  # style= picks the model's style scored here: an index, a
        names = style_names(net, meta)      # name, or the path of that style's image (named as in the card)
        image = Path(override[0]).expanduser() if override else None
        given = image is not None and image.is_file()
        k = pick(names, image.name if given else override[0] if override else 0)
        chosen = {"style": k}
        meta = one_style(meta, names, k)
        override = [str(image)] if given else []
        log.info("compare: style %d of the model, %s", k, names[k])
    stylizer = Stylizer(net, meta, **settings, tile_size=None, **chosen)

    spec_loss = loss_settings(meta)
    if spec_loss is None:
        log.warning("%s: no loss settings in its metadata; using loss=%s from the config", checkpoint,
                    OmegaConf.select(cfg, "hydra.runtime.choices.loss", default="(config)"))
        loss = config_loss(cfg)
        spec_loss = OmegaConf.to_container(cfg.loss, resolve=True)
        spec_loss.pop("_target_", None)
        spec_loss.update(arch=loss.vgg.arch, weights=loss.vgg.weights_source)
    else:
        loss = model_loss(spec_loss, weights=vgg_weights(cfg), seed=int(cfg.seed))
    styles = resolve_styles(meta, checkpoint, override)
    blend = None if override else meta.get("style_blend")
    style_size = cfg.get("style_size") or meta.get("style_size") or size
    set_styles(loss, styles, blend, style_size)
    loss.to(device)

    photos = list_images(spec)[:limit] if limit else list_images(spec)
    out_dir = ensure_folder(output_folder(cfg, "compare"))
    trainer_kwargs = {"accelerator": "gpu" if device.type == "cuda" else "cpu",
                      "precision": precision(cfg)}
    optimizer = OmegaConf.to_container(cfg.model.optimizer, resolve=True)
    rows = []
    for n, photo in enumerate(photos, start=1):
        content = load_image(photo, max_side=size)
        with warnings.catch_warnings(), quiet_lightning():
            warnings.filterwarnings("ignore", message=_QUIET)
            entry, image, runs = compare_photo(
                stylizer, loss, content, its, repeats=int(cfg.repeats), module=module,
                init=cfg.init, seed=int(cfg.seed), trainer_kwargs=trainer_kwargs, device=device,
                cache=cache_dir() / "gatys" if cfg.get("cache", True) else None)
        net_terms, gatys, seconds = entry["network"], entry["gatys"], entry["network"]["seconds"]
        labels = ["content"] + [f"Gatys {c} it, {runs.seconds[c]:.3g} s" for c in its] + \
                 [f"network, {seconds * 1e3:.3g} ms"]
        row = grid([[content, *(runs.images[c] for c in its), image]], int(cfg.picture_height),
                   labels=[labels])
        picture = save_image(row, out_dir / f"{photo.stem}_compare.jpg", quality=90)
        rows.append({"content": str(photo), **entry, "picture": picture.name})
        steps = ", ".join(f"{c} it {gatys[str(c)]['loss']:.4g} ({runs.seconds[c]:.3g} s)" for c in its)
        print(f"compare {n}/{len(photos)} {photo.name}: network loss {net_terms['loss']:.4g} in "
              f"{seconds * 1e3:.3g} ms; Gatys {steps}", flush=True)

    report = {"model": str(checkpoint), "network": meta.get("network"), "args": meta.get("args"),
              "model_steps": meta.get("steps"),
              "settings": {"size": size, "iterations": its,
                           "optimizer": str(optimizer.get("_target_", "")).rsplit(".", 1)[-1].lower(),
                           "optimizer_args": {k: v for k, v in optimizer.items() if not k.startswith("_")},
                           "init": str(cfg.init), "seed": int(cfg.seed), "device": str(device),
                           "precision": settings["precision"], "vgg": spec_loss["arch"],
                           "weights": loss.vgg.weights_source, "style": [str(p) for p in styles],
                           "style_size": style_size, "repeats": int(cfg.repeats),
                           "threads": torch.get_num_threads() if device.type == "cpu" else None},
              "loss": {k: v for k, v in spec_loss.items() if k not in ("arch", "weights")},
              "torch": torch.__version__, "hardware": describe(device), "images": rows,
              "average": average(rows)}
    report = _json(report)
    atomic_write_text(out_dir / "results.json", json.dumps(report, indent=2) + "\n")
    atomic_write_text(out_dir / "results.md", markdown(report))
    print(f"compare: wrote {out_dir / 'results.json'}, {out_dir / 'results.md'} and {len(rows)} pictures")
    return report
