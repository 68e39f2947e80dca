"""A generated corpus of bad and awkward input files for the robustness tests.

``make_corpus(folder)`` writes every case and returns ``{name: Case}``. A case either must load
(``ok=True``: odd but valid images the tool should handle) or must be refused with a one-line error
that contains ``reason``. Nothing here is downloaded: every file is built from a few bytes.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image


@dataclass(frozen=True)
class Case:
    path: Path
    ok: bool           # True: a valid image the tool must take; False: must be refused
    reason: str = ""   # for refusals, a phrase the error line contains
    style_ok: bool | None = None  # as a style image (None: same as ok); tiny images are too small for VGG


def _rand8(h: int, w: int, c: int = 3, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, c), dtype=np.uint8)


def _noisy(path: Path, h: int = 64, w: int = 64) -> Path:
    Image.fromarray(_rand8(h, w)).save(path)
    return path


def _truncate(path: Path) -> Path:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    return path


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _bomb(path: Path) -> Path:
    """A PNG header claiming 100000x100000 RGB (10 gigapixels, 30 GB decoded) with 64 bytes of data."""
    ihdr = struct.pack(">IIBBBBB", 100_000, 100_000, 8, 2, 0, 0, 0)
    data = b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", zlib.compress(b"\x00" * 64)) \
        + _chunk(b"IEND", b"")
    path.write_bytes(data)
    return path


def _png16(path: Path) -> Path:
    a = (np.random.default_rng(1).integers(0, 65536, (40, 48, 3))).astype(">u2")
    raw = b"".join(b"\x00" + row.tobytes() for row in a)
    ihdr = struct.pack(">IIBBBBB", 48, 40, 16, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", zlib.compress(raw))
                     + _chunk(b"IEND", b""))
    return path


def _palette(path: Path) -> Path:
    Image.fromarray(_rand8(40, 48)).convert("P", palette=Image.Palette.ADAPTIVE, colors=16).save(path)
    return path


def _cmyk(path: Path) -> Path:
    Image.fromarray(_rand8(40, 48, 4), mode="CMYK").save(path, quality=95)
    return path


def _exif_rotated(path: Path) -> Path:
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise on display: 48x40 stored, 40x48 shown
    Image.fromarray(_rand8(40, 48)).save(path, exif=exif, quality=95)
    return path


def _bytes(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def _folder(path: Path) -> Path:
    path.mkdir()
    return path


def make_corpus(folder: Path) -> dict[str, Case]:
    """Write every case into ``folder`` (created) and return them by name."""
    folder.mkdir(parents=True, exist_ok=True)
    return {
        "missing": Case(folder / "missing.jpg", False, "no such file"),
        "folder": Case(_folder(folder / "folder.jpg"), False, "is a folder"),
        "empty": Case(_bytes(folder / "empty.png", b""), False, "empty file"),
        "truncated_jpeg": Case(_truncate(_noisy(folder / "truncated.jpg")), False, "truncated or corrupt"),
        "truncated_png": Case(_truncate(_noisy(folder / "truncated.png")), False, "truncated or corrupt"),
        "text_as_jpeg": Case(_bytes(folder / "notes.jpg", b"hello, this is not a photo\n"), False,
                             "not an image file"),
        "bomb": Case(_bomb(folder / "bomb.png"), False,
                     "downscale it to at most 14,142 px on the longer side"),
        "1x1": Case(_noisy(folder / "one.png", 1, 1), True, style_ok=False),
        "7x5": Case(_noisy(folder / "seven_by_five.png", 5, 7), True, style_ok=False),
        "png16": Case(_png16(folder / "sixteen_bit.png"), True),
        "palette": Case(_palette(folder / "palette.png"), True),
        "cmyk_jpeg": Case(_cmyk(folder / "cmyk.jpg"), True),
        "exif_rotated": Case(_exif_rotated(folder / "rotated.jpg"), True),
    }


# The VGG's smallest input with the default loss layers is tens of pixels; these are refused as styles.
TOO_SMALL_REASON = "too small"
