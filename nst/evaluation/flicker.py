"""Flicker: how much a network's output changes between frames beyond what the motion explains.

The warping error (Lai et al. 2018; Gupta et al. 2017) of stylized frames S_t is the mean over
consecutive pairs of ``mean((S_{t+1} - warp_t(S_t))^2)`` over the pixels the motion keeps visible
(non-occluded), in [0, 1] units. Two sources of motion:

- **synthetic clips** (``pan`` and ``zoom`` below): a still photo panned by a whole number of
  pixels per frame, or zoomed about its centre, so the motion is known exactly. A pan's warp is a
  shift (no resampling); a zoom's goes through bilinear sampling, which adds the same small blur
  to every network's number.
- **real clips**: OpenCV's DIS optical flow on the input frames (``opencv-python-headless``), with
  a forward-backward check marking occluded pixels. These numbers are not comparable with papers
  that used learned flow (FlowNet2, RAFT).
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import torch
import torch.nn.functional as F
from torch import Tensor

from nst.errors import NSTError


def pan(photo: Tensor, frames: int, step: int, width: int, height: int) -> Iterator[Tensor]:
    """(1,3,H,W) photo -> ``frames`` (1,3,height,width) crops, each ``step`` px further right than
    the last (frame t+1 at (y, x) is frame t at (y, x + step))."""
    h, w = photo.shape[-2:]
    need = width + (frames - 1) * step
    if need > w or height > h:
        raise NSTError(f"a pan of {frames} frames at {step} px/frame over {width}x{height} needs a photo "
                       f"of at least {need}x{height} px, got {w}x{h}")
    y0 = (h - height) // 2
    for t in range(frames):
        yield photo[:, :, y0:y0 + height, t * step:t * step + width]


def zoom(photo: Tensor, frames: int, rate: float, width: int, height: int) -> Iterator[Tensor]:
    """(1,3,H,W) photo -> ``frames`` (1,3,height,width) views zooming in by ``rate`` per frame
    (1.01: 1 %) about the centre; frame 0 is the largest centred crop of the frames' aspect."""
    if not rate > 1:
        raise NSTError(f"zoom_rate={rate}: a zoom in needs a rate > 1 (1.005: 0.5 % per frame)")
    from nst.io.image import resize

    h, w = photo.shape[-2:]
    scale0 = min(w / width, h / height)
    if scale0 > 1:  # down to about one photo pixel per frame pixel first (antialiased): no aliasing
        photo = resize(photo.float(), scale=1 / scale0)
        h, w = photo.shape[-2:]
        scale0 = min(w / width, h / height)
    for t in range(frames):
        s = scale0 / rate ** t  # photo px per frame px
        theta = torch.tensor([[[s * width / w, 0.0, 0.0], [0.0, s * height / h, 0.0]]])
        grid = F.affine_grid(theta, [1, 3, height, width], align_corners=False)
        yield F.grid_sample(photo.float(), grid, mode="bilinear", padding_mode="border",
                            align_corners=False).clamp(0, 1)


def pan_error(a: Tensor, b: Tensor, step: int) -> float:
    """Warping error between consecutive outputs a = S_t, b = S_{t+1} of a pan by ``step`` px."""
    return float(F.mse_loss(b[..., :b.shape[-1] - step].float(), a[..., step:].float()))


def zoom_error(a: Tensor, b: Tensor, rate: float) -> float:
    """Warping error for a zoom by ``rate`` per frame: S_t resampled to where S_{t+1} sees it."""
    theta = torch.tensor([[[1.0 / rate, 0.0, 0.0], [0.0, 1.0 / rate, 0.0]]], dtype=torch.float32)
    grid = F.affine_grid(theta.expand(a.shape[0], -1, -1), list(a.shape), align_corners=False)
    warped = F.grid_sample(a.float(), grid, mode="bilinear", align_corners=False)
    return float(F.mse_loss(b.float(), warped))  # zooming in: every pixel of S_{t+1} is in S_t


