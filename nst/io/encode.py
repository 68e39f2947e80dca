"""Writing images: 8-bit rounding, the format by extension, atomically. Torch-free (numpy and
Pillow), so that the command line's quick path (nst.inference.quick) shares it; ``nst.io.image``
is the tensor side (save_image)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from PIL import Image

from nst.errors import NSTError
from nst.io.decode import one_line
from nst.io.files import atomic_path

SAVE_FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".webp": "WEBP", ".bmp": "BMP",
                ".tif": "TIFF", ".tiff": "TIFF"}
ALPHA_FORMATS = {"PNG", "WEBP", "TIFF"}


def save_format(path: Path) -> str:
    """The Pillow format for ``path``'s extension, or a one-line NSTError naming the file."""
    fmt = SAVE_FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise NSTError(f"{path}: unknown image extension {path.suffix or '(none)'!r} "
                       f"(use one of {', '.join(SAVE_FORMATS)})")
    return fmt


def check_quality(quality) -> int:
    if isinstance(quality, bool) or not isinstance(quality, int) or not 1 <= quality <= 100:
        raise NSTError(f"quality must be a whole number from 1 to 100, got {quality!r}")
    return quality


def check_finite(a: np.ndarray, path: Path) -> None:
    """Refuse to save an image with NaN or infinite values, naming the file."""
    if not np.isfinite(a).all():
        raise NSTError(f"{path}: not saved, the image has NaN or infinite values (did training diverge?)")


def to_8bit(rgb: np.ndarray, alpha: np.ndarray | None = None) -> Image.Image:
    """float (3,H,W) in [0,1] (alpha (1,H,W)) -> 8-bit RGB (RGBA) PIL image: clamped, then rounded
    (not truncated)."""
    x = rgb if alpha is None else np.concatenate([rgb, alpha.reshape(1, *rgb.shape[1:])])
    x = np.rint(np.clip(x.astype(np.float32), 0.0, 1.0) * np.float32(255.0)).astype(np.uint8)
    return Image.fromarray(np.ascontiguousarray(x.transpose(1, 2, 0)))


def write_image(pil: Image.Image, path: str | os.PathLike, quality: int = 95) -> Path:
    """Write ``pil`` atomically in the format of ``path``'s extension; alpha is kept by PNG, WebP
    and TIFF and dropped by JPEG and BMP; ``quality`` applies to JPEG and WebP."""
    path = Path(path).expanduser()
    fmt = save_format(path)
    check_quality(quality)
    if pil.mode == "RGBA" and fmt not in ALPHA_FORMATS:
        pil = pil.convert("RGB")
    # 4:4:4 chroma: stylized textures carry fine colour detail that 4:2:0 would smear.
    opts = {"JPEG": {"quality": quality, "subsampling": 0}, "WEBP": {"quality": quality}}.get(fmt, {})
    try:
        with atomic_path(path) as tmp:
            pil.save(tmp, format=fmt, **opts)
    except OSError as e:
        raise NSTError(f"{path}: cannot write image ({one_line(e)})") from None
    return path
