"""``nst mode=flicker checkpoint=M input=PHOTO|CLIP``: how much a network flickers, with its loss
terms and speed (nst.evaluation.flicker). A photo becomes a synthetic pan (or zoom) with exact motion; a clip
is measured with optical flow. ``baselines=[...]`` adds models and ``video_stats=[frame,clip]``
the ways of sharing instance-norm statistics: one row per model and way, in results.json and
results.md, and a picture of each row's frame difference."""

from __future__ import annotations

import functools
import json
import logging
import time
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig

from nst.cli.build import device_settings
from nst.cli.values import as_list, output_folder, pixels, require
from nst.errors import NSTError
from nst.evaluation import flicker
from nst.evaluation.compare import loss_settings, model_loss, resolve_styles, set_styles
from nst.hardware import describe
from nst.inference.styles import pick
from nst.inference.stylize import Stylizer
from nst.inference.video import frame_step
from nst.io.files import atomic_write_text, ensure_folder
from nst.io.grid import grid
from nst.io.image import load_image, save_image
from nst.io.video import is_video, iter_frames
from nst.models.modelfile import load_any

log = logging.getLogger("nst")
MOTIONS = ("pan", "zoom")


def _plain_difference(a, b):
    return ((b - a).abs().mean(dim=1, keepdim=True) * 4).clamp(0, 1).expand(-1, 3, -1, -1)


def _frames(cfg: DictConfig, spec: str):
    """(a fresh iterator of the clip's frames, the pair error function, the picture's difference
    function, a description)."""
    n = int(cfg.frames)
    if is_video(spec):
        size = pixels(cfg, "size", optional=True)
        return (lambda: iter_frames(spec, size, limit=n)), flicker.flow_error, _plain_difference, \
            {"clip": spec, "motion": "DIS optical flow (OpenCV), forward-backward occlusion check"}
    motion = str(cfg.motion)
    if motion not in MOTIONS:
        raise NSTError(f"motion={motion!r}: choose one of {', '.join(MOTIONS)}")
    photo = load_image(spec)
    width, height = pixels(cfg, "width"), pixels(cfg, "height")
    if motion == "pan":
        step = int(cfg.step)
        next(flicker.pan(photo, n, step, width, height))  # a photo too small fails now, at the first frame
        return (lambda: flicker.pan(photo, n, step, width, height)), \
            (lambda a, b, *_: flicker.pan_error(a, b, step)), \
            functools.partial(flicker.difference_image, step=step), \
            {"photo": spec, "motion": f"pan, {step} px/frame", "width": width, "height": height}
    rate = float(cfg.zoom_rate)
    return (lambda: flicker.zoom(photo, n, rate, width, height)), \
        (lambda a, b, *_: flicker.zoom_error(a, b, rate)), _plain_difference, \
        {"photo": spec, "motion": f"zoom, x{rate}/frame", "width": width, "height": height}


def _model_loss(checkpoint: Path, meta: dict, cfg: DictConfig, style_index: int | None, device):
    settings = loss_settings(meta)
    if settings is None:
        log.warning("%s: no loss settings in its metadata; flicker and speed only", checkpoint)
        return None
    loss = model_loss(settings, weights=cfg.vgg.get("weights"), seed=int(cfg.seed))
    styles = resolve_styles(meta, checkpoint)
    if style_index is not None:
        styles = [styles[style_index]] if len(styles) > style_index else styles[:1]
    set_styles(loss, styles, None if style_index is not None else meta.get("style_blend"),
               meta.get("style_size"))
    return loss.to(device)


