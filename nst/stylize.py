"""One-pass stylization with a trained TransformerNet: tensors, PIL images and whole folders.

``Stylizer`` wraps a loaded network with its inference options (device, autocast, tiling,
colour preservation, strength); ``stylize_files`` turns (source, target) jobs into written
images, batching same-size files and reporting bad files without stopping.
"""

from __future__ import annotations

import contextlib
import copy
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from PIL import Image
from torch import Tensor

from nst.color import color_mode, transfer_luminance
from nst.errors import NSTError
from nst.image import from_pil, load_image_alpha, save_image, to_pil
from nst.networks.transformer import TransformerNet
from nst.tiling import needs_tiling, stylize_tiled

_AUTOCAST = {"32": None, "32-true": None, "bf16-mixed": torch.bfloat16, "bf16": torch.bfloat16,
             "bf16-true": torch.bfloat16, "16-mixed": torch.float16, "16": torch.float16}


def autocast_dtype(precision: str | int) -> torch.dtype | None:
    """A precision setting ("32", "bf16-mixed", "16-mixed", ...) -> the autocast dtype (None: float32),
    one-line NSTError for anything else; the Stylizer's and the Upscaler's one reading of it."""
    amp = _AUTOCAST.get(str(precision), ...)
    if amp is ...:
        raise NSTError(f"precision={precision!r}: choose one of {', '.join(_AUTOCAST)}")
    return amp


def _whole(name: str, value: Any, low: int, allow_none: bool = False) -> int | None:
    if allow_none and value in (None, 0):
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        null = " (or null)" if allow_none else ""
        raise NSTError(f"{name}={value!r}: must be a whole number >= {low}{null}")
    return value


