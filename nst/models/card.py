"""What a model is, read from its metadata header alone (no weights): the fields ``nst mode=models``
prints and the web page's model list shows."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from nst.models.modelfile import read_meta


def kind(meta: dict[str, Any]) -> str:
    """``upscale`` (a super-resolution network), ``multistyle`` (several styles, mixable),
    ``strength`` (strength is the network's input) or ``style`` (one style)."""
    args = meta.get("args") or {}
    if meta.get("network") == "sr":
        return "upscale"
    if int(args.get("num_styles") or 1) > 1:
        return "multistyle"
    return "strength" if args.get("strength_input") else "style"


def describe(path: Path, meta: dict[str, Any] | None = None) -> dict[str, Any]:
    """A model's card fields from its metadata header (no weights are read), or from ``meta``
    already loaded (a Lightning checkpoint's card)."""
    meta = read_meta(path) if meta is None else meta
    styles = list(meta.get("styles") or [])
    style = (f"{len(styles)} styles: " + ", ".join(f"{i} {n}" for i, n in enumerate(styles))) if styles \
        else ", ".join(meta.get("style") or []) or "?"
    return {"name": path.stem, "kind": kind(meta), "style": style,
            "styles": styles or list(meta.get("style") or []),
            "strength": "input" if meta["args"].get("strength_input") else "blend",
            "factor": meta["args"].get("factor") if meta.get("network") == "sr" else None,
            "network": meta["network"], "args": meta["args"], "steps": meta.get("steps"),
            "data": meta.get("data"), "kib": round(path.stat().st_size / 1024)}
