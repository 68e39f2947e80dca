"""What a conditional network is told at each training step, and what its loss is told with it.

A condition is called once per batch as ``condition(batch_size, device)`` and returns
``(net_kwargs, loss_kwargs)``: the keyword arguments of ``net(x, ...)`` and of ``loss(y, target,
...)``. It draws from torch's global RNG, so a resumed run draws the same sequence (the module
stores that RNG in its checkpoints). ``sample_kwargs`` is the fixed condition of the sample grids
and ``val/*`` losses.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F

Kwargs = dict[str, Any]


class RandomStyle:
    """Many styles in one network (Dumoulin et al. 2017): every batch draws one style uniformly;
    the network gets it as a one-hot mix, the loss scores the batch against that style's Gram
    targets. ``fixed``: always this style (norm-only fine-tuning of a new style); ``loss_index``:
    the index of that style among the loss's targets, when it has fewer than the network."""

    def __init__(self, num_styles: int, fixed: int | None = None, loss_index: int | None = None) -> None:
        if num_styles < 1 or (fixed is not None and not 0 <= fixed < num_styles):
            raise ValueError(f"RandomStyle: style {fixed} of {num_styles}")
        self.num_styles, self.fixed, self.loss_index = int(num_styles), fixed, loss_index

    def _kwargs(self, k: int, n: int, device: torch.device) -> tuple[Kwargs, Kwargs]:
        mix = F.one_hot(torch.full((n,), k), self.num_styles).float().to(device)
        scored = k if self.loss_index is None else self.loss_index
        return {"style": mix}, {"style": torch.full((n,), scored, dtype=torch.long, device=device)}

    def __call__(self, n: int, device: torch.device) -> tuple[Kwargs, Kwargs]:
        k = self.fixed if self.fixed is not None else int(torch.randint(self.num_styles, ()))
        return self._kwargs(k, n, device)

    def sample_kwargs(self, n: int, device: torch.device) -> tuple[Kwargs, Kwargs]:
        return self._kwargs(self.fixed if self.fixed is not None else 0, n, device)


class RandomStrength:
    """Adjustable strength (Babaeizadeh & Ghiasi 2018): every batch draws s uniformly from
    ``[low, high]``, or with probability ``ends`` exactly ``low`` or ``high`` (half each); the
    network gets s as its strength input and the loss weights its style term
    by s and its pixel term (``loss.pixel_weight``, 0 unless set) by 1 - s: s = 1 is the loss as
    configured, s = 0 content, TV and the pixel term only.

    Departure from the paper, which has no pixel term: content (relu2_2) and TV alone do not ask
    for the photo's colours, and a network with instance norms (which remove each channel's mean)
    learns the identity slowly: its s = 0 output kept the style's cast
    (docs/multistyle.md). The pixel term, fading to 0 at s = 1, asks for the
    photo itself at s = 0."""

    def __init__(self, low: float = 0.0, high: float = 1.0, ends: float = 0.0) -> None:
        if not 0.0 <= low <= high:
            raise ValueError(f"strength_range=[{low}, {high}]: need 0 <= low <= high")
        if not 0.0 <= ends <= 1.0:
            raise ValueError(f"strength_ends={ends}: a fraction of the batches, 0 to 1")
        self.low, self.high, self.ends = float(low), float(high), float(ends)

    def _kwargs(self, s: float, n: int, device: torch.device) -> tuple[Kwargs, Kwargs]:
        return {"strength": torch.full((n,), s, device=device)}, {"style_scale": s, "pixel_scale": 1.0 - s}

    def __call__(self, n: int, device: torch.device) -> tuple[Kwargs, Kwargs]:
        if self.ends == 0.0:  # one draw, as before strength_ends existed: earlier runs repeat exactly
            return self._kwargs(self.low + (self.high - self.low) * float(torch.rand(())), n, device)
        # two draws (where the batch falls, then s) whatever the outcome: the global RNG stream
        # advances by the same amount every step
        u, v = float(torch.rand(())), float(torch.rand(()))
        if u < self.ends:  # exactly at an end: the conditions users pick most (the photo, the full style)
            s = self.low if u < self.ends / 2 else self.high
        else:
            s = self.low + (self.high - self.low) * v
        return self._kwargs(s, n, device)

    def sample_kwargs(self, n: int, device: torch.device) -> tuple[Kwargs, Kwargs]:
        return self._kwargs(self.high, n, device)


class Both:
    """Several conditions at once (a multi-style network with a strength input)."""

    def __init__(self, parts: Sequence[Any]) -> None:
        self.parts = list(parts)

    def _merge(self, pairs) -> tuple[Kwargs, Kwargs]:
        net, loss = {}, {}
        for a, b in pairs:
            net.update(a)
            loss.update(b)
        return net, loss

    def __call__(self, n: int, device: torch.device) -> tuple[Kwargs, Kwargs]:
        return self._merge(p(n, device) for p in self.parts)

    def sample_kwargs(self, n: int, device: torch.device) -> tuple[Kwargs, Kwargs]:
        return self._merge(p.sample_kwargs(n, device) for p in self.parts)


def strength_range(value: Any) -> list[float]:
    """``strength_range`` as [low, high] with 0 <= low <= high <= 1 (the strengths stylize accepts);
    one-line NSTError otherwise. None: [0, 1]."""
    from nst.errors import NSTError

    items = [] if value is None else [value] if isinstance(value, (int, float, str)) else list(value)
    if not items:
        return [0.0, 1.0]
    try:
        low, high = (float(v) for v in items)
    except (TypeError, ValueError):
        raise NSTError(f"strength_range={items}: two numbers [low, high], e.g. [0.0, 1.0]") from None
    if not 0.0 <= low <= high <= 1.0:
        raise NSTError(f"strength_range={items}: need 0 <= low <= high <= 1")
    return [low, high]


def strength_ends(value: Any) -> float:
    """``strength_ends`` as a fraction in [0, 1] (None: 0); one-line NSTError otherwise."""
    from nst.errors import NSTError

    try:
        ends = float(value or 0.0)
    except (TypeError, ValueError):
        raise NSTError(f"strength_ends={value}: a fraction of the batches, 0 to 1") from None
    if not 0.0 <= ends <= 1.0:
        raise NSTError(f"strength_ends={value}: a fraction of the batches, 0 to 1")
    return ends


def for_network(net: Any, span: Sequence[float] | None = None, fixed_style: int | None = None,
                loss_index: int | None = None, ends: float = 0.0) -> Any:
    """The condition a network needs (None for a plain one); ``ends``: see :class:`RandomStrength`."""
    parts: list[Any] = []
    if getattr(net, "num_styles", 1) > 1:
        parts.append(RandomStyle(net.num_styles, fixed_style, loss_index))
    if getattr(net, "strength_input", False):
        low, high = strength_range(span)
        parts.append(RandomStrength(low, high, ends))
    if not parts:
        return None
    return parts[0] if len(parts) == 1 else Both(parts)
