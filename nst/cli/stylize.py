"""``nst mode=stylize checkpoint=MODEL input=FILE|FOLDER|GLOB [output=...]``: one pass of a trained
network over photos; the output mirrors the input's layout."""

from __future__ import annotations

import os
from pathlib import Path

from omegaconf import DictConfig

from nst.cli.values import as_list, report_files, require, thread_count
from nst.errors import NSTError
from nst.inference.jobs import Job, Summary, plan_jobs

_LAUNCHERS = ("ddp_spawn", "ddp_fork", "ddp_notebook")  # their workers' summaries never reach the parent
PRECISE = ("auto", "32", "32-true")  # the trainer precisions that stylize in float32


def distributed(cfg: DictConfig) -> bool:
    """Whether the trainer group (or a torchrun/SLURM launch: WORLD_SIZE) asks for more than one
    process; NSTError for the strategies whose workers cannot report back."""
    t = cfg.trainer
    strategy = str(t.get("strategy", "auto"))
    if strategy.startswith(_LAUNCHERS):
        raise NSTError(f"trainer.strategy={strategy}: mode=stylize splits files with strategy=ddp "
                       "(Lightning's subprocesses, torchrun or SLURM), not with spawned or forked workers")
    return (strategy.startswith("ddp") or int(t.get("num_nodes", 1) or 1) > 1
            or str(t.get("devices", 1)) not in ("1", "auto") or int(os.environ.get("WORLD_SIZE", "1")) > 1)


def refuse_upscaler(checkpoint: str, meta: dict) -> None:
    from nst.inference.upscale import is_upscaler

    if is_upscaler(meta):
        factor = meta.get("args", {}).get("factor")
        raise NSTError(f"checkpoint={checkpoint}: a super-resolution model (x{factor}); use mode=upscale")


def style_choice(value):
    """``style=`` in mode=stylize: a multi-style model's style, by index or name (one item)."""
    if isinstance(value, (list, tuple)) or (value is not None and not isinstance(value, (int, str))):
        raise NSTError(f"style={value!r}: mode=stylize takes one style of the model, by index or name "
                       "(style_mix=[...] mixes them)")
    return value


def run(cfg: DictConfig) -> Summary:
    checkpoint = require(cfg, "checkpoint", "an exported .safetensors model or a Lightning .ckpt")
    spec = require(cfg, "input", "a photo, a folder of photos or a glob like 'photos/*.jpg'")
    options = {"strength": cfg.strength, "preserve_color": cfg.preserve_color, "tile_size": cfg.tile_size,
               "tile_overlap": cfg.tile_overlap, "tile_stats_size": cfg.tile_stats_size,
               "style": style_choice(cfg.get("style")), "style_mix": as_list(cfg.get("style_mix")) or None}
    files = {"size": cfg.get("size"), "overwrite": bool(cfg.overwrite), "batch_size": cfg.batch_size,
             "quality": cfg.quality, "video_stats": str(cfg.get("video_stats") or "frame")}
    jobs = plan_jobs(str(spec), cfg.get("output"), Path(cfg.paths.output_dir) / "stylized", cfg.output_ext)
    summary = _quick(cfg, str(checkpoint), jobs, options, files)
    if summary is not None:
        return report_files(summary, jobs)
    from nst.cli.build import device_settings, keep_freed_memory

    settings = device_settings(cfg)
    if settings["device"] == "cpu":
        keep_freed_memory()
    if distributed(cfg):
        summary = _run_distributed(cfg, str(checkpoint), jobs, settings, options, files)
        if summary is None:  # not rank 0: rank 0 reports for everyone
            return Summary()
    else:
        from nst.inference.batch import stylize_files
        from nst.inference.quick import remember
        from nst.inference.stylize import Stylizer
        from nst.models.modelfile import load_any
        from nst.models.shipped import resolve

        net, meta = load_any(str(checkpoint), settings["device"])
        refuse_upscaler(str(checkpoint), meta)
        stylizer = Stylizer(net, meta, backend=str(cfg.get("backend") or "auto"), **settings, **options)
        summary = stylize_files(stylizer, jobs, **files)
        folder = getattr(stylizer.net, "folder", None)
        if folder is not None and not stylizer.conditional:  # the next run of this file starts quick
            remember(resolve(str(checkpoint)), folder)
    return report_files(summary, jobs)


def _quick(cfg: DictConfig, checkpoint: str, jobs: list[Job], options: dict, files: dict) -> Summary | None:
    """nst.inference.quick's torch-free pass when it promises the full path's result, else None."""
    from nst.inference.quick import stylize_quick
    from nst.models.shipped import resolve

    t, strength, tile = cfg.trainer, options["strength"], options["tile_size"]
    plain = (options["preserve_color"] in (False, None, "none", "false") and options["style"] is None
             and options["style_mix"] is None and files["size"] is None)
    # a value the full path would refuse is left to it, for its one-line error
    valid = (type(strength) in (int, float) and 0 <= strength <= 1
             and (tile is None or (type(tile) is int and tile >= 16)))
    if (not plain or not valid or str(t.get("accelerator", "cpu")) != "cpu"
            or str(t.get("precision")) not in PRECISE or distributed(cfg)):
        return None
    path = resolve(checkpoint)
    if path.suffix != ".safetensors" or not path.is_file():
        return None
    return stylize_quick(path, jobs, backend=str(cfg.get("backend") or "auto"),
                         strength=float(strength), tile_size=tile,
                         overwrite=files["overwrite"], quality=files["quality"],
                         threads=thread_count(cfg.get("threads"), os.cpu_count() or 1))


def _run_distributed(cfg: DictConfig, checkpoint: str, jobs: list[Job], settings: dict, options: dict,
                     files: dict) -> Summary | None:
    """The jobs split across the trainer's processes (nst.inference.distributed); the summary of all
    ranks on rank 0, None elsewhere."""
    from nst.cli.build import build_trainer
    from nst.inference.distributed import stylize_distributed
    from nst.inference.stylize import Stylizer
    from nst.models.modelfile import load_any

    net, meta = load_any(checkpoint, "cpu")  # Lightning moves it to each rank's device
    refuse_upscaler(checkpoint, meta)
    Stylizer(net, meta, backend="torch", **options)  # a bad style/option fails here, not in every rank

    def make(net, device) -> Stylizer:
        return Stylizer(net, meta, device=device, precision=settings["precision"],
                        channels_last=settings["channels_last"], **options)

    # the Stylizer applies the precision itself; Lightning's own autocast stays off
    trainer = build_trainer(cfg, logger=False, precision="32-true", enable_checkpointing=False,
                            enable_progress_bar=False, enable_model_summary=False,
                            use_distributed_sampler=True)
    summary, zero = stylize_distributed(net, jobs, trainer, make, **files)
    return summary if zero else None
