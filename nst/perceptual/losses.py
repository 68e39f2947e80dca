"""Perceptual losses: Gram matrices, content, style and total-variation terms, and PerceptualLoss.

Plain functions first (testable alone), then one module that both the Gatys optimizer and the
trainer use unchanged.

Departures from the papers, on purpose:
- Gram matrices are normalized by C*H*W (Johnson et al.), not left raw (Gatys et al.), so a
  layer's style term does not grow with the image size.
- With ``normalize=True`` (the default) every layer's term is divided by the mean square of its
  target (the content activations, or the target Gram matrix). Each term is then a relative error
  of order one, whatever the magnitude of the features: the Caffe-convention HED features are two
  orders of magnitude larger than torchvision's, and their squares four, and a weight set tuned on
  one weights source would be meaningless on the other. It also evens out the layers, which the
  papers balance with per-layer weights instead.
- ``style_moments="centered"`` (a choice, off by default for older models) matches each layer's
  mean and its centered Gram matrix (covariance) as two relative errors, instead of the raw Gram.
  A raw Gram is the covariance plus the outer product of the mean, and after relu the mean
  dominates: relative to the target's mean square, a one-hue picture that gets the painting's
  average colour right scores almost as well on relu1_2 as one with its whole palette. The
  centered form gives the palette and the strokes (the spread) their own term (docs/training.md).
- TV is the mean squared difference of neighbouring pixels (the L2 form of Johnson's code),
  averaged per pixel so its weight does not depend on the image size.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from nst.errors import NSTError
from nst.perceptual.stability import StabilityLoss
from nst.perceptual.vgg import VGGFeatures

_EPS = 1e-8


def _wide(t: Tensor) -> Tensor:
    """At least float32: bf16/fp16 activations are widened (their sums of squares lose digits),
    float64 stays float64 (so that gradcheck runs on these very functions)."""
    return t if t.dtype == torch.float64 else t.float()


STYLE_MOMENTS = ("raw", "centered")


def gram_matrix(feat: Tensor, centered: bool = False) -> Tensor:
    """(N, C, H, W) -> (N, C, C) Gram matrices normalized by C*H*W, in float32 even under autocast;
    ``centered``: of the features minus their per-channel mean (C times the covariance)."""
    n, c, h, w = feat.shape
    with torch.autocast(device_type=feat.device.type, enabled=False):
        f = _wide(feat).reshape(n, c, h * w)
        if centered:
            f = f - f.mean(-1, keepdim=True)
        return torch.bmm(f, f.transpose(1, 2)) / (c * h * w)


def feature_mean(feat: Tensor) -> Tensor:
    """(N, C, H, W) -> (N, C) per-channel means, in float32 even under autocast."""
    with torch.autocast(device_type=feat.device.type, enabled=False):
        return _wide(feat).mean((-2, -1))


def _sq_error(x: Tensor, target: Tensor, normalize: bool) -> Tensor:
    """Mean squared error in float32, optionally relative to the target's mean square."""
    x, target = _wide(x), _wide(target)
    err = F.mse_loss(x, target.expand_as(x))
    if normalize:
        err = err / (target.detach().pow(2).mean() + _EPS)
    return err


def content_loss(feat: Tensor, target: Tensor, normalize: bool = True) -> Tensor:
    """MSE between activations (N, C, H, W); relative to the target's mean square if ``normalize``."""
    return _sq_error(feat, target, normalize)


def style_loss(gram: Tensor, target: Tensor, normalize: bool = True) -> Tensor:
    """MSE between Gram matrices (N, C, C) and a target (1 or N, C, C)."""
    return _sq_error(gram, target, normalize)


def mean_loss(mean: Tensor, target: Tensor, normalize: bool = True) -> Tensor:
    """MSE between per-channel means (N, C) and a target (1 or N, C)."""
    return _sq_error(mean, target, normalize)


def tv_loss(img: Tensor) -> Tensor:
    """Mean squared difference of vertical and horizontal neighbours of (N, C, H, W)."""
    img = _wide(img)
    dh = (img[..., 1:, :] - img[..., :-1, :]).pow(2)
    dw = (img[..., :, 1:] - img[..., :, :-1]).pow(2)
    zero = img.new_zeros(())
    return (dh.mean() if dh.numel() else zero) + (dw.mean() if dw.numel() else zero)


def blend_weights(count: int, blend: Sequence[float] | None) -> list[float]:
    """Validated, normalized blend weights for ``count`` style images."""
    if blend is None:
        return [1.0 / count] * count
    blend = [float(b) for b in blend]
    if len(blend) != count:
        raise ValueError(f"style_blend has {len(blend)} weights for {count} style images")
    if any(b < 0 for b in blend) or sum(blend) <= 0:
        raise ValueError(f"style_blend={blend}: weights must be >= 0 and not all zero")
    total = sum(blend)
    return [b / total for b in blend]


