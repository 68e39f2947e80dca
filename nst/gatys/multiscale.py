"""Coarse-to-fine Gatys: optimize at growing sizes, each level starting from the last one's result
upscaled (as crowsonkb/style-transfer-pytorch and jcjohnson/neural-style's multires recipe do).
The CLI only maps its config onto :func:`coarse_to_fine`; compare can call it too."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from torch import Tensor

from nst.errors import NSTError
from nst.gatys.module import GatysResult, optimize
from nst.io.image import resize
from nst.perceptual.losses import PerceptualLoss


def levels(size: int, scales: Any) -> list[int]:
    """Max sides of the coarse-to-fine levels, ending at ``size`` exactly.

    ``scales``: None (one level), a number of levels n (size / 2**(n-1), ..., size / 2, size), or a
    list of max sides (those below ``size`` are kept, in increasing order, then ``size``).
    """
    if scales is None or scales == [] or scales == 1:
        return [size]
    if isinstance(scales, bool):
        raise NSTError(f"scales={scales!r}: give a number of levels or a list of sizes like [128, 256]")
    if isinstance(scales, int):
        if scales < 1:
            raise NSTError(f"scales={scales}: the number of levels must be at least 1")
        return [max(1, round(size / 2 ** k)) for k in range(scales - 1, 0, -1)] + [size]
    sides = list(scales) if isinstance(scales, Sequence) and not isinstance(scales, str) else [scales]
    if not all(isinstance(s, int) and not isinstance(s, bool) and s > 0 for s in sides):
        raise NSTError(f"scales={list(sides)}: sizes must be positive whole numbers of pixels")
    return sorted({s for s in sides if s < size}) + [size]


def level_iterations(iterations: Any, count: int) -> list[int]:
    """``iterations`` for each level: one number for every level, or a list with one per level."""
    its = list(iterations) if isinstance(iterations, Sequence) and not isinstance(iterations, str) \
        else [iterations]
    if len(its) == 1:
        its = its * count
    if len(its) != count or not all(isinstance(i, int) and not isinstance(i, bool) and i >= 1 for i in its):
        raise NSTError(f"iterations={iterations}: give a number >= 1, or one per level ({count} levels)")
    return its


def coarse_to_fine(content: Tensor, loss: PerceptualLoss, *, sides: Sequence[int], iterations: Sequence[int],
                   set_style: Callable[[Tensor], None], init: Any = "content",
                   trainer_for: Callable[[int, int, bool], Any] | None = None,
                   on_level: Callable[[int, GatysResult], None] | None = None,
                   **optimize_kwargs: Any) -> GatysResult:
    """Run :func:`nst.gatys.module.optimize` at each max side in ``sides`` (the last is ``content``'s own).

    ``set_style(level_content)`` sets the loss's style targets for a level (their scale follows the
    level's); ``trainer_for(steps, side, last)`` may give each level its own ``pl.Trainer``
    (callbacks, logger); ``on_level(side, result)`` reports each level's end. The result holds the
    last level's image and every level's history and time.
    """
    if len(sides) != len(iterations) or not sides:
        raise ValueError(f"{len(sides)} sides for {len(iterations)} iteration counts")
    size = max(content.shape[-2:])
    result: GatysResult | None = None
    history: list[dict[str, float]] = []
    seconds = 0.0
    for n, (side, steps) in enumerate(zip(sides, iterations)):
        level = content if side == size else resize(content, max_side=side)
        set_style(level)
        last = n == len(sides) - 1
        trainer = trainer_for(steps, side, last) if trainer_for else None
        result = optimize(level, loss, iterations=steps, init=init if result is None else result.image,
                          trainer=trainer, log_prefix="gatys" if last else f"gatys_{side}px",
                          **optimize_kwargs)
        history += result.history
        seconds += result.seconds
        if on_level is not None:
            on_level(side, result)
    assert result is not None
    result.history, result.seconds = history, seconds
    return result
