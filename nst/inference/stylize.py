"""One-pass stylization with a trained TransformerNet: tensors and PIL images.

``Stylizer`` wraps a loaded network with its inference options (device, autocast, tiling,
colour preservation, strength, the style of a multi-style model); nst.inference.batch turns (source,
target) jobs into written images.
"""

from __future__ import annotations

import contextlib
import copy
from typing import Any

import torch
from PIL import Image
from torch import Tensor

from nst.errors import NSTError
from nst.inference.color import color_mode, transfer_luminance
from nst.inference.styles import mix_for, style_names
from nst.inference.tiling import needs_tiling, stylize_tiled
from nst.io.image import from_pil, resize, to_pil
from nst.networks.transformer import TransformerNet

_AUTOCAST = {"32": None, "32-true": None, "bf16-mixed": torch.bfloat16, "bf16": torch.bfloat16,
             "bf16-true": torch.bfloat16, "16-mixed": torch.float16, "16": torch.float16}


def autocast_dtype(precision: str | int) -> torch.dtype | None:
    """A precision setting ("32", "bf16-mixed", "16-mixed", ...) -> the autocast dtype (None: float32),
    one-line NSTError for anything else; the Stylizer's and the Upscaler's one reading of it."""
    amp = _AUTOCAST.get(str(precision), ...)
    if amp is ...:
        raise NSTError(f"precision={precision!r}: choose one of {', '.join(_AUTOCAST)}")
    return amp


def _whole(name: str, value: Any, low: int, allow_none: bool = False) -> int | None:
    if allow_none and value in (None, 0):
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        null = " (or null)" if allow_none else ""
        raise NSTError(f"{name}={value!r}: must be a whole number >= {low}{null}")
    return value


