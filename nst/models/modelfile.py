"""The model file: one ``.safetensors`` that names the network it holds, and Lightning checkpoints.

Format version 2 (written): the safetensors string metadata holds ``format`` (``nst-model``) and
``nst``, a JSON document::

    {"format": "nst-model", "format_version": 2, "nst_version": "0.2.0",
     "network": "transformer", "args": {"channels": 16, ...}, "card": {"style": [...], ...}}

``network`` is a name in :mod:`nst.networks` and ``args`` its keyword arguments, so loading builds
the right class without Hydra or Lightning; ``card`` is the provenance (style, loss, VGG, data,
steps, ...). Version 1 files (``nst-transformer``: ``arch`` = TransformerNet arguments, provenance
beside it) still load. Nothing here unpickles arbitrary objects (``torch.load`` only with
``weights_only=True``).

Loaders return ``(net in eval mode, meta)`` where ``meta`` is the card's fields plus ``network``,
``args``, ``format``, ``format_version`` and ``nst_version``, the same for every version.
"""

from __future__ import annotations

import json
import os
import pickle
import re
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save

from nst import networks
from nst.errors import NSTError, one_line
from nst.io.files import atomic_write_bytes
from nst.models.shipped import resolve
from nst.version import __version__

FORMAT = "nst-model"
FORMAT_VERSION = 2
FORMAT_V1 = "nst-transformer"  # version 1: TransformerNet only
_RESERVED = ("format", "format_version", "network", "args", "arch", "nst_version", "card")


def finite_state(path: Path, net: torch.nn.Module) -> dict[str, torch.Tensor]:
    """float32, contiguous, CPU copies of the weights; NSTError when any is NaN/inf."""
    state = {k: v.detach().to("cpu", torch.float32).contiguous() for k, v in net.state_dict().items()}
    bad = [k for k, v in state.items() if not torch.isfinite(v).all()]
    if bad:
        raise NSTError(f"{path}: refusing to export: weights contain NaN/inf (in {', '.join(bad[:3])})")
    return state


def save_model(path: str | os.PathLike, net: torch.nn.Module, card: dict[str, Any]) -> Path:
    """Write ``net`` (a registered network, see nst.networks) and its card to one .safetensors
    file, atomically, in format version 2.

    ``card`` must be JSON-serializable (Paths and other objects are stored as their ``str``); the
    keys of the format itself (``network``, ``args``, ``format``...) are dropped from it, so the
    ``meta`` a loader returns can be saved again as is.
    """
    path = Path(path)
    net = networks.unwrap(net)
    name = networks.name_of(net)
    state = finite_state(path, net)
    doc = {"format": FORMAT, "format_version": FORMAT_VERSION, "nst_version": __version__,
           "network": name, "args": dict(net.config),
           "card": {k: v for k, v in card.items() if k not in _RESERVED}}
    header = {"format": FORMAT, "nst": json.dumps(doc, default=str, sort_keys=True)}
    atomic_write_bytes(path, save(state, metadata=header))  # in memory first: a full disk says the size
    return path


def _build(
    path: Path, name: Any, args: Any, state: dict[str, torch.Tensor], device: str | torch.device
) -> torch.nn.Module:
    """``networks.build(name, args)`` holding ``state``; one-line NSTError when they do not fit."""
    if not isinstance(name, str):
        raise NSTError(f"{path}: the model file names no network (network={name!r})")
    if not isinstance(args, dict):
        raise NSTError(f"{path}: network arguments are {type(args).__name__}, expected a dict")
    try:
        net = networks.build(name, args)
    except NSTError as e:
        raise NSTError(f"{path}: {e}") from e
    except (TypeError, ValueError) as e:
        raise NSTError(f"{path}: arguments {args} do not fit network {name!r} ({e})") from e
    expected = net.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    wrong = [f"{k} {tuple(state[k].shape)} vs {tuple(v.shape)}" for k, v in expected.items()
             if k in state and state[k].shape != v.shape]
    if missing or unexpected or wrong:
        found = (("missing", missing), ("unexpected", unexpected), ("shape", wrong))
        parts = [f"{label}: {', '.join(items[:3])}{' ...' if len(items) > 3 else ''}"
                 for label, items in found if items]
        raise NSTError(f"{path}: weights do not match network {name!r} {args} ({'; '.join(parts)})")
    bad = [k for k, v in state.items() if v.is_floating_point() and not torch.isfinite(v).all()]
    if bad:
        raise NSTError(f"{path}: weights contain NaN/inf (in {', '.join(bad[:3])})")
    net.load_state_dict(state)
    return net.to(device).eval()


def _require_file(path: Path) -> None:
    if path.is_dir():  # "no such model file" would send the user looking for a missing path
        raise NSTError(f"{path}: is a folder, not a model file")
    if not path.is_file():
        raise NSTError(f"{path}: no such model file")


def _meta(network: str, args: dict[str, Any], version: int, card: dict[str, Any],
          nst_version: Any = None) -> dict[str, Any]:
    """What every loader returns beside the net: the card's fields and the format's own."""
    return {**{k: v for k, v in card.items() if k not in _RESERVED}, "network": network,
            "args": dict(args), "format": FORMAT, "format_version": version, "nst_version": nst_version}


