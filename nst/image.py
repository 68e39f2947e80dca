"""Image files <-> float32 RGB tensors (1,3,H,W) in [0,1]: the only place pixels change representation.

Loads what users have (JPEG, PNG 8/16-bit, palette, grey, alpha, WebP, BMP, TIFF, CMYK, EXIF-rotated);
every user mistake (missing, empty, truncated, non-image or oversized file, bad option) becomes a
one-line ``NSTError`` naming the file. Saving is atomic.
"""

from __future__ import annotations

import contextlib
import glob
import math
import os
import struct
import threading
import warnings
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageOps, UnidentifiedImageError

from nst.errors import NSTError
from nst.files import atomic_path

MAX_PIXELS = 200_000_000  # largest width*height the loaders decode (per call: max_pixels=); header-checked

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff")
_SAVE_FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".webp": "WEBP", ".bmp": "BMP",
                 ".tif": "TIFF", ".tiff": "TIFF"}
_ALPHA_FORMATS = {"PNG", "WEBP", "TIFF"}
_DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, struct.error)  # what Pillow raises on bad data
_PIL_LIMIT_LOCK = threading.Lock()


def _line(e: BaseException) -> str:
    """An exception as one short line (OSError: just its reason, the path is named by the caller)."""
    return getattr(e, "strerror", None) or " ".join(str(e).split()) or type(e).__name__


def _unreadable(path: Path, e: BaseException) -> NSTError:
    if isinstance(e, OSError) and e.errno is not None:  # the OS refused (permissions, I/O), not the data
        return NSTError(f"{path}: cannot read file ({_line(e)})")
    return NSTError(f"{path}: truncated or corrupt image ({_line(e)})")


def _too_big(path: Path, max_pixels: int, size: tuple[int, int] | None = None) -> NSTError:
    dims = f"{size[0]}x{size[1]} pixels, " if size else ""
    # Say how far to downscale: the longer side that brings width*height under the limit.
    side = int(max(size) * math.sqrt(max_pixels / (size[0] * size[1]))) if size else math.isqrt(max_pixels)
    return NSTError(f"{path}: image too large ({dims}over the max_pixels limit of {max_pixels:,}; possible "
                    f"decompression bomb): downscale it to at most {side:,} px on the longer side first, "
                    "or raise max_pixels if you trust the file")


def _open(path: Path, max_pixels: int) -> Image.Image:
    """Open lazily (header only) and refuse oversized images before any pixel is decoded."""
    try:
        if path.is_dir():
            raise NSTError(f"{path}: is a folder, not an image file")
        if path.stat().st_size == 0:
            raise NSTError(f"{path}: empty file (0 bytes)")
        # max_pixels is the authority: Pillow warns above its MAX_IMAGE_PIXELS and refuses above twice
        # that (~179 MP), undercutting ours, so raise (never lower) its limit for this one open call.
        with _PIL_LIMIT_LOCK, warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            old = Image.MAX_IMAGE_PIXELS
            # The header is all Image.open reads; the check below (with the image's size, for the
            # message) refuses before any pixel is decoded, so Pillow's own check is off meanwhile.
            Image.MAX_IMAGE_PIXELS = None
            try:
                im = Image.open(path)
            finally:
                Image.MAX_IMAGE_PIXELS = old
    except FileNotFoundError:
        raise NSTError(f"{path}: no such file") from None
    except UnidentifiedImageError:
        raise NSTError(f"{path}: not an image file (cannot identify image format)") from None
    except Image.DecompressionBombError:
        raise _too_big(path, max_pixels) from None
    except _DECODE_ERRORS as e:
        raise _unreadable(path, e) from None
    if im.size[0] * im.size[1] > max_pixels:
        im.close()
        raise _too_big(path, max_pixels, im.size)
    return im


