"""Conditional TransformerNets: per-style norms (Dumoulin et al.), a strength input, specialize,
adopting a plain network's weights, and norm-only fine-tuning."""

from __future__ import annotations

import pytest
import torch

from nst.errors import NSTError
from nst.inference.styles import mix_for, pick
from nst.networks.conditional import adopt, freeze_for_norm_finetune
from nst.networks.transformer import TransformerNet
from tests.conftest import float32_atol


def _varied(net: TransformerNet, seed: int = 0) -> TransformerNet:
    """Random norm rows, strength MLP and output conv (the trained kind, not the identity start)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in net.parameters():
            p.add_(0.2 * torch.randn(p.shape, generator=g))
    return net.eval()


@pytest.fixture
def multi() -> TransformerNet:
    torch.manual_seed(0)
    return _varied(TransformerNet(8, 1, output="linear", num_styles=3))


def test_conditional_in_with_one_style_equals_plain_in():
    torch.manual_seed(0)
    plain = _varied(TransformerNet(8, 1, output="linear"))
    one = TransformerNet(8, 1, output="linear", num_styles=3).eval()
    adopt(one, plain)  # every row is the plain network's
    x = torch.rand(2, 3, 21, 27)
    for k in range(3):
        mix = torch.nn.functional.one_hot(torch.tensor(k), 3).float()
        # fused vs composite norms: equal up to float32 rounding
        torch.testing.assert_close(one(x, style=mix), plain(x), rtol=0, atol=float32_atol(plain, x))


def test_a_one_hot_mix_is_that_style_and_styles_differ(multi):
    x = torch.rand(1, 3, 24, 24)
    outs = [multi(x, style=torch.eye(3)[k]) for k in range(3)]
    for k in range(3):
        rows = multi.specialize(torch.eye(3)[k])  # that style's rows alone, in a plain network
        torch.testing.assert_close(outs[k], rows(x), rtol=0, atol=float32_atol(rows, x))  # folded vs not
    assert (outs[0] - outs[1]).abs().max() > 1e-3


def test_a_mix_interpolates_gamma_and_beta_linearly(multi):
    mix = torch.tensor([0.25, 0.0, 0.75])
    mixed = multi.norm_affine(mix)
    a, c = multi.norm_affine(torch.eye(3)[0]), multi.norm_affine(torch.eye(3)[2])
    for (g, b), (ga, ba), (gc, bc) in zip(mixed, a, c):
        torch.testing.assert_close(g, 0.25 * ga + 0.75 * gc)
        torch.testing.assert_close(b, 0.25 * ba + 0.75 * bc)


def test_specialize_computes_the_same_function(multi):
    x = torch.rand(2, 3, 19, 30)
    mix = torch.tensor([0.2, 0.5, 0.3])
    plain = multi.specialize(mix)
    assert not plain.conditional
    assert plain.config == {k: v for k, v in multi.config.items() if k != "num_styles"}
    torch.testing.assert_close(plain(x), multi(x, style=mix), rtol=0, atol=float32_atol(plain, x))  # folded


def test_each_sample_gets_its_own_style(multi):
    x = torch.rand(1, 3, 20, 20).expand(2, -1, -1, -1)
    both = multi(x, style=torch.eye(3)[:2])
    for k in range(2):  # a batch of two vs one sample: other kernels, equal up to float32 rounding
        style = torch.eye(3)[k]
        torch.testing.assert_close(both[k:k + 1], multi(x[:1], style=style), rtol=0,
                                   atol=float32_atol(multi, x[:1], style=style))


def test_a_style_costs_about_a_fifth_of_a_percent_of_parameters():
    count = lambda n: sum(p.numel() for p in TransformerNet(32, 5, num_styles=n).parameters())  # noqa: E731
    per_style = (count(2) - count(1)) / count(1)
    assert 0.001 < per_style < 0.003


def test_the_strength_input_changes_the_output_smoothly():
    torch.manual_seed(0)
    net = _varied(TransformerNet(8, 1, output="linear", strength_input=True))
    x = torch.rand(1, 3, 24, 24)
    outs = [net(x, strength=torch.tensor([s])) for s in torch.linspace(0, 1, 11)]
    steps = torch.stack([(b - a).abs().mean() for a, b in zip(outs, outs[1:])])
    assert steps.min() > 0  # it does change the output
    assert steps.max() < 5 * steps.mean()  # and without jumps between neighbouring strengths


def test_an_untrained_strength_input_changes_nothing():
    torch.manual_seed(0)
    plain = _varied(TransformerNet(8, 1, output="linear"))
    net = TransformerNet(8, 1, output="linear", strength_input=True).eval()
    adopt(net, plain)
    x = torch.rand(1, 3, 16, 16)
    for s in (0.0, 0.5, 1.0):
        torch.testing.assert_close(net(x, strength=torch.tensor([s])), plain(x), rtol=0,
                                   atol=float32_atol(plain, x))  # composite vs fused norms


def _gated() -> TransformerNet:
    torch.manual_seed(0)
    net = _varied(TransformerNet(8, 1, output="linear", head_input=True, strength_input=True))
    with torch.no_grad():
        net.head[1].weight[:, -3:].normal_(0, 0.1)  # a photo shortcut that shows
    return net


def test_the_photo_reaches_the_output_conv_by_one_minus_the_strength():
    net, x = _gated(), torch.rand(1, 3, 20, 20)
    at_one = net(x, strength=torch.tensor([1.0]))
    torch.testing.assert_close(at_one, net(x), rtol=0, atol=0)  # no strength: s = 1
    with torch.no_grad():
        net.head[1].weight[:, -3:] *= 5.0
    # no photo at s = 1, whatever its weights
    torch.testing.assert_close(net(x, strength=torch.tensor([1.0])), at_one, rtol=0, atol=0)
    assert not torch.allclose(net(x, strength=torch.tensor([0.5])), at_one, atol=1e-3)


@pytest.mark.parametrize("s", [0.0, 0.3, 1.0])
def test_specialize_folds_the_photo_gate(s):
    net, x = _gated(), torch.rand(2, 3, 18, 21)
    plain = net.specialize(strength=s)
    assert not plain.conditional and plain.head_input
    torch.testing.assert_close(plain(x), net(x, strength=torch.tensor([s])), rtol=0,
                               atol=float32_atol(plain, x))  # folded vs unfolded: up to float32 rounding


@pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated")
def test_torchscript_keeps_the_photo_gate():
    net, x = _gated(), torch.rand(1, 3, 17, 23)
    scripted = torch.jit.script(net)
    for s in (0.0, 0.6):
        t = torch.tensor([s])
        torch.testing.assert_close(scripted(x, strength=t), net(x, strength=t), rtol=0, atol=1e-6)


@pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated")
def test_torchscript_keeps_the_style_input(multi):
    scripted = torch.jit.script(multi)
    x, mix = torch.rand(1, 3, 17, 23), torch.tensor([0.0, 0.3, 0.7])
    torch.testing.assert_close(scripted(x, style=mix), multi(x, style=mix), rtol=0, atol=1e-6)


@pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated")
def test_torchscript_keeps_the_strength_input():
    torch.manual_seed(0)
    net = _varied(TransformerNet(8, 1, output="linear", strength_input=True))
    scripted, x = torch.jit.script(net), torch.rand(1, 3, 17, 23)
    for s in (0.0, 0.6):
        t = torch.tensor([s])
        torch.testing.assert_close(scripted(x, strength=t), net(x, strength=t), rtol=0, atol=1e-6)


def test_the_affine_stays_float32_under_bf16_autocast(multi):
    with torch.autocast("cpu", dtype=torch.bfloat16):
        affine = multi.norm_affine(torch.tensor([0.3, 0.3, 0.4]))
    exact = multi.norm_affine(torch.tensor([0.3, 0.3, 0.4]))
    for (g, b), (ge, be) in zip(affine, exact):
        assert g.dtype == torch.float32
        torch.testing.assert_close(g, ge, rtol=0, atol=0)
        torch.testing.assert_close(b, be, rtol=0, atol=0)


def test_norm_only_finetuning_leaves_the_shared_weights_bit_identical(multi):
    before = {k: v.clone() for k, v in multi.state_dict().items()}
    freeze_for_norm_finetune(multi.train(), [2])
    opt = torch.optim.Adam([p for p in multi.parameters() if p.requires_grad], lr=1e-2)
    for _ in range(3):
        opt.zero_grad()
        y = multi(torch.rand(2, 3, 16, 16), style=torch.eye(3)[2].expand(2, 3))
        y.square().mean().backward()
        opt.step()
    after = multi.state_dict()
    for k, v in before.items():
        if k.endswith(("norm.weight", "norm.bias")):
            assert torch.equal(after[k][:2], v[:2]), k  # the other styles' rows
            assert not torch.equal(after[k][2], v[2]), k  # the new style's row trained
        else:
            assert torch.equal(after[k], v), k


def test_finetuning_needs_per_style_norms():
    with pytest.raises(NSTError, match="per-style norms"):
        freeze_for_norm_finetune(TransformerNet(8, 1), [0])


def test_adopt_starts_new_rows_from_the_mean_of_the_old(multi):
    bigger = TransformerNet(8, 1, output="linear", num_styles=4)
    adopt(bigger, multi)
    w_old, w_new = multi.encoder[0].norm.weight, bigger.encoder[0].norm.weight
    torch.testing.assert_close(w_new[:3], w_old)
    torch.testing.assert_close(w_new[3], w_old.mean(0))


def test_adopting_a_network_without_head_input_keeps_its_function():
    torch.manual_seed(0)
    source = TransformerNet(8, 1).eval()
    target = TransformerNet(8, 1, head_input=True, strength_input=True).eval()
    adopt(target, source)
    x = torch.rand(2, 3, 20, 24)
    # composite norms and a wider output conv vs the source's: equal up to float32 rounding
    torch.testing.assert_close(target(x), source(x), atol=float32_atol(source, x), rtol=0)
    assert target.head[1].weight[:, 8:].abs().sum() == 0  # the photo's channels start at zero
    with pytest.raises(ValueError, match="does not fit"):
        adopt(TransformerNet(8, 1), target)


def test_adopt_refuses_other_widths(multi):
    with pytest.raises(ValueError, match="differ"):
        adopt(TransformerNet(16, 1, output="linear", num_styles=4), multi)


NAMES = ["starry_night.jpg", "udnie.jpg", "the_great_wave.jpg"]


@pytest.mark.parametrize("choice,index", [(2, 2), ("1", 1), ("udnie", 1), ("The_Great_Wave.jpg", 2)])
def test_a_style_is_picked_by_index_or_name(choice, index):
    assert pick(NAMES, choice) == index


@pytest.mark.parametrize("choice", [3, -1, "monet"])
def test_an_unknown_style_lists_the_models_styles(choice):
    with pytest.raises(NSTError, match="0 starry_night.jpg, 1 udnie.jpg, 2 the_great_wave.jpg"):
        pick(NAMES, choice)


@pytest.mark.parametrize("mix,message", [([1, 0], "has 2 weights, this model has 3"),
                                         ([1, -1, 1], ">= 0"), ([0, 0, 0], "not all zero"),
                                         (["a", 1, 1], "a list of 3 weights")])
def test_a_bad_style_mix_gets_its_line(mix, message):
    with pytest.raises(NSTError, match=message):
        mix_for(NAMES, style_mix=mix)


def test_a_style_mix_is_normalized():
    torch.testing.assert_close(mix_for(NAMES, style_mix=[1, 0, 3]), torch.tensor([0.25, 0.0, 0.75]))
