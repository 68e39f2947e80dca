"""SRNet (nst/networks/srnet.py): sizes, the bicubic start, learning, export."""

from __future__ import annotations

import pytest
import torch

from nst.models.modelfile import load_network, save_model
from nst.networks.srnet import SRNet
from nst.training.degrade import bicubic, degrade


@pytest.fixture
def net() -> SRNet:
    torch.manual_seed(0)
    return SRNet(factor=4, channels=8, num_residual=1).eval()


@pytest.mark.parametrize("factor", [4, 8])
@pytest.mark.parametrize("size", [(1, 1), (3, 7), (13, 9), (20, 31)])
def test_the_output_is_exactly_factor_times_the_input(factor, size):
    net = SRNet(factor=factor, channels=4, num_residual=1).eval()
    y = net(torch.rand(2, 3, *size))
    assert y.shape == (2, 3, size[0] * factor, size[1] * factor)
    assert y.min() >= 0 and y.max() <= 1


def test_the_untrained_network_is_bicubic(net):
    x = torch.rand(1, 3, 12, 10)
    torch.testing.assert_close(net(x), bicubic(x, 4), atol=1e-6, rtol=0)


def test_a_factor_that_is_not_a_power_of_two_is_refused():
    with pytest.raises(ValueError, match="power of 2"):
        SRNet(factor=3)


def test_narrower_upsampling_stages_keep_the_size_and_travel_in_the_model_file(tmp_path):
    net = SRNet(factor=8, channels=8, num_residual=1, up_channels=[8, 6, 4]).eval()
    assert [m.conv[1].out_channels for m in net.up] == [8, 6, 4] and net.tail[1].in_channels == 4
    x = torch.rand(1, 3, 5, 7)
    assert net(x).shape == (1, 3, 40, 56)
    loaded, _ = load_network(save_model(tmp_path / "m.safetensors", net, {}))
    torch.testing.assert_close(loaded(x), net(x))


def test_up_channels_must_name_one_width_per_stage():
    with pytest.raises(ValueError, match="needs 2 positive widths"):
        SRNet(factor=4, up_channels=[32])


def test_a_model_file_without_up_channels_builds_the_same_network(tmp_path):
    net = SRNet(factor=4, channels=8, num_residual=1)
    assert "up_channels" not in net.config  # older files name no such argument, and still load
    assert [m.conv[1].out_channels for m in net.up] == [8, 8]


def test_a_few_steps_lower_the_pixel_loss():
    # blocky images: bicubic blurs their edges, which the network can learn to restore
    torch.manual_seed(0)
    net = SRNet(factor=4, channels=16, num_residual=1).train()
    hr = torch.nn.functional.interpolate(torch.rand(4, 3, 4, 4), scale_factor=8, mode="nearest")
    lr = degrade(hr, 4)
    opt = torch.optim.Adam(net.parameters(), lr=2e-3)
    losses = []
    for _ in range(40):
        loss = torch.nn.functional.mse_loss(net(lr), hr)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.95 * losses[0]


def test_the_model_file_names_the_network_and_reloads(tmp_path, net):
    with torch.no_grad():
        net.tail[1].bias.fill_(0.01)
    path = save_model(tmp_path / "sr.safetensors", net, {"degrade": {"factor": 4, "sigma": 1.0}})
    again, meta = load_network(path)
    assert meta["network"] == "sr" and meta["args"] == {"factor": 4, "channels": 8, "num_residual": 1}
    x = torch.rand(1, 3, 9, 11)
    torch.testing.assert_close(again(x), net(x))


def test_torchscript_and_onnx_keep_sizes_dynamic(tmp_path, net):
    from nst.models.export import export_onnx, export_torchscript

    x = torch.rand(1, 3, 11, 7)
    scripted = torch.jit.load(str(export_torchscript(net, tmp_path / "sr.pt")))
    torch.testing.assert_close(scripted(x), net(x), atol=1e-5, rtol=0)
    ort = pytest.importorskip("onnxruntime")
    path = export_onnx(net, tmp_path / "sr.onnx")
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = session.run(None, {session.get_inputs()[0].name: x.numpy()})[0]
    torch.testing.assert_close(torch.from_numpy(got), net(x), atol=1e-4, rtol=0)
