"""Exports of a trained network for other runtimes: TorchScript and ONNX.

The project's own model file (safetensors + a JSON card naming the network) is
:mod:`nst.models.modelfile`.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import torch
from torch import nn

from nst import networks
from nst.io.files import atomic_path
from nst.models.modelfile import finite_state

# The legacy exporter and torch.jit.script announce their deprecation on every call; nothing to act on.
_QUIET = ("You are using the legacy TorchScript-based ONNX export", "The feature will be removed",
          "`torch.jit.script` is deprecated", "Constant folding - Only steps=1",
          "ONNX export mode is set to TrainingMode.EVAL", "Converting a tensor to a Python")


def _export_copy(path: Path, net: nn.Module) -> nn.Module:
    """A float32 CPU twin in eval mode (the caller's net keeps its device and mode); refuses NaN/inf."""
    net = networks.unwrap(net)
    twin = networks.build(networks.name_of(net), dict(net.config))
    twin.load_state_dict(finite_state(path, net))
    return twin.eval()


def export_torchscript(net: nn.Module, path: str | os.PathLike) -> Path:
    """Write ``torch.jit.script(net)``: any batch, height and width; keeps ``capture_norm_stats``."""
    path = Path(path)
    twin = _export_copy(path, net)
    with warnings.catch_warnings():
        for message in _QUIET:
            warnings.filterwarnings("ignore", message=message)
        scripted = torch.jit.script(twin)
    with atomic_path(path) as tmp:
        scripted.save(str(tmp))
    return path


def export_onnx(net: nn.Module, path: str | os.PathLike, opset: int = 17) -> Path:
    """Write an ONNX graph ``image`` (N,3,H,W) -> ``stylized`` (N,3,H,W) with N, H and W dynamic;
    a conditional network's graph also takes ``style_mix`` (1, S) and ``strength`` (1,).

    Uses the TorchScript-based exporter (``dynamo=False``): the network has no branch on its input
    size, so the trace keeps H and W dynamic, and it honours opset 17 (the dynamo exporter emits >= 18).
    """
    path = Path(path)
    twin = _export_copy(path, net)
    axes = {0: "batch", 2: "height", 3: "width"}
    module, args, names = twin, (torch.rand(1, 3, 37, 45),), ["image"]
    if getattr(twin, "conditional", False):  # the style mix (1, S) and/or the strength (1,) are inputs too
        module = _Conditioned(twin)
        if twin.num_styles > 1:
            args, names = (*args, torch.eye(twin.num_styles)[:1]), [*names, "style_mix"]
        if twin.strength_input:
            args, names = (*args, torch.ones(1)), [*names, "strength"]
    with warnings.catch_warnings(), torch.no_grad(), atomic_path(path) as tmp:
        for message in _QUIET:
            warnings.filterwarnings("ignore", message=message)
        torch.onnx.export(module, args, str(tmp), dynamo=False, opset_version=opset,
                          input_names=names, output_names=["stylized"],
                          dynamic_axes={"image": axes, "stylized": axes})
    return path


class _Conditioned(nn.Module):
    """A conditional network with its condition as plain inputs (an ONNX graph has no optional ones):
    ``(image, style_mix)``, ``(image, strength)`` or ``(image, style_mix, strength)``."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, image: torch.Tensor, *condition: torch.Tensor) -> torch.Tensor:
        parts = list(condition)
        style = parts.pop(0) if self.net.num_styles > 1 else None
        strength = parts.pop(0) if self.net.strength_input else None
        return self.net(image, style=style, strength=strength)