def run(cfg: DictConfig) -> dict[str, Any]:
    checkpoint = require(cfg, "checkpoint", "an exported .safetensors model or a Lightning .ckpt")
    spec = str(require(cfg, "input", "a photo (panned or zoomed with exact motion) or a video clip"))
    models = [Path(str(checkpoint))] + [Path(str(m)) for m in as_list(cfg.get("baselines"))]
    modes = [str(m) for m in as_list(cfg.video_stats)] or ["frame"]
    settings = device_settings(cfg)  # and threads=, on the CPU
    device = torch.device(settings["device"])
    frames, error, difference, source = _frames(cfg, spec)
    batch = int(cfg.batch_size)
    keep = int(cfg.frames) // 2
    out_dir = ensure_folder(output_folder(cfg, "flicker"))
    rows, picture = [], []
    unique = len({p.stem for p in models}) == len(models)
    for path in models:
        label = path.stem if unique else f"{path.parent.name}/{path.stem}"
        net, meta = load_any(path, device)
        multi = getattr(net, "num_styles", 1) > 1
        style = cfg.get("style") if multi else None
        stylizer = Stylizer(net, meta, **settings, **({"style": style} if multi else {}))
        loss = _model_loss(path, meta, cfg, pick(stylizer.styles, style or 0) if multi else None, device)
        for mode in modes:
            step = frame_step(stylizer, mode)
            stylizer.stylize_tensor(next(iter(frames())))  # warm-up (ONNX export, allocations)
            measure = flicker.Measure(error, loss, int(cfg.loss_every), keep=keep)
            pending: list[torch.Tensor] = []

            def run_batch(items, measure=measure, step=step):
                x = torch.cat(items)
                t0 = time.perf_counter()
                y = step(x)
                measure.add(x, y, time.perf_counter() - t0)

            for frame in frames():
                pending.append(frame)
                if len(pending) == batch:
                    run_batch(pending)
                    pending = []
            if pending:
                run_batch(pending)
            row = {"model": str(path), "video_stats": mode, "backend": stylizer.backend, **measure.result()}
            rows.append(row)
            log.info("flicker: %s, video_stats=%s: warping error %.3g, %.3g frames/s%s", path.name, mode,
                     row["warping_error"], row["frames_per_s"],
                     f", style {row['style']:.4g}, content {row['content']:.4g}" if "style" in row else "")
            if measure.pair is not None:
                a, b = measure.pair
                diff = difference(a, b)
                labels = [f"{label}, {mode}", f"|difference| x4, {row['warping_error']:.3g}"]
                picture.append(([b, diff], labels))
    if picture:
        image = grid([p for p, _ in picture], int(cfg.picture_height), labels=[lab for _, lab in picture])
        save_image(image, out_dir / "flicker.jpg", quality=90)
    report = {"source": source, "frames": int(cfg.frames), "batch_size": batch, "device": str(device),
              "precision": settings["precision"], "threads": torch.get_num_threads(),
              "hardware": describe(device), "torch": torch.__version__, "rows": rows}
    atomic_write_text(out_dir / "results.json", json.dumps(report, indent=2, default=str) + "\n")
    atomic_write_text(out_dir / "results.md", _markdown(report))
    print(f"flicker: wrote {out_dir / 'results.json'}, {out_dir / 'results.md'}"
          + (f" and {out_dir / 'flicker.jpg'}" if picture else ""))
    return report


def _markdown(report: dict) -> str:
    src = report["source"]
    lines = [f"# Flicker: {src.get('photo') or src.get('clip')}", "",
             f"{report['frames']} frames, {src['motion']}; {report['device']}, {report['threads']} threads, "
             f"precision {report['precision']}; {report['hardware']}", "",
             "| model | video_stats | warping error | style | content | frames/s |",
             "| --- | --- | --- | --- | --- | --- |"]
    names = [Path(r["model"]).name for r in report["rows"]]
    clash = len(set(names)) < len({r["model"] for r in report["rows"]})
    for r in report["rows"]:
        name = Path(r["model"]).name
        name = f"{Path(r['model']).parent.name}/{name}" if clash else name  # same file names, other folders
        style = f"{r['style']:.4g}" if "style" in r else "-"
        content = f"{r['content']:.4g}" if "content" in r else "-"
        lines.append(f"| {name} | {r['video_stats']} | {r['warping_error']:.4g} | {style} | "
                     f"{content} | {r['frames_per_s']:.3g} |")
    return "\n".join(lines) + "\n"