def _pixels(im: Image.Image, want_alpha: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
    """PIL image, any mode -> RGB (3,H,W), alpha (1,H,W) or None; float32 in [0,1], alpha never composited."""
    if im.mode.startswith("I") or im.mode == "F":
        # 16-bit grey (PNG/TIFF opens as I;16 or I): scale by 65535 at full precision; F assumed in [0,1].
        a = np.asarray(im).astype(np.float32)
        a = np.clip(a if im.mode == "F" else a / 65535.0, 0.0, 1.0)
        return torch.from_numpy(a)[None].expand(3, -1, -1).contiguous(), None
    has_alpha = want_alpha and (im.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in im.info)
    try:
        a = np.asarray(im.convert("RGBA" if has_alpha else "RGB")).astype(np.float32) / 255.0
    except ValueError as e:  # a mode Pillow cannot turn into RGB (e.g. LAB)
        name = getattr(im, "filename", "") or "image"
        raise NSTError(f"{name}: unsupported colour mode {im.mode} ({_line(e)})") from None
    t = torch.from_numpy(a).permute(2, 0, 1)
    return t[:3].contiguous(), (t[3:].contiguous() if has_alpha else None)


def _png16(path: Path, im: Image.Image) -> tuple[torch.Tensor, torch.Tensor | None] | None:
    """Decode a 16-bit colour PNG at full precision (Pillow keeps only the high byte); None if not one."""
    tile = im.tile[0] if im.format == "PNG" and im.tile else None
    if tile is None or im.mode.startswith("I") or not str(tile[3]).endswith(";16B"):
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
            raise _unreadable(path, e) from None
    rgb = t[:3] if t.shape[0] >= 3 else t[:1].expand(3, -1, -1).contiguous()
    return rgb, (t[-1:] if t.shape[0] in (2, 4) else None)


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


def _decode(im: Image.Image, max_side, scale, want_alpha: bool):
    """Decode an opened Pillow image upright; returns (rgb, alpha) and the target (H, W)."""
    try:
        turned = im.getexif().get(0x0112, 1) in (5, 6, 7, 8)  # EXIF orientations that swap W and H
    except Exception:
        turned = False
    w, h = im.size[::-1] if turned else im.size
    th, tw = _target_size(h, w, max_side, scale)
    if im.format == "JPEG" and th * tw < h * w:
        # libjpeg decodes at 1/2..1/8 scale for free (never below the request): a 50 MP photo
        # loaded at a working size then takes a fraction of the memory and time.
        k = max(th / h, tw / w)
        im.draft(im.mode, (math.ceil(im.size[0] * k), math.ceil(im.size[1] * k)))
    im.load()  # decode now so truncation raises here (ImageFile.LOAD_TRUNCATED_IMAGES stays False)
    with contextlib.suppress(Exception):  # broken EXIF must not cost the photo: keep pixels as stored
        ImageOps.exif_transpose(im, in_place=True)
    return _pixels(im, want_alpha), (th, tw)


def _read(path, max_side, scale, max_pixels, want_alpha) -> tuple[torch.Tensor, torch.Tensor | None]:
    path = Path(path).expanduser()
    limit = MAX_PIXELS if max_pixels is None else max_pixels
    with _open(path, limit) as im:
        try:
            got = _png16(path, im)
            if got is None:
                got, (th, tw) = _decode(im, max_side, scale, want_alpha)
            else:
                th, tw = _target_size(*got[0].shape[-2:], max_side, scale)
        except Image.DecompressionBombError:
            raise _too_big(path, limit) from None
        except _DECODE_ERRORS as e:
            raise _unreadable(path, e) from None
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
    return _pixels(pil, want_alpha=False)[0][None]


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
        raise NSTError(f"{path}: cannot write image ({_line(e)})") from None
    return path


def list_images(spec: str | os.PathLike) -> list[Path]:
    """A file -> [file]; a folder -> its image files (IMAGE_EXTENSIONS, any case), recursive, sorted;
    a glob -> its matching files, sorted. Folders skip hidden entries: macOS ``._*`` twins, ``.git``,
    half-written ``.*.tmp.*`` files."""
    s = os.path.expanduser(os.fspath(spec))
    p = Path(s)
    if p.is_file():
        return [p]
    if p.is_dir():
        found = sorted(f for f in p.rglob("*") if f.suffix.lower() in IMAGE_EXTENSIONS and f.is_file()
                       and not any(part.startswith(".") for part in f.relative_to(p).parts))
        if not found:
            raise NSTError(f"{spec}: no image files ({', '.join(IMAGE_EXTENSIONS)}) in this folder")
        return found
    if any(c in s for c in "*?["):
        found = sorted(Path(f) for f in glob.glob(s, recursive=True) if os.path.isfile(f))
        if not found:
            raise NSTError(f"{spec}: no files match this pattern")
        return found
    raise NSTError(f"{spec}: no such file or folder")
