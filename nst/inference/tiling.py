"""Stylize an image too large for one pass in overlapping tiles, without seams or changes of tone.

Two things make tiles of a feed-forward net disagree, and each has its fix here:
- instance norm: each tile would normalize with its own statistics, so a sky tile and a forest
  tile of one photo would get different tones. Every tile uses the statistics of one pass over a
  downscaled copy of the whole image instead (``TransformerNet.capture_norm_stats``). They are
  not exactly those of a full-size pass (the net is not scale invariant) but they are one set.
- borders: near a tile's edge the net sees reflection padding, not the real neighbours. Tiles
  overlap, and in each overlap the two tiles are cross-faded with complementary cosine ramps
  (``sin^2 + cos^2 = 1``), so a tile's edge pixels get almost no weight.

Memory: the image stays on the CPU; one tile at a time goes to the device; the result is
accumulated in one preallocated float32 tensor (3*H*W*4 bytes: 288 MB for 6000x4000).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor

from nst.io.image import resize

Forward = Callable[..., Tensor]  # forward(x (1,3,h,w), stats=None) -> (1,3,h,w) float32 CPU
Finish = Callable[[Tensor, Tensor], Tensor]  # finish(stylized, content) -> stylized (strength, colour)


def spans(length: int, tile: int, overlap: int) -> list[tuple[int, int]]:
    """[start, end) windows of about ``tile`` px covering [0, length), evenly spread so that
    neighbours overlap by about ``overlap`` px or more; one window when the axis fits in a tile.

    The net downsamples by 4 and pads each input to a multiple of 4 by its size mod 4, so it is
    shift-equivariant only for shifts by multiples of 4 between inputs of equal size mod 4. Windows
    therefore start at multiples of 4 and have the length's size mod 4: each tile's pixels then see
    the same sampling grid as in a whole-image pass, and agree with it away from the tile's edges.
    """
    if length <= tile:
        return [(0, length)]
    largest = tile - (tile - length) % 4  # the largest size <= tile with size = length (mod 4)
    n = math.ceil((length - overlap) / (largest - overlap))
    # The fewest windows, then the smallest size that still overlaps by ``overlap`` (+4 for the
    # rounding of starts to multiples of 4): full-size windows would overlap far more than asked and
    # run many more pixels (docs/benchmarks.md).
    size = math.ceil((length + (n - 1) * (overlap + 4)) / n)
    size = min(largest, size + (length - size) % 4)
    starts = [4 * round(i * (length - size) / (4 * (n - 1))) for i in range(n)]
    return [(s, s + size) for s in starts]


def _ramp(n: int) -> Tensor:
    """n samples of a cosine rise from ~0 to ~1 (never exactly 0, so weights never all vanish);
    ``_ramp(n) + _ramp(n).flip(0) == 1``."""
    t = (torch.arange(n, dtype=torch.float32) + 0.5) / n
    return torch.sin(t * (math.pi / 2)) ** 2


def ramps(windows: list[tuple[int, int]]) -> list[Tensor]:
    """Blend weight along one axis for each window: 1 inside, ramps over the overlaps with its
    neighbours (the actual overlap, which spreading may make larger than asked)."""
    out = []
    for i, (a, b) in enumerate(windows):
        w = torch.ones(b - a)
        if i > 0:
            o = windows[i - 1][1] - a
            w[:o] *= _ramp(o)
        if i < len(windows) - 1:
            o = b - windows[i + 1][0]
            w[b - a - o:] *= _ramp(o).flip(0)
        out.append(w)
    return out


def needs_tiling(height: int, width: int, tile: int | None) -> bool:
    return bool(tile) and max(height, width) > tile


def stylize_tiled(forward: Forward, capture: Callable[[Tensor], list], x: Tensor, tile: int, overlap: int,
                  stats_side: int | None = None, finish: Finish | None = None,
                  stats: list | None = None) -> Tensor:
    """x (1,3,H,W) CPU float32 in [0,1] -> (1,3,H,W) CPU float32, tile by tile.

    ``capture(small) -> stats`` runs once on x downscaled to ``stats_side`` px (default ``tile``)
    on its longer side; ``forward(tile, stats)`` stylizes one tile with them; ``finish(out, content)``
    (colour, strength: pixel-wise) is applied per tile before blending. ``stats`` given: those
    instead of a capture (statistics shared by more than this image, e.g. a clip's frames).
    """
    if x.dim() != 4 or x.shape[0] != 1:
        raise ValueError(f"stylize_tiled expects one image (1,3,H,W), got {tuple(x.shape)}")
    if not 0 <= overlap < tile:
        raise ValueError(f"need 0 <= overlap < tile, got overlap={overlap}, tile={tile}")
    h, w = x.shape[-2:]
    side = stats_side or tile
    if stats is None:  # given: statistics shared beyond this image (a clip's frames), no capture
        stats = capture(resize(x, max_side=side) if max(h, w) > side else x)
    rows, cols = spans(h, tile, overlap), spans(w, tile, overlap)
    wy, wx = ramps(rows), ramps(cols)
    out = torch.zeros(1, 3, h, w)  # float32 accumulator; the only full-size buffer besides x
    for (y0, y1), ry in zip(rows, wy):
        for (x0, x1), rx in zip(cols, wx):
            content = x[:, :, y0:y1, x0:x1]
            y = forward(content, stats)
            if finish is not None:
                y = finish(y, content)
            out[:, :, y0:y1, x0:x1].addcmul_(y, ry.view(1, 1, -1, 1) * rx.view(1, 1, 1, -1))
    # The weights are separable, so their sum over the grid is the outer product of the 1-D sums:
    # normalize in place without a (H, W) weight map.
    out.div_(_total(rows, wy, h).view(1, 1, h, 1)).div_(_total(cols, wx, w).view(1, 1, 1, w))
    return out.clamp_(0.0, 1.0)


def _total(windows: list[tuple[int, int]], weights: list[Tensor], length: int) -> Tensor:
    total = torch.zeros(length)
    for (a, b), wt in zip(windows, weights):
        total[a:b] += wt
    return total