def flow_error(a: Tensor, b: Tensor, frame_a: Tensor, frame_b: Tensor, threshold: float = 1.0) -> float:
    """Warping error of real frames: the motion from frame_b back to frame_a by DIS optical flow
    (OpenCV), pixels whose forward-backward flows disagree by more than ``threshold`` px occluded."""
    try:
        import cv2
    except ImportError as e:
        raise NSTError("the flicker of a real clip needs OpenCV's optical flow: "
                       "pip install opencv-python-headless") from e
    import numpy as np

    def gray(x: Tensor):
        return (x[0].float().mul(255).round().clamp(0, 255).byte().permute(1, 2, 0).numpy()
                @ np.array([0.299, 0.587, 0.114])).astype(np.uint8)

    dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
    ga, gb = gray(frame_a), gray(frame_b)
    back = torch.from_numpy(dis.calc(gb, ga, None))   # b -> a: where each pixel of b was in a
    fwd = torch.from_numpy(dis.calc(ga, gb, None))    # a -> b
    h, w = ga.shape
    ys, xs = torch.meshgrid(torch.arange(h, dtype=torch.float32), torch.arange(w, dtype=torch.float32),
                            indexing="ij")
    px, py = xs + back[..., 0], ys + back[..., 1]

    def sample(img: Tensor) -> Tensor:
        grid = torch.stack([2 * (px + 0.5) / w - 1, 2 * (py + 0.5) / h - 1], dim=-1)[None]
        return F.grid_sample(img.float(), grid, mode="bilinear", align_corners=False)

    # forward-backward consistency: following b -> a, then a -> b, should come back to the start
    round_trip = back.permute(2, 0, 1)[None] + sample(fwd.permute(2, 0, 1)[None])
    inside = (px >= 0) & (px <= w - 1) & (py >= 0) & (py <= h - 1)
    valid = inside & (round_trip[0].norm(dim=0) <= threshold)
    if not bool(valid.any()):
        return math.nan
    diff = (b.float() - sample(a)) ** 2
    return float(diff[..., valid].mean())


def difference_image(a: Tensor, b: Tensor, step: int, gain: float = 4.0) -> Tensor:
    """|S_{t+1} - warp(S_t)| of a pan, amplified by ``gain`` (for the docs' picture)."""
    d = (b[..., :b.shape[-1] - step].float() - a[..., step:].float()).abs().mean(dim=1, keepdim=True)
    return (d * gain).clamp(0, 1).expand(-1, 3, -1, -1)


class Measure:
    """Accumulates a clip's flicker, loss terms and speed, one batch of frames at a time.

    ``error(a, b, frame_a, frame_b)`` is the warping error of one consecutive pair of outputs
    (``pan_error``/``zoom_error`` with their motion bound, or ``flow_error``); ``loss`` (optional)
    scores every ``loss_every``-th output against its frame (content, style, TV:
    nst.evaluation.compare.loss_terms)."""

    def __init__(self, error, loss=None, loss_every: int = 5, keep: int | None = None) -> None:
        self.error, self.loss, self.loss_every, self.keep = error, loss, max(1, int(loss_every)), keep
        self.errors: list[float] = []
        self.terms: list[dict[str, float]] = []
        self.seconds, self.frames = 0.0, 0
        self.prev: tuple[Tensor, Tensor] | None = None
        self.pair: tuple[Tensor, Tensor] | None = None  # the outputs around frame ``keep`` (picture)

    def add(self, frames: Tensor, outs: Tensor, seconds: float) -> None:
        from nst.evaluation.compare import loss_terms

        self.seconds += seconds
        for i in range(frames.shape[0]):
            x, y = frames[i:i + 1], outs[i:i + 1]
            if self.prev is not None:
                self.errors.append(self.error(self.prev[1], y, self.prev[0], x))
                if self.keep is not None and self.frames == self.keep:
                    self.pair = (self.prev[1], y)
            if self.loss is not None and self.frames % self.loss_every == 0:
                self.terms.append(loss_terms(self.loss, y, x))
            self.prev = (x, y)
            self.frames += 1

    def result(self) -> dict:
        finite = [e for e in self.errors if not math.isnan(e)]
        row = {"frames": self.frames, "warping_error": sum(finite) / len(finite) if finite else math.nan,
               "frames_per_s": self.frames / self.seconds if self.seconds else math.nan}
        if self.terms:
            row.update({k: sum(t[k] for t in self.terms) / len(self.terms) for k in self.terms[0]})
        return row
