"""``nst mode=upscale checkpoint=MODEL input=FILE|FOLDER|GLOB [output=...]``: a super-resolution
model over photos, each ``factor`` x larger; the output mirrors the input's layout."""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig

from nst.cli.build import device_settings, keep_freed_memory
from nst.cli.values import report_files, require
from nst.errors import NSTError
from nst.inference.batch import stylize_files
from nst.inference.jobs import Summary, plan_jobs
from nst.inference.upscale import Upscaler, is_upscaler
from nst.io.image import MAX_PIXELS
from nst.models.modelfile import load_any


def run(cfg: DictConfig) -> Summary:
    checkpoint = str(require(cfg, "checkpoint", "a super-resolution model (.safetensors or .ckpt)"))
    spec = require(cfg, "input", "a photo, a folder of photos or a glob like 'photos/*.jpg'")
    settings = device_settings(cfg)
    if settings["device"] == "cpu":
        keep_freed_memory()
    net, meta = load_any(checkpoint, settings["device"])
    if not is_upscaler(meta):
        raise NSTError(f"checkpoint={checkpoint}: a {meta.get('network')} model, not a super-resolution one "
                       "(use mode=stylize)")
    upscaler = Upscaler(net, meta, **settings, tile_size=cfg.tile_size, tile_overlap=cfg.tile_overlap,
                        max_pixels=int(cfg.max_pixels or MAX_PIXELS),
                        histogram_match=bool(cfg.get("histogram_match", False)))
    jobs = plan_jobs(str(spec), cfg.get("output"), Path(cfg.paths.output_dir) / "upscaled", cfg.output_ext)
    summary = stylize_files(upscaler, jobs, size=cfg.get("size"), overwrite=bool(cfg.overwrite),
                            batch_size=cfg.batch_size, quality=cfg.quality)
    return report_files(summary, jobs, "upscale")
