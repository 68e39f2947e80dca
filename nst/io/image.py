"""Image files <-> float32 RGB tensors (1,3,H,W) in [0,1]: the only place pixels change representation.

Loads what users have (JPEG, PNG 8/16-bit, palette, grey, alpha, WebP, BMP, TIFF, CMYK, EXIF-rotated);
every user mistake (missing, empty, truncated, non-image or oversized file, bad option) becomes a
one-line ``NSTError`` naming the file. Saving is atomic.
"""

from __future__ import annotations

import glob
import math
import os
from pathlib import Path

import torch
import torch.nn.functional as F
from PIL import Image

from nst.errors import NSTError
from nst.io.decode import (
    DECODE_ERRORS,
    decode,
    one_line,
    open_image,
    pixels,
    png16,
    too_big,
    unreadable,
    upright_size,
)
from nst.io.files import atomic_path

MAX_PIXELS = 200_000_000  # largest width*height the loaders decode (per call: max_pixels=); header-checked

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff")
_SAVE_FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".webp": "WEBP", ".bmp": "BMP",
                 ".tif": "TIFF", ".tiff": "TIFF"}
_ALPHA_FORMATS = {"PNG", "WEBP", "TIFF"}


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


def _read(path, max_side, scale, max_pixels, want_alpha) -> tuple[torch.Tensor, torch.Tensor | None]:
    path = Path(path).expanduser()
    limit = MAX_PIXELS if max_pixels is None else max_pixels
    with open_image(path, limit) as im:
        try:
            got = png16(path, im)
            if got is None:
                th, tw = _target_size(*upright_size(im), max_side, scale)
                got = decode(im, (th, tw), want_alpha)
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
    x = img.detach().reshape(3, *img.shape[-2:])
    if alpha is not None:  # reshape fails loudly when alpha's size differs
        x = torch.cat([x, alpha.detach().reshape(1, *x.shape[-2:]).to(x.device)])
    x = x.to("cpu", torch.float32).clamp(0.0, 1.0).mul(255.0).round().to(torch.uint8)
    return Image.fromarray(x.permute(1, 2, 0).contiguous().numpy())


def from_pil(pil: Image.Image) -> torch.Tensor:
    """PIL image, any mode -> float32 RGB (1,3,H,W) in [0,1]; pixels as stored (no EXIF turn), no alpha."""
    return pixels(pil, want_alpha=False)[0][None]


def save_image(img: torch.Tensor, path: str | os.PathLike, alpha: torch.Tensor | None = None,
               quality: int = 95) -> Path:
    """Write (3,H,W) or (1,3,H,W) in [0,1] atomically; format by extension; returns the path.

    Folders are created. Alpha is kept by PNG, WebP and TIFF and dropped by JPEG and BMP.
    ``quality`` (1..100) applies to JPEG and WebP.
    """
    path = Path(path).expanduser()
    fmt = _SAVE_FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise NSTError(f"{path}: unknown image extension {path.suffix or '(none)'!r} "
                       f"(use one of {', '.join(_SAVE_FORMATS)})")
    if isinstance(quality, bool) or not isinstance(quality, int) or not 1 <= quality <= 100:
        raise NSTError(f"quality must be a whole number from 1 to 100, got {quality!r}")
    if not torch.isfinite(img).all():
        raise NSTError(f"{path}: not saved, the image has NaN or infinite values (did training diverge?)")
    pil = to_pil(img, alpha if fmt in _ALPHA_FORMATS else None)
    # 4:4:4 chroma: stylized textures carry fine colour detail that 4:2:0 would smear.
    opts = {"JPEG": {"quality": quality, "subsampling": 0}, "WEBP": {"quality": quality}}.get(fmt, {})
    try:
        with atomic_path(path) as tmp:
            pil.save(tmp, format=fmt, **opts)
    except OSError as e:
        raise NSTError(f"{path}: cannot write image ({one_line(e)})") from None
    return path


def list_images(spec: str | os.PathLike, extensions: tuple[str, ...] = IMAGE_EXTENSIONS) -> list[Path]:
    """A file -> [file]; a folder -> its files with ``extensions`` (any case), recursive, sorted;
    a glob -> its matching files, sorted. Folders skip hidden entries: macOS ``._*`` twins, ``.git``,
    half-written ``.*.tmp.*`` files."""
    s = os.path.expanduser(os.fspath(spec))
    p = Path(s)
    if p.is_file():
        return [p]
    if p.is_dir():
        found = sorted(f for f in p.rglob("*") if f.suffix.lower() in extensions and f.is_file()
                       and not any(part.startswith(".") for part in f.relative_to(p).parts))
        if not found:
            raise NSTError(f"{spec}: no image files ({', '.join(extensions)}) in this folder")
        return found
    if any(c in s for c in "*?["):
        found = sorted(Path(f) for f in glob.glob(s, recursive=True) if os.path.isfile(f))
        if not found:
            raise NSTError(f"{spec}: no files match this pattern")
        return found
    raise NSTError(f"{spec}: no such file or folder")
