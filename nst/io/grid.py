"""The one picture layout: images in rows on white, each scaled to one height, optionally labelled.

Used for training samples (content | result per row), ``side_by_side.jpg`` (content | style |
result), Gatys' side by side and compare's labelled rows.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from PIL import Image, ImageDraw, ImageFont
from torch import Tensor

from nst.io.image import from_pil, resize, to_pil

_LABEL_STRIP = 20  # px above a labelled row


def _tile(img: Tensor, height: int) -> Tensor:
    img = img.detach().float().cpu().reshape(1, 3, *img.shape[-2:]).clamp(0, 1)
    return resize(img, size=(height, max(1, round(img.shape[-1] * height / img.shape[-2]))))


def _font():
    try:
        return ImageFont.load_default(size=14)
    except (TypeError, ImportError, OSError):  # Pillow < 10.1 or without FreeType: the bitmap font
        return ImageFont.load_default()


def grid(rows: Sequence[Sequence[Tensor]], height: int, gap: int = 4,
         labels: Sequence[Sequence[str]] | None = None) -> Tensor:
    """Rows of (1|N, 3, H, W) images, each scaled to ``height`` px high, ``gap`` px of white between
    images and rows; ``labels`` (one list per row) are written above each image. (1, 3, H, W)."""
    lines = []
    for r, row in enumerate(rows):
        tiles = [_tile(t, height) for t in row]
        parts = []
        for t in tiles:
            parts += [t, torch.ones(1, 3, height, gap)]
        line = torch.cat(parts[:-1], dim=-1)
        if labels is not None:
            canvas = Image.new("RGB", (line.shape[-1], height + _LABEL_STRIP), "white")
            canvas.paste(to_pil(line), (0, _LABEL_STRIP))
            draw, x, font = ImageDraw.Draw(canvas), 0, _font()
            for t, text in zip(tiles, labels[r]):
                draw.text((x + 2, 3), text, fill="black", font=font)
                x += t.shape[-1] + gap
            line = from_pil(canvas)
        lines.append(line)
    width = max(x.shape[-1] for x in lines)
    padded = []
    for x in lines:
        padded += [torch.nn.functional.pad(x, (0, width - x.shape[-1]), value=1.0),
                   torch.ones(1, 3, gap, width)]
    return torch.cat(padded[:-1], dim=-2)
