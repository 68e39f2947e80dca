"""Stylizing (or upscaling) many files: (source, target) jobs in, written images out.

``stylize_files`` batches same-size files, tiles large ones, writes every output atomically,
skips existing outputs unless told to overwrite, and reports a bad file in one line without
stopping the others.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor

from nst.errors import NSTError
from nst.inference.jobs import Job, Summary
from nst.inference.stylize import Stylizer, _whole
from nst.inference.tiling import needs_tiling
from nst.io.files import is_video
from nst.io.image import load_image_alpha, save_image


def _stderr(line: str) -> None:
    print(f"nst: {line}", file=sys.stderr, flush=True)


def stylize_files(stylizer: Stylizer | Any, jobs: Sequence[Job], *, size: int | None = None,
                  overwrite: bool = False, batch_size: int = 4, quality: int = 95,
                  video_stats: str = "frame", log: Callable[[str], None] = _stderr) -> Summary:
    """Stylize every job's source into its target (or upscale it: ``stylizer`` may be an
    nst.inference.upscale.Upscaler, which has the same ``stylize_tensor``). A file that fails to
    load or save costs one ``log`` line and is counted; existing targets are skipped unless
    ``overwrite``. Same-size images that need no tiling run in batches of ``batch_size`` (instance
    norm is per image, so batching does not change results). Videos
    (nst.io.video.VIDEO_EXTENSIONS) are streamed through nst.io.transcode, ``batch_size``
    frames at a time, with ``video_stats`` (nst.inference.video.frame_step)."""
    batch_size = _whole("batch_size", batch_size, 1)
    size = _whole("size", size, 1, allow_none=True)
    summary, start, last_note = Summary(), time.perf_counter(), time.perf_counter()
    pending: dict[tuple[int, int], list[tuple[Job, Tensor, Tensor | None]]] = {}

    def flush(items: list[tuple[Job, Tensor, Tensor | None]]) -> None:
        nonlocal last_note
        batch = items[0][1] if len(items) == 1 else torch.cat([x for _, x, _ in items])
        targets = [(job, alpha) for job, _, alpha in items]
        items.clear()  # the caller's list: hold no input while saving (a 24 MP photo is 288 MB)
        out = stylizer.stylize_tensor(batch)
        del batch
        for i, (job, alpha) in enumerate(targets):
            try:
                if alpha is not None and hasattr(stylizer, "scale_alpha"):  # an Upscaler: alpha grows too
                    alpha = stylizer.scale_alpha(alpha)
                save_image(out[i:i + 1], job.target, alpha=alpha, quality=quality)
                summary.written.append(job.target)
            except NSTError as e:
                summary.failed.append((job.source, str(e)))
                log(str(e))
        if time.perf_counter() - last_note > 30:
            last_note = time.perf_counter()
            done = len(summary.written) + len(summary.failed) + len(summary.skipped)
            log(f"stylize: {done}/{len(jobs)} done")

    for job in jobs:
        if job.target.exists() and not overwrite:
            summary.skipped.append(job.target)
            log(f"{job.target}: exists, skipped (overwrite=true replaces it)")
            continue
        if is_video(job.source):
            _video(stylizer, job, summary, size, batch_size, video_stats, log)
            continue
        try:
            item = (job, *load_image_alpha(job.source, max_side=size))
            if hasattr(stylizer, "check_size"):  # an Upscaler: refuse an output over its pixel limit
                stylizer.check_size(*item[1].shape[-2:], name=str(job.source))
        except NSTError as e:
            summary.failed.append((job.source, str(e)))
            log(str(e))
            continue
        h, w = item[1].shape[-2:]
        if needs_tiling(h, w, stylizer.tile_size):
            items = [item]
            del item
            flush(items)
            continue
        group = pending.setdefault((h, w), [])
        group.append(item)
        if len(group) >= batch_size:
            flush(pending.pop((h, w)))
        elif sum(map(len, pending.values())) > 2 * batch_size:  # many sizes: bound what is held
            flush(pending.pop(next(iter(pending))))
    for group in pending.values():
        flush(group)
    summary.seconds = time.perf_counter() - start
    return summary


def _video(model: Stylizer | Any, job: Job, summary: Summary, size: int | None, batch_size: int,
           video_stats: str, log: Callable[[str], None]) -> None:
    """One clip through nst.io.transcode; a bad clip costs one ``log`` line, as a bad image does."""
    from nst.inference.video import frame_step  # PyAV only when there is a video
    from nst.io.transcode import process_video
    from nst.io.video import output_size, probe

    factor = int(getattr(model, "factor", 1))
    try:
        if hasattr(model, "check_size"):  # an Upscaler: refuse frames over its pixel limit first
            info = probe(job.source)
            h, w = output_size(info.height, info.width, size, factor)
            model.check_size(h, w, name=str(job.source))
        process_video(job.source, job.target, frame_step(model, video_stats), size=size,
                      factor=factor, batch_size=batch_size, log=None if log is _stderr else log)
        summary.written.append(job.target)
    except NSTError as e:
        summary.failed.append((job.source, str(e)))
        log(str(e))
