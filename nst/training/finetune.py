"""Starting from a trained network: ``init_from`` (warm_start) and norm-only fine-tuning.

``warm_start`` copies a model file's weights into the network a run builds. Norm-only fine-tuning
adds a new style to a trained style network in minutes:

Dumoulin, Shlens & Kudlur (2017) add a style to a trained multi-style network by training only its
new (gamma, beta): every convolution, and the other styles' rows, stay as they are. The network
here gets one more style row than the model file (a single-style model becomes a two-style one),
started from the mean of the existing rows; see nst.networks.conditional.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from torch import nn

from nst import networks
from nst.errors import NSTError
from nst.training.conditions import RandomStyle

log = logging.getLogger("nst")


def add_style(init_from: Any, finetune: str, name: str) -> tuple[nn.Module, RandomStyle, dict[str, Any]]:
    """(the network with one more style whose rows alone train, the condition that always picks
    that style, the card entries: ``styles`` and ``init_from``) for ``init_from`` (a model file or
    shipped name) and the new style's file name. One-line NSTError for anything else."""
    from nst.models.modelfile import load_any
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


def warm_start(net: nn.Module, spec: str | os.PathLike) -> dict[str, Any]:
    """Copy the weights of the model ``spec`` (a file or a shipped name) into ``net``, which must
    be the same network with the same arguments, or a TransformerNet of the same widths with
    more styles or a strength input (nst.networks.conditional.adopt); returns that model's meta.
    One-line NSTError otherwise."""
    from nst.models.modelfile import load_any
    from nst.networks.conditional import adopt, same_widths

    source, meta = load_any(spec)
    net = networks.unwrap(net)
    mine = (networks.name_of(net), dict(net.config))
    if (meta["network"], dict(source.config)) == mine:
        net.load_state_dict(source.state_dict())
        return meta
    if meta["network"] == mine[0] == "transformer" and same_widths(source.config, mine[1]):
        try:
            adopt(net, source)
            return meta
        except ValueError as e:
            raise NSTError(f"init_from={spec}: {e}") from e
    raise NSTError(f"init_from={spec}: that model is a {meta['network']} {source.config} network, "
                   f"this run builds a {mine[0]} {mine[1]} (choose model=... settings that match it)")
