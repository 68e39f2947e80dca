"""Models shipped inside the package (``nst/assets/models/<name>.safetensors``) and model names.

A bare name (no folder, no suffix) that is not a file in the working directory names a shipped
model: ``nst mode=stylize checkpoint=starry_night`` and ``nst.load_model("starry_night")`` need
nothing trained. Their model cards are in docs/models.md.
"""

from __future__ import annotations

import os
from pathlib import Path

from nst.assets import ROOT as ASSETS
from nst.errors import NSTError

MODELS = ASSETS / "models"


def shipped_models() -> dict[str, Path]:
    """{name: path} of every shipped model, sorted by name."""
    if not MODELS.is_dir():
        return {}
    return {p.stem: p for p in sorted(MODELS.glob("*.safetensors")) if not p.name.startswith(".")}


def is_bare_name(spec: str | os.PathLike) -> bool:
    """``starry_night``: no folder part and no suffix (``model.safetensors`` or ``a/b`` are paths)."""
    s = os.fspath(spec)
    return bool(s) and os.sep not in s and "/" not in s and not Path(s).suffix


def resolve(spec: str | os.PathLike) -> Path:
    """The model file ``spec`` means: the path itself when it exists or looks like a path, else the
    shipped model of that name; an unknown name is a one-line NSTError listing the shipped ones."""
    path = Path(os.path.expanduser(os.fspath(spec)))
    if path.exists() or not is_bare_name(spec):
        return path
    models = shipped_models()
    if path.name in models:
        return models[path.name]
    names = ", ".join(models) or "none in this installation"
    raise NSTError(f"checkpoint={spec}: no such file, and no shipped model of that name (shipped: {names})")
