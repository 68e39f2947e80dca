"""The self-describing model file (safetensors + JSON metadata), Lightning checkpoints, TorchScript, ONNX.

A model file is one ``.safetensors`` whose string metadata holds ``format`` (``nst-transformer``)
and ``nst``: a JSON document ``{"format", "format_version", "arch", "nst_version", ...provenance}``.
``arch`` is ``TransformerNet.config``, so loading needs neither Hydra nor Lightning, and nothing
here ever unpickles arbitrary objects (``torch.load`` only with ``weights_only=True``).
"""

from __future__ import annotations

import json
import os
import pickle
import re
import warnings
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

import nst
from nst.errors import NSTError
from nst.files import atomic_path
from nst.shipped import resolve
from nst.transformer import TransformerNet

FORMAT = "nst-transformer"
FORMAT_VERSION = 1
_RESERVED = ("format", "format_version", "arch", "nst_version")


def _plain_net(net: torch.nn.Module) -> TransformerNet:
    """The TransformerNet itself, also when wrapped by ``torch.compile``."""
    net = getattr(net, "_orig_mod", net)
    if not isinstance(net, TransformerNet):
        raise TypeError(f"expected a TransformerNet, got {type(net).__name__}")
    return net


def _finite_state(path: Path, net: TransformerNet) -> dict[str, torch.Tensor]:
    """float32, contiguous, CPU copies of the weights; NSTError when any is NaN/inf."""
    state = {k: v.detach().to("cpu", torch.float32).contiguous() for k, v in net.state_dict().items()}
    bad = [k for k, v in state.items() if not torch.isfinite(v).all()]
    if bad:
        raise NSTError(f"{path}: refusing to export: weights contain NaN/inf (in {', '.join(bad[:3])})")
    return state


def save_model(path: str | os.PathLike, net: TransformerNet, metadata: dict[str, Any]) -> Path:
    """Write ``net`` and its provenance to one .safetensors file, atomically.

    ``metadata`` must be JSON-serializable (Paths and other objects are stored as their ``str``).
    The keys ``format``, ``format_version``, ``arch`` and ``nst_version`` always describe the file
    actually written, so the document returned by :func:`load_model` can be saved again as is.
    """
    path = Path(path)
    net = _plain_net(net)
    state = _finite_state(path, net)
    doc = {k: v for k, v in metadata.items() if k not in _RESERVED}
    doc = {"format": FORMAT, "format_version": FORMAT_VERSION, "arch": dict(net.config),
           "nst_version": nst.__version__, **doc}
    header = {"format": FORMAT, "nst": json.dumps(doc, default=str, sort_keys=True)}
    with atomic_path(path) as tmp:
        save_file(state, str(tmp), metadata=header)
    return path


def _build(
    path: Path, arch: Any, state: dict[str, torch.Tensor], device: str | torch.device
) -> TransformerNet:
    """A TransformerNet(**arch) holding ``state``; one-line NSTError when the two do not fit."""
    if not isinstance(arch, dict):
        raise NSTError(f"{path}: architecture metadata is {type(arch).__name__}, "
                       "expected a dict of TransformerNet arguments")
    try:
        net = TransformerNet(**arch)
    except (TypeError, ValueError) as e:
        raise NSTError(f"{path}: architecture metadata {arch} does not fit TransformerNet ({e})") from e
    expected = net.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    wrong = [f"{k} {tuple(state[k].shape)} vs {tuple(v.shape)}" for k, v in expected.items()
             if k in state and state[k].shape != v.shape]
    if missing or unexpected or wrong:
        found = (("missing", missing), ("unexpected", unexpected), ("shape", wrong))
        parts = [f"{label}: {', '.join(items[:3])}{' ...' if len(items) > 3 else ''}"
                 for label, items in found if items]
        raise NSTError(f"{path}: weights do not match architecture {arch} ({'; '.join(parts)})")
    bad = [k for k, v in state.items() if v.is_floating_point() and not torch.isfinite(v).all()]
    if bad:
        raise NSTError(f"{path}: weights contain NaN/inf (in {', '.join(bad[:3])})")
    net.load_state_dict(state)
    return net.to(device).eval()


