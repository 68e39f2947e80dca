"""The optimizers Gatys runs with: L-BFGS (the paper's) and Adam, as factories of the image's
parameter list, from a name or from the config's ``model.optimizer`` node."""

from __future__ import annotations

import functools
from collections.abc import Callable

import torch
from torch import nn

from nst.errors import NSTError

OPTIMIZERS = ("lbfgs", "adam")
DEFAULT_LR = {"lbfgs": 1.0, "adam": 0.02}
OptimizerFactory = Callable[[list[nn.Parameter]], torch.optim.Optimizer]


def gatys_optimizer(name: str = "lbfgs", lr: float | None = None, history_size: int = 100,
                    line_search: str | None = None) -> OptimizerFactory:
    """The optimizer factory for a name: the Python API's short form of what the config's
    ``model.optimizer`` node builds (configs/model/gatys.yaml, gatys_adam.yaml)."""
    if name not in OPTIMIZERS:
        raise NSTError(f"optimizer={name!r}: choose {' or '.join(OPTIMIZERS)}")
    if line_search not in (None, "strong_wolfe"):
        raise NSTError(f"line_search={line_search!r}: choose null or strong_wolfe")
    rate = float(DEFAULT_LR[name] if lr is None else lr)
    if name == "adam":
        return functools.partial(torch.optim.Adam, lr=rate)
    return functools.partial(torch.optim.LBFGS, lr=rate, history_size=history_size,
                             line_search_fn=line_search)


def is_lbfgs(factory: OptimizerFactory) -> bool:
    """Whether a factory (a class or a functools.partial of one) builds an L-BFGS."""
    target = getattr(factory, "func", factory)
    return isinstance(target, type) and issubclass(target, torch.optim.LBFGS)
