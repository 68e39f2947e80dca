"""Super-resolution scores: PSNR and SSIM on the Y channel, and the perceptual (relu2_2) error.

The usual SR convention, as in Johnson et al. (2016, §4.2) and the Set5/Set14/BSD100 literature:
- the high-resolution image is cropped to multiples of the factor and degraded exactly as in
  training (nst.training.degrade), every method upscales that same low-resolution input;
- images are rounded to 8 bits, converted to the Y channel of ITU-R BT.601 YCbCr (MATLAB's
  ``rgb2ycbcr``: Y in [16, 235]), and ``factor`` pixels are cropped at each border before scoring;
- PSNR with a peak of 1 (Y / 255); SSIM with an 11x11 Gaussian window of sigma 1.5 and the
  constants K1 = 0.01, K2 = 0.03 of Wang et al. (2004), through torchmetrics;
- the perceptual error is the relu2_2 feature reconstruction error of VGG16, relative to the
  original's mean square (nst.perceptual.losses.content_loss), on the full RGB images.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import torch
from torch import Tensor

from nst.perceptual.losses import content_loss
from nst.training.degrade import Degrade, bicubic

Method = Callable[[Tensor], Tensor]  # low-resolution (1, 3, h, w) -> (1, 3, f*h, f*w)


def rgb_to_y(x: Tensor) -> Tensor:
    """(N, 3, H, W) RGB in [0, 1] -> (N, 1, H, W) BT.601 luma in [16/255, 235/255]."""
    r, g, b = x[:, 0:1], x[:, 1:2], x[:, 2:3]
    return (16.0 + 65.481 * r + 128.553 * g + 24.966 * b) / 255.0


def _prepared(x: Tensor, border: int) -> Tensor:
    y = rgb_to_y(torch.round(x.float().clamp(0, 1) * 255) / 255)
    return y[..., border: y.shape[-2] - border, border: y.shape[-1] - border] if border else y


def psnr_y(sr: Tensor, hr: Tensor, border: int) -> float:
    """PSNR (dB) between two RGB images on Y, ``border`` px cropped at each side."""
    from torchmetrics.functional.image import peak_signal_noise_ratio

    a, b = _prepared(sr, border), _prepared(hr, border)
    if torch.equal(a, b):
        return float("inf")
    return float(peak_signal_noise_ratio(a.double(), b.double(), data_range=1.0))


def ssim_y(sr: Tensor, hr: Tensor, border: int) -> float:
    """SSIM (Wang et al. 2004: 11x11 Gaussian window, sigma 1.5) on Y, ``border`` px cropped."""
    from torchmetrics.functional.image import structural_similarity_index_measure

    a, b = _prepared(sr, border), _prepared(hr, border)
    return float(structural_similarity_index_measure(a.double(), b.double(), gaussian_kernel=True, sigma=1.5,
                                                     kernel_size=11, data_range=1.0, k1=0.01, k2=0.03))


@torch.no_grad()
def feature_error(vgg, sr: Tensor, hr: Tensor) -> float:
    """relu2_2 feature reconstruction error of ``sr`` against ``hr``, relative to ``hr``'s."""
    feats = vgg(torch.cat([sr.float(), hr.float()]), layers=["relu2_2"])["relu2_2"]
    return float(content_loss(feats[:1], feats[1:], normalize=True))


@torch.no_grad()
def evaluate_image(hr: Tensor, methods: Mapping[str, Method], factor: int, sigma: float = 1.0,
                   vgg=None) -> tuple[dict[str, dict[str, float]], Tensor, Tensor, dict[str, Tensor]]:
    """Degrade ``hr`` (1, 3, H, W), upscale it with bicubic and every method, score each.

    Returns ({method: {psnr_y, ssim_y, feature}}, the low-resolution input, the cropped original,
    {method: its output}); ``feature`` only with a ``vgg`` (a VGGFeatures tapping relu2_2)."""
    lr, hr = Degrade(factor, sigma)(hr.float())
    outputs = {"bicubic": bicubic(lr, factor), **{name: fn(lr).float().cpu() for name, fn in methods.items()}}
    scores = {}
    for name, out in outputs.items():
        if out.shape != hr.shape:
            raise ValueError(f"{name}: output {tuple(out.shape)} for a {tuple(hr.shape)} original")
        row = {"psnr_y": psnr_y(out, hr, factor), "ssim_y": ssim_y(out, hr, factor)}
        if vgg is not None:
            row["feature"] = feature_error(vgg, out, hr)
        scores[name] = row
    return scores, lr, hr, outputs
