"""One-pass super-resolution with a trained SRNet: tensors, PIL images and whole folders.

``Upscaler`` is the Stylizer's counterpart for networks whose output is ``factor`` x their input.
Large inputs run in overlapping tiles: tile size and overlap are counted on the *input*, so no
forward pass sees more than ``tile_size`` px a side, and each output tile is ``factor`` x its
input tile, cross-faded over ``factor`` x the overlap. SRNet has no normalization layer, so tiles
need no shared statistics: away from the tiles' borders a tiled result equals a whole-image one.
Alpha channels are upscaled bicubically. ``histogram_match`` remaps each output's colour
histograms to its low-resolution input's (Johnson et al.'s post-processing), over the whole image
after the tiles are joined.
"""

from __future__ import annotations

import contextlib
from typing import Any

import torch
import torch.nn.functional as F
from PIL import Image
from torch import Tensor, nn

from nst.errors import NSTError
from nst.inference.color import match_histograms
from nst.inference.stylize import autocast_dtype
from nst.inference.tiling import ramps, spans
from nst.io.image import MAX_PIXELS, from_pil, to_pil


class Upscaler:
    """A trained super-resolution network ready for inference: ``upscaler(img)`` takes a PIL image
    (-> PIL image ``factor`` x larger, alpha upscaled bicubically) or a tensor (3,H,W)/(N,3,H,W)
    in [0,1] (-> float32 ``factor`` x larger, on the input's device).

    Options: ``tile_size`` (px of the input a forward pass sees at most; null: never tile),
    ``tile_overlap`` (input px shared by neighbouring tiles), ``max_pixels`` (the largest output
    width x height allowed), ``histogram_match`` (match each output channel's histogram to the
    input's: :func:`nst.inference.color.match_histograms`).
    """

    def __init__(self, net: nn.Module, metadata: dict | None = None, *, device: str | torch.device = "cpu",
                 precision: str = "32", channels_last: bool = False, tile_size: int | None = 512,
                 tile_overlap: int = 16, max_pixels: int = MAX_PIXELS, histogram_match: bool = False) -> None:
        if not hasattr(net, "factor"):
            raise NSTError("this model is not a super-resolution network (it has no factor): "
                           "use mode=stylize for style models")
        self.device = torch.device(device)
        self.amp = autocast_dtype(precision)
        self.channels_last = bool(channels_last)
        self.net = net.to(self.device).eval().requires_grad_(False)
        if self.channels_last:
            self.net = self.net.to(memory_format=torch.channels_last)
        self.factor = int(net.factor)
        self.metadata = dict(metadata or {})
        bad = tile_size is not None and (int(tile_size) < 8 or not 0 <= tile_overlap <= int(tile_size) // 2)
        if bad:
            raise NSTError(f"tile_size={tile_size}, tile_overlap={tile_overlap}: need tile_size >= 8 and "
                           "0 <= tile_overlap <= tile_size / 2")
        self.tile_size = None if tile_size is None else int(tile_size)
        self.tile_overlap = int(tile_overlap)
        self.max_pixels = int(max_pixels)
        self.histogram_match = bool(histogram_match)

    def __call__(self, image: Image.Image | Tensor) -> Image.Image | Tensor:
        if isinstance(image, Image.Image):
            alpha = None
            if image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info:
                image = image.convert("RGBA")
                alpha = self.scale_alpha(from_pil(image.getchannel("A"))[:, :1])
            return to_pil(self.process_tensor(from_pil(image)), alpha)
        if isinstance(image, Tensor):
            return self.process_tensor(image[None])[0] if image.dim() == 3 else self.process_tensor(image)
        raise TypeError(f"expected a PIL image or a tensor, got {type(image).__name__}")

    def scale_alpha(self, alpha: Tensor) -> Tensor:
        """(N, 1, h, w) -> (N, 1, f*h, f*w), bicubic, in [0, 1]."""
        return F.interpolate(alpha.float(), scale_factor=self.factor, mode="bicubic",
                             align_corners=False).clamp_(0.0, 1.0)

    def _forward(self, x: Tensor) -> Tensor:
        x = x.to(self.device, torch.float32)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        amp = torch.autocast(self.device.type, dtype=self.amp) if self.amp else contextlib.nullcontext()
        with amp:
            return self.net(x).float().contiguous()

    def check_size(self, h: int, w: int, name: str = "input") -> None:
        """NSTError when the output of an (h, w) input would exceed ``max_pixels``."""
        oh, ow = h * self.factor, w * self.factor
        if oh * ow > self.max_pixels:
            raise NSTError(f"{name}: the x{self.factor} output would be {ow}x{oh} = {ow * oh:,} pixels, "
                           f"over the max_pixels limit of {self.max_pixels:,} (downscale it first, or raise "
                           "max_pixels)")

    @torch.no_grad()
    def process_tensor(self, x: Tensor) -> Tensor:
        """(N,3,h,w) in [0,1] -> (N,3,f*h,f*w) float32 in [0,1] on x's device; tiled when a side of
        the input is longer than ``tile_size``."""
        if x.dim() != 4 or x.shape[1] != 3:
            raise ValueError(f"expected (N,3,H,W) or (3,H,W), got {tuple(x.shape)}")
        h, w = x.shape[-2:]
        self.check_size(h, w)
        if self.tile_size is None or max(h, w) <= self.tile_size:
            y = self._forward(x).to(x.device)
        else:
            y = torch.cat([self._tiled(x[i:i + 1].float().cpu()) for i in range(x.shape[0])]).to(x.device)
        return match_histograms(y, x.float()) if self.histogram_match else y

    def _tiled(self, x: Tensor) -> Tensor:
        f = self.factor
        h, w = x.shape[-2:]
        rows, cols = spans(h, self.tile_size, self.tile_overlap), spans(w, self.tile_size, self.tile_overlap)
        # weights over the output: the input windows' ramps, stretched by the factor
        row_w = [r.repeat_interleave(f) for r in ramps(rows)]
        col_w = [c.repeat_interleave(f) for c in ramps(cols)]
        out = torch.zeros(1, 3, h * f, w * f)
        for (top, bottom), wr in zip(rows, row_w):
            for (left, right), wc in zip(cols, col_w):
                y = self._forward(x[..., top:bottom, left:right]).cpu()
                out[..., top * f: bottom * f, left * f: right * f] += y * (wr[:, None] * wc[None, :])
        return out.clamp_(0.0, 1.0)

    # the protocol nst.inference.batch.stylize_files drives
    def stylize_tensor(self, x: Tensor) -> Tensor:
        return self.process_tensor(x)


def is_upscaler(meta: dict[str, Any]) -> bool:
    """Whether a model file's meta names a super-resolution network."""
    return meta.get("network") == "sr"
