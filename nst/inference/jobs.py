"""Input file/folder/glob -> (source, target) jobs for the one-pass modes (stylize, upscale): the
output mirrors the input's layout, and no plan overwrites an input or writes two inputs to one file."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from nst.errors import NSTError
from nst.io.files import IMAGE_EXTENSIONS, VIDEO_EXTENSIONS, list_images


@dataclass
class Job:
    source: Path
    target: Path


@dataclass
class Summary:
    written: list[Path] = field(default_factory=list)
    failed: list[tuple[Path, str]] = field(default_factory=list)
    skipped: list[Path] = field(default_factory=list)
    seconds: float = 0.0

    def line(self) -> str:
        n = len(self.written)
        rate = f" ({self.seconds / n:.3g} s/image)" if n else ""
        return (f"stylize: {n} written, {len(self.failed)} failed, {len(self.skipped)} skipped "
                f"in {self.seconds:.1f} s{rate}")


def _suffix(path: Path, ext: str | None) -> str:
    """The target's extension: ``ext`` where it is of the source's kind (an image extension for
    images, a video one for videos), else the source's own (.png for an image format nst cannot
    write, e.g. .gif from a glob)."""
    video = path.suffix.lower() in VIDEO_EXTENSIONS
    if ext and (ext.lower() in VIDEO_EXTENSIONS) == video:
        return ext
    if video or path.suffix.lower() in IMAGE_EXTENSIONS:
        return path.suffix
    return ".png"


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
        if ext.lower() not in (*IMAGE_EXTENSIONS, *VIDEO_EXTENSIONS):
            kinds = ", ".join(IMAGE_EXTENSIONS + VIDEO_EXTENSIONS)
            raise NSTError(f"output_ext={ext!r}: choose one of {kinds}")
    files = list_images(spec, (*IMAGE_EXTENSIONS, *VIDEO_EXTENSIONS))
    src = Path(spec).expanduser()
    out = Path(output).expanduser() if output else None
    if src.is_file():
        if out is not None and not out.is_dir() and out.suffix:
            return _checked([Job(src, out)])
        return _checked([Job(src, (out or Path(default_dir)) / (src.stem + _suffix(src, ext)))])
    if out is not None and out.suffix.lower() in (*IMAGE_EXTENSIONS, *VIDEO_EXTENSIONS) and not out.is_dir():
        raise NSTError(f"output={output}: input={spec} names {len(files)} files, so output must be a folder")
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
