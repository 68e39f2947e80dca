"""The Gatys reference of the page: the optimizer on the uploaded photo, under the chosen model's
own loss (its VGG, layers, weights and style image, read from the model file), as
``nst mode=compare`` scores it; for a multi-style model, under the chosen style's image."""

from __future__ import annotations

from pathlib import Path

from torch import Tensor

from nst.evaluation.compare import loss_settings, model_loss, one_style, resolve_styles, set_styles
from nst.gatys.module import optimize
from nst.inference.styles import pick
from nst.models.modelfile import read_meta
from nst.serve.errors import ApiError
from nst.serve.jobs import Follow, GatysJob

INITS = ("noise", "content", "blurred_noise")  # never a path: a client names no file


def reference_loss(path: Path, style: str | None, weights: str | None):
    """The model's loss with the style targets set (style: a multi-style model's index or name)."""
    meta = read_meta(path)
    settings = loss_settings(meta)
    if settings is None:
        raise ApiError(422, f"model {path.stem!r}: its file records no loss, so there is no Gatys reference")
    names = list(meta.get("styles") or [])
    if len(names) > 1:
        meta = one_style(meta, names, pick(names, style if style not in (None, "") else 0))
    loss = model_loss(settings, weights=weights)
    set_styles(loss, resolve_styles(meta, path), meta.get("style_blend"), meta.get("style_size"))
    return loss


def run_gatys(job: GatysJob, content: Tensor, path: Path, style: str | None, init: str,
              weights: str | None) -> None:
    """Optimize ``content`` (1, 3, H, W) for ``job.iterations`` steps, reporting into ``job``."""
    loss = reference_loss(path, style, weights)
    optimize(content, loss, iterations=job.iterations, init=init, callbacks=[Follow(job)],
             trainer_kwargs={"accelerator": "cpu"})