def _document(path: Path, header: dict[str, str]) -> tuple[Any, Any, int, dict[str, Any], Any]:
    """(network, args, format_version, card, nst_version) from a model file's string metadata, for
    format 1 or 2; one-line NSTError for anything else."""
    kind = header.get("format")
    if kind not in (FORMAT, FORMAT_V1) or "nst" not in header:
        raise NSTError(f"{path}: not an nst model file "
                       f"(metadata format is {kind!r}, expected {FORMAT!r})")
    try:
        doc = json.loads(header["nst"])
    except json.JSONDecodeError as e:
        raise NSTError(f"{path}: model metadata is not valid JSON ({e})") from e
    if not isinstance(doc, dict) or doc.get("format") != kind:
        raise NSTError(f"{path}: model metadata does not describe an {kind} file")
    version = doc.get("format_version")
    if not isinstance(version, int) or version < 1:
        raise NSTError(f"{path}: model metadata has an invalid format_version {version!r}")
    if version > FORMAT_VERSION:
        raise NSTError(f"{path}: format_version {version} is newer than this nst reads "
                       f"({FORMAT_VERSION}); upgrade nst")
    if kind == FORMAT_V1:  # version 1: a TransformerNet, provenance beside its arguments
        name, args, card = "transformer", doc.get("arch"), doc
    else:
        name, args, card = doc.get("network"), doc.get("args"), doc.get("card") or {}
    if not isinstance(card, dict):
        raise NSTError(f"{path}: the model card is {type(card).__name__}, expected a dict")
    return name, args, version, card, doc.get("nst_version")


def _open(path: Path, weights: bool) -> tuple[dict[str, str], dict[str, torch.Tensor]]:
    """A safetensors file's string metadata, and its tensors when ``weights``."""
    _require_file(path)
    try:
        with safe_open(str(path), framework="pt", device="cpu") as f:
            header = f.metadata() or {}
            state = {k: f.get_tensor(k) for k in f.keys()} if weights else {}
    except (SafetensorError, OSError, ValueError) as e:
        raise NSTError(f"{path}: not a safetensors model file ({one_line(e, with_type=True)})") from e
    return header, state


def read_meta(path: str | os.PathLike) -> dict[str, Any]:
    """A model file's meta (as :func:`load_network` returns it) without reading its weights."""
    path = Path(path)
    name, args, version, card, nst_version = _document(path, _open(path, weights=False)[0])
    if not isinstance(args, dict):
        raise NSTError(f"{path}: network arguments are {type(args).__name__}, expected a dict")
    return _meta(name, args, version, card, nst_version)


def load_network(
    path: str | os.PathLike, device: str | torch.device = "cpu"
) -> tuple[torch.nn.Module, dict[str, Any]]:
    """(net in eval mode on ``device``, meta) from a model file of format version 1 or 2."""
    path = Path(path)
    header, state = _open(path, weights=True)
    name, args, version, card, nst_version = _document(path, header)
    net = _build(path, name, args, state, device)
    return net, _meta(name, args, version, card, nst_version)


def read_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """A training checkpoint as a dict, loaded with ``weights_only=True``; one-line NSTError for a
    file that is no checkpoint, or one that pickles anything but plain data."""
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
        raise NSTError(f"{path}: not a readable checkpoint ({one_line(e, with_type=True)})") from e
    if not isinstance(ckpt, dict) or not isinstance(ckpt.get("state_dict"), dict):
        raise NSTError(f"{path}: not a Lightning checkpoint (no state_dict)")
    return ckpt


def checkpoint_net(
    path: str | os.PathLike, ckpt: dict[str, Any], device: str | torch.device = "cpu"
) -> tuple[torch.nn.Module, dict[str, Any]]:
    """(net, meta) from a checkpoint read by :func:`read_checkpoint`: ``hyper_parameters["network"]``
    (absent before format 2: ``transformer``) and ``["net_config"]`` build the network, the
    ``net.``-prefixed state-dict entries are its weights, ``["export_metadata"]`` is the card."""
    path = Path(path)
    hparams = ckpt.get("hyper_parameters") or {}
    arch = hparams.get("net_config") if isinstance(hparams, dict) else None
    if arch is None:
        raise NSTError(f"{path}: checkpoint has no hyper_parameters['net_config'] "
                       "(the network's arguments)")
    state = {k[len("net."):]: v for k, v in ckpt["state_dict"].items() if k.startswith("net.")}
    # a module that trained ``torch.compile(net)`` stores ``net._orig_mod.*``
    state = {k[len("_orig_mod."):] if k.startswith("_orig_mod.") else k: v for k, v in state.items()}
    if not state:
        raise NSTError(f"{path}: checkpoint state_dict has no 'net.' weights")
    name = hparams.get("network", "transformer")
    net = _build(path, name, dict(arch) if isinstance(arch, dict) else arch, state, device)
    card = hparams.get("export_metadata")
    return net, _meta(name, net.config, FORMAT_VERSION, card if isinstance(card, dict) else {})


def load_lightning_checkpoint(
    path: str | os.PathLike, device: str | torch.device = "cpu"
) -> tuple[torch.nn.Module, dict[str, Any]]:
    """(net, meta) from a training checkpoint file (:func:`read_checkpoint`, :func:`checkpoint_net`)."""
    return checkpoint_net(path, read_checkpoint(path), device)


def load_any(
    path: str | os.PathLike, device: str | torch.device = "cpu"
) -> tuple[torch.nn.Module, dict[str, Any]]:
    """:func:`load_network` for .safetensors, :func:`load_lightning_checkpoint` for .ckpt/.pt/.pth;
    a bare name (``starry_night``) is a shipped model (:mod:`nst.models.shipped`)."""
    path = resolve(path)
    suffix = path.suffix.lower()
    if suffix == ".safetensors":
        return load_network(path, device)
    if suffix in (".ckpt", ".pt", ".pth"):
        return load_lightning_checkpoint(path, device)
    raise NSTError(f"{path}: unknown model file type {suffix or '(none)'!r} "
                   "(expected .safetensors, .ckpt or .pt)")
