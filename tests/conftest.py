"""Shared fixtures: tiny images, a random-weight VGG, and the real data folder when it is there;
float32_atol, the tolerance between two float32 runs of a network that take different kernels;
compose_config, the config `nst key=value ...` would run with."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

REPO = Path(__file__).resolve().parent.parent
SHARED_DATA = REPO.parent / "shared" / "data"
EPS32 = torch.finfo(torch.float32).eps


def compose_config(overrides: list[str]):
    """The composed config for ``overrides``, from the repository's configs, as the CLI composes it
    (every test that builds a config goes through here)."""
    from hydra import compose, initialize_config_dir

    import nst.cli

    with initialize_config_dir(config_dir=nst.cli.config_dir(), version_base="1.3"):
        return compose("config", overrides=list(overrides))


def float32_atol(net: torch.nn.Module, *inputs, ulps: float = 8.0, **kwargs) -> float:
    """An absolute tolerance between two float32 runs of ``net(*inputs, **kwargs)`` that take different
    kernels (folded vs unfolded weights, fused vs composite norms, batched vs single): ``ulps`` float32
    epsilons of the largest sum its last conv forms, max(|W| * |input| + |bias|), since kernels sum in
    an order that differs between x86 CPUs (oneDNN's blocking, AMX) and the instance norms keep the
    layers' rounding errors relative, so outputs agree only to a few roundings of those sums."""
    convs = [m for m in net.modules() if isinstance(m, torch.nn.Conv2d)]
    seen: list[torch.Tensor] = []
    hook = convs[-1].register_forward_hook(lambda m, args, out: seen.append(args[0]))
    try:
        with torch.no_grad():
            net(*inputs, **kwargs)
    finally:
        hook.remove()
    conv = convs[-1]
    bias = None if conv.bias is None else conv.bias.detach().double().abs()
    sums = F.conv2d(seen[-1].detach().double().abs(), conv.weight.detach().double().abs(), bias,
                    conv.stride, conv.padding, conv.dilation, conv.groups)
    return ulps * EPS32 * float(sums.max())


@pytest.fixture(autouse=True)
def _one_thread():
    # Tiny tensors: one thread avoids OpenMP's fork/join and spin-waiting, which on a busy 2-core
    # machine made tests several times slower with two threads. Restored after each test, since
    # the `threads` key of some modes changes the process-wide setting.
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _isolated(tmp_path_factory, monkeypatch):
    # Never touch the user's cache or wandb account from a test.
    monkeypatch.setenv("NST_CACHE", str(tmp_path_factory.getbasetemp() / "nst-cache"))
    # Stylizers run eager PyTorch unless a test asks for ONNX Runtime (tests/test_onnxrt.py): an
    # export per tiny random network would cost seconds and test the exporter, not the code at hand.
    monkeypatch.setenv("NST_BACKEND", "torch")
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    torch.manual_seed(0)


@pytest.fixture
def shared_data() -> Path:
    """../shared/data from the repository root, or skip."""
    if not SHARED_DATA.is_dir():
        pytest.skip("../shared/data is not here")
    return SHARED_DATA


@pytest.fixture
def image() -> torch.Tensor:
    """A smooth, non-constant (1, 3, 48, 40) image in [0, 1]."""
    y = torch.linspace(0, 1, 48).view(1, 1, 48, 1)
    x = torch.linspace(0, 1, 40).view(1, 1, 1, 40)
    return torch.cat([y * x, (1 - y) * x, 0.5 + 0.4 * torch.sin(6 * y + 4 * x)], dim=1).clamp(0, 1)


def pytest_report_header(config):
    return f"nst tests: torch {torch.__version__}, " \
           f"shared data {'found' if SHARED_DATA.is_dir() else 'absent'}, " \
           f"CUDA {'available' if torch.cuda.is_available() else 'absent'}, CI={os.environ.get('CI', '')}"


def pytest_collection_modifyitems(config, items):
    # Once OpenVINO had run in this process, a later test that starts a subprocess beside
    # its own DataLoader workers crashed the whole session with SIGSEGV (nst.models.graphs): the tests
    # that load it go last, where nothing forks after them.
    items.sort(key=lambda item: item.get_closest_marker("loads_openvino") is not None)


@pytest.fixture(autouse=True)
def _openvino_only_where_marked(request):
    before = "openvino" in sys.modules
    yield
    if not before and "openvino" in sys.modules and request.node.get_closest_marker("loads_openvino") is None:
        pytest.fail("this test loaded OpenVINO into the test process: mark it loads_openvino, so that it "
                    "runs after every test that forks (see pytest_collection_modifyitems)")

