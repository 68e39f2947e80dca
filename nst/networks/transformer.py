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

Conditioning (a style mix, a strength) goes through the instance norms' affine parameters only;
:mod:`nst.networks.conditional` explains it and folds a condition into a plain network.

Instance-norm statistics can be captured from one pass (e.g. a downscaled whole image) and reused
for another (e.g. one tile of it), so tiles stylized separately share one look:
``stats = net.capture_norm_stats(small); out = net(tile, norm_stats=stats)``.
"""

from __future__ import annotations

from typing import List, Optional, Tuple

import torch
from torch import Tensor, nn

from nst.networks import register
from nst.networks.blocks import ConvBlock, ResidualBlock, reflect_index
from nst.networks.conditional import specialize
from nst.networks.norm import InstanceNorm, NormStats, instance_norm, instance_norm_stats

__all__ = ["InstanceNorm", "NormStats", "TransformerNet", "instance_norm", "instance_norm_stats"]


OUTPUTS = ("sigmoid", "linear", "residual")


@register("transformer")
class TransformerNet(nn.Module):
    """Image transformation network: (N,3,H,W) in [0,1] -> (N,3,H,W) in [0,1], any H, W >= 1.

    ``output``: ``sigmoid``, ``linear`` or ``residual`` (see the module doc); in training mode the
    last two are unclamped, in eval mode clamped to [0, 1]."""

    def __init__(self, channels: int = 32, num_residual: int = 5, output: str = "sigmoid",
                 head_input: bool = False, num_styles: int = 1, strength_input: bool = False) -> None:
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
        if isinstance(num_styles, bool) or int(num_styles) < 1:
            raise ValueError(f"TransformerNet: num_styles={num_styles!r}, need a whole number >= 1")
        self.num_styles = int(num_styles)
        self.strength_input = bool(strength_input)
        self.config = {"channels": int(channels), "num_residual": int(num_residual), "output": str(output),
                       "head_input": self.head_input}
        # only when used: the files of plain networks keep the arguments they always had
        if self.num_styles > 1:
            self.config["num_styles"] = self.num_styles
        if self.strength_input:
            self.config["strength_input"] = True
        c, k = channels, self.num_styles
        self.encoder = nn.ModuleList([ConvBlock(3, c, 9, index=0, num_styles=k),
                                      ConvBlock(c, 2 * c, 3, stride=2, index=1, num_styles=k),
                                      ConvBlock(2 * c, 4 * c, 3, stride=2, index=2, num_styles=k)])
        self.residuals = nn.ModuleList([ResidualBlock(4 * c, index=3 + 2 * i, num_styles=k)
                                        for i in range(num_residual)])
        n = 3 + 2 * num_residual
        self.decoder = nn.ModuleList([ConvBlock(4 * c, 2 * c, 3, upsample=True, index=n, num_styles=k),
                                      ConvBlock(2 * c, c, 3, upsample=True, index=n + 1, num_styles=k)])
        widths = [c, 2 * c, 4 * c, *([4 * c] * (2 * num_residual)), 2 * c, c]
        self.norm_widths: List[int] = widths
        # Babaeizadeh & Ghiasi 2018: the strength reaches the network through its norms only. The
        # last layer starts at zero: until trained, the strength input changes nothing.
        self.strength_net = nn.Sequential(nn.Linear(1, 64), nn.ReLU(), nn.Linear(64, 2 * sum(widths))) \
            if self.strength_input else None
        if self.strength_net is not None:
            nn.init.zeros_(self.strength_net[2].weight)
            nn.init.zeros_(self.strength_net[2].bias)
        head_in = c + 3 if self.head_input else c
        self.head = nn.Sequential(nn.ReflectionPad2d(4), nn.Conv2d(head_in, 3, 9))
        if self.output == "residual":
            # Zero-initialised last layer (as ReZero/Fixup do for residual branches): the untrained
            # network returns its input, so training starts where Gatys from the content starts.
            nn.init.zeros_(self.head[1].weight)
            nn.init.zeros_(self.head[1].bias)
        self.num_norms = 5 + 2 * num_residual

    @property
    def conditional(self) -> bool:
        """Whether the norms take their affine from a style mix or a strength (not their own)."""
        return self.num_styles > 1 or self.strength_input

    def norm_params(self) -> List[Tuple[Tensor, Tensor]]:
        """Every norm's own (weight, bias), in the network's order: (C,), or (num_styles, C)."""
        out: List[Tuple[Tensor, Tensor]] = []
        for block in self.encoder:
            out.append((block.norm.weight, block.norm.bias))
        for res in self.residuals:
            out.append((res.block1.norm.weight, res.block1.norm.bias))
            out.append((res.block2.norm.weight, res.block2.norm.bias))
        for block in self.decoder:
            out.append((block.norm.weight, block.norm.bias))
        return out

    def norm_affine(self, style: Optional[Tensor] = None,
                    strength: Optional[Tensor] = None) -> Optional[NormStats]:
        """The (gamma, beta) of every norm, each (1|N, C) float32, for a style mix and a strength;
        None for a plain network (its norms use their own parameters).

        ``style``: a mix (S,) or (N, S) over this network's styles (a one-hot row is that style;
        the rows of gamma and beta are combined with these weights, as Dumoulin et al. interpolate);
        None: style 0. ``strength``: a scalar, (1,) or (N,) in [0, 1]; None: 1."""
        if not self.conditional:
            return None
        # float32 and elementwise (no matmul for autocast to round to bf16): training under bf16
        # autocast sees the same gamma and beta as the float32 network specialize() builds
        device = self.encoder[0].conv.weight.device
        if style is None:
            mix = torch.zeros(1, self.num_styles, device=device)
            mix[0, 0] = 1.0
        else:
            mix = style.to(device).float().reshape(-1, self.num_styles)
        delta: Optional[Tensor] = None
        net = self.strength_net
        if net is not None:
            s = torch.ones(1, 1, device=device)
            if strength is not None:
                s = strength.to(device).float().reshape(-1, 1)
            first, last = net[0], net[2]
            h = torch.relu(s * first.weight.float().t() + first.bias.float())  # (N, 64): the input is 1-d
            delta = (h.unsqueeze(2) * last.weight.float().t().unsqueeze(0)).sum(1) + last.bias.float()
        out: NormStats = []
        offset = 0
        total = 0  # the MLP's output: every norm's gamma offsets, then every norm's beta offsets
        for w in self.norm_widths:
            total += w
        for weight, bias in self.norm_params():
            if self.num_styles > 1:
                g = (mix.unsqueeze(2) * weight.float().unsqueeze(0)).sum(1)
                b = (mix.unsqueeze(2) * bias.float().unsqueeze(0)).sum(1)
            else:
                g, b = weight.float().view(1, -1), bias.float().view(1, -1)
            c = g.shape[1]
            if delta is not None:
                g = g + delta[:, offset:offset + c]
                b = b + delta[:, total + offset:total + offset + c]
            offset += c
            out.append((g, b))
        return out

    def photo_gain(self, strength: Optional[Tensor]) -> Optional[Tensor]:
        """(N|1, 1, 1, 1) weight of the photo at the output conv for a strength network with
        ``head_input``: 1 - s (no strength: s = 1, gain 0); None for any other network."""
        if not (self.head_input and self.strength_input):
            return None
        device = self.head[1].weight.device
        if strength is None:
            return torch.zeros(1, 1, 1, 1, device=device)
        return 1.0 - strength.to(device).float().reshape(-1, 1, 1, 1)

    def _run(self, x: Tensor, norm_stats: Optional[NormStats],
             keep_stats: bool = True, affine: Optional[NormStats] = None,
             gain: Optional[Tensor] = None) -> Tuple[Tensor, NormStats]:
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
        y = x.index_select(2, reflect_index(h, top, h + ph, x.device))
        y = y.index_select(3, reflect_index(w, left, w + pw, x.device))
        padded = y
        used: NormStats = []
        for block in self.encoder:
            y = block(y, norm_stats, used, keep_stats, affine)
        for block in self.residuals:
            y = block(y, norm_stats, used, keep_stats, affine)
        for block in self.decoder:
            y = block(y, norm_stats, used, keep_stats, affine)
        y = y.to(self.head[1].weight.dtype)
        if self.head_input:
            photo = padded.to(y.dtype)
            if gain is not None:
                photo = photo * gain.to(y.dtype)
            y = torch.cat([y, photo], dim=1)
        y = self.head(y)
        if self.output == "sigmoid":
            y = torch.sigmoid(y)
        else:
            if self.output == "residual":
                y = y + padded.to(y.dtype)
            if not self.training:
                y = y.clamp(0.0, 1.0)
        return y[:, :, top : top + h, left : left + w], used

    def forward(self, x: Tensor, norm_stats: Optional[NormStats] = None, style: Optional[Tensor] = None,
                strength: Optional[Tensor] = None) -> Tensor:
        """x (N,3,H,W) in [0,1] -> (N,3,H,W) in [0,1]. With ``norm_stats`` (from
        :meth:`capture_norm_stats`) every instance norm uses those instead of x's own statistics.
        ``style`` (a mix over the styles) and ``strength``: see :meth:`norm_affine` (ignored by a
        plain network)."""
        return self._run(x, norm_stats, norm_stats is not None, self.norm_affine(style, strength),
                         self.photo_gain(strength))[0]

    @torch.jit.ignore
    def mixed_precision(self, dtype: torch.dtype = torch.bfloat16) -> TransformerNet:
        """In place: every block but the first and the 9x9 output conv in ``dtype`` (their inputs
        are cast at each block), those two in float32: the first conv sees raw pixels at bf16's
        8-bit mantissa and its instance norm then divides by the photo's own contrast, which
        amplifies the rounding (docs/benchmarks.md measures it)."""
        for block in [*self.encoder[1:], *self.residuals, *self.decoder]:
            block.to(dtype)
        return self

    @torch.jit.export
    def capture_norm_stats(self, x: Tensor, style: Optional[Tensor] = None,
                           strength: Optional[Tensor] = None) -> NormStats:
        """One (mean, var) pair, each (N,C,1,1) float32, per norm layer, computed on x (N,3,H,W)."""
        return self._run(x, None, True, self.norm_affine(style, strength), self.photo_gain(strength))[1]

    @torch.jit.ignore
    def specialize(self, style: Optional[Tensor] = None, strength: Optional[float] = None) -> TransformerNet:
        """A plain network that computes this one for a fixed style mix and strength
        (:func:`nst.networks.conditional.specialize`); a plain network returns itself."""
        return specialize(self, style, strength)
