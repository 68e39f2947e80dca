"""``nst mode=stylize checkpoint=MODEL input=FILE|FOLDER|GLOB [output=...]``: one pass of a trained
network over photos; the output mirrors the input's layout."""

from __future__ import annotations

import ctypes
import os
import sys
from pathlib import Path

from omegaconf import DictConfig

from nst.cli.build import device_settings, require
from nst.errors import NSTError
from nst.image import IMAGE_EXTENSIONS, list_images
from nst.modelfile import load_any
from nst.stylize import Job, Stylizer, Summary, stylize_files


def keep_freed_memory() -> None:
    """Make glibc keep and reuse freed blocks up to 256 MB instead of unmapping every one over its
    threshold (dynamic, at most 32 MB): a 1024 px tile allocates many ~135 MB activations, and
    faulting their pages back in on each allocation cost as much system time as the convolutions.
    6000x4000, model=transformer, this CPU: 183 s user + 87 s sys, peak RSS 2.56 GB before; 171-176 s
    + 2-4 s, 2.5-3.1 GB after (the kept heap). Process-wide, so in the CLI and not in the library."""
    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(-3, 256 << 20)  # M_MMAP_THRESHOLD
        libc.mallopt(-1, 1 << 30)  # M_TRIM_THRESHOLD: keep up to 1 GB free at the heap top
    except (OSError, AttributeError):  # not glibc
        pass


def _suffix(path: Path, ext: str | None) -> str:
    if ext:
        return ext
    return path.suffix if path.suffix.lower() in IMAGE_EXTENSIONS else ".png"  # e.g. .gif from a glob


def _glob_root(spec: str) -> Path:
    """The folder part of a glob before its first wildcard: what outputs are placed relative to."""
    parts = Path(spec).parts
    first = next((i for i, p in enumerate(parts) if any(c in p for c in "*?[")), len(parts))
    return Path(*parts[:first]) if first else Path(".")


def plan_jobs(spec: str | os.PathLike, output: str | os.PathLike | None, default_dir: str | os.PathLike,
              ext: str | None = None) -> list[Job]:
    """Input file/folder/glob -> (source, target) pairs.

    One file: ``output`` is the target file (its extension picks the format) or, when it is a
    folder or has no extension, the folder to write into. A folder or glob: ``output`` is a folder
    that mirrors the input's relative layout. Default: ``default_dir``. Targets keep the input's
    extension (``.png`` where it cannot be written) unless ``ext`` is given.
    """
    if ext is not None:
        ext = ext if ext.startswith(".") else f".{ext}"
        if ext.lower() not in IMAGE_EXTENSIONS:
            raise NSTError(f"output_ext={ext!r}: choose one of {', '.join(IMAGE_EXTENSIONS)}")
    files = list_images(spec)
    src = Path(spec).expanduser()
    out = Path(output).expanduser() if output else None
    if src.is_file():
        if out is not None and not out.is_dir() and out.suffix:
            return _checked([Job(src, out)])
        return _checked([Job(src, (out or Path(default_dir)) / (src.stem + _suffix(src, ext)))])
    if out is not None and out.suffix.lower() in IMAGE_EXTENSIONS and not out.is_dir():
        raise NSTError(f"output={output}: input={spec} names {len(files)} images, so output must be a folder")
    root = src if src.is_dir() else _glob_root(str(src))
    out_dir = out or Path(default_dir)
    jobs, inside = [], out_dir.resolve()
    nested = inside != root.resolve() and root.resolve() in inside.parents
    for f in files:
        if nested and inside in f.resolve().parents:
            continue  # results of an earlier run into a folder inside the input: not inputs
        rel = Path(os.path.relpath(f, root))
        rel = Path(f.name) if rel.parts[0] == ".." else rel
        jobs.append(Job(f, out_dir / rel.with_suffix(_suffix(rel, ext))))
    if not jobs:
        raise NSTError(f"input={spec}: every image found is inside output={out_dir}")
    return _checked(jobs)


def _checked(jobs: list[Job]) -> list[Job]:
    """Refuse plans that would overwrite an input or write two inputs to one file."""
    seen: dict[Path, Path] = {}
    for job in jobs:
        target = job.target.resolve()
        if target == job.source.resolve():
            raise NSTError(f"{job.target}: output would overwrite its own input; choose another output=")
        if target in seen:
            raise NSTError(f"{seen[target]} and {job.source} would both be written to {job.target}; "
                           "set output_ext= or rename one")
        seen[target] = job.source
    return jobs


_LAUNCHERS = ("ddp_spawn", "ddp_fork", "ddp_notebook")  # their workers' summaries never reach the parent


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


def run(cfg: DictConfig) -> Summary:
    checkpoint = require(cfg, "checkpoint", "an exported .safetensors model or a Lightning .ckpt")
    spec = require(cfg, "input", "a photo, a folder of photos or a glob like 'photos/*.jpg'")
    settings = device_settings(cfg)
    if settings["device"] == "cpu":
        keep_freed_memory()
    options = {"strength": cfg.strength, "preserve_color": cfg.preserve_color, "tile_size": cfg.tile_size,
               "tile_overlap": cfg.tile_overlap, "tile_stats_size": cfg.tile_stats_size}
    files = {"size": cfg.get("size"), "overwrite": bool(cfg.overwrite), "batch_size": cfg.batch_size,
             "quality": cfg.quality}
    jobs = plan_jobs(str(spec), cfg.get("output"), Path(cfg.paths.output_dir) / "stylized", cfg.output_ext)
    if distributed(cfg):
        summary = _run_distributed(cfg, str(checkpoint), jobs, settings, options, files)
        if summary is None:  # not rank 0: rank 0 reports for everyone
            return Summary()
    else:
        net, meta = load_any(str(checkpoint), settings["device"])
        stylizer = Stylizer(net, meta, **settings, **options)
        summary = stylize_files(stylizer, jobs, **files)
    where = jobs[0].target if len(jobs) == 1 else Path(os.path.commonpath([j.target.parent for j in jobs]))
    print(f"{summary.line()} -> {where}")
    if summary.failed:
        first, why = summary.failed[0]
        raise NSTError(f"{len(summary.failed)} of {len(jobs)} inputs failed (first: {why})")
    return summary


def _run_distributed(cfg: DictConfig, checkpoint: str, jobs: list[Job], settings: dict, options: dict,
                     files: dict) -> Summary | None:
    """The jobs split across the trainer's processes (nst.training.predict); the summary of all
    ranks on rank 0, None elsewhere."""
    from nst.cli.build import build_trainer
    from nst.training.predict import stylize_distributed

    net, meta = load_any(checkpoint, "cpu")  # Lightning moves it to each rank's device

    def make(net, device) -> Stylizer:
        return Stylizer(net, meta, device=device, precision=settings["precision"],
                        channels_last=settings["channels_last"], **options)

    # the Stylizer applies the precision itself; Lightning's own autocast stays off
    trainer = build_trainer(cfg, logger=False, precision="32-true", enable_checkpointing=False,
                            enable_progress_bar=False, enable_model_summary=False,
                            use_distributed_sampler=True)
    summary, zero = stylize_distributed(net, jobs, trainer, make, **files)
    return summary if zero else None
