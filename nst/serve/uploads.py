"""An uploaded image through the same decoder guards as a file on disk (nst.io.decode): header-
checked pixel limits against decompression bombs, truncation, EXIF orientation, CMYK, 16-bit PNG.
The bytes go to a private temporary file, so every guard is the one the CLI uses; the error names
the upload's own file name, never the temporary path."""

from __future__ import annotations

import io
import os
import tempfile
from pathlib import Path

from torch import Tensor

from nst.errors import NSTError
from nst.io.image import load_image_alpha, resize, to_pil
from nst.serve.errors import ApiError


def _client_name(filename: str | None) -> str:
    """The upload's base name only (a client's path is never used as one)."""
    name = Path(str(filename or "upload")).name
    return "".join(c for c in name if c.isprintable())[:100] or "upload"


def decode_upload(data: bytes, filename: str | None, max_pixels: int,
                  max_side: int | None = None) -> tuple[Tensor, Tensor | None]:
    """(image (1, 3, H, W) in [0, 1], alpha (1, 1, H, W) or None), downscaled to ``max_side`` when
    its longer side is larger. ApiError 422 for what is not a readable image within the limits."""
    name = _client_name(filename)
    if not data:
        raise ApiError(422, f"{name}: empty file")
    suffix = Path(name).suffix.lower() if len(Path(name).suffix) <= 6 else ""
    fd, tmp = tempfile.mkstemp(prefix="nst-upload-", suffix=suffix)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        try:
            img, alpha = load_image_alpha(tmp, max_pixels=max_pixels)
        except NSTError as e:
            raise ApiError(422, str(e).replace(tmp, name)) from None
    finally:
        os.unlink(tmp)
    if max_side and max(img.shape[-2:]) > max_side:
        img = resize(img, max_side=max_side)
        alpha = None if alpha is None else resize(alpha, size=tuple(img.shape[-2:]))
    return img, alpha


def png_bytes(img: Tensor, alpha: Tensor | None = None) -> bytes:
    """A picture as PNG bytes; fast compression, since the bytes go over loopback once."""
    buf = io.BytesIO()
    to_pil(img, alpha).save(buf, format="PNG", compress_level=1)
    return buf.getvalue()
