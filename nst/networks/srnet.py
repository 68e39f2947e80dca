"""SRNet: the super-resolution network of Johnson et al. (2016, §4.2), with later fixes.

The paper's layout: a 9x9 convolution, residual blocks of 64 channels at the input's resolution,
log2(factor) upsampling stages, a 9x9 convolution to RGB. Departures, each for a published reason:
- nearest upsample + 3x3 conv instead of fractionally strided convs (Odena et al. 2016: no
  checkerboard), as in the style network;
- LeakyReLU(0.2) instead of ReLU (without batch norm the ReLUs died in CPU runs; see ``_Up``);
- no normalization layers (the paper has batch norm): per-image statistics would throw away the
  very contrast a super-resolution network must keep, and EDSR (Lim et al. 2017) found SR
  networks better without them;
- the output is the bicubic upscale of the input plus what the network adds (global residual
  learning, Kim et al. 2016, VDSR), with the last layer started at zero: the untrained network is
  exactly bicubic, and training only learns the detail bicubic lacks; the paper's network
  produces the whole image through a scaled tanh;
- ``up_channels`` may narrow the upsampling stages (the paper: 64 throughout): the last stage
  and the 9x9 output conv run at factor^2 times the residual blocks' pixels, and most of the
  arithmetic of upscaling a large image is theirs (measurements: docs/superres.md).
Training leaves the output unclamped (a clamp gives overshooting pixels no gradient back); eval
mode clamps to [0, 1].

Any input size; the output is exactly ``factor`` x the input (reflection padding keeps sizes).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from nst.networks import register


class _Conv(nn.Sequential):
    def __init__(self, cin: int, cout: int, kernel: int) -> None:
        super().__init__(nn.ReflectionPad2d(kernel // 2), nn.Conv2d(cin, cout, kernel))


_SLOPE = 0.2  # LeakyReLU everywhere, not the paper's ReLU: see _Up


class _Residual(nn.Module):
    """conv-LeakyReLU-conv plus the input (no normalization, no activation after the sum)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.body = nn.Sequential(_Conv(channels, channels, 3), nn.LeakyReLU(_SLOPE, inplace=True),
                                  _Conv(channels, channels, 3))

    def forward(self, x: Tensor) -> Tensor:
        return x + self.body(x)


class _Up(nn.Module):
    """Nearest x2, 3x3 conv, LeakyReLU(0.2).

    Not ReLUs as in the paper: without its batch norm they died here, in two of three CPU runs of
    the pixel loss (every activation after the upsampling convs, then after the first conv, 0; the
    network stuck at exactly bicubic). ESRGAN (Wang et al. 2018) uses LeakyReLU(0.2) throughout."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.conv = _Conv(cin, cout, 3)
        self.act = nn.LeakyReLU(_SLOPE)  # a module, not a global float: TorchScript takes no globals

    def forward(self, x: Tensor) -> Tensor:
        return self.act(self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest")))


@register("sr")
class SRNet(nn.Module):
    """(N, 3, h, w) in [0, 1] -> (N, 3, factor*h, factor*w); ``factor`` a power of 2 (4, 8).

    ``up_channels``: the width of each upsampling stage, coarse to fine (None: ``channels`` for all).
    """

    def __init__(self, factor: int = 4, channels: int = 64, num_residual: int = 4,
                 up_channels: list[int] | None = None) -> None:
        super().__init__()
        stages = int(factor).bit_length() - 1
        if factor < 2 or 2 ** stages != factor:
            raise ValueError(f"SRNet: factor={factor}, choose a power of 2 (2, 4, 8)")
        if channels < 1 or num_residual < 0:
            raise ValueError(f"SRNet: need channels >= 1 and num_residual >= 0, got {channels}, "
                             f"{num_residual}")
        widths = [int(c) for c in up_channels] if up_channels is not None else [int(channels)] * stages
        if len(widths) != stages or min(widths) < 1:
            raise ValueError(f"SRNet: up_channels={list(widths)} needs {stages} positive widths "
                             f"(one per x2 stage of factor {factor})")
        self.factor = int(factor)
        self.config = {"factor": int(factor), "channels": int(channels), "num_residual": int(num_residual)}
        if up_channels is not None:  # only when set: older model files name no such argument
            self.config["up_channels"] = widths
        self.head = nn.Sequential(_Conv(3, channels, 9), nn.LeakyReLU(_SLOPE, inplace=True))
        self.body = nn.Sequential(*[_Residual(channels) for _ in range(num_residual)])
        chain = [int(channels)] + widths
        self.up = nn.Sequential(*[_Up(chain[i], chain[i + 1]) for i in range(stages)])
        self.tail = _Conv(chain[-1], 3, 9)
        nn.init.zeros_(self.tail[1].weight)  # the untrained network is bicubic (see the module doc)
        nn.init.zeros_(self.tail[1].bias)

    def forward(self, x: Tensor) -> Tensor:
        if not torch.jit.is_tracing() and (x.dim() != 4 or x.shape[1] != 3):
            raise ValueError(f"SRNet expects (N,3,H,W) input, got {list(x.shape)}")
        h, w = x.shape[2], x.shape[3]
        if h < 5 or w < 5:  # the 9x9 reflection pads need 5 px: replicate tiny inputs out, crop after
            x = F.pad(x, [0, max(0, 5 - w), 0, max(0, 5 - h)], mode="replicate")
        base = F.interpolate(x, scale_factor=float(self.factor), mode="bicubic", align_corners=False)
        y = base + self.tail(self.up(self.body(self.head(x))))
        y = y[:, :, : h * self.factor, : w * self.factor]
        return y if self.training else y.clamp(0.0, 1.0)