def _why(e: BaseException) -> str:
    """One line for an exception from a third-party reader."""
    lines = str(e).strip().splitlines()
    return f"{type(e).__name__}: {lines[0]}" if lines else type(e).__name__


def _require_file(path: Path) -> None:
    if path.is_dir():  # "no such model file" would send the user looking for a missing path
        raise NSTError(f"{path}: is a folder, not a model file")
    if not path.is_file():
        raise NSTError(f"{path}: no such model file")


def load_model(
    path: str | os.PathLike, device: str | torch.device = "cpu"
) -> tuple[TransformerNet, dict[str, Any]]:
    """(net in eval mode on ``device``, the metadata document) from a file written by :func:`save_model`."""
    path = Path(path)
    _require_file(path)
    try:
        with safe_open(str(path), framework="pt", device="cpu") as f:
            header = f.metadata() or {}
            state = {k: f.get_tensor(k) for k in f.keys()}
    except (SafetensorError, OSError, ValueError) as e:
        raise NSTError(f"{path}: not a safetensors model file ({_why(e)})") from e
    if header.get("format") != FORMAT or "nst" not in header:
        raise NSTError(f"{path}: not an nst model file "
                       f"(metadata format is {header.get('format')!r}, expected {FORMAT!r})")
    try:
        doc = json.loads(header["nst"])
    except json.JSONDecodeError as e:
        raise NSTError(f"{path}: model metadata is not valid JSON ({e})") from e
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise NSTError(f"{path}: model metadata does not describe an {FORMAT} file")
    version = doc.get("format_version")
    if not isinstance(version, int) or version < 1:
        raise NSTError(f"{path}: model metadata has an invalid format_version {version!r}")
    if version > FORMAT_VERSION:
        raise NSTError(f"{path}: format_version {version} is newer than this nst reads "
                       f"({FORMAT_VERSION}); upgrade nst")
    return _build(path, doc.get("arch"), state, device), doc


def load_lightning_checkpoint(
    path: str | os.PathLike, device: str | torch.device = "cpu"
) -> tuple[TransformerNet, dict[str, Any]]:
    """(net, metadata) from a FastStyleModule checkpoint: ``hyper_parameters["net_config"]`` is
    the architecture, the ``net.``-prefixed state-dict entries are its weights, and the metadata is
    ``hyper_parameters["export_metadata"]`` plus ``arch``. Loaded with ``weights_only=True``."""
    path = Path(path)
    _require_file(path)
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        # weights_only names the object it refused (a crafted payload, or e.g. a Path in hparams)
        found = re.search(r"GLOBAL (\S+)", str(e))
        if found:
            raise NSTError(f"{path}: refusing to load: the checkpoint pickles {found.group(1)}, not plain "
                           "weights (torch.load weights_only=True)") from e
        raise NSTError(f"{path}: not a readable checkpoint (weights_only unpickling failed)") from e
    except Exception as e:  # torch.load raises RuntimeError, EOFError, ... on files that are no checkpoint
        raise NSTError(f"{path}: not a readable checkpoint ({_why(e)})") from e
    if not isinstance(ckpt, dict) or not isinstance(ckpt.get("state_dict"), dict):
        raise NSTError(f"{path}: not a Lightning checkpoint (no state_dict)")
    hparams = ckpt.get("hyper_parameters") or {}
    arch = hparams.get("net_config") if isinstance(hparams, dict) else None
    if arch is None:
        raise NSTError(f"{path}: checkpoint has no hyper_parameters['net_config'] "
                       "(the TransformerNet arguments)")
    state = {k[len("net."):]: v for k, v in ckpt["state_dict"].items() if k.startswith("net.")}
    # a module that trained ``torch.compile(net)`` stores ``net._orig_mod.*``
    state = {k[len("_orig_mod."):] if k.startswith("_orig_mod.") else k: v for k, v in state.items()}
    if not state:
        raise NSTError(f"{path}: checkpoint state_dict has no 'net.' weights")
    net = _build(path, dict(arch) if isinstance(arch, dict) else arch, state, device)
    extra = hparams.get("export_metadata")
    return net, {**(extra if isinstance(extra, dict) else {}), "arch": dict(net.config)}