class Stylizer:
    """A trained network ready for inference; ``stylizer(img)`` takes a PIL image (-> PIL image,
    alpha kept) or a tensor (3,H,W)/(N,3,H,W) in [0,1] (-> float32 of the same shape and device).

    Options (each also accepted per call): ``strength`` in [0,1] (0 gives the content back),
    ``preserve_color`` (false | luminance/true), ``tile_size`` (px; longer sides are tiled; null: never),
    ``tile_overlap`` (px), ``tile_stats_size`` (longer side of the copy the shared instance-norm
    statistics come from; null: tile_size).
    """

    def __init__(self, net: TransformerNet, metadata: dict | None = None, *,
                 device: str | torch.device = "cpu", precision: str | int = "32",
                 channels_last: bool = False, backend: str = "auto", **options: Any) -> None:
        """``precision``: "32", or "bf16-mixed" (a network with ``mixed_precision``, as
        TransformerNet, keeps its first block and output conv in float32, the rest in bf16; any
        other runs under autocast), "16-mixed" (autocast). ``backend``: "auto" (ONNX Runtime on
        the CPU in float32 when it is installed: nst.onnxrt; else torch; the environment variable
        NST_BACKEND=torch turns it off), "torch" or "onnxruntime". ``channels_last``: NHWC
        tensors, which pay on GPUs (on this project's CPU the fused instance norm makes NCHW faster)."""
        from nst import onnxrt

        self.device = torch.device(device)
        amp = autocast_dtype(precision)
        self.amp: torch.dtype | None = amp
        self.channels_last = bool(channels_last)
        self.net = net.to(self.device).eval().requires_grad_(False)
        self._autocast_on = amp is not None
        if amp is torch.bfloat16 and hasattr(self.net, "mixed_precision"):
            self.net = copy.deepcopy(self.net).mixed_precision(amp)  # the caller's net stays float32
            self._autocast_on = False
        if self.channels_last:
            self.net = self.net.to(memory_format=torch.channels_last)
        self.backend = "torch"
        if onnxrt.wanted(backend, self.device, amp, self.net):
            self.net, self.backend = onnxrt.OrtNet(self.net), "onnxruntime"
        self.metadata = dict(metadata or {})
        self.strength, self.preserve_color = 1.0, "none"
        self.tile_size, self.tile_overlap, self.tile_stats_size = 1024, 64, None
        self._set(options)

    def _set(self, options: dict[str, Any]) -> None:
        for key, value in options.items():
            if key == "strength":
                if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
                    raise NSTError(f"strength={value!r}: must be a number from 0 (the content) "
                                   "to 1 (full style)")
                self.strength = float(value)
            elif key == "preserve_color":
                mode = color_mode(value)
                if mode == "histogram":
                    raise NSTError("preserve_color=histogram recolours the style image before training; "
                                   "when stylizing use luminance (true)")
                self.preserve_color = mode
            elif key == "tile_size":
                self.tile_size = _whole(key, value, 16, allow_none=True)
            elif key == "tile_overlap":
                self.tile_overlap = _whole(key, value, 0)
            elif key == "tile_stats_size":
                self.tile_stats_size = _whole(key, value, 16, allow_none=True)
            else:
                raise TypeError(f"Stylizer: unknown option {key!r}")
        if self.tile_size and self.tile_overlap > self.tile_size // 2:
            raise NSTError(f"tile_overlap={self.tile_overlap}: must be at most half of "
                           f"tile_size={self.tile_size}")

    def with_options(self, **options: Any) -> Stylizer:
        """A copy with other options, sharing the network."""
        twin = copy.copy(self)
        twin._set(options)
        return twin

    def __call__(self, image: Image.Image | Tensor, **options: Any) -> Image.Image | Tensor:
        me = self.with_options(**options) if options else self
        if isinstance(image, Image.Image):
            return me._pil(image)
        if isinstance(image, Tensor):
            if image.dim() == 3:
                return me.stylize_tensor(image[None])[0]
            return me.stylize_tensor(image)
        raise TypeError(f"expected a PIL image or a tensor, got {type(image).__name__}")

    def _pil(self, pil: Image.Image) -> Image.Image:
        alpha = None
        if pil.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in pil.info:
            pil = pil.convert("RGBA")
            alpha = from_pil(pil.getchannel("A"))[:, :1]
        return to_pil(self.stylize_tensor(from_pil(pil)), alpha)

    def _autocast(self) -> contextlib.AbstractContextManager:
        if not self._autocast_on:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.amp)

    def _forward(self, x: Tensor, stats: list | None = None) -> Tensor:
        """x (N,3,H,W) anywhere -> stylized (N,3,H,W) float32 on self.device."""
        x = x.to(self.device, torch.float32)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with self._autocast():
            y = self.net(x, norm_stats=stats)
        return y.float().contiguous()

    def _capture(self, x: Tensor) -> list:
        x = x.to(self.device, torch.float32)
        with self._autocast():
            return self.net.capture_norm_stats(x)

    def _finish(self, y: Tensor, content: Tensor) -> Tensor:
        """Pixel-wise: the content's colours, then the blend toward the content (lerp: exact at 0)."""
        content = content.to(y.device, torch.float32)
        if self.preserve_color == "luminance":
            y = transfer_luminance(y, content)
        if self.strength < 1.0:
            y = torch.lerp(content, y, self.strength)
        return y

    @torch.no_grad()
    def stylize_tensor(self, x: Tensor) -> Tensor:
        """(N,3,H,W) in [0,1] -> (N,3,H,W) float32 in [0,1] on x's device; tiled when a side > tile_size."""
        if x.dim() != 4 or x.shape[1] != 3:
            raise ValueError(f"expected (N,3,H,W) or (3,H,W), got {tuple(x.shape)}")
        h, w = x.shape[-2:]
        if not needs_tiling(h, w, self.tile_size):
            return self._finish(self._forward(x), x).to(x.device)
        outs = [stylize_tiled(lambda t, s: self._forward(t, s).cpu(), self._capture, x[i:i + 1].float().cpu(),
                              self.tile_size, self.tile_overlap, self.tile_stats_size, self._finish)
                for i in range(x.shape[0])]
        return torch.cat(outs).to(x.device)


# ---- files ---------------------------------------------------------------------------------------

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


def _stderr(line: str) -> None:
    print(f"nst: {line}", file=sys.stderr, flush=True)


def stylize_files(stylizer: Stylizer | Any, jobs: Sequence[Job], *, size: int | None = None,
                  overwrite: bool = False, batch_size: int = 4, quality: int = 95,
                  log: Callable[[str], None] = _stderr) -> Summary:
    """Stylize every job's source into its target (or upscale it: ``stylizer`` may be an
    nst.upscale.Upscaler, which has the same ``stylize_tensor``). A file that fails to load or save costs one
    ``log`` line and is counted; existing targets are skipped unless ``overwrite``. Same-size
    images that need no tiling run in batches of ``batch_size`` (instance norm is per image, so
    batching does not change results)."""
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
