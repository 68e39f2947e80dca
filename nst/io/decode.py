"""Decoding untrusted image files safely: header-checked pixel limits (decompression bombs), 16-bit
PNG's sizes, EXIF orientation, JPEG draft decoding; every failure a one-line ``NSTError`` naming the
file. Pixels come out as numpy float32 (C,H,W) in [0,1], torch-free, so that the command line's quick
path (nst.inference.quick) shares them; ``nst.io.image`` is the tensor side (load_image, save_image,
resize, 16-bit PNG)."""

from __future__ import annotations

import contextlib
import math
import struct
import threading
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from nst.errors import NSTError

DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, struct.error)  # what Pillow raises on bad data
_PIL_LIMIT_LOCK = threading.Lock()
MAX_PIXELS = 200_000_000  # largest width*height the loaders decode (per call: max_pixels=); header-checked


def one_line(e: BaseException) -> str:
    """An exception as one short line (OSError: just its reason, the path is named by the caller)."""
    return getattr(e, "strerror", None) or " ".join(str(e).split()) or type(e).__name__


def unreadable(path: Path, e: BaseException) -> NSTError:
    if isinstance(e, OSError) and e.errno is not None:  # the OS refused (permissions, I/O), not the data
        return NSTError(f"{path}: cannot read file ({one_line(e)})")
    return NSTError(f"{path}: truncated or corrupt image ({one_line(e)})")


def too_big(path: Path, max_pixels: int, size: tuple[int, int] | None = None) -> NSTError:
    dims = f"{size[0]}x{size[1]} pixels, " if size else ""
    # Say how far to downscale: the longer side that brings width*height under the limit.
    side = int(max(size) * math.sqrt(max_pixels / (size[0] * size[1]))) if size else math.isqrt(max_pixels)
    return NSTError(f"{path}: image too large ({dims}over the max_pixels limit of {max_pixels:,}; possible "
                    f"decompression bomb): downscale it to at most {side:,} px on the longer side first, "
                    "or raise max_pixels if you trust the file")


def open_image(path: Path, max_pixels: int) -> Image.Image:
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
        raise too_big(path, max_pixels) from None
    except DECODE_ERRORS as e:
        raise unreadable(path, e) from None
    if im.size[0] * im.size[1] > max_pixels:
        im.close()
        raise too_big(path, max_pixels, im.size)
    return im


def pixels(im: Image.Image, want_alpha: bool) -> tuple[np.ndarray, np.ndarray | None]:
    """PIL image, any mode -> RGB (3,H,W), alpha (1,H,W) or None; float32 in [0,1], alpha never composited."""
    if im.mode.startswith("I") or im.mode == "F":
        # 16-bit grey (PNG/TIFF opens as I;16 or I): scale by 65535 at full precision; F assumed in [0,1].
        a = np.asarray(im).astype(np.float32)
        a = np.clip(a if im.mode == "F" else a / 65535.0, 0.0, 1.0)
        return np.ascontiguousarray(np.broadcast_to(a[None], (3, *a.shape))), None
    has_alpha = want_alpha and (im.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in im.info)
    try:
        a = np.asarray(im.convert("RGBA" if has_alpha else "RGB")).astype(np.float32) / 255.0
    except ValueError as e:  # a mode Pillow cannot turn into RGB (e.g. LAB)
        name = getattr(im, "filename", "") or "image"
        raise NSTError(f"{name}: unsupported colour mode {im.mode} ({one_line(e)})") from None
    t = a.transpose(2, 0, 1)
    return np.ascontiguousarray(t[:3]), (np.ascontiguousarray(t[3:]) if has_alpha else None)


def is_png16(im: Image.Image) -> bool:
    """Whether an opened image is a 16-bit colour PNG, which Pillow decodes to 8 bits only."""
    tile = im.tile[0] if im.format == "PNG" and im.tile else None
    return tile is not None and not im.mode.startswith("I") and str(tile[3]).endswith(";16B")


def upright_size(im: Image.Image) -> tuple[int, int]:
    """(H, W) of an opened image as it will be after EXIF orientation (header only)."""
    try:
        turned = im.getexif().get(0x0112, 1) in (5, 6, 7, 8)  # EXIF orientations that swap W and H
    except Exception:
        turned = False
    w, h = im.size[::-1] if turned else im.size
    return h, w


def decode(im: Image.Image, target: tuple[int, int],
           want_alpha: bool) -> tuple[np.ndarray, np.ndarray | None]:
    """Decode an opened Pillow image upright: (rgb, alpha) as :func:`pixels` gives them; ``target``
    (H, W) is the size the caller will resize to (JPEGs decode at a reduced scale not below it)."""
    (th, tw), (h, w) = target, upright_size(im)
    if im.format == "JPEG" and th * tw < h * w:
        # libjpeg decodes at 1/2..1/8 scale for free (never below the request): a 50 MP photo
        # loaded at a working size then takes a fraction of the memory and time.
        k = max(th / h, tw / w)
        im.draft(im.mode, (math.ceil(im.size[0] * k), math.ceil(im.size[1] * k)))
    im.load()  # decode now so truncation raises here (ImageFile.LOAD_TRUNCATED_IMAGES stays False)
    with contextlib.suppress(Exception):  # broken EXIF must not cost the photo: keep pixels as stored
        ImageOps.exif_transpose(im, in_place=True)
    return pixels(im, want_alpha)
