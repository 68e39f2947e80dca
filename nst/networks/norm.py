"""Instance normalization as a function plus a thin module, with its statistics exposed.

The statistics (per-sample, per-channel mean and biased variance) can be computed on one input and
used for another (tiles that share one look), and the affine parameters can be one row per style
(conditional instance norm, Dumoulin et al. 2017) combined per sample by the caller.
"""

from __future__ import annotations

from typing import List, Optional, Tuple

import torch
from torch import Tensor, nn

# TorchScript needs typing's names, not ``list[...]`` / ``X | None``.
NormStats = List[Tuple[Tensor, Tensor]]


def instance_norm_stats(x: Tensor) -> Tuple[Tensor, Tensor]:
    """Per-sample, per-channel (mean, biased var) of x (N,C,H,W), each (N,C,1,1), in float32."""
    xf = x.float()  # stats in float32 even under bf16/fp16 autocast: variance in half precision is coarse
    return xf.mean(dim=(2, 3), keepdim=True), xf.var(dim=(2, 3), unbiased=False, keepdim=True)


def per_sample(p: Tensor) -> Tensor:
    """(C,) or (N, C) affine parameters -> (1|N, C, 1, 1) float32."""
    p = p.float()
    return p.view(1, -1, 1, 1) if p.dim() == 1 else p.view(p.shape[0], p.shape[1], 1, 1)


def instance_norm(
    x: Tensor,
    weight: Optional[Tensor],
    bias: Optional[Tensor],
    eps: float = 1e-5,
    stats: Optional[Tuple[Tensor, Tensor]] = None,
) -> Tuple[Tensor, Tuple[Tensor, Tensor]]:
    """Instance norm of x (N,C,H,W) with x's own statistics, or with ``stats`` = (mean, var)
    ((1|N, C, 1, 1) each) when given. ``weight`` and ``bias`` are (C,), or (N, C) for one affine
    per sample (conditional instance norm). Returns (y same shape/dtype as x, the statistics used)."""
    if stats is None:
        stats = instance_norm_stats(x)
    mean, var = stats
    y = (x.float() - mean) * torch.rsqrt(var + eps)
    if weight is not None:
        y = y * per_sample(weight)
    if bias is not None:
        y = y + per_sample(bias)
    return y.to(x.dtype), stats


class InstanceNorm(nn.Module):
    """Thin module over :func:`instance_norm`; parameters named like ``nn.InstanceNorm2d``'s.

    ``num_styles`` > 1: conditional instance norm, ``weight`` and ``bias`` (num_styles, C), one
    row per style; the caller combines the rows (:meth:`TransformerNet.norm_affine`) and passes
    the result as ``affine``."""

    def __init__(self, num_features: int, eps: float = 1e-5, affine: bool = True,
                 num_styles: int = 1) -> None:
        super().__init__()
        self.eps = eps
        shape = [num_features] if num_styles == 1 else [num_styles, num_features]
        self.weight = nn.Parameter(torch.ones(shape)) if affine else None
        self.bias = nn.Parameter(torch.zeros(shape)) if affine else None

    def forward(
        self, x: Tensor, stats: Optional[Tuple[Tensor, Tensor]] = None,
        affine: Optional[Tuple[Tensor, Tensor]] = None,
    ) -> Tuple[Tensor, Tuple[Tensor, Tensor]]:
        if affine is not None:
            return instance_norm(x, affine[0], affine[1], self.eps, stats)
        return instance_norm(x, self.weight, self.bias, self.eps, stats)
