"""TransformerNet: the feed-forward style network of Johnson et al. (2016), as the field later refined it.

Departures from the paper, each for a published reason:
- instance normalization instead of batch norm (Ulyanov et al. 2016), with a learned affine;
- reflection padding inside every conv instead of zero padding (fewer border artifacts);
- nearest upsample + conv instead of fractionally strided convs (Odena et al. 2016: no checkerboard);
- residual blocks without a ReLU after the addition (Gross & Wilber, as in pytorch/examples);
- the output layer is a choice (``output=``), Johnson's scaled tanh is none of them:
  ``sigmoid`` (the first version's default: the same smooth family as tanh, ``sigmoid(2x) =
  (tanh(x) + 1) / 2``, on [0, 1]); ``linear`` (the raw 9x9 conv, as pytorch/examples, clamped to
  [0, 1] only in eval mode); ``residual`` (the input plus the raw 9x9 conv, whose weights start at
  zero, so the untrained network is exactly the identity, and clamped in eval mode like ``linear``).
  With ``head_input`` (always on in ``residual``) the 9x9 conv also sees the input image beside
  the decoder's features: the first instance norm removes each photo's mean colour and contrast
  from everything behind it, so without the input the output cannot depend on the photo's own
  colours.
  Training never clamps: a clamp or a saturated sigmoid gives a pixel that overshoots no gradient to
  come back with, which is how the first quickstart grew saturated blobs (docs/training.md).

Older model files name no ``output`` and load as ``sigmoid``.

Presets: the default is ``channels=32, num_residual=5`` (Johnson's widths 32/64/128);
``channels=16, num_residual=3`` is the "small" preset (0.28 M parameters instead of 1.68 M) that the
configs use for quick runs. Downsampling is fixed at two stride-2 convs (factor 4).

Instance-norm statistics can be captured from one pass (e.g. a downscaled whole image) and reused
for another (e.g. one tile of it), so tiles stylized separately share one look:
``stats = net.capture_norm_stats(small); out = net(tile, norm_stats=stats)``.
"""

from __future__ import annotations

from typing import List, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from nst.networks import register

# TorchScript needs typing's names, not ``list[...]`` / ``X | None``.
NormStats = List[Tuple[Tensor, Tensor]]


def instance_norm_stats(x: Tensor) -> Tuple[Tensor, Tensor]:
    """Per-sample, per-channel (mean, biased var) of x (N,C,H,W), each (N,C,1,1), in float32."""
    xf = x.float()  # stats in float32 even under bf16/fp16 autocast: variance in half precision is coarse
    return xf.mean(dim=(2, 3), keepdim=True), xf.var(dim=(2, 3), unbiased=False, keepdim=True)


def instance_norm(
    x: Tensor,
    weight: Optional[Tensor],
    bias: Optional[Tensor],
    eps: float = 1e-5,
    stats: Optional[Tuple[Tensor, Tensor]] = None,
) -> Tuple[Tensor, Tuple[Tensor, Tensor]]:
    """Instance norm of x (N,C,H,W) with x's own statistics, or with ``stats`` = (mean, var)
    ((1|N, C, 1, 1) each) when given. Returns (y same shape/dtype as x, the statistics used)."""
    if stats is None:
        stats = instance_norm_stats(x)
    mean, var = stats
    y = (x.float() - mean) * torch.rsqrt(var + eps)
    if weight is not None:
        y = y * weight.float().view(1, -1, 1, 1)
    if bias is not None:
        y = y + bias.float().view(1, -1, 1, 1)
    return y.to(x.dtype), stats


class InstanceNorm(nn.Module):
    """Thin module over :func:`instance_norm`; parameters named like ``nn.InstanceNorm2d``'s."""

    def __init__(self, num_features: int, eps: float = 1e-5, affine: bool = True) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(num_features)) if affine else None
        self.bias = nn.Parameter(torch.zeros(num_features)) if affine else None

    def forward(
        self, x: Tensor, stats: Optional[Tuple[Tensor, Tensor]] = None
    ) -> Tuple[Tensor, Tuple[Tensor, Tensor]]:
        return instance_norm(x, self.weight, self.bias, self.eps, stats)