class PerceptualLoss(nn.Module):
    """Content + style + TV loss through one frozen VGG.

    Args:
        vgg: the feature extractor; its taps must cover the content and style layers.
        content_layers: ``{name: weight}`` (or a list, weight 1 each).
        style_layers: ``{name: weight}`` (or a list, weight 1 each).
        content_weight, style_weight, tv_weight: the overall weights of the three terms.
        pixel_weight: weight of a pixel MSE against the target image (super-resolution's mix of
            feature and pixel losses; a strength network's anchor to the photo; 0: none). Needs
            the target as an image, not as features.
        normalize: divide each layer's term by its target's mean square (see the module doc).
        stability_weight: weight of the network's stability terms (Gupta et al. 2017; 0: none),
            ``stability`` their settings (max_shift px, max_zoom, noise): nst.perceptual.stability.
        style_moments: ``raw`` (the Gram matrix, Gatys et al.) or ``centered`` (the mean and the
            centered Gram matrix, two terms; see the module doc).

    ``set_style(images, blend)`` stores one set of Gram targets per style image, (S, C, C) per
    layer, and the blend weights, as buffers (they follow ``.to(device)``). ``forward(img, content,
    style=None)`` scores against the blend of all styles, or with ``style`` (N,) indices each image
    against its own style (many styles in one network); ``style_scale`` multiplies the style weight
    (a strength-conditioned network's drawn strength s), ``pixel_scale`` the pixel weight (1 - s
    there: the photo anchor, see nst.training.conditions.RandomStrength). It returns a dict:
    ``loss`` (the weighted total), ``content``, ``style``, ``tv`` (weighted terms) and
    ``content/<layer>``, ``style/<layer>`` (unweighted per-layer terms), all detached except ``loss``.
    """

    def __init__(self, vgg: VGGFeatures, content_layers: Mapping[str, float] | Sequence[str],
                 style_layers: Mapping[str, float] | Sequence[str], content_weight: float = 1.0,
                 style_weight: float = 1.0, tv_weight: float = 0.0, normalize: bool = True,
                 pixel_weight: float = 0.0, stability_weight: float = 0.0,
                 stability: Mapping[str, float] | None = None, style_moments: str = "raw"):
        super().__init__()
        if style_moments not in STYLE_MOMENTS:
            raise NSTError(f"style_moments={style_moments!r}: choose {' or '.join(STYLE_MOMENTS)}")
        self.centered = style_moments == "centered"
        self.content_layers = _as_weights(content_layers)
        self.style_layers = _as_weights(style_layers)
        missing = [n for n in {**self.content_layers, **self.style_layers} if n not in vgg.layers]
        if missing:
            raise ValueError(f"the VGG does not tap {', '.join(missing)}")
        self.vgg = vgg
        self.content_weight = float(content_weight)
        self.style_weight = float(style_weight)
        self.tv_weight = float(tv_weight)
        self.pixel_weight = float(pixel_weight)
        # the network's stability terms (nst.perceptual.stability): they need the network, so the
        # training module calls them beside this loss; None when the weight is 0
        self.stability = StabilityLoss(float(stability_weight), **dict(stability or {})) \
            if stability_weight else None
        self.normalize = bool(normalize)
        self._has_style = False

    @property
    def layers(self) -> list[str]:
        """Every layer this loss reads, in VGG order."""
        return [n for n in self.vgg.layers if n in self.content_layers or n in self.style_layers]

    @torch.no_grad()
    def set_style(self, images: Sequence[Tensor], blend: Sequence[float] | None = None,
                  names: Sequence[str] | None = None) -> None:
        """Compute the Gram targets of (1, 3, H, W) style images once, blended by ``blend``.

        ``names`` (file names) go into the one-line error when an image is too small for the VGG."""
        if not images:
            raise ValueError("set_style needs at least one style image")
        need = self.vgg.min_size(list(self.style_layers))
        for i, img in enumerate(images):
            if min(img.shape[-2:]) < need:
                name = names[i] if names else f"style image {i + 1}"
                raise NSTError(f"{name}: style image of {img.shape[-1]}x{img.shape[-2]} px is too small "
                               f"for the VGG layers used (needs at least {need} px per side)")
        weights = blend_weights(len(images), blend)
        targets: dict[str, list[Tensor]] = {name: [] for name in self.style_layers}
        means: dict[str, list[Tensor]] = {name: [] for name in self.style_layers}
        for img in images:
            feats = self.vgg(img.to(self._device()), layers=list(self.style_layers))
            for name in self.style_layers:
                targets[name].append(gram_matrix(feats[name], self.centered).mean(0))
                if self.centered:
                    means[name].append(feature_mean(feats[name]).mean(0))
        # Not persistent: targets are recomputed from the style images, checkpoints stay small.
        for name, grams in targets.items():
            self.register_buffer(f"style_targets_{name}", torch.stack(grams), persistent=False)
            if self.centered:
                self.register_buffer(f"style_means_{name}", torch.stack(means[name]), persistent=False)
        self.register_buffer("style_blend", torch.tensor(weights, device=self._device()), persistent=False)
        self._has_style = True

    @property
    def num_styles(self) -> int:
        return int(self.style_blend.numel()) if self._has_style else 0

    def style_target(self, name: str, style: Tensor | None = None, kind: str = "targets") -> Tensor:
        """Layer ``name``'s Gram target: the blend of all styles (1, C, C), or per image (N, C, C)
        for ``style`` indices (N,); ``kind="means"``: its mean target, (1 or N, C)."""
        grams = getattr(self, f"style_{kind}_{name}")
        if style is None:
            blend = self.style_blend.to(grams.dtype).view(-1, *[1] * (grams.dim() - 1))
            return (blend * grams).sum(0, keepdim=True)
        return grams[style.to(grams.device)]

    @torch.no_grad()
    def content_targets(self, content: Tensor) -> dict[str, Tensor]:
        """Content activations of (N, 3, H, W) images, detached, to reuse across steps.

        Runs the VGG only as deep as the content layers (relu2_2 for Johnson's loss), not to the
        deepest style layer."""
        feats = self.vgg(content, layers=list(self.content_layers))
        return {n: feats[n].detach() for n in self.content_layers}

    def forward(self, img: Tensor, content: Tensor | Mapping[str, Tensor] | None = None,
                style: Tensor | None = None, style_scale: float = 1.0,
                pixel_scale: float = 1.0) -> dict[str, Tensor]:
        if self.style_layers and not self._has_style:
            raise RuntimeError("PerceptualLoss.set_style() must be called before the forward pass")
        image = content if isinstance(content, Tensor) else None
        if isinstance(content, Tensor):
            content = self.content_targets(content)
        feats = self.vgg(img, layers=self.layers)
        out: dict[str, Tensor] = {}
        zero = img.new_zeros((), dtype=torch.float32)
        c_total = zero
        if content is not None:
            for name, w in self.content_layers.items():
                term = content_loss(feats[name], content[name], self.normalize)
                out[f"content/{name}"] = term.detach()
                c_total = c_total + w * term
        s_total = zero
        for name, w in self.style_layers.items():
            term = style_loss(gram_matrix(feats[name], self.centered), self.style_target(name, style),
                              self.normalize)
            if self.centered:
                term = term + mean_loss(feature_mean(feats[name]), self.style_target(name, style, "means"),
                                        self.normalize)
            out[f"style/{name}"] = term.detach()
            s_total = s_total + w * term
        tv = tv_loss(img) if self.tv_weight else zero
        c_total, tv = self.content_weight * c_total, self.tv_weight * tv
        s_total = self.style_weight * float(style_scale) * s_total
        total = c_total + s_total + tv
        if self.pixel_weight:
            if image is None:
                raise ValueError("pixel_weight needs the target image, not its features")
            pixel = self.pixel_weight * float(pixel_scale) * F.mse_loss(_wide(img), _wide(image))
            total = total + pixel
            out["pixel"] = pixel.detach()
        out.update(loss=total, content=c_total.detach(), style=s_total.detach(), tv=tv.detach())
        return out

    def _device(self) -> torch.device:
        return self.vgg.mean.device


def _as_weights(layers: Mapping[str, float] | Sequence[str]) -> dict[str, float]:
    if isinstance(layers, Mapping):
        return {str(k): float(v) for k, v in layers.items()}
    return {str(n): 1.0 for n in layers}


class PixelLoss(nn.Module):
    """Mean squared error between pixels, for training a network to reproduce a target image (the
    content-preserving start of ``scripts/repro/train_identity.py``; Johnson et al.'s super-resolution
    baseline). ``forward(img, target)`` returns ``loss`` and ``pixel`` (the same value, detached)."""

    def forward(self, img: Tensor, target: Tensor) -> dict[str, Tensor]:
        err = F.mse_loss(img.float(), target.float())
        return {"loss": err, "pixel": err.detach()}