def load_any(
    path: str | os.PathLike, device: str | torch.device = "cpu"
) -> tuple[TransformerNet, dict[str, Any]]:
    """:func:`load_model` for .safetensors, :func:`load_lightning_checkpoint` for .ckpt/.pt/.pth;
    a bare name (``starry_night``) is a shipped model (:mod:`nst.shipped`)."""
    path = resolve(path)
    suffix = path.suffix.lower()
    if suffix == ".safetensors":
        return load_model(path, device)
    if suffix in (".ckpt", ".pt", ".pth"):
        return load_lightning_checkpoint(path, device)
    raise NSTError(f"{path}: unknown model file type {suffix or '(none)'!r} "
                   "(expected .safetensors, .ckpt or .pt)")


def warm_start(net: TransformerNet, spec: str | os.PathLike) -> dict[str, Any]:
    """Copy the weights of the model ``spec`` (a file or a shipped name) into ``net``, which must
    be of the same architecture; returns that model's metadata. One-line NSTError otherwise."""
    source, meta = load_any(spec)
    if dict(source.config) != dict(net.config):
        raise NSTError(f"init_from={spec}: that model is a {source.config} network, this run builds "
                       f"{net.config} (choose model=... settings that match it)")
    net.load_state_dict(source.state_dict())
    return meta


# The legacy exporter and torch.jit.script announce their deprecation on every call; nothing to act on.
_QUIET = ("You are using the legacy TorchScript-based ONNX export", "The feature will be removed",
          "`torch.jit.script` is deprecated", "Constant folding - Only steps=1")


def _export_copy(path: Path, net: torch.nn.Module) -> TransformerNet:
    """A float32 CPU twin in eval mode (the caller's net keeps its device and mode); refuses NaN/inf."""
    net = _plain_net(net)
    twin = TransformerNet(**net.config)
    twin.load_state_dict(_finite_state(path, net))
    return twin.eval()


def export_torchscript(net: TransformerNet, path: str | os.PathLike) -> Path:
    """Write ``torch.jit.script(net)``: any batch, height and width; keeps ``capture_norm_stats``."""
    path = Path(path)
    twin = _export_copy(path, net)
    with warnings.catch_warnings():
        for message in _QUIET:
            warnings.filterwarnings("ignore", message=message)
        scripted = torch.jit.script(twin)
    with atomic_path(path) as tmp:
        scripted.save(str(tmp))
    return path


def export_onnx(net: TransformerNet, path: str | os.PathLike, opset: int = 17) -> Path:
    """Write an ONNX graph ``image`` (N,3,H,W) -> ``stylized`` (N,3,H,W) with N, H and W dynamic.

    Uses the TorchScript-based exporter (``dynamo=False``): the network has no branch on its input
    size, so the trace keeps H and W dynamic, and it honours opset 17 (the dynamo exporter emits >= 18).
    """
    path = Path(path)
    twin = _export_copy(path, net)
    axes = {0: "batch", 2: "height", 3: "width"}
    with warnings.catch_warnings(), torch.no_grad(), atomic_path(path) as tmp:
        for message in _QUIET:
            warnings.filterwarnings("ignore", message=message)
        torch.onnx.export(twin, (torch.rand(1, 3, 37, 45),), str(tmp), dynamo=False, opset_version=opset,
                          input_names=["image"], output_names=["stylized"],
                          dynamic_axes={"image": axes, "stylized": axes})
    return path
