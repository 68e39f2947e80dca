"""The Python API for notebooks and scripts::

    import nst
    model = nst.load_model("starry.safetensors")      # or a Lightning .ckpt
    out = model(Image.open("photo.jpg"))               # PIL in -> PIL out (alpha kept)
    from nst.api import stylize                        # (nst.inference.stylize is the module behind Stylizer)
    out = stylize(model, tensor, strength=0.8)         # (3,H,W)/(N,3,H,W) in [0,1] -> same shape

Needs neither Hydra nor Lightning.
"""

from __future__ import annotations

import os
from typing import Any

import torch
from PIL import Image
from torch import Tensor

from nst.inference.stylize import Stylizer
from nst.models.modelfile import load_any

__all__ = ["Stylizer", "load_model", "stylize"]


def load_model(path: str | os.PathLike, device: str | torch.device | None = None, *,
               precision: str = "32", channels_last: bool = False, **options: Any) -> Stylizer:
    """A callable :class:`Stylizer` from a .safetensors model or a Lightning .ckpt (for a
    super-resolution model, an :class:`nst.inference.upscale.Upscaler`, called the same way).

    ``device`` defaults to CUDA when available; ``precision`` "bf16-mixed" runs under bf16
    autocast. ``options``: strength, preserve_color, tile_size, tile_overlap, tile_stats_size, and
    for a multi-style model style (index or name) or style_mix (weights over its styles).
    The model's metadata (style, training settings) is ``stylizer.metadata``.
    """
    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    net, meta = load_any(path, device)
    if meta.get("network") == "sr":  # a super-resolution model: the same call upscales
        from nst.inference.upscale import Upscaler

        return Upscaler(net, meta, device=device, precision=precision, channels_last=channels_last, **options)
    return Stylizer(net, meta, device=device, precision=precision, channels_last=channels_last, **options)


def stylize(model: Stylizer, image: Image.Image | Tensor, **options: Any) -> Image.Image | Tensor:
    """``model(image, **options)``: PIL image -> PIL image, tensor -> tensor of the same shape."""
    if not isinstance(model, Stylizer):
        raise TypeError(f"stylize expects a model from nst.load_model, got {type(model).__name__}")
    return model(image, **options)
