"""Conditional TransformerNets: the condition, folding it away, moving weights, norm-only fine-tuning.

Conditioning (both optional, both through the instance norms' affine parameters only):
- ``num_styles=N``: conditional instance norm (Dumoulin, Shlens & Kudlur 2017): every norm has one
  (gamma, beta) row per style, everything else is shared. ``style`` at the forward pass is a mix
  (N, S) or (S,): the rows are combined linearly, so a one-hot mix is that style and any other
  mix is the paper's interpolation. No ``style``: style 0.
- ``strength_input=True``: adjustable style strength (Babaeizadeh & Ghiasi 2018): a small MLP maps
  the strength s in [0, 1] to an offset of every norm's (gamma, beta), added to the style's own;
  the MLP's last layer starts at zero, so an untrained strength input changes nothing (and a
  single-style model can be converted into one). No ``strength``: 1. With ``head_input`` too, the
  photo reaches the output conv weighted by 1 - s: at s = 1 the network is the plain one, whose
  style the shortcut would otherwise weaken, and at s = 0, where the loss asks for the photo
  itself, the shortcut is whole (departure from Babaeizadeh & Ghiasi, who have no shortcut).
``specialize(style, strength)`` folds a chosen mix and strength into a plain network (the same
function for that condition, one (gamma, beta) per norm): the Stylizer, the tiles and ONNX
Runtime then run it unchanged.

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


def specialize(net: nn.Module, style: Tensor | None = None, strength: float | None = None) -> nn.Module:
    """A plain TransformerNet (no conditioning) that computes the conditional ``net`` for a fixed
    style mix and strength: each norm's (gamma, beta) is ``net.norm_affine``'s for them, and the
    photo's weight at the output conv (1 - s) is folded into that conv. A plain network returns
    itself."""
    if not net.conditional:
        return net
    args = {k: v for k, v in net.config.items() if k not in ("num_styles", "strength_input")}
    plain = type(net)(**args).to(net.encoder[0].conv.weight.device)
    s = None if strength is None else torch.tensor([float(strength)])
    with torch.no_grad():
        affine = net.norm_affine(style, s)
        assert affine is not None
        state = {k: v for k, v in net.state_dict().items()
                 if not k.startswith("strength_net.") and not k.endswith(("norm.weight", "norm.bias"))}
        missing = plain.load_state_dict(state, strict=False).missing_keys
        assert all(k.endswith(("norm.weight", "norm.bias")) for k in missing), missing
        for (weight, bias), (g, b) in zip(plain.norm_params(), affine):
            weight.copy_(g[0])
            bias.copy_(b[0])
        gain = net.photo_gain(s)
        if gain is not None:  # the photo's weight 1 - s, folded into the output conv's photo channels
            plain.head[1].weight[:, -3:] *= gain.reshape(()).to(plain.head[1].weight.dtype)
    return plain.train(net.training)
