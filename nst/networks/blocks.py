"""The blocks of TransformerNet: conv + instance norm (+ ReLU), and the residual block.

Every block takes and records its instance-norm statistics by position, so that statistics
captured on one pass (a downscaled whole image) can be reused on another (one tile of it), and
takes its (gamma, beta) from a per-network list when the network is conditional.
"""

from __future__ import annotations

from typing import Optional, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from nst.networks.norm import InstanceNorm, NormStats, per_sample


class ConvBlock(nn.Module):
    """[nearest upsample x2] -> reflection pad -> conv -> instance norm -> [ReLU]."""

    def __init__(
        self, cin: int, cout: int, kernel: int, stride: int = 1, upsample: bool = False, relu: bool = True,
        index: int = 0, num_styles: int = 1,
    ) -> None:
        super().__init__()
        self.index = index  # this block's norm among the network's (its entry in norm stats and affines)
        self.upsample = upsample
        self.relu = relu
        self.pad = nn.ReflectionPad2d(kernel // 2)
        # No conv bias: the instance norm right after subtracts the per-channel mean, so a bias
        # would cancel exactly and never receive a gradient (pytorch/examples keeps it, unused).
        self.conv = nn.Conv2d(cin, cout, kernel, stride, bias=False)
        self.norm = InstanceNorm(cout, num_styles=num_styles)

    def forward(self, x: Tensor, stats_in: Optional[NormStats], stats_used: NormStats,
                keep_stats: bool = True, affine: Optional[NormStats] = None) -> Tensor:
        """x (N,cin,H,W) -> (N,cout,H',W'). Takes its norm stats from ``stats_in[len(stats_used)]``
        when given, and appends the stats it used to ``stats_used`` (the running layer index).
        Without ``stats_in`` and ``keep_stats`` (a plain forward: nobody reads the statistics) the
        norm is torch's fused ``F.instance_norm``, which is the same function (biased variance,
        the same eps) at a fraction of the composite's memory traffic, forward and backward.
        ``affine``: one (gamma, beta) per norm of the network, each (1|N, C), instead of this
        norm's own parameters (conditional networks: ``TransformerNet.norm_affine``)."""
        x = x.to(self.conv.weight.dtype)  # a no-op unless mixed_precision() gave this block another dtype
        if self.upsample:
            x = F.interpolate(x, scale_factor=2.0, mode="nearest")
        mine: Optional[Tuple[Tensor, Tensor]] = None
        if affine is not None:
            mine = affine[self.index]
        if stats_in is None and not keep_stats:
            if mine is None:
                y = F.instance_norm(self.conv(self.pad(x)), weight=self.norm.weight, bias=self.norm.bias,
                                    eps=self.norm.eps)
            else:  # fused normalization, then one affine per sample
                z = F.instance_norm(self.conv(self.pad(x)), eps=self.norm.eps)
                y = (z.float() * per_sample(mine[0]) + per_sample(mine[1])).to(z.dtype)
            return F.relu(y) if self.relu else y
        s: Optional[Tuple[Tensor, Tensor]] = None
        if stats_in is not None:
            s = stats_in[len(stats_used)]
        y, used = self.norm(self.conv(self.pad(x)), s, mine)
        stats_used.append(used)
        return F.relu(y) if self.relu else y


class ResidualBlock(nn.Module):
    """conv-IN-ReLU-conv-IN plus the input; no activation after the sum (Gross & Wilber)."""

    def __init__(self, channels: int, index: int = 0, num_styles: int = 1) -> None:
        super().__init__()
        self.block1 = ConvBlock(channels, channels, 3, index=index, num_styles=num_styles)
        self.block2 = ConvBlock(channels, channels, 3, relu=False, index=index + 1, num_styles=num_styles)

    def forward(self, x: Tensor, stats_in: Optional[NormStats], stats_used: NormStats,
                keep_stats: bool = True, affine: Optional[NormStats] = None) -> Tensor:
        y = self.block1(x, stats_in, stats_used, keep_stats, affine)
        return x + self.block2(y, stats_in, stats_used, keep_stats, affine)


def reflect_index(n: int, before: int, total: int, device: torch.device) -> Tensor:
    """Source indices that reflect-pad an axis of length n to ``total`` (``before`` of them in front).

    Where one reflection is not enough (images smaller than the pad) the index is clamped, i.e.
    replicate padding. Pure arithmetic with no branch on the size, so TorchScript, tracing and
    ``torch.export`` all keep height and width dynamic.
    """
    i = torch.arange(total, device=device) - before
    i = (n - 1) - ((n - 1) - i.abs()).abs()  # reflect about 0, then about n-1
    return i.clamp(0, n - 1)
