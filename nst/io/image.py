"""Image files <-> float32 RGB tensors (1,3,H,W) in [0,1]: the only place pixels change representation.

Loads what users have (JPEG, PNG 8/16-bit, palette, grey, alpha, WebP, BMP, TIFF, CMYK, EXIF-rotated);
every user mistake (missing, empty, truncated, non-image or oversized file, bad option) becomes a
one-line ``NSTError`` naming the file. Saving is atomic.
"""

from __future__ import annotations

import math
import os
import warnings
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from nst.errors import NSTError
from nst.io.decode import (
    DECODE_ERRORS,
    MAX_PIXELS,
    decode,
    is_png16,
    open_image,
    pixels,
    too_big,
    unreadable,
    upright_size,
)
from nst.io.encode import ALPHA_FORMATS, check_finite, save_format, to_8bit, write_image
from nst.io.files import IMAGE_EXTENSIONS, list_images  # noqa: F401 (the loaders' public names)


def _target_size(h: int, w: int, max_side=None, scale=None, size=None) -> tuple[int, int]:
    """Check the user's resize options (size comes from code); return the new (H, W), each >= 1."""
    given = [n for n, v in (("max_side", max_side), ("scale", scale), ("size", size)) if v is not None]
    if len(given) > 1:
        raise NSTError(f"give only one of max_side, scale, size (got {', '.join(given)})")
    if max_side is not None:
        if isinstance(max_side, bool) or not isinstance(max_side, int) or max_side < 1:
            raise NSTError(f"max_side must be a positive whole number of pixels, got {max_side!r}")
        scale = max_side / max(h, w)
    if scale is not None:
        if isinstance(scale, bool) or not isinstance(scale, (int, float)) or not 0 < scale < math.inf:
            raise NSTError(f"scale must be a positive number, got {scale!r}")
        return max(1, round(h * scale)), max(1, round(w * scale))
    return (int(size[0]), int(size[1])) if size is not None else (h, w)


def resize(img: torch.Tensor, max_side: int | None = None, scale: float | None = None,
           size: tuple[int, int] | None = None) -> torch.Tensor:
    """(N,C,H,W) -> (N,C,H',W'), antialiased bicubic, clamped to [0,1]; at most one option.

    ``max_side`` makes the longer side exactly ``max_side`` (down *or* up: it is the working size the
    user asked for); ``scale`` multiplies both sides; ``size`` is (height, width). Every side stays
    >= 1 px. With no option, or when the size is unchanged, ``img`` itself is returned.
    """
    if img.dim() != 4:
        raise ValueError(f"resize expects (N,C,H,W), got shape {tuple(img.shape)}")
    h, w = img.shape[-2:]
    th, tw = _target_size(h, w, max_side, scale, size)
    if (th, tw) == (h, w):
        return img
    out = F.interpolate(img.float(), size=(th, tw), mode="bicubic", align_corners=False, antialias=True)
    return out.clamp_(0.0, 1.0).to(img.dtype)  # bicubic overshoots at edges


def png16(path: Path, im: Image.Image) -> tuple[torch.Tensor, torch.Tensor | None] | None:
    """Decode a 16-bit colour PNG at full precision (Pillow keeps only the high byte); None if not one."""
    if not is_png16(im):
        return None
    try:
        from torchvision.io import decode_png
    except ImportError:  # torchvision without its decoder: fall back to Pillow's 8 bits
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # torchvision 0.29 deprecates io.decode_*
        raw = torch.frombuffer(bytearray(path.read_bytes()), dtype=torch.uint8)
        try:
            t = decode_png(raw, apply_exif_orientation=True).to(torch.float32) / 65535.0
        except RuntimeError as e:
            raise unreadable(path, e) from None
    rgb = t[:3] if t.shape[0] >= 3 else t[:1].expand(3, -1, -1).contiguous()
    return rgb, (t[-1:] if t.shape[0] in (2, 4) else None)


