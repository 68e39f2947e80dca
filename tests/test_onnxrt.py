"""The ONNX Runtime twin of a TransformerNet (nst.models.onnxrt): same results, same interface, cached."""

from __future__ import annotations

import pytest
import torch

from nst.errors import NSTError
from nst.inference.stylize import Stylizer
from nst.networks.transformer import TransformerNet

ort = pytest.importorskip("onnxruntime")
from nst.models.onnxrt import OrtNet, _cache_dir  # noqa: E402


@pytest.fixture(scope="module")
def net() -> TransformerNet:
    torch.manual_seed(0)
    return TransformerNet(channels=8, num_residual=1).eval()


@pytest.fixture(scope="module")
def twin(net):
    return OrtNet(net)


def test_the_forward_matches_pytorch_at_another_size_than_exported(net, twin):
    x = torch.rand(2, 3, 29, 51)
    with torch.no_grad():
        torch.testing.assert_close(twin(x), net(x), atol=2e-5, rtol=0)


def test_captured_statistics_and_the_forward_with_them_match_pytorch(net, twin):
    whole, tile = torch.rand(1, 3, 40, 40), torch.rand(1, 3, 24, 20)
    with torch.no_grad():
        stats, ref = twin.capture_norm_stats(whole), net.capture_norm_stats(whole)
        assert len(stats) == net.num_norms
        for (m, v), (rm, rv) in zip(stats, ref):
            torch.testing.assert_close(m, rm, atol=1e-5, rtol=1e-4)
            torch.testing.assert_close(v, rv, atol=1e-5, rtol=1e-4)
        torch.testing.assert_close(twin(tile, norm_stats=stats), net(tile, norm_stats=ref), atol=2e-5, rtol=0)


def test_the_graphs_are_exported_once_per_set_of_weights(tmp_path, monkeypatch):
    monkeypatch.setenv("NST_CACHE", str(tmp_path))
    torch.manual_seed(1)
    net = TransformerNet(channels=4, num_residual=1).eval()
    OrtNet(net)
    files = sorted(_cache_dir().rglob("*.onnx"))
    assert [f.name for f in files] == ["capture.onnx", "forward.onnx", "with_stats.onnx"]
    stamps = [f.stat().st_mtime_ns for f in files]
    OrtNet(net)  # the same weights: loaded, not exported again
    assert [f.stat().st_mtime_ns for f in files] == stamps
    with torch.no_grad():
        net.head[1].bias.add_(0.1)
    OrtNet(net)  # other weights: their own entry
    assert len(list(_cache_dir().rglob("*.onnx"))) == 6


def test_a_stylizer_on_onnxruntime_tiles_like_the_pytorch_one(net, twin, monkeypatch):
    monkeypatch.setenv("NST_BACKEND", "auto")
    fast = Stylizer(net, tile_size=32, tile_overlap=8)
    assert fast.backend == "onnxruntime"
    plain = Stylizer(net, backend="torch", tile_size=32, tile_overlap=8)
    x = torch.rand(1, 3, 50, 70)  # tiled: shared statistics, then one forward per tile
    torch.testing.assert_close(fast(x), plain(x), atol=1e-4, rtol=0)


def test_backend_choices_are_checked_in_one_line(net):
    with pytest.raises(NSTError, match="backend='tpu'"):
        Stylizer(net, backend="tpu")
    with pytest.raises(NSTError, match="float32 on the CPU"):
        Stylizer(net, backend="onnxruntime", precision="bf16-mixed")
    assert Stylizer(net, precision="bf16-mixed").backend == "torch"
