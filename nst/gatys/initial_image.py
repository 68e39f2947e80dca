"""Starting images for the Gatys optimizer: the content, white noise, blurred noise, or a file."""

from __future__ import annotations

import math
import os

import torch
import torch.nn.functional as F
from torch import Tensor

from nst.errors import NSTError
from nst.io.image import load_image, resize

INIT_MODES = ("content", "noise", "blurred_noise")


def gaussian_blur(img: Tensor, sigma: float) -> Tensor:
    """Separable Gaussian blur of (N, C, H, W) with reflect padding (replicate where too small)."""
    radius = max(1, math.ceil(3 * sigma))
    x = torch.arange(-radius, radius + 1, dtype=img.dtype, device=img.device)
    k = torch.exp(-0.5 * (x / sigma) ** 2)
    k = k / k.sum()
    c = img.shape[1]
    out = img
    for dim, kernel in ((-1, k.view(1, 1, 1, -1)), (-2, k.view(1, 1, -1, 1))):
        pad = (radius, radius, 0, 0) if dim == -1 else (0, 0, radius, radius)
        mode = "reflect" if out.shape[dim] > radius else "replicate"
        out = F.conv2d(F.pad(out, pad, mode=mode), kernel.expand(c, 1, *kernel.shape[-2:]), groups=c)
    return out


def initial_image(content: Tensor, init: str | os.PathLike | Tensor = "content", seed: int = 0) -> Tensor:
    """The image (1, 3, H, W) in [0, 1] the optimizer starts from, the size of ``content`` (1, 3, H, W).

    ``init``: ``content`` (a copy), ``noise`` (uniform white noise, as in Gatys et al.),
    ``blurred_noise`` (noise low-passed with sigma = longer side / 64, rescaled to mean 0.5 and
    std 0.15 per channel: coarse blobs that VGG sees as smooth shapes, not pixel grain), a path to
    an image (resized to the content's size), or a tensor (resized likewise). Noise is drawn from
    a CPU generator seeded with ``seed``, so a seed gives the same start on every device.
    """
    h, w = content.shape[-2:]
    if isinstance(init, Tensor):
        start = resize(init.detach().float().cpu(), size=(h, w))
    elif init == "content":
        start = content.detach().float().cpu()
    elif init in ("noise", "blurred_noise"):
        gen = torch.Generator().manual_seed(int(seed))
        start = torch.rand((1, 3, h, w), generator=gen)
        if init == "blurred_noise":
            start = gaussian_blur(start, sigma=max(1.0, max(h, w) / 64))
            mean = start.mean((2, 3), keepdim=True)
            std = start.std((2, 3), keepdim=True).clamp_min(1e-6)
            start = ((start - mean) / std * 0.15 + 0.5)
    elif isinstance(init, (str, os.PathLike)) and (str(init).strip() and not str(init).isidentifier()
                                                   or os.path.exists(init)):
        start = resize(load_image(init), size=(h, w))
    else:
        raise NSTError(f"init={init!r}: choose content, noise, blurred_noise or a path to an image")
    return start.clamp(0, 1).contiguous().to(content.device)