def _tensors(rgb: np.ndarray, alpha: np.ndarray | None) -> tuple[torch.Tensor, torch.Tensor | None]:
    return torch.from_numpy(rgb), (None if alpha is None else torch.from_numpy(alpha))


def _read(path, max_side, scale, max_pixels, want_alpha) -> tuple[torch.Tensor, torch.Tensor | None]:
    path = Path(path).expanduser()
    limit = MAX_PIXELS if max_pixels is None else max_pixels
    with open_image(path, limit) as im:
        try:
            got = png16(path, im)
            if got is None:
                th, tw = _target_size(*upright_size(im), max_side, scale)
                got = _tensors(*decode(im, (th, tw), want_alpha))
            else:
                th, tw = _target_size(*got[0].shape[-2:], max_side, scale)
        except Image.DecompressionBombError:
            raise too_big(path, limit) from None
        except DECODE_ERRORS as e:
            raise unreadable(path, e) from None
    rgb, alpha = got
    x = resize((rgb if alpha is None else torch.cat([rgb, alpha]))[None], size=(th, tw))
    return x[:, :3].contiguous(), (None if alpha is None else x[:, 3:].contiguous())


def load_image(path: str | os.PathLike, max_side: int | None = None, scale: float | None = None, *,
               max_pixels: int | None = None) -> torch.Tensor:
    """Image file -> float32 RGB (1,3,H,W) in [0,1], EXIF orientation applied, alpha dropped.

    ``max_side``/``scale`` as in :func:`resize`; ``max_pixels`` (default MAX_PIXELS) bounds the file's size.
    """
    return _read(path, max_side, scale, max_pixels, want_alpha=False)[0]


def load_image_alpha(path: str | os.PathLike, max_side: int | None = None, scale: float | None = None, *,
                     max_pixels: int | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Like :func:`load_image`, plus alpha (1,1,H,W) in [0,1], or None when the file has no transparency."""
    return _read(path, max_side, scale, max_pixels, want_alpha=True)


def to_pil(img: torch.Tensor, alpha: torch.Tensor | None = None) -> Image.Image:
    """(3,H,W) or (1,3,H,W) in [0,1] -> 8-bit RGB PIL image; RGBA with ``alpha`` (1,H,W) or (1,1,H,W).

    Values are clamped to [0,1] and rounded (not truncated) to 8 bits; the input is not modified.
    """
    if img.dim() not in (3, 4) or img.shape[-3] != 3 or (img.dim() == 4 and img.shape[0] != 1):
        raise ValueError(f"expected an image (3,H,W) or (1,3,H,W), got {tuple(img.shape)}")
    x = img.detach().reshape(3, *img.shape[-2:]).to("cpu", torch.float32)
    a = None if alpha is None else alpha.detach().reshape(1, *x.shape[-2:]).to("cpu", torch.float32).numpy()
    return to_8bit(x.numpy(), a)  # reshape fails loudly when alpha's size differs


def from_pil(pil: Image.Image) -> torch.Tensor:
    """PIL image, any mode -> float32 RGB (1,3,H,W) in [0,1]; pixels as stored (no EXIF turn), no alpha."""
    return torch.from_numpy(pixels(pil, want_alpha=False)[0])[None]


def save_image(img: torch.Tensor, path: str | os.PathLike, alpha: torch.Tensor | None = None,
               quality: int = 95) -> Path:
    """Write (3,H,W) or (1,3,H,W) in [0,1] atomically; format by extension; returns the path.

    Folders are created. Alpha is kept by PNG, WebP and TIFF and dropped by JPEG and BMP.
    ``quality`` (1..100) applies to JPEG and WebP (nst.io.encode).
    """
    path = Path(path).expanduser()
    fmt = save_format(path)  # whether alpha is kept; write_image checks the quality
    check_finite(img.detach().float().cpu().numpy(), path)
    return write_image(to_pil(img, alpha if fmt in ALPHA_FORMATS else None), path, quality)
