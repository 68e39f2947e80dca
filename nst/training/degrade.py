"""The low-resolution images super-resolution learns from, made as Johnson et al. (2016, §4.2) make
them: a Gaussian blur of width sigma = 1.0, then bicubic downsampling by the factor.

Deterministic (the same image always gives the same low-resolution input), so training crops and
evaluation photos are degraded alike. A high-resolution image whose sides are not multiples of the
factor is first cropped to the largest that are (:func:`crop_to_multiple`), so that the network's
output (exactly factor x its input) lines up pixel for pixel with the original.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor


def gaussian_kernel(sigma: float) -> Tensor:
    """1-D Gaussian of width ``sigma`` px, radius ceil(3 sigma), summing to 1 (float32)."""
    radius = max(1, math.ceil(3 * sigma))
    t = torch.arange(-radius, radius + 1, dtype=torch.float32)
    k = torch.exp(-0.5 * (t / sigma) ** 2)
    return k / k.sum()


def blur(x: Tensor, sigma: float) -> Tensor:
    """Separable Gaussian blur of (N, C, H, W), reflected at the borders (sigma 0: unchanged)."""
    if sigma <= 0:
        return x
    k = gaussian_kernel(sigma).to(x.device, x.dtype)
    r = k.numel() // 2
    c = x.shape[1]
    pad_h, pad_w = min(r, x.shape[-2] - 1), min(r, x.shape[-1] - 1)
    y = F.pad(x, (pad_w, pad_w, 0, 0), mode="reflect" if pad_w else "replicate")
    y = F.conv2d(y, k[r - pad_w: r + pad_w + 1].view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)
    y = F.pad(y, (0, 0, pad_h, pad_h), mode="reflect" if pad_h else "replicate")
    return F.conv2d(y, k[r - pad_h: r + pad_h + 1].view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)


def crop_to_multiple(x: Tensor, factor: int) -> Tensor:
    """(N, C, H, W) cropped at the bottom and right to sides that are multiples of ``factor``."""
    h, w = x.shape[-2] - x.shape[-2] % factor, x.shape[-1] - x.shape[-1] % factor
    return x[..., :h, :w]


def degrade(hr: Tensor, factor: int, sigma: float = 1.0) -> Tensor:
    """High-resolution (N, 3, H, W) in [0, 1] -> its low-resolution input (N, 3, H/f, W/f): blur,
    then bicubic downsampling (H and W must be multiples of ``factor``: :func:`crop_to_multiple`)."""
    if hr.shape[-2] % factor or hr.shape[-1] % factor:
        raise ValueError(f"degrade: {hr.shape[-1]}x{hr.shape[-2]} is not a multiple of the factor {factor}")
    small = F.interpolate(blur(hr.float(), sigma), scale_factor=1 / factor, mode="bicubic",
                          align_corners=False, antialias=False, recompute_scale_factor=False)
    return small.clamp_(0.0, 1.0)


def bicubic(lr: Tensor, factor: int) -> Tensor:
    """The bicubic baseline: (N, C, h, w) -> (N, C, h*f, w*f), clamped to [0, 1]."""
    up = F.interpolate(lr.float(), scale_factor=factor, mode="bicubic", align_corners=False,
                       recompute_scale_factor=False)
    return up.clamp_(0.0, 1.0)


class Degrade:
    """``(hr) -> (its low-resolution input, hr cropped to multiples of factor)``: the pairs a
    super-resolution model is scored on (training samples, ``mode=evaluate``)."""

    def __init__(self, factor: int = 4, sigma: float = 1.0) -> None:
        self.factor, self.sigma = int(factor), float(sigma)

    def __call__(self, hr: Tensor) -> tuple[Tensor, Tensor]:
        hr = crop_to_multiple(hr, self.factor)
        return degrade(hr, self.factor, self.sigma), hr
