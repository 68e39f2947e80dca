"""Shared fixtures: tiny images, a random-weight VGG, and the real data folder when it is there."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parent.parent
SHARED_DATA = REPO.parent / "shared" / "data"


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
