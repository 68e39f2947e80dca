"""Colour preservation (Gatys, Bethge, Hertzmann, Shechtman 2016, "Preserving Color in Neural
Artistic Style Transfer"): keep the content photo's colours and transfer only the style's texture.

Two ways, as in the paper:
- ``luminance``: take the result's luminance (Y of YIQ) and the content's chrominance (I, Q).
  The paper runs the whole transfer on luminance; recombining afterwards is the common, cheaper
  variant and works for Gatys and for a trained network alike.
- ``histogram``: recolour the style image so its colour mean and covariance match the content's
  before its Gram targets are taken (the paper's linear "colour histogram matching").
"""

from __future__ import annotations

import torch
from torch import Tensor

from nst.errors import NSTError

# NTSC YIQ; rows map RGB to Y, I, Q.
_RGB_TO_YIQ = torch.tensor([[0.299, 0.587, 0.114],
                            [0.595716, -0.274453, -0.321263],
                            [0.211456, -0.522591, 0.311135]])

MODES = ("none", "luminance", "histogram")


def color_mode(value: object) -> str:
    """Normalize a config value (false/true/none/luminance/histogram) to one of MODES."""
    if value in (None, False, "false", "False", "none", "off"):
        return "none"
    if value in (True, "true", "True"):
        return "luminance"
    if value in MODES:
        return str(value)
    raise NSTError(f"preserve_color={value!r}: choose false, luminance (true) or histogram")


def rgb_to_yiq(img: Tensor) -> Tensor:
    """(N, 3, H, W) RGB -> YIQ."""
    m = _RGB_TO_YIQ.to(img)
    return torch.einsum("ij,njhw->nihw", m, img)


def yiq_to_rgb(img: Tensor) -> Tensor:
    """(N, 3, H, W) YIQ -> RGB (not clamped)."""
    m = torch.linalg.inv(_RGB_TO_YIQ.double()).to(img)
    return torch.einsum("ij,njhw->nihw", m, img)


def transfer_luminance(stylized: Tensor, content: Tensor) -> Tensor:
    """The stylized luminance with the content's chrominance; both (N, 3, H, W) of one size."""
    if stylized.shape != content.shape:
        raise ValueError(f"shapes differ: {tuple(stylized.shape)} vs {tuple(content.shape)}")
    s, c = rgb_to_yiq(stylized), rgb_to_yiq(content)
    return yiq_to_rgb(torch.cat([s[:, :1], c[:, 1:]], dim=1)).clamp(0, 1)


def match_color(source: Tensor, reference: Tensor, eps: float = 1e-5) -> Tensor:
    """Recolour (1, 3, H, W) ``source`` so its colour mean and covariance equal ``reference``'s.

    The linear map uses symmetric matrix square roots (the paper's "Image Analogies" variant),
    which keeps hues better than a Cholesky factor.
    """
    def stats(img: Tensor) -> tuple[Tensor, Tensor]:
        x = img.double().reshape(3, -1)
        mu = x.mean(1, keepdim=True)
        cov = torch.cov(x) + eps * torch.eye(3, dtype=x.dtype)
        return mu, cov

    def sqrtm(m: Tensor, inverse: bool = False) -> Tensor:
        vals, vecs = torch.linalg.eigh(m)
        vals = vals.clamp_min(eps).pow(-0.5 if inverse else 0.5)
        return vecs @ torch.diag(vals) @ vecs.T

    mu_s, cov_s = stats(source)
    mu_r, cov_r = stats(reference)
    transform = sqrtm(cov_r) @ sqrtm(cov_s, inverse=True)
    x = source.double().reshape(3, -1)
    out = transform @ (x - mu_s) + mu_r
    return out.reshape(source.shape).to(source.dtype).clamp(0, 1)


def match_histograms(image: Tensor, reference: Tensor) -> Tensor:
    """Each channel of (N, C, H, W) ``image`` remapped so its histogram is ``reference``'s (N, C, h, w;
    any size): exact histogram matching by ranks, with the reference's quantiles interpolated
    linearly when the sizes differ.

    The remap is monotone per channel: the order of the values is kept, only their distribution
    changes. Johnson et al. (2016, §4.2) match their super-resolution outputs to the low-resolution
    input this way; a value tied in ``image`` may land on neighbouring reference values.
    """
    if image.dim() != 4 or reference.dim() != 4 or image.shape[:2] != reference.shape[:2]:
        raise ValueError(f"match_histograms: need (N, C, H, W) tensors of equal N and C, got "
                         f"{tuple(image.shape)} and {tuple(reference.shape)}")
    n, c = image.shape[:2]
    src = image.reshape(n * c, -1)
    ref = reference.to(image.device, torch.float32).reshape(n * c, -1).sort(dim=1).values
    size, ref_size = src.shape[1], ref.shape[1]
    # the k-th smallest of `size` values sits at quantile (k + 0.5) / size; the reference's value
    # at that quantile, between its own order statistics
    pos = ((torch.arange(size, device=image.device, dtype=torch.float32) + 0.5) * (ref_size / size) - 0.5)
    pos = pos.clamp_(0, ref_size - 1)
    lo = pos.floor().long()
    hi = (lo + 1).clamp_(max=ref_size - 1)
    frac = (pos - lo).to(torch.float32)
    values = ref[:, lo] * (1 - frac) + ref[:, hi] * frac  # (n*c, size), ascending
    order = src.argsort(dim=1, stable=True)
    out = torch.empty_like(src, dtype=torch.float32).scatter_(1, order, values)
    return out.reshape(image.shape).to(image.dtype)
