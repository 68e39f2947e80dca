"""The registry of image-to-image networks a model file can name.

A network class registers under a short name (``@register("transformer")``) and exposes
``config``: the plain-JSON keyword arguments that rebuild it. A model file stores that name and
those arguments (nst.models.modelfile), so loading one needs neither Hydra nor Lightning, and a new kind of
network is a class here plus a config file, with no change to saving or loading.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any, TypeVar

from torch import nn

from nst.errors import NSTError

T = TypeVar("T", bound=type)
NETWORKS: dict[str, type] = {}
# Modules whose import registers the built-in networks (imported on first use, not at start-up).
_BUILTIN = ("nst.networks.transformer", "nst.networks.srnet")


def register(name: str) -> Callable[[T], T]:
    """Class decorator: make ``cls`` buildable as ``name``; sets ``cls.network_name``."""
    def add(cls: T) -> T:
        if NETWORKS.get(name, cls) is not cls:
            raise ValueError(f"network name {name!r} is taken by {NETWORKS[name].__name__}")
        NETWORKS[name] = cls
        cls.network_name = name
        return cls
    return add


def _load_builtin() -> None:
    for module in _BUILTIN:
        importlib.import_module(module)


def names() -> list[str]:
    _load_builtin()
    return sorted(NETWORKS)


def build(name: str, args: dict[str, Any]) -> nn.Module:
    """``NETWORKS[name](**args)``; ValueError/TypeError from the class pass through (the caller
    names the file), NSTError for a name nothing registered."""
    _load_builtin()
    if name not in NETWORKS:
        raise NSTError(f"unknown network {name!r} (this nst knows: {', '.join(sorted(NETWORKS))})")
    return NETWORKS[name](**args)


def unwrap(net: nn.Module) -> nn.Module:
    """The network itself, also when wrapped by ``torch.compile``."""
    return getattr(net, "_orig_mod", net)


def name_of(net: nn.Module) -> str:
    """The registered name of ``net``'s class; TypeError for an unregistered module."""
    net = unwrap(net)
    name = getattr(type(net), "network_name", None)
    if name is None or NETWORKS.get(name) is not type(net):
        raise TypeError(f"{type(net).__name__} is not a registered network (nst.networks.register)")
    return name
