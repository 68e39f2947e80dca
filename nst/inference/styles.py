"""Choosing among the styles of a multi-style model: ``style=2``, ``style=udnie``, ``style_mix=[...]``.

A multi-style model's card lists its styles (``styles``: the style images' file names, in the
order of the network's style rows). A choice becomes a mix (S,) that sums to 1: one-hot for one
style, the given weights (normalized) for an interpolation (Dumoulin et al. 2017).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from nst.errors import NSTError


def style_names(net: Any, metadata: dict | None) -> list[str]:
    """The model's style names, one per style row (``style 0``... where the card has none)."""
    count = int(getattr(net, "num_styles", 1))
    names = list((metadata or {}).get("styles") or [])
    if len(names) != count:
        if count == 1:
            return ["+".join(str(s) for s in (metadata or {}).get("style") or []) or "style 0"]
        names = [f"style {i}" for i in range(count)]
    return [str(n) for n in names]


def _listing(names: Sequence[str]) -> str:
    return ", ".join(f"{i} {n}" for i, n in enumerate(names))


def pick(names: Sequence[str], style: int | str) -> int:
    """The index of ``style``: an index, or a name (the file name or its stem, case-insensitive)."""
    if isinstance(style, bool):
        style = str(style)
    if isinstance(style, int) or (isinstance(style, str) and style.strip().isdigit()):
        k = int(style)
        if 0 <= k < len(names):
            return k
    else:
        wanted = str(style).strip().lower()
        for k, name in enumerate(names):
            if wanted in (name.lower(), Path(name).stem.lower()):
                return k
    raise NSTError(f"style={style}: this model has {len(names)} style{'s' * (len(names) != 1)}: "
                   f"{_listing(names)}")


def mix_for(names: Sequence[str], style: int | str | None = None,
            style_mix: Sequence[float] | None = None) -> Tensor | None:
    """The (S,) mix for ``style`` or ``style_mix`` (at most one of them; None for neither)."""
    if style is not None and style_mix is not None:
        raise NSTError("style= picks one style, style_mix=[...] mixes them: pass one of them")
    count = len(names)
    if style is not None:
        mix = torch.zeros(count)
        mix[pick(names, style)] = 1.0
        return mix
    if style_mix is None:
        return None
    try:
        weights = [float(w) for w in style_mix]
    except (TypeError, ValueError):
        raise NSTError(f"style_mix={style_mix!r}: a list of {count} weights, e.g. "
                       f"[{', '.join(['1'] + ['0'] * (count - 1))}]") from None
    if len(weights) != count:
        raise NSTError(f"style_mix has {len(weights)} weights, this model has {count} style"
                       f"{'s' * (count != 1)}: {_listing(names)}")
    if any(w < 0 or w != w for w in weights) or sum(weights) <= 0:
        raise NSTError(f"style_mix={weights}: weights must be >= 0 and not all zero")
    mix = torch.tensor(weights)
    return mix / mix.sum()
