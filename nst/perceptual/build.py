"""The one loss builder: a loss spec (what configs/loss/*.yaml hold, or a model card's ``loss``) and
a VGG spec -> a PerceptualLoss on a VGG cut after the deepest layer the loss reads. The CLI, compare
(rebuilding a model's own loss from its card) and scripts/bench/benchmark.py all build losses here."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from nst.perceptual.losses import PerceptualLoss
from nst.perceptual.vgg import VGGFeatures, load_vgg

log = logging.getLogger("nst")

# Keys of a loss spec that describe it rather than configure PerceptualLoss.
_NOT_ARGUMENTS = ("tuned_for",)


def loss_layers(spec: Mapping[str, Any]) -> list[str]:
    """Every VGG layer the loss spec reads, content layers first."""
    names: list[str] = []
    for key in ("content_layers", "style_layers"):
        value = spec.get(key) or {}
        names += list(value.keys() if isinstance(value, Mapping) else value)
    return list(dict.fromkeys(names))


def loss_on(spec: Mapping[str, Any], vgg: VGGFeatures) -> PerceptualLoss:
    """A PerceptualLoss (style targets not set yet) from ``spec`` on ``vgg``, which must tap
    :func:`loss_layers` ``(spec)``. ``spec``: PerceptualLoss's keyword arguments, plus optionally
    ``tuned_for`` (the VGG its weights were chosen with: another one is allowed and logged, since
    the style/content balance then shifts)."""
    kwargs = {k: v for k, v in spec.items() if not str(k).startswith("_") and k not in _NOT_ARGUMENTS}
    tuned = spec.get("tuned_for")
    if tuned and tuned != vgg.arch:
        log.warning("this loss's weights were tuned with %s; it runs on %s here, so its style/content "
                    "balance may differ", tuned, vgg.arch)
    return PerceptualLoss(vgg, **kwargs)


def build_loss(spec: Mapping[str, Any], arch: str = "vgg16", weights: str = "auto",
               seed: int = 0) -> PerceptualLoss:
    """:func:`loss_on` a VGG ``arch`` with ``weights`` (see nst.perceptual.sources), cut after the
    deepest layer the loss reads."""
    return loss_on(spec, load_vgg(arch, str(weights), loss_layers(spec), seed=int(seed)))