class Stylizer:
    """A trained network ready for inference; ``stylizer(img)`` takes a PIL image (-> PIL image,
    alpha kept) or a tensor (3,H,W)/(N,3,H,W) in [0,1] (-> float32 of the same shape and device).

    Options (each also accepted per call): ``strength`` in [0,1] (0 gives the content back: a
    blend toward the photo, or the network's own input for a strength-conditioned model),
    ``style`` (a multi-style model's style, by index or name) or ``style_mix`` (weights over its
    styles, interpolated in the norms), ``preserve_color`` (false | luminance/true), ``tile_size``
    (px; longer sides are tiled; null: never),
    ``tile_overlap`` (px), ``tile_stats_size`` (longer side of the copy the shared instance-norm
    statistics come from; null: tile_size).
    """

    def __init__(self, net: TransformerNet, metadata: dict | None = None, *,
                 device: str | torch.device = "cpu", precision: str | int = "32",
                 channels_last: bool = False, backend: str = "auto", **options: Any) -> None:
        """``precision``: "32", or "bf16-mixed" (a network with ``mixed_precision``, as
        TransformerNet, keeps its first block and output conv in float32, the rest in bf16; any
        other runs under autocast), "16-mixed" (autocast). ``backend``: "auto" (on the CPU in
        float32, ONNX Runtime, else OpenVINO, whichever is installed: nst.models.runtimes; else
        torch; the environment variable NST_BACKEND=torch turns it off), "torch", "onnxruntime" or
        "openvino" (the faster, but see nst.models.graphs.IN_PROCESS_ORDER). ``channels_last``: NHWC
        tensors, which pay on GPUs (on this project's CPU the fused instance norm makes NCHW faster)."""
        self.device = torch.device(device)
        self.amp: torch.dtype | None = autocast_dtype(precision)
        self.channels_last = bool(channels_last)
        self._backend_choice = backend
        self.source = net.to(self.device).eval().requires_grad_(False)
        self.metadata = dict(metadata or {})
        self.styles = style_names(self.source, self.metadata)
        self.style: int | str | None = None
        self.style_mix: list[float] | None = None
        self.strength, self.preserve_color = 1.0, "none"
        self.tile_size, self.tile_overlap, self.tile_stats_size = 1024, 64, None
        # condition -> (prepared net, autocast on, backend); shared with with_options() copies, so a
        # per-call style or strength specializes (and exports its graphs) once, not per call
        self._cache: dict[tuple, tuple] = {}
        self._set(options)
        self._prepared()  # a bad precision/backend, or a network that does not export, fails now

    @property
    def conditional(self) -> bool:
        """Whether the network takes a style mix or a strength (nst.networks.transformer)."""
        return bool(getattr(self.source, "conditional", False))

    @property
    def strength_conditioned(self) -> bool:
        """Whether ``strength`` is the network's own input (else: a blend toward the photo)."""
        return bool(getattr(self.source, "strength_input", False))

    def _condition(self) -> tuple:
        """The key of the network the options ask for: (style mix or None, strength or None). Also
        the options' check: a bad style or mix fails here, when it is set (plain models too)."""
        mix = mix_for(self.styles, self.style, self.style_mix)
        strength = self.strength if self.strength_conditioned else None
        return (None if mix is None or not self.conditional else tuple(mix.tolist()), strength)

    def _prepared(self) -> tuple:
        """(the network to run, autocast on?, backend) for the current style and strength: a
        conditional network is specialized to them (one plain network per condition, cached)."""
        from nst.models import runtimes

        key = self._key
        if key in self._cache:
            return self._cache[key]
        net = self.source
        if self.conditional:
            mix = None if key[0] is None else torch.tensor(key[0], device=self.device)
            net = net.specialize(mix, key[1]).to(self.device).eval().requires_grad_(False)
        autocast_on = self.amp is not None
        if self.amp is torch.bfloat16 and hasattr(net, "mixed_precision"):
            net = copy.deepcopy(net).mixed_precision(self.amp)  # the caller's net stays float32
            autocast_on = False
        if self.channels_last:
            net = net.to(memory_format=torch.channels_last)
        backend = runtimes.choose(self._backend_choice, self.device, self.amp, net)
        if backend != "torch":
            net = runtimes.OnnxNet(net, backend)
        if len(self._cache) >= 8:  # a sweep over many strengths keeps the 8 newest
            self._cache.pop(next(iter(self._cache)))
        self._cache[key] = (net, autocast_on, backend)
        return self._cache[key]

    @property
    def net(self):
        """The network that runs (specialized to the chosen style and strength; maybe an OnnxNet)."""
        return self._prepared()[0]

    @net.setter
    def net(self, value) -> None:
        """Run ``value`` instead (e.g. a torch.compile'd copy), for the current style and strength
        only: another style or strength prepares its own network from ``source`` again."""
        _, autocast_on, backend = self._prepared()
        self._cache[self._key] = (value, autocast_on, backend)

    @property
    def backend(self) -> str:
        return self._prepared()[2]

    def _set(self, options: dict[str, Any]) -> None:
        for key, value in options.items():
            if key == "style":
                self.style = value
                if value is not None and "style_mix" not in options:
                    self.style_mix = None  # a style chosen per call replaces the stored mix
            elif key == "style_mix":
                self.style_mix = None if value is None else list(value)
                if value is not None and "style" not in options:
                    self.style = None
            elif key == "strength":
                if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
                    raise NSTError(f"strength={value!r}: must be a number from 0 (the content) "
                                   "to 1 (full style)")
                self.strength = float(value)
            elif key == "preserve_color":
                mode = color_mode(value)
                if mode == "histogram":
                    raise NSTError("preserve_color=histogram recolours the style image before training; "
                                   "when stylizing use luminance (true)")
                self.preserve_color = mode
            elif key == "tile_size":
                self.tile_size = _whole(key, value, 16, allow_none=True)
            elif key == "tile_overlap":
                self.tile_overlap = _whole(key, value, 0)
            elif key == "tile_stats_size":
                self.tile_stats_size = _whole(key, value, 16, allow_none=True)
            else:
                raise TypeError(f"Stylizer: unknown option {key!r}")
        self._key = self._condition()  # checks the style choice; the hot path reads the key, not this
        if self.tile_size and self.tile_overlap > self.tile_size // 2:
            raise NSTError(f"tile_overlap={self.tile_overlap}: must be at most half of "
                           f"tile_size={self.tile_size}")

    def with_options(self, **options: Any) -> Stylizer:
        """A copy with other options, sharing the network."""
        twin = copy.copy(self)
        twin._set(options)
        return twin

    def __call__(self, image: Image.Image | Tensor, **options: Any) -> Image.Image | Tensor:
        me = self.with_options(**options) if options else self
        if isinstance(image, Image.Image):
            return me._pil(image)
        if isinstance(image, Tensor):
            if image.dim() == 3:
                return me.stylize_tensor(image[None])[0]
            return me.stylize_tensor(image)
        raise TypeError(f"expected a PIL image or a tensor, got {type(image).__name__}")

    def _pil(self, pil: Image.Image) -> Image.Image:
        alpha = None
        if pil.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in pil.info:
            pil = pil.convert("RGBA")
            alpha = from_pil(pil.getchannel("A"))[:, :1]
        return to_pil(self.stylize_tensor(from_pil(pil)), alpha)

    def _autocast(self) -> contextlib.AbstractContextManager:
        if not self._prepared()[1]:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.amp)

    def _forward(self, x: Tensor, stats: list | None = None) -> Tensor:
        """x (N,3,H,W) anywhere -> stylized (N,3,H,W) float32 on self.device."""
        x = x.to(self.device, torch.float32)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        if stats is not None and x.shape[0] > 1 and stats[0][0].shape[0] == 1:
            # one image's statistics for a batch (the frames of a clip): the exported graphs do not
            # broadcast a batch axis their export named the image's
            n = x.shape[0]
            stats = [(m.to(self.device).expand(n, -1, -1, -1), v.to(self.device).expand(n, -1, -1, -1))
                     for m, v in stats]
        with self._autocast():
            y = self.net(x, norm_stats=stats)
        return y.float().contiguous()

    def _capture(self, x: Tensor) -> list:
        x = x.to(self.device, torch.float32)
        with self._autocast():
            return self.net.capture_norm_stats(x)

    @torch.no_grad()
    def capture_stats(self, x: Tensor) -> list:
        """The instance-norm statistics of one image (1,3,H,W), from the same downscaled copy the
        tiles of a large image share (``tile_stats_size``, else ``tile_size``), for
        ``stylize_tensor(frames, stats=...)``: the frames of a clip normalized alike flicker less."""
        side = self.tile_stats_size or self.tile_size
        if side and max(x.shape[-2:]) > side:
            x = resize(x.float().cpu(), max_side=side)
        return self._capture(x[:1])

    def _finish(self, y: Tensor, content: Tensor) -> Tensor:
        """Pixel-wise: the content's colours, then the blend toward the content (lerp: exact at 0)."""
        content = content.to(y.device, torch.float32)
        if self.preserve_color == "luminance":
            y = transfer_luminance(y, content)
        if self.strength < 1.0 and not self.strength_conditioned:  # else the network did it
            y = torch.lerp(content, y, self.strength)
        return y

    @torch.no_grad()
    def stylize_tensor(self, x: Tensor, stats: list | None = None) -> Tensor:
        """(N,3,H,W) in [0,1] -> (N,3,H,W) float32 in [0,1] on x's device; tiled when a side > tile_size.
        ``stats`` (from :meth:`capture_stats`): every image and tile normalized with them."""
        if x.dim() != 4 or x.shape[1] != 3:
            raise ValueError(f"expected (N,3,H,W) or (3,H,W), got {tuple(x.shape)}")
        h, w = x.shape[-2:]
        if not needs_tiling(h, w, self.tile_size):
            return self._finish(self._forward(x, stats), x).to(x.device)
        outs = [stylize_tiled(lambda t, s: self._forward(t, s).cpu(), self._capture, x[i:i + 1].float().cpu(),
                              self.tile_size, self.tile_overlap, self.tile_stats_size, self._finish, stats)
                for i in range(x.shape[0])]
        return torch.cat(outs).to(x.device)
