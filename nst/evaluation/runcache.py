"""Finished Gatys runs kept on disk by what they depend on, so that comparing many networks on the
same photos optimizes each photo once (nst.evaluation.compare). A run depends on the photo's pixels, the
loss's weights and style targets (which carry the VGG weights and the painting), the snapshot
counts and the optimizer's settings; never on the network being compared."""

from __future__ import annotations

import functools
import hashlib
import io
import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from nst.io.files import atomic_write_bytes
from nst.perceptual.losses import PerceptualLoss

log = logging.getLogger("nst")


def run_key(content: Tensor, loss: PerceptualLoss, counts: Sequence[int], **settings: Any) -> str:
    """A digest of everything a Gatys run depends on (see the module doc); ``settings``: the
    optimizer's and the run's settings, described by :func:`_describe`."""
    h = hashlib.sha256()
    h.update(content.detach().float().cpu().contiguous().numpy().tobytes())
    for name, buf in sorted(loss.named_buffers()):
        if name.startswith("style_"):
            h.update(name.encode() + buf.detach().float().cpu().contiguous().numpy().tobytes())
    described = {"content": loss.content_layers, "style": loss.style_layers, "weights": [
        loss.content_weight, loss.style_weight, loss.tv_weight], "normalize": loss.normalize,
        "counts": sorted(counts), "torch": torch.__version__,
        **{k: _describe(v) for k, v in sorted(settings.items())}}
    h.update(json.dumps(described, sort_keys=True, default=str).encode())
    return h.hexdigest()[:32]


def _describe(value: Any) -> Any:
    """A settings value as text that stays the same across processes (no object addresses)."""
    if isinstance(value, functools.partial):
        return [_describe(value.func), _describe(value.args), _describe(value.keywords)]
    if isinstance(value, dict):
        return {str(k): _describe(v) for k, v in sorted(value.items())}
    if isinstance(value, type) or callable(value):
        return f"{getattr(value, '__module__', '')}.{getattr(value, '__qualname__', value)}"
    return value


def load(path: Path) -> dict[str, Any] | None:
    """A saved run (a dict of tensors and numbers), or None when there is none or it is unreadable
    (a damaged entry is run again)."""
    if not path.is_file():
        return None
    try:
        return torch.load(path, weights_only=True)
    except Exception as e:  # noqa: BLE001
        log.warning("%s: unreadable cached Gatys run (%s); running it again", path, e)
        return None


def save(path: Path, run: dict[str, Any]) -> None:
    """Write a run atomically (a killed process leaves no half-written entry; the folder is made
    as it is written), serialized in memory first as nst.training.checkpoints does."""
    buffer = io.BytesIO()
    torch.save(run, buffer)
    atomic_write_bytes(path, buffer.getbuffer())
