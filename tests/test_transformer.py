"""TransformerNet: sizes, range, purity, gradients, shared instance-norm statistics."""

from __future__ import annotations

import copy

import pytest
import torch

from nst.networks.transformer import InstanceNorm, TransformerNet, instance_norm
from tests.conftest import float32_atol


@pytest.fixture
def net() -> TransformerNet:
    torch.manual_seed(0)
    return TransformerNet(channels=8, num_residual=1)


@pytest.mark.parametrize("size", [(1, 1), (2, 3), (7, 5), (33, 17), (64, 64)])
def test_output_has_exactly_the_input_size(net, size):
    x = torch.rand(2, 3, *size)
    assert net(x).shape == x.shape


def test_output_stays_in_unit_range_even_when_saturated(net):
    with torch.no_grad():
        net.head[1].weight.mul_(1000.0)  # push the pre-activation far outside [-10, 10]
    y = net(torch.rand(1, 3, 32, 32))
    assert torch.isfinite(y).all()
    assert y.min() >= 0.0 and y.max() <= 1.0
    assert y.min() < 0.01 and y.max() > 0.99  # really saturated, so the bound was tested


def test_input_is_not_mutated(net):
    x = torch.rand(1, 3, 33, 17)
    before = x.clone()
    net(x)
    net(x, norm_stats=net.capture_norm_stats(x))
    assert torch.equal(x, before)


def test_gradients_reach_every_parameter(net):
    x = torch.rand(2, 3, 32, 24)
    target = torch.rand(2, 3, 32, 24)
    ((net(x) - target) ** 2).mean().backward()
    for name, p in net.named_parameters():
        assert p.grad is not None, name
        assert torch.isfinite(p.grad).all(), name
        assert p.grad.abs().sum() > 0, name


def test_shared_stats_from_the_same_image_reproduce_the_normal_path(net):
    x = torch.rand(2, 3, 37, 29)
    stats = net.capture_norm_stats(x)
    assert len(stats) == net.num_norms
    # the composite norm with given stats vs torch's fused one: equal up to float32 rounding
    torch.testing.assert_close(net(x, norm_stats=stats), net(x), rtol=0, atol=float32_atol(net, x))


def test_the_fused_norm_path_has_the_composite_paths_values_and_gradients(net):
    # net(x) runs torch's F.instance_norm; the path that keeps statistics (tiling) runs the
    # composite instance_norm: the same function, so outputs and gradients must agree
    x = torch.rand(2, 3, 36, 28)
    fused = net(x)
    composite = net._run(x, None, True)[0]
    torch.testing.assert_close(fused, composite, rtol=0, atol=float32_atol(net, x))  # up to float32 rounding
    grads = []
    for y in (fused, composite):
        net.zero_grad()
        (y ** 2).mean().backward(retain_graph=True)
        grads.append([p.grad.clone() for p in net.parameters()])
    for a, b in zip(*grads):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)


def test_the_fused_norm_under_bf16_autocast_and_channels_last_stays_near_float32(net):
    # the training path on a CPU with native bf16: autocast, NHWC tensors, the fused norm
    x = torch.rand(2, 3, 32, 32)
    ref = net(x)
    twin = copy.deepcopy(net).to(memory_format=torch.channels_last)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = twin(x.contiguous(memory_format=torch.channels_last)).float()
    assert (y - ref).abs().max() < 0.05  # bf16's 8-bit mantissa through 7 convs, on random weights
    with torch.autocast("cpu", dtype=torch.bfloat16):
        (twin(x) ** 2).mean().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in twin.parameters())


def test_mixed_precision_keeps_the_ends_in_float32_and_the_output_close(net):
    mixed = copy.deepcopy(net).mixed_precision()
    assert mixed.encoder[0].conv.weight.dtype == torch.float32 and mixed.head[1].weight.dtype == torch.float32
    assert mixed.residuals[0].block1.conv.weight.dtype == torch.bfloat16
    x = torch.rand(1, 3, 40, 36)
    with torch.no_grad():
        y = mixed(x)
        assert y.dtype == torch.float32 and y.shape == x.shape
        assert (y - net(x)).abs().max() < 0.05
        torch.testing.assert_close(mixed(x, norm_stats=mixed.capture_norm_stats(x)), y, atol=0.02, rtol=0)


def test_shared_stats_are_actually_used_for_a_tile(net):
    whole = torch.rand(1, 3, 64, 64)
    whole[..., :32, :32] *= 0.2  # a dark corner: its own statistics differ from the whole image's
    tile = whole[..., :32, :32]
    stats = net.capture_norm_stats(whole)
    assert not torch.allclose(net(tile, norm_stats=stats), net(tile), atol=1e-4)


