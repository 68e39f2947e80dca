"""The command line's quick path: photos through a model whose graph an earlier run exported, with
no PyTorch in the process (importing it takes longer than stylizing a photo at 512 px;
docs/benchmarks.md).

``nst mode=stylize`` tries :func:`stylize_quick` first. It takes the request only when the result
is the full path's, to float32 rounding: the CPU in float32, a plain (one-style) model, every input
an image that needs no tiling, no ``size=``, no colour preservation; and an earlier run of the
full path has exported this model file's graph (:func:`remember`). Otherwise it returns None,
before any work, and the full path runs. Torch-free by design: numpy, Pillow and the runtime.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from nst.errors import NSTError
from nst.inference.jobs import Job, Summary
from nst.io.decode import MAX_PIXELS, decode, is_png16, open_image, upright_size
from nst.io.encode import check_finite, save_format, to_8bit, write_image
from nst.io.files import atomic_path, file_digest, is_video
from nst.models.graphs import QUICK_ORDER, RUNTIMES, available, cache_folder, first_installed, load_graph


def _index(model_file: Path) -> Path:
    """Where the graph of this exact model file is recorded: keyed by the file's bytes, so a model
    retrained under the same name is never run from a stale graph."""
    return cache_folder() / "files" / f"{file_digest(model_file)}.json"


def _recorded(index: Path) -> Path | None:
    try:
        graph = cache_folder() / str(json.loads(index.read_text())["graphs"]) / "forward.onnx"
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return graph if graph.is_file() else None


def remember(model_file: str | os.PathLike, graphs: Path) -> None:
    """Record that ``graphs`` (an nst.models.runtimes.OnnxNet's folder) is ``model_file``'s plain
    network, for the quick path of later runs."""
    index = _index(Path(model_file))
    if _recorded(index) == graphs / "forward.onnx":
        return
    with atomic_path(index) as tmp:
        Path(tmp).write_text(json.dumps({"graphs": graphs.name, "model": str(model_file)}))


def recall(model_file: str | os.PathLike) -> Path | None:
    """The exported forward graph of ``model_file``'s network, or None where no run recorded it."""
    return _recorded(_index(Path(model_file)))


def runtime_for(backend: str) -> str | None:
    """The runtime the full path would pick for ``backend`` on the CPU in float32, or None (torch)."""
    if backend in RUNTIMES:
        return backend if available(backend) else None
    return first_installed(QUICK_ORDER) if backend == "auto" else None


def _fits(jobs: list[Job], tile_size: int | None) -> bool:
    """Every source an image that opens, is no 16-bit PNG (decoded at 8 bits here) and needs no tiles."""
    for job in jobs:
        if is_video(job.source):
            return False
        try:
            with open_image(job.source, MAX_PIXELS) as im:
                if is_png16(im):  # asked first: reading the EXIF of a PNG decodes it, tile list and all
                    return False
                h, w = upright_size(im)
                if tile_size and max(h, w) > tile_size:
                    return False
        except NSTError:
            return False  # the full path reports a bad file in its own words
    return True


def lerp(start: np.ndarray, end: np.ndarray, weight: float) -> np.ndarray:
    """torch.lerp's formula in float32 (two branches, exact at both ends): the Stylizer's blend."""
    w = np.float32(weight)
    if w < 0.5:
        return start + w * (end - start)
    return end - (end - start) * (np.float32(1.0) - w)


def _stderr(line: str) -> None:
    print(f"nst: {line}", file=sys.stderr, flush=True)


def stylize_quick(model_file: str | os.PathLike, jobs: list[Job], *, backend: str = "auto",
                  strength: float = 1.0, tile_size: int | None = 1024, overwrite: bool = False,
                  quality: int = 95, threads: int | None = None,
                  log: Callable[[str], None] = _stderr) -> Summary | None:
    """Stylize ``jobs`` as nst.inference.batch.stylize_files would with a float32 Stylizer, or None
    (nothing done) when the quick path cannot promise the same result. ``strength`` blends toward
    the photo, as the Stylizer does for a plain model."""
    runtime = runtime_for(backend)
    graph = recall(model_file) if runtime else None
    if graph is None or not _fits(jobs, tile_size):
        return None
    for job in jobs:
        save_format(job.target)  # an unwritable extension fails as the full path's would, before work
    start = time.perf_counter()
    run = load_graph(graph, runtime, threads or os.cpu_count() or 1)
    summary = Summary()
    for job in jobs:
        if job.target.exists() and not overwrite:
            summary.skipped.append(job.target)
            log(f"{job.target}: exists, skipped (overwrite=true replaces it)")
            continue
        try:
            with open_image(job.source, MAX_PIXELS) as im:
                rgb, alpha = decode(im, upright_size(im), want_alpha=True)
            out = run({"image": rgb[None]})[0][0]
            if strength < 1.0:
                out = lerp(rgb, out, strength)
            check_finite(out, job.target)
            write_image(to_8bit(out, alpha), job.target, quality)
            summary.written.append(job.target)
        except NSTError as e:
            summary.failed.append((job.source, str(e)))
            log(str(e))
    summary.seconds = time.perf_counter() - start
    return summary