class ConvBlock(nn.Module):
    """[nearest upsample x2] -> reflection pad -> conv -> instance norm -> [ReLU]."""

    def __init__(
        self, cin: int, cout: int, kernel: int, stride: int = 1, upsample: bool = False, relu: bool = True
    ) -> None:
        super().__init__()
        self.upsample = upsample
        self.relu = relu
        self.pad = nn.ReflectionPad2d(kernel // 2)
        # No conv bias: the instance norm right after subtracts the per-channel mean, so a bias
        # would cancel exactly and never receive a gradient (pytorch/examples keeps it, unused).
        self.conv = nn.Conv2d(cin, cout, kernel, stride, bias=False)
        self.norm = InstanceNorm(cout)

    def forward(self, x: Tensor, stats_in: Optional[NormStats], stats_used: NormStats,
                keep_stats: bool = True) -> Tensor:
        """x (N,cin,H,W) -> (N,cout,H',W'). Takes its norm stats from ``stats_in[len(stats_used)]``
        when given, and appends the stats it used to ``stats_used`` (the running layer index).
        Without ``stats_in`` and ``keep_stats`` (a plain forward: nobody reads the statistics) the
        norm is torch's fused ``F.instance_norm``, which is the same function (biased variance,
        the same eps) at a fraction of the composite's memory traffic, forward and backward."""
        x = x.to(self.conv.weight.dtype)  # a no-op unless mixed_precision() gave this block another dtype
        if self.upsample:
            x = F.interpolate(x, scale_factor=2.0, mode="nearest")
        if stats_in is None and not keep_stats:
            y = F.instance_norm(self.conv(self.pad(x)), weight=self.norm.weight, bias=self.norm.bias,
                                eps=self.norm.eps)
            return F.relu(y) if self.relu else y
        s: Optional[Tuple[Tensor, Tensor]] = None
        if stats_in is not None:
            s = stats_in[len(stats_used)]
        y, used = self.norm(self.conv(self.pad(x)), s)
        stats_used.append(used)
        return F.relu(y) if self.relu else y


class ResidualBlock(nn.Module):
    """conv-IN-ReLU-conv-IN plus the input; no activation after the sum (Gross & Wilber)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.block1 = ConvBlock(channels, channels, 3)
        self.block2 = ConvBlock(channels, channels, 3, relu=False)

    def forward(self, x: Tensor, stats_in: Optional[NormStats], stats_used: NormStats,
                keep_stats: bool = True) -> Tensor:
        y = self.block1(x, stats_in, stats_used, keep_stats)
        return x + self.block2(y, stats_in, stats_used, keep_stats)


def _reflect_index(n: int, before: int, total: int, device: torch.device) -> Tensor:
    """Source indices that reflect-pad an axis of length n to ``total`` (``before`` of them in front).

    Where one reflection is not enough (images smaller than the pad) the index is clamped, i.e.
    replicate padding. Pure arithmetic with no branch on the size, so TorchScript, tracing and
    ``torch.export`` all keep height and width dynamic.
    """
    i = torch.arange(total, device=device) - before
    i = (n - 1) - ((n - 1) - i.abs()).abs()  # reflect about 0, then about n-1
    return i.clamp(0, n - 1)


OUTPUTS = ("sigmoid", "linear", "residual")


@register("transformer")
class TransformerNet(nn.Module):
    """Image transformation network: (N,3,H,W) in [0,1] -> (N,3,H,W) in [0,1], any H, W >= 1.

    ``output``: ``sigmoid``, ``linear`` or ``residual`` (see the module doc); in training mode the
    last two are unclamped, in eval mode clamped to [0, 1]."""

    def __init__(self, channels: int = 32, num_residual: int = 5, output: str = "sigmoid",
                 head_input: bool = False) -> None:
        super().__init__()
        if channels < 1 or num_residual < 0:
            raise ValueError(
                f"TransformerNet: need channels >= 1 and num_residual >= 0, got {channels}, {num_residual}"
            )
        if output not in OUTPUTS:
            raise ValueError(f"TransformerNet: output={output!r}, choose one of {', '.join(OUTPUTS)}")
        self.output = str(output)
        # residual always shows the head the input (see the module doc); the others may
        self.head_input = bool(head_input) or self.output == "residual"
        self.config = {"channels": int(channels), "num_residual": int(num_residual), "output": str(output),
                       "head_input": self.head_input}
        c = channels
        self.encoder = nn.ModuleList(
            [ConvBlock(3, c, 9), ConvBlock(c, 2 * c, 3, stride=2), ConvBlock(2 * c, 4 * c, 3, stride=2)]
        )
        self.residuals = nn.ModuleList([ResidualBlock(4 * c) for _ in range(num_residual)])
        self.decoder = nn.ModuleList(
            [ConvBlock(4 * c, 2 * c, 3, upsample=True), ConvBlock(2 * c, c, 3, upsample=True)]
        )
        head_in = c + 3 if self.head_input else c
        self.head = nn.Sequential(nn.ReflectionPad2d(4), nn.Conv2d(head_in, 3, 9))
        if self.output == "residual":
            # Zero-initialised last layer (as ReZero/Fixup do for residual branches): the untrained
            # network returns its input, so training starts where Gatys from the content starts.
            nn.init.zeros_(self.head[1].weight)
            nn.init.zeros_(self.head[1].bias)
        self.num_norms = 5 + 2 * num_residual

    def _run(self, x: Tensor, norm_stats: Optional[NormStats],
             keep_stats: bool = True) -> Tuple[Tensor, NormStats]:
        # (skipped while tracing: the channel check would be frozen into the graph with a warning)
        if not torch.jit.is_tracing() and (x.dim() != 4 or x.shape[1] != 3):
            raise ValueError(f"TransformerNet expects (N,3,H,W) input, got {list(x.shape)}")
        if norm_stats is not None and len(norm_stats) != self.num_norms:
            raise ValueError(
                f"norm_stats has {len(norm_stats)} entries, this network has {self.num_norms} norms"
            )
        h, w = x.shape[2], x.shape[3]
        # Pad to a multiple of 4 (two stride-2 convs, two x2 upsamples) plus 4 more, so that even a
        # 1x1 image is 8 px at full scale and 2 px at 1/4 scale, where the 3x3 reflection pads need
        # at least 2. Crop back afterwards: the output has exactly the input's size.
        ph = (4 - h % 4) % 4 + 4
        pw = (4 - w % 4) % 4 + 4
        top, left = ph // 2, pw // 2
        y = x.index_select(2, _reflect_index(h, top, h + ph, x.device))
        y = y.index_select(3, _reflect_index(w, left, w + pw, x.device))
        padded = y
        used: NormStats = []
        for block in self.encoder:
            y = block(y, norm_stats, used, keep_stats)
        for block in self.residuals:
            y = block(y, norm_stats, used, keep_stats)
        for block in self.decoder:
            y = block(y, norm_stats, used, keep_stats)
        y = y.to(self.head[1].weight.dtype)
        if self.head_input:
            y = torch.cat([y, padded.to(y.dtype)], dim=1)
        y = self.head(y)
        if self.output == "sigmoid":
            y = torch.sigmoid(y)
        else:
            if self.output == "residual":
                y = y + padded.to(y.dtype)
            if not self.training:
                y = y.clamp(0.0, 1.0)
        return y[:, :, top : top + h, left : left + w], used

    def forward(self, x: Tensor, norm_stats: Optional[NormStats] = None) -> Tensor:
        """x (N,3,H,W) in [0,1] -> (N,3,H,W) in [0,1]. With ``norm_stats`` (from
        :meth:`capture_norm_stats`) every instance norm uses those instead of x's own statistics."""
        return self._run(x, norm_stats, norm_stats is not None)[0]

    @torch.jit.ignore
    def mixed_precision(self, dtype: torch.dtype = torch.bfloat16) -> TransformerNet:
        """In place: every block but the first and the 9x9 output conv in ``dtype`` (their inputs
        are cast at each block), those two in float32. Measured on real photos and the shipped
        models: with the whole network in bf16 the output strays up to 9.7/255 from float32's,
        because the first conv sees raw pixels at bf16's 8-bit mantissa and its instance norm then
        divides by the photo's own contrast, so a low-contrast channel amplifies the rounding; with
        the two ends in float32 (10 % of the FLOPs) it stays within 2/255 (docs/benchmarks.md)."""
        for block in [*self.encoder[1:], *self.residuals, *self.decoder]:
            block.to(dtype)
        return self

    @torch.jit.export
    def capture_norm_stats(self, x: Tensor) -> NormStats:
        """One (mean, var) pair, each (N,C,1,1) float32, per norm layer, computed on x (N,3,H,W)."""
        return self._run(x, None, True)[1]