def test_stats_of_one_image_broadcast_over_a_batch_of_tiles(net):
    whole = torch.rand(1, 3, 48, 48)
    tiles = torch.cat([whole[..., :24, :24], whole[..., 24:, 24:]])
    stats = net.capture_norm_stats(whole)
    batched = net(tiles, norm_stats=stats)
    one = net(tiles[1:], norm_stats=stats)
    assert batched.shape == tiles.shape
    # a batch of two vs one tile: other kernels, equal up to float32 rounding
    torch.testing.assert_close(batched[1:], one, rtol=0, atol=float32_atol(net, tiles[1:], norm_stats=stats))


def test_wrong_number_of_stats_is_refused(net):
    x = torch.rand(1, 3, 16, 16)
    with pytest.raises(ValueError, match="norm_stats"):
        net(x, norm_stats=net.capture_norm_stats(x)[:-1])


def test_non_rgb_input_is_refused(net):
    with pytest.raises(ValueError, match=r"\(N,3,H,W\)"):
        net(torch.rand(1, 1, 16, 16))


def test_config_rebuilds_the_same_architecture(net):
    twin = TransformerNet(**net.config)
    assert net.config == {"channels": 8, "num_residual": 1, "output": "sigmoid", "head_input": False}
    shapes = {k: v.shape for k, v in net.state_dict().items()}
    assert shapes == {k: v.shape for k, v in twin.state_dict().items()}


def test_untrained_residual_network_is_exactly_the_identity():
    net = TransformerNet(channels=8, num_residual=1, output="residual").eval()
    x = torch.rand(2, 3, 33, 18)
    torch.testing.assert_close(net(x), x, rtol=0, atol=0)


@pytest.mark.parametrize("output", ["linear", "residual"])
def test_unbounded_outputs_are_clamped_in_eval_mode_only(output):
    torch.manual_seed(0)
    net = TransformerNet(channels=8, num_residual=1, output=output)
    with torch.no_grad():
        net.head[1].weight.normal_(0.0, 5.0)  # far outside [0, 1]
        net.head[1].bias.fill_(0.5)
    x = torch.rand(1, 3, 24, 24)
    raw = net.train()(x)
    assert raw.min() < 0 and raw.max() > 1  # training sees the raw values: no dead gradient at the bound
    clamped = net.eval()(x)
    assert clamped.min() >= 0 and clamped.max() <= 1
    torch.testing.assert_close(clamped, raw.clamp(0, 1))


def test_residual_head_learns_from_the_first_step():
    # The zero-initialised head gets a gradient at once; everything behind it gets one from step two.
    net = TransformerNet(channels=8, num_residual=1, output="residual")
    x, target = torch.rand(1, 3, 16, 16), torch.rand(1, 3, 16, 16)
    ((net(x) - target) ** 2).mean().backward()
    assert net.head[1].weight.grad.abs().sum() > 0


def test_unknown_output_is_refused():
    with pytest.raises(ValueError, match="output='tanh'"):
        TransformerNet(output="tanh")


def test_config_without_output_builds_the_first_versions_sigmoid_network():
    # model files written before the output option load as what they were trained as
    net = TransformerNet(**{"channels": 8, "num_residual": 1})
    assert net.output == "sigmoid"
    y = net(torch.rand(1, 3, 16, 16))
    assert 0 < y.min() and y.max() < 1


def test_small_preset_has_fewer_parameters():
    def count(m):
        return sum(p.numel() for p in m.parameters())

    assert count(TransformerNet(channels=16, num_residual=3)) < count(TransformerNet()) / 4


def test_impossible_config_is_refused():
    with pytest.raises(ValueError, match="channels"):
        TransformerNet(channels=0)


def test_instance_norm_matches_torch_and_returns_its_stats():
    torch.manual_seed(1)
    norm = InstanceNorm(4)
    with torch.no_grad():
        norm.weight.uniform_(0.5, 2.0)
        norm.bias.uniform_(-1.0, 1.0)
    ref = torch.nn.InstanceNorm2d(4, affine=True)
    ref.load_state_dict(norm.state_dict())
    x = torch.randn(2, 4, 9, 7) * 3 + 1
    y, (mean, var) = norm(x)
    torch.testing.assert_close(y, ref(x), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(mean, x.mean((2, 3), keepdim=True))
    assert var.shape == (2, 4, 1, 1)


def test_instance_norm_with_given_stats_uses_them():
    x = torch.randn(1, 2, 5, 5)
    stats = (torch.full((1, 2, 1, 1), 1.0), torch.full((1, 2, 1, 1), 4.0))
    y, used = instance_norm(x, None, None, eps=0.0, stats=stats)
    assert used is stats
    torch.testing.assert_close(y, (x - 1.0) / 2.0)


def test_bfloat16_autocast_follows_float32_to_a_few_bf16_roundings(net):
    x = torch.rand(1, 3, 21, 19)
    with torch.no_grad():
        reference = net(x)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            y = net(x)
    # Each layer rounds to bf16 (relative error 2**-8) and the instance norms keep those errors
    # relative, so the [0, 1] output agrees to a few bf16 steps; 8 leaves room for other kernels.
    assert y.shape == x.shape
    assert (y.float() - reference).abs().max() <= 8 * 2.0**-8
