"""VGGFeatures: a frozen VGG16/19 that returns the activations of named layers.

``VGGFeatures`` is built from weights already loaded (``nst.perceptual.sources.load_weights``);
``load_vgg`` does both and is what the ``vgg`` config group instantiates.

Inputs are always RGB in [0, 1]; the normalization each weights source needs (ImageNet mean/std,
or Caffe's BGR 0-255 minus mean for the HED weights) happens here and nowhere else.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

import torch
from torch import Tensor, nn

from nst.errors import NSTError
from nst.perceptual.arch import (
    BLOCKS,
    IMAGENET_NORM,
    LAYER_NAMES,
    WIDTHS,
    VGGWeights,
    WeightsInfo,
    layer_table,
)

log = logging.getLogger("nst")

class VGGFeatures(nn.Module):
    """Frozen VGG feature extractor with named taps.

    Args:
        arch: ``vgg16`` or ``vgg19``.
        weights: loaded weights (:func:`nst.perceptual.sources.load_weights`); None: a random init.
        layers: the names to return; the network is cut after the deepest one.
        seed: for the random init.

    ``forward(x)`` takes (N, 3, H, W) RGB in [0, 1] and returns ``{name: (N, C, h, w)}``.
    The weights are frozen and never saved in a ``state_dict``: they are reproduced from the
    weights source, so training checkpoints stay small and never carry a 500 MB loss network.
    """

    def __init__(self, arch: str = "vgg16", weights: VGGWeights | None = None,
                 layers: Iterable[str] = ("relu4_2",), seed: int = 0):
        super().__init__()
        if arch not in BLOCKS:
            raise NSTError(f"vgg.arch={arch!r}: unknown network (choose from {', '.join(BLOCKS)})")
        self.arch = arch
        self.layers = list(dict.fromkeys(layers))
        unknown = [n for n in self.layers if n not in LAYER_NAMES[arch]]
        if unknown:
            raise NSTError(f"{arch} has no layer named {', '.join(unknown)} "
                           f"(names look like relu4_2, conv5_1, pool3)")
        if not self.layers:
            raise NSTError("VGGFeatures needs at least one layer")
        table = layer_table(arch)
        depth = max(LAYER_NAMES[arch].index(n) for n in self.layers) + 1
        if weights is None:
            weights = VGGWeights(arch, None, WeightsInfo("random", dict(IMAGENET_NORM), False,
                                                         f"random init (seed {seed})"))
        if weights.arch != arch:
            raise NSTError(f"VGGFeatures({arch!r}) was given weights for {weights.arch}")
        state, info = weights.state, weights.info
        self.info: WeightsInfo = info
        self.weights_source = info.name

        modules: list[nn.Module] = []
        in_ch, block = 3, 0
        for name, kind in table[:depth]:
            if kind == "conv":
                block = int(name[4]) - 1
                modules.append(nn.Conv2d(in_ch, WIDTHS[block], 3, padding=1))
                in_ch = WIDTHS[block]
            elif kind == "relu":
                # Not in place: the tapped activation must survive the next layer.
                modules.append(nn.ReLU(inplace=False))
            else:
                # HED's Keras pools pad 'same', which for 2x2/2 is ceil_mode on odd sizes.
                modules.append(nn.MaxPool2d(2, 2, ceil_mode=info.pool_ceil))
        self.features = nn.Sequential(*modules)
        self._names = [n for n, _ in table[:depth]]
        self._pools_before = {n: sum(1 for m, k in table[: i + 1] if k == "pool" and m != n)
                              for i, (n, _) in enumerate(table[:depth])}
        self._init_weights(state, seed)
        self.requires_grad_(False)
        self.eval()

        norm = info.normalization
        self.bgr = norm["order"] == "bgr"
        self.register_buffer("scale", torch.tensor(float(norm["scale"])), persistent=False)
        self.register_buffer("mean", torch.tensor(norm["mean"]).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(norm["std"]).view(1, 3, 1, 1), persistent=False)
        self._register_state_dict_hook(_drop_own_weights)
        self.register_load_state_dict_pre_hook(_fill_own_weights)
        log.info("VGG: %s with %s weights (%s), taps %s", arch, info.name, info.description,
                 ", ".join(self.layers))

    def _init_weights(self, state: dict[str, Tensor] | None, seed: int) -> None:
        if state is None:
            # Seeded like torchvision's VGG init, so random-weight runs are reproducible.
            gen = torch.Generator().manual_seed(seed)
            for m in self.features:
                if isinstance(m, nn.Conv2d):
                    fan_out = m.out_channels * 9
                    with torch.no_grad():
                        m.weight.normal_(0.0, (2.0 / fan_out) ** 0.5, generator=gen)
                        m.bias.zero_()
            return
        own = self.features.state_dict()
        missing = [k for k in own if f"features.{k}" not in state]
        if missing:
            raise NSTError(f"VGG weights ({self.weights_source}) lack {missing[0]} for {self.arch}")
        for k, v in own.items():
            src = state[f"features.{k}"]
            if src.shape != v.shape:
                raise NSTError(f"VGG weights ({self.weights_source}): features.{k} has shape "
                               f"{tuple(src.shape)}, {self.arch} needs {tuple(v.shape)}")
        self.features.load_state_dict({k: state[f"features.{k}"].float() for k in own})

    def min_size(self, layers: Iterable[str] | None = None) -> int:
        """The smallest side an input may have for ``layers`` (default: all taps)."""
        pools = max(self._pools_before[n] for n in (self.layers if layers is None else layers))
        return 1 if self.info.pool_ceil else 2 ** pools

    def normalize(self, x: Tensor) -> Tensor:
        """RGB [0, 1] -> what the weights were trained on (never in place)."""
        if self.bgr:
            x = x.flip(1)
        return (x * self.scale - self.mean) / self.std

    def forward(self, x: Tensor, layers: Iterable[str] | None = None) -> dict[str, Tensor]:
        """Activations of ``layers`` (default: all taps), running only as deep as the deepest one."""
        wanted = self.layers if layers is None else list(layers)
        unknown = [n for n in wanted if n not in self._names]
        if unknown:
            raise ValueError(f"this VGGFeatures does not reach {', '.join(unknown)}")
        if x.dim() != 4 or x.shape[1] != 3:
            raise ValueError(f"VGGFeatures expects (N, 3, H, W), got {tuple(x.shape)}")
        need = self.min_size(wanted)
        if min(x.shape[-2:]) < need:
            deepest = max(wanted, key=self._names.index)
            raise NSTError(f"image of {x.shape[-1]}x{x.shape[-2]} px is too small for VGG layer {deepest} "
                           f"(needs at least {need} px per side)")
        out: dict[str, Tensor] = {}
        h = self.normalize(x)
        last = max(self._names.index(n) for n in wanted)
        for name, module in zip(self._names[: last + 1], self.features):
            h = module(h)
            if name in wanted:
                out[name] = h
        return out

    def train(self, mode: bool = True) -> VGGFeatures:
        # Always frozen: a parent's .train() must not change anything here.
        return super().train(False)


def _drop_own_weights(module: nn.Module, state_dict: dict, prefix: str, local_metadata) -> None:
    for key in [k for k in state_dict if k.startswith(prefix + "features.")]:
        del state_dict[key]


def _fill_own_weights(module: VGGFeatures, state_dict: dict, prefix: str, *args) -> None:
    # Checkpoints do not carry the frozen weights (see _drop_own_weights): keep the ones we have.
    for key, value in module.features.state_dict().items():
        state_dict.setdefault(f"{prefix}features.{key}", value)


def load_vgg(arch: str = "vgg16", weights: str = "auto", layers: Iterable[str] = ("relu4_2",),
             seed: int = 0) -> VGGFeatures:
    """Load ``weights`` (``auto``, ``imagenet``, ``hed``, ``random`` or a path: see
    :mod:`nst.perceptual.sources`) and build the VGGFeatures tapping ``layers``."""
    from nst.perceptual.sources import load_weights  # the sources may fetch: only when asked to

    if arch not in BLOCKS:
        raise NSTError(f"vgg.arch={arch!r}: unknown network (choose from {', '.join(BLOCKS)})")
    return VGGFeatures(arch, load_weights(arch, str(weights), seed=seed), layers, seed=seed)
