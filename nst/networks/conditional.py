"""Moving weights between plain and conditional TransformerNets, and norm-only fine-tuning.

A conditional network (``num_styles`` > 1 or ``strength_input``) differs from a plain one of the
same widths only in its norms' affine parameters, one row per style, and a small strength MLP.
:func:`adopt` copies a plain or conditional network into a larger conditional one: the shared
weights as they are, the source's style rows into the first rows, and every new row from the
mean of the source's (a start the new style shares with the old ones, as Dumoulin et al. start a
new style from the trained network). :func:`freeze_for_norm_finetune` then leaves only chosen
rows trainable (the paper's fast way to add a style). A target with ``head_input`` may also adopt
a source without it: the output conv's new input channels (the photo) start at zero, so the
adopted network still computes the source's function.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from nst.errors import NSTError

_CONDITIONING = ("num_styles", "strength_input", "head_input")


def same_widths(a: dict, b: dict) -> bool:
    """Whether two TransformerNet configs differ at most in their conditioning (styles, strength,
    the photo's way into the output conv)."""
    def strip(c: dict) -> dict:
        return {k: v for k, v in c.items() if k not in _CONDITIONING}
    return strip(a) == strip(b)


def _rows(t: Tensor) -> Tensor:
    return t if t.dim() == 2 else t.unsqueeze(0)


@torch.no_grad()
def adopt(target: nn.Module, source: nn.Module) -> None:
    """Copy ``source``'s weights into ``target`` (same widths, ``target`` with at least as many
    styles): shared weights as they are, style rows 0.. from the source's, the rest from their mean;
    a strength MLP the source lacks keeps its zero start, and so do the output conv's input-image
    channels when only ``target`` has ``head_input``. ValueError when they do not fit."""
    if not same_widths(dict(target.config), dict(source.config)):
        raise ValueError(f"{target.config} and {source.config} differ in more than their conditioning")
    have = source.state_dict()
    for key, mine in target.state_dict().items():
        if key not in have:
            if key.startswith("strength_net."):
                continue
            raise ValueError(f"the source has no {key}")
        theirs = have[key]
        if theirs.shape == mine.shape:
            mine.copy_(theirs)
        elif key.endswith(("norm.weight", "norm.bias")) and mine.dim() == 2:
            rows = _rows(theirs)
            if rows.shape[0] > mine.shape[0] or rows.shape[1] != mine.shape[1]:
                raise ValueError(f"{key}: {list(theirs.shape)} does not fit {list(mine.shape)}")
            mine[: rows.shape[0]] = rows
            mine[rows.shape[0]:] = rows.mean(0)
        elif (key == "head.1.weight" and theirs.dim() == 4 and theirs.shape[1] < mine.shape[1]
              and (theirs.shape[0], *theirs.shape[2:]) == (mine.shape[0], *mine.shape[2:])):
            mine.zero_()  # head_input: [decoder features, photo]; the photo's channels start at 0
            mine[:, : theirs.shape[1]] = theirs
        else:
            raise ValueError(f"{key}: {list(theirs.shape)} does not fit {list(mine.shape)}")


def norm_parameters(net: nn.Module) -> list[nn.Parameter]:
    """The affine parameters of every instance norm (weight and bias, (C,) or (S, C))."""
    return [p for pair in net.norm_params() for p in pair]


def freeze_for_norm_finetune(net: nn.Module, rows: Sequence[int]) -> list:
    """Leave only the norms' style ``rows`` trainable: every other parameter gets
    ``requires_grad=False``, and the other rows of the norm parameters a zero gradient (Adam
    without weight decay then leaves them bit-identical: its moments stay zero; nst.cli.train
    refuses weight decay with finetune=norm). Returns the hook handles. NSTError for a network
    without per-style norms."""
    if getattr(net, "num_styles", 1) < 2:
        raise NSTError("finetune=norm needs a network with per-style norms (num_styles > 1)")
    keep = torch.zeros(net.num_styles, dtype=torch.bool)
    keep[list(rows)] = True
    norms = {id(p) for p in norm_parameters(net)}
    handles = []
    for p in net.parameters():
        if id(p) not in norms:
            p.requires_grad_(False)
            continue
        mask = keep.view(-1, 1)  # moved to the gradient's device at each call: Lightning moves the net later
        handles.append(p.register_hook(lambda g, m=mask: g * m.to(g.device, g.dtype)))
    return handles
