"""Stability terms for a feed-forward network T (Gupta et al. 2017, "Characterizing and Improving
Stability in Neural Style Transfer"; the noise term of later noise-resilience regularizers).

For a batch x (N,3,H,W) and the network's output y = T(x):
- **warp**: a copy of x moved by a small random shift and zoom whose flow is known exactly (an
  affine map through ``grid_sample``) should be stylized into the same moved output:
  ``mean over valid pixels of (T(warp(x)) - warp(T(x)))^2``;
- **noise**: a copy with small Gaussian noise should give the same output:
  ``mean((T(x + eps) - T(x))^2)``.

No optical flow and no video: what a clip's next frame does to a network (a little motion, a
little sensor and codec noise) is simulated on the training crops. ``weight`` multiplies both
terms; they are mean squared differences of [0, 1] pixels (a plain network's warping error on a
pan is about 0.003), so useful weights are in the hundreds.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def random_affine(n: int, height: int, width: int, max_shift: float, max_zoom: float,
                  device: torch.device | None = None) -> Tensor:
    """(n, 2, 3) affine_grid matrices: zoom in [1/(1+max_zoom), 1+max_zoom] about the centre and a
    shift of up to ``max_shift`` px in each direction."""
    zoom = torch.exp((torch.rand(n, device=device) * 2 - 1) * torch.log1p(torch.tensor(max_zoom)))
    shift = (torch.rand(n, 2, device=device) * 2 - 1) * max_shift
    theta = torch.zeros(n, 2, 3, device=device)
    theta[:, 0, 0] = theta[:, 1, 1] = 1.0 / zoom
    theta[:, 0, 2] = 2 * shift[:, 0] / width
    theta[:, 1, 2] = 2 * shift[:, 1] / height
    return theta


def warp(x: Tensor, theta: Tensor) -> tuple[Tensor, Tensor]:
    """x (N,C,H,W) resampled by ``theta`` (bilinear; border pixels repeated outside), and the
    (N,1,H,W) mask of the pixels that came from inside x."""
    grid = F.affine_grid(theta.to(x.dtype), list(x.shape), align_corners=False)
    out = F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)
    valid = (grid.abs() <= 1).all(dim=-1, keepdim=True).permute(0, 3, 1, 2).to(x.dtype)
    return out, valid


def _twice(value):
    return torch.cat([value, value]) if isinstance(value, Tensor) and value.dim() >= 1 else value


class StabilityLoss(nn.Module):
    """``forward(net, x, y, **net_kwargs)`` -> ``{"stability": weighted sum, "stability/warp",
    "stability/noise"}`` (the last two unweighted and detached). ``net_kwargs`` are those the
    network got for ``x`` (a conditional network's style or strength), repeated for the copies."""

    def __init__(self, weight: float, max_shift: float = 4.0, max_zoom: float = 0.05,
                 noise: float = 0.03) -> None:
        super().__init__()
        if weight < 0 or max_shift < 0 or max_zoom < 0 or noise < 0:
            raise ValueError(f"StabilityLoss: weight, max_shift, max_zoom and noise must be >= 0, got "
                             f"{weight}, {max_shift}, {max_zoom}, {noise}")
        self.weight, self.max_shift, self.max_zoom, self.noise = float(weight), float(max_shift), \
            float(max_zoom), float(noise)

    def forward(self, net: Callable[..., Tensor], x: Tensor, y: Tensor, **net_kwargs) -> dict[str, Tensor]:
        n, _, h, w = x.shape
        theta = random_affine(n, h, w, self.max_shift, self.max_zoom, x.device)
        xw, valid = warp(x.float(), theta)
        yw, _ = warp(y.float(), theta)
        if self.noise > 0:
            xn = (x.float() + self.noise * torch.randn_like(x, dtype=torch.float32)).clamp(0, 1)
            twice = {k: _twice(v) for k, v in net_kwargs.items()}
            both = net(torch.cat([xw, xn]).to(x.dtype), **twice).float()
            noise_term = F.mse_loss(both[n:], y.float())
        else:  # no noise copy: T(x) again would only cost a pass and add 0
            both = net(xw.to(x.dtype), **net_kwargs).float()
            noise_term = torch.zeros((), device=x.device)
        warp_term = ((both[:n] - yw) ** 2 * valid).sum() / (valid.sum() * 3).clamp_min(1)
        return {"stability": self.weight * (warp_term + noise_term),
                "stability/warp": warp_term.detach(), "stability/noise": noise_term.detach()}
