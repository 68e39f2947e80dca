"""Reading a mode's config values and reporting its files: torch-free, so that ``nst mode=stylize``'s
quick path (nst.inference.quick) starts without PyTorch. nst.cli.build holds the builders that need it."""

from __future__ import annotations

import os
from pathlib import Path

from omegaconf import DictConfig, ListConfig

from nst.errors import NSTError
from nst.hardware import busy_cores


def as_list(value) -> list:
    """A config value that may be one item or a list -> a Python list (None -> [])."""
    if value is None:
        return []
    if isinstance(value, (ListConfig, list, tuple)):
        return list(value)
    return [value]


def require(cfg: DictConfig, key: str, hint: str) -> object:
    """``cfg[key]`` or a one-line error saying what to pass."""
    value = cfg.get(key)
    if value is None or value == [] or value == "":
        raise NSTError(f"mode={cfg.mode} needs {key}=... ({hint})")
    return value


def pixels(cfg: DictConfig, key: str = "size", optional: bool = False) -> int | None:
    """``cfg[key]`` as a positive whole number of pixels (None allowed when ``optional``), else one line."""
    value = cfg.get(key)
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        hint = " (or null)" if optional else ""
        raise NSTError(f"{key}={value!r}: must be a positive whole number of pixels{hint}")
    return value


def output_folder(cfg: DictConfig, default_sub: str | None = None) -> Path:
    """``output`` when given (a folder), else the run folder (or ``default_sub`` inside it)."""
    if cfg.get("output"):
        return Path(cfg.output)
    run = Path(cfg.paths.output_dir)
    return run / default_sub if default_sub else run


def output_path(cfg: DictConfig, default_name: str) -> Path:
    """``output`` if given, else ``default_name`` inside the run folder."""
    out = cfg.get("output")
    return Path(out) if out else Path(cfg.paths.output_dir) / default_name


def report_files(summary, jobs, verb: str = "stylize"):
    """Print a files mode's one summary line (where the outputs went); NSTError when files failed
    (they were each named already), so the exit code says so."""
    where = jobs[0].target if len(jobs) == 1 else Path(os.path.commonpath([j.target.parent for j in jobs]))
    print(f"{summary.line().replace('stylize:', f'{verb}:')} -> {where}")
    if summary.failed:
        first, why = summary.failed[0]
        raise NSTError(f"{len(summary.failed)} of {len(jobs)} inputs failed (first: {why})")
    return summary


def thread_count(value, most: int) -> int | None:
    """The ``threads`` setting as a count: a number; ``auto``, the cores not busy right now (at
    most ``most``, at least one); None for null (keep the default). One-line NSTError otherwise."""
    if value in (None, "", 0):
        return None
    if str(value) == "auto":
        busy = busy_cores()
        if busy is None:
            busy = os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0
        return max(1, min(most, (os.cpu_count() or 1) - round(busy)))
    if not str(value).isdigit():
        raise NSTError(f"threads={value!r}: a number of threads, auto or null")
    return int(value)
