"""Exports for other runtimes (nst.models.export): TorchScript and ONNX parity with PyTorch."""

from __future__ import annotations

import pytest
import torch

from nst.models.export import export_onnx, export_torchscript
from nst.networks.transformer import TransformerNet


@pytest.fixture
def net() -> TransformerNet:
    torch.manual_seed(0)
    return TransformerNet(channels=8, num_residual=1).eval()


SIZES = [(37, 45), (64, 48)]


@pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated")
def test_torchscript_matches_pytorch_on_two_sizes(net, tmp_path):
    path = export_torchscript(net, tmp_path / "m.pt")
    scripted = torch.jit.load(str(path))
    with torch.no_grad():
        for h, w in SIZES:
            x = torch.rand(2, 3, h, w)
            torch.testing.assert_close(scripted(x), net(x), rtol=0, atol=1e-4)
        stats, tile = scripted.capture_norm_stats(x), x[..., :20, :20]
        torch.testing.assert_close(scripted(tile, stats), net(tile, stats), rtol=0, atol=1e-4)


def test_onnx_matches_pytorch_on_two_sizes_and_batches(net, tmp_path):
    ort = pytest.importorskip("onnxruntime")
    path = export_onnx(net, tmp_path / "m.onnx")
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    with torch.no_grad():
        for n, (h, w) in zip((1, 2), SIZES):
            x = torch.rand(n, 3, h, w)
            (y,) = session.run(None, {"image": x.numpy()})
            torch.testing.assert_close(torch.from_numpy(y), net(x), rtol=0, atol=1e-4)


def test_export_leaves_the_callers_net_alone(net, tmp_path):
    net.train()
    export_torchscript(net, tmp_path / "m.pt")
    assert net.training and next(net.parameters()).dtype == torch.float32
