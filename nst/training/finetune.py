"""Norm-only fine-tuning: a new style added to a trained style network in minutes.

Dumoulin, Shlens & Kudlur (2017) add a style to a trained multi-style network by training only its
new (gamma, beta): every convolution, and the other styles' rows, stay as they are. The network
here gets one more style row than the model file (a single-style model becomes a two-style one),
started from the mean of the existing rows; see nst.networks.conditional.
"""

from __future__ import annotations

import logging
from typing import Any

from torch import nn

from nst.errors import NSTError
from nst.training.conditions import RandomStyle

log = logging.getLogger("nst")


def add_style(init_from: Any, finetune: str, name: str) -> tuple[nn.Module, RandomStyle, dict[str, Any]]:
    """(the network with one more style whose rows alone train, the condition that always picks
    that style, the card entries: ``styles`` and ``init_from``) for ``init_from`` (a model file or
    shipped name) and the new style's file name. One-line NSTError for anything else."""
    from nst.modelfile import load_any
    from nst.networks.conditional import adopt, freeze_for_norm_finetune
    from nst.networks.transformer import TransformerNet

    if finetune != "norm":
        raise NSTError(f"finetune={finetune}: choose norm (train only the new style's norm parameters) "
                       "or null")
    if not init_from:
        raise NSTError("finetune=norm needs init_from=MODEL: the trained network to add the style to")
    source, meta = load_any(str(init_from))
    if meta.get("network") != "transformer":
        raise NSTError(f"init_from={init_from}: finetune=norm adds a style to a style network "
                       f"(transformer), this model is a {meta.get('network')} network")
    old = int(getattr(source, "num_styles", 1))
    net = TransformerNet(**{**source.config, "num_styles": old + 1})
    adopt(net, source)
    freeze_for_norm_finetune(net, [old])
    before = list(meta.get("styles") or ["+".join(meta.get("style") or ["style 0"])])
    card = {"styles": [*before, name],
            "init_from": {"model": str(init_from), "style": meta.get("style"), "steps": meta.get("steps"),
                          "finetune": "norm"}}
    trained = 2 * sum(net.norm_widths)  # the new row of every norm's weight and bias
    log.info("finetune=norm: %s gets style %d (%s); %d of %d parameters train (rows of its norms)",
             init_from, old, name, trained, sum(p.numel() for p in net.parameters()))
    return net, RandomStyle(old + 1, fixed=old, loss_index=0), card
