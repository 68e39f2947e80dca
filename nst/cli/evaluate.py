"""``nst mode=evaluate checkpoint=MODEL input=FOLDER [baselines=[M2,...]]``: super-resolution
models against bicubic on high-resolution photos (nst.evaluation.superres: PSNR/SSIM on Y, relu2_2 error).

Writes into output (default <run folder>/evaluate): results.json, results.md and, per photo,
<photo>_crop.jpg: a crop of low-res (nearest, enlarged) | bicubic | each model | original.
"""

from __future__ import annotations

import json
import math
import statistics
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from omegaconf import DictConfig

from nst.cli.build import set_threads
from nst.cli.values import as_list, output_folder, require
from nst.errors import NSTError
from nst.evaluation.superres import evaluate_image
from nst.hardware import describe
from nst.inference.upscale import Upscaler, is_upscaler
from nst.io.files import atomic_write_text, ensure_folder
from nst.io.grid import grid
from nst.io.image import list_images, load_image, save_image
from nst.models.modelfile import load_any


def _model(path: str) -> tuple[str, Upscaler, dict]:
    net, meta = load_any(path, "cpu")
    if not is_upscaler(meta):
        raise NSTError(f"{path}: a {meta.get('network')} model, not a super-resolution one")
    return Path(path).stem, Upscaler(net, meta, tile_size=None), meta


def _matched(model: tuple[str, Upscaler, dict]) -> tuple[str, Upscaler, dict]:
    """The same model with its outputs' histograms matched to the input (row ``<name>+hm``)."""
    name, up, meta = model
    return f"{name}+hm", Upscaler(up.net, meta, tile_size=None, histogram_match=True), meta


def _crop(images: list[torch.Tensor], side: int) -> list[torch.Tensor]:
    """The same centre square of every (1, 3, H, W) image (of equal sizes)."""
    h, w = images[0].shape[-2:]
    side = min(side, h, w)
    top, left = (h - side) // 2, (w - side) // 2
    return [im[..., top: top + side, left: left + side] for im in images]


def run(cfg: DictConfig) -> dict[str, Any]:
    set_threads(cfg.get("threads"))
    checkpoint = str(require(cfg, "checkpoint", "a super-resolution model to evaluate"))
    spec = str(require(cfg, "input", "a folder of high-resolution photos (never trained on)"))
    paths = [checkpoint, *[str(b) for b in as_list(cfg.get("baselines"))]]
    models = [_model(p) for p in paths]
    factors = {meta["args"]["factor"] for _, _, meta in models}
    if len(factors) != 1:
        raise NSTError(f"the models upscale by different factors ({sorted(factors)}): evaluate one "
                       "factor at a time")
    factor = factors.pop()
    # the degradation the model was trained on (its card), else sigma=
    sigma = float((models[0][2].get("degrade") or {}).get("sigma", cfg.sigma))
    names = [name for name, _, _ in models]
    if len(set(names)) != len(names):
        raise NSTError(f"two models share a file name ({names}): rename one")
    scored = models + ([_matched(m) for m in models] if cfg.get("histogram_match") else [])
    names = [name for name, _, _ in scored]
    vgg = None
    if cfg.get("feature", True):
        from nst.perceptual.vgg import load_vgg

        vgg = load_vgg("vgg16", str(cfg.vgg.weights or "auto"), ["relu2_2"])
    photos = list_images(spec)[: cfg.limit] if cfg.get("limit") else list_images(spec)
    out_dir = ensure_folder(output_folder(cfg, "evaluate"))
    rows = []
    for n, photo in enumerate(photos, start=1):
        hr = load_image(photo, max_side=cfg.get("size"))
        if min(hr.shape[-2:]) < 2 * factor + 11:
            raise NSTError(f"{photo}: {hr.shape[-1]}x{hr.shape[-2]} px is too small to score at x{factor}")
        scores, lr, hr_cropped, outputs = evaluate_image(hr, {name: up for name, up, _ in scored}, factor,
                                                         sigma, vgg)
        rows.append({"image": photo.name, "height": hr_cropped.shape[-2], "width": hr_cropped.shape[-1],
                     "scores": scores})
        low = F.interpolate(lr, scale_factor=factor, mode="nearest")
        shown = _crop([low, outputs["bicubic"], *(outputs[m] for m in names), hr_cropped],
                      int(cfg.crop_size))
        labels = ["low-res", "bicubic", *names, "original"]
        save_image(grid([shown], int(cfg.picture_height), labels=[labels]),
                   out_dir / f"{photo.stem}_crop.jpg", quality=92)
        line = ", ".join(f"{m} {s['psnr_y']:.2f} dB / {s['ssim_y']:.4f}" for m, s in scores.items())
        print(f"evaluate {n}/{len(photos)} {photo.name}: {line}", flush=True)
    methods = ["bicubic", *names]
    average = {m: {k: statistics.fmean(r["scores"][m][k] for r in rows if math.isfinite(r["scores"][m][k]))
                   for k in rows[0]["scores"][m]} for m in methods}
    report = {"factor": factor, "sigma": sigma, "input": spec, "images": rows, "average": average,
              "histogram_match": bool(cfg.get("histogram_match")),
              "models": {name: {"path": p, "steps": meta.get("steps"), "loss": meta.get("loss")}
                         for (name, _, meta), p in zip(models, paths)},
              "convention": "Y of BT.601 YCbCr (rgb2ycbcr), 8-bit rounding, factor px cropped at each "
                            "border; SSIM 11x11 Gaussian window sigma 1.5, K1 0.01, K2 0.03; feature: "
                            "relu2_2 relative MSE of VGG16", "hardware": describe(torch.device("cpu"))}
    atomic_write_text(out_dir / "results.json", json.dumps(report, indent=2, default=str) + "\n")
    atomic_write_text(out_dir / "results.md", markdown(report))
    print(f"evaluate: wrote {out_dir / 'results.json'}, {out_dir / 'results.md'} and {len(rows)} pictures")
    return report


def markdown(report: dict[str, Any]) -> str:
    """results.md: the average per method, then every image."""
    lines = [f"# x{report['factor']} super-resolution on {len(report['images'])} photos of {report['input']}",
             "", f"Convention: {report['convention']}.", "",
             "| method | PSNR-Y (dB) | SSIM-Y | relu2_2 error |", "| --- | --- | --- | --- |"]
    for m, s in report["average"].items():
        feature = f"{s['feature']:.4f}" if "feature" in s else "-"
        lines.append(f"| {m} | {s['psnr_y']:.2f} | {s['ssim_y']:.4f} | {feature} |")
    lines += ["", "| image | method | PSNR-Y | SSIM-Y | relu2_2 error |", "| --- | --- | --- | --- | --- |"]
    for r in report["images"]:
        for m, s in r["scores"].items():
            feature = f"{s['feature']:.4f}" if "feature" in s else "-"
            lines.append(f"| {r['image']} | {m} | {s['psnr_y']:.2f} | {s['ssim_y']:.4f} | {feature} |")
    return "\n".join(lines) + "\n"
