"""The VGG16/19 architecture as one table, and the input conventions of the weight sources.

Convs per block (torchvision cfgs "D", "E"), block widths 64..512. Each conv is followed by a ReLU
and each block by a MaxPool2d, which fixes torchvision's ``nn.Sequential`` index of every conv and
every layer name (``relu4_2``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from torch import Tensor

from nst.errors import NSTError

BLOCKS = {"vgg16": (2, 2, 3, 3, 3), "vgg19": (2, 2, 4, 4, 4)}
WIDTHS = (64, 128, 256, 512, 512)
IMAGENET_NORM = {"order": "rgb", "scale": 1.0, "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]}
# Caffe convention of the HED model: BGR, 0-255, minus the BGR pixel mean, no std division.
HED_NORM = {"order": "bgr", "scale": 255.0, "mean": [104.00699, 116.66877, 122.67892], "std": [1.0, 1.0, 1.0]}


@dataclass(frozen=True)
class WeightsInfo:
    """A source's name and input convention: ``normalization`` = {order: "rgb"|"bgr", scale: 1.0|255.0,
    mean, std: 3 floats each in that order and scale}; ``pool_ceil``: max pools with ceil_mode=True."""

    name: str
    normalization: dict = field(default_factory=lambda: dict(IMAGENET_NORM))
    pool_ceil: bool = False
    description: str = ""


@dataclass(frozen=True)
class VGGWeights:
    """Loaded weights for one architecture: ``state`` in torchvision's key layout
    (``features.{i}.weight``), or None for a seeded random init; ``info`` its input convention."""

    arch: str
    state: dict[str, Tensor] | None
    info: WeightsInfo


def convs(arch: str) -> list[tuple[int, int, int]]:
    """(Sequential index, in channels, out channels) of each conv in torchvision's ``arch.features``."""
    if arch not in BLOCKS:
        raise NSTError(f"vgg.arch={arch}: unknown architecture (choose one of {', '.join(BLOCKS)})")
    out, i, cin = [], 0, 3
    for n, width in zip(BLOCKS[arch], WIDTHS):
        out += [(i + 2 * j, cin if j == 0 else width, width) for j in range(n)]
        i, cin = i + 2 * n + 1, width
    return out


def layer_table(arch: str) -> list[tuple[str, str]]:
    """[(name, kind)] in torchvision's ``features`` order: kind is conv, relu or pool."""
    table = []
    for b, n in enumerate(BLOCKS[arch], start=1):
        for i in range(1, n + 1):
            table += [(f"conv{b}_{i}", "conv"), (f"relu{b}_{i}", "relu")]
        table.append((f"pool{b}", "pool"))
    return table


LAYER_NAMES: dict[str, list[str]] = {arch: [n for n, _ in layer_table(arch)] for arch in BLOCKS}
