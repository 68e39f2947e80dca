from __future__ import annotations

import pytest
import torch

from nst.errors import NSTError
from nst.perceptual.losses import (
    PerceptualLoss,
    blend_weights,
    content_loss,
    feature_mean,
    gram_matrix,
    mean_loss,
    style_loss,
    tv_loss,
)
from nst.perceptual.vgg import load_vgg


@pytest.fixture(scope="module")
def vgg():
    return load_vgg("vgg16", "random", ["relu1_2", "relu2_2", "relu3_3"])


def make_loss(vgg, **kw):
    args = dict(content_layers={"relu2_2": 1.0}, style_layers={"relu1_2": 1.0, "relu3_3": 0.5},
                content_weight=1.0, style_weight=10.0, tv_weight=1.0)
    args.update(kw)
    return PerceptualLoss(vgg, **args)


def test_gram_matches_hand_computed_value():
    f = torch.tensor([[1.0, 2.0], [3.0, 4.0]]).view(1, 2, 1, 2)  # C=2, H=1, W=2
    expected = torch.tensor([[1 + 4, 3 + 8], [3 + 8, 9 + 16]]) / 4.0
    torch.testing.assert_close(gram_matrix(f)[0], expected)


def test_gram_is_float32_from_half_input():
    assert gram_matrix(torch.rand(2, 3, 4, 4).bfloat16()).dtype == torch.float32


def test_gram_gradcheck():
    f = torch.rand(2, 3, 3, 4, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(gram_matrix, (f,))


@pytest.mark.parametrize("normalize", [True, False])
def test_content_loss_gradcheck(normalize):
    x = torch.rand(1, 2, 3, 3, dtype=torch.float64, requires_grad=True)
    t = torch.rand(1, 2, 3, 3, dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda a: content_loss(a, t, normalize=normalize), (x,))


@pytest.mark.parametrize("normalize", [True, False])
def test_style_loss_gradcheck_through_the_gram(normalize):
    f = torch.rand(2, 3, 4, 4, dtype=torch.float64, requires_grad=True)
    target = gram_matrix(torch.rand(1, 3, 5, 5, dtype=torch.float64))  # one target broadcast to the batch
    assert torch.autograd.gradcheck(lambda a: style_loss(gram_matrix(a), target, normalize=normalize), (f,))


def test_tv_loss_gradcheck():
    img = torch.rand(1, 3, 4, 5, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(tv_loss, (img,))


def test_low_precision_features_are_widened_to_float32():
    f = torch.rand(1, 4, 5, 5).bfloat16()
    assert gram_matrix(f).dtype == torch.float32
    assert content_loss(f, f.float()).dtype == torch.float32 and tv_loss(f.half()).dtype == torch.float32


def test_terms_are_zero_at_their_targets():
    f = torch.rand(2, 4, 5, 5)
    assert content_loss(f, f) == 0
    g = gram_matrix(f)
    assert style_loss(g, g) == 0
    assert tv_loss(torch.full((1, 3, 8, 8), 0.3)) == 0


def test_normalization_makes_terms_scale_free():
    f, t = torch.rand(1, 4, 5, 5), torch.rand(1, 4, 5, 5)
    torch.testing.assert_close(content_loss(100 * f, 100 * t), content_loss(f, t))
    g, h = gram_matrix(f), gram_matrix(t)
    torch.testing.assert_close(style_loss(gram_matrix(100 * f), gram_matrix(100 * t)), style_loss(g, h))


def test_tv_of_a_step_edge():
    img = torch.zeros(1, 1, 4, 4)
    img[..., 2:] = 1.0  # one vertical edge: 4 of 12 horizontal differences are 1
    torch.testing.assert_close(tv_loss(img), torch.tensor(4 / 12))


def test_blend_weights_normalize_and_validate():
    assert blend_weights(2, [3, 1]) == [0.75, 0.25]
    with pytest.raises(ValueError):
        blend_weights(2, [1.0])


def test_style_targets_are_buffers_that_follow_the_module(vgg, image):
    loss = make_loss(vgg)
    loss.set_style([image])
    names = {n for n, _ in loss.named_buffers()}
    assert {"style_targets_relu1_2", "style_targets_relu3_3", "style_blend"} <= names
    assert "style_targets_relu1_2" not in loss.state_dict()


def test_loss_is_zero_for_the_style_image_itself_without_content_and_tv(vgg, image):
    loss = make_loss(vgg, tv_weight=0.0)
    loss.set_style([image])
    out = loss(image, image)
    assert out["loss"].item() == pytest.approx(0.0, abs=1e-6)


def test_returns_every_term_by_name(vgg, image):
    loss = make_loss(vgg)
    loss.set_style([image.flip(-1)])
    out = loss(image.flip(-2), image)
    assert {"loss", "content", "style", "tv", "content/relu2_2", "style/relu1_2", "style/relu3_3"} <= set(out)
    total = out["content"] + out["style"] + out["tv"]
    torch.testing.assert_close(out["loss"].detach(), total)
    torch.testing.assert_close(out["style"], 10.0 * (out["style/relu1_2"] + 0.5 * out["style/relu3_3"]))


def test_blend_of_two_styles_is_the_weighted_gram(vgg, image):
    a, b = image, image.flip(-1).roll(7, -2)
    la, lb, lab = make_loss(vgg), make_loss(vgg), make_loss(vgg)
    la.set_style([a]), lb.set_style([b]), lab.set_style([a, b], [0.7, 0.3])
    expected = 0.7 * la.style_target("relu1_2") + 0.3 * lb.style_target("relu1_2")
    torch.testing.assert_close(lab.style_target("relu1_2"), expected)


def test_gradient_flows_to_the_image_only(vgg, image):
    loss = make_loss(vgg)
    loss.set_style([image.flip(-1)])
    x = image.clone().requires_grad_(True)
    loss(x, image)["loss"].backward()
    assert x.grad.abs().sum() > 0
    assert all(p.grad is None for p in loss.parameters())


def test_forward_before_set_style_is_an_error(vgg, image):
    with pytest.raises(RuntimeError, match="set_style"):
        make_loss(vgg)(image, image)


def test_too_small_style_image_names_the_file(vgg):
    from nst.errors import NSTError

    with pytest.raises(NSTError, match="tiny.png: style image of 2x2 px is too small"):
        make_loss(vgg).set_style([torch.rand(1, 3, 2, 2)], names=["tiny.png"])


def test_one_set_of_targets_per_style_and_per_image_scoring(vgg):
    g = torch.Generator().manual_seed(0)
    a, b = torch.rand(1, 3, 24, 24, generator=g), torch.rand(1, 3, 24, 24, generator=g)
    both = PerceptualLoss(vgg, ["relu2_2"], ["relu1_2", "relu2_2"])
    both.set_style([a, b])
    only_b = PerceptualLoss(vgg, ["relu2_2"], ["relu1_2", "relu2_2"])
    only_b.set_style([b])
    assert both.num_styles == 2 and both.style_targets_relu1_2.shape[0] == 2
    x = torch.rand(2, 3, 24, 24, generator=g)
    per_image = both(x, x, style=torch.tensor([1, 1]))
    torch.testing.assert_close(per_image["style"], only_b(x, x)["style"])
    mixed = both(x, x, style=torch.tensor([0, 1]))["style"]
    assert not torch.allclose(mixed, per_image["style"])


def test_pixel_scale_weighs_the_pixel_term(vgg, image):
    loss = make_loss(vgg, pixel_weight=4.0)
    loss.set_style([image])
    photo = torch.rand_like(image)
    full, half, none = (loss(image, photo, pixel_scale=p) for p in (1.0, 0.5, 0.0))
    expect = 4.0 * torch.mean((image - photo) ** 2)
    assert torch.allclose(full["pixel"], expect, rtol=1e-5)
    assert torch.allclose(half["pixel"], expect / 2, rtol=1e-5)
    assert float(none["pixel"]) == 0.0
    assert torch.allclose(none["loss"], full["loss"] - full["pixel"], rtol=1e-5)


def test_a_drawn_strength_fades_the_style_term_in_and_the_pixel_term_out():
    from nst.training.conditions import RandomStrength

    torch.manual_seed(0)
    for _ in range(5):
        net_kw, loss_kw = RandomStrength(0.0, 1.0)(2, torch.device("cpu"))
        s = float(net_kw["strength"][0])
        assert loss_kw["style_scale"] == pytest.approx(s)
        assert loss_kw["pixel_scale"] == pytest.approx(1.0 - s)


def test_strength_ends_draws_that_share_of_batches_exactly_at_the_ends():
    from nst.training.conditions import RandomStrength

    torch.manual_seed(0)
    draw = RandomStrength(0.0, 1.0, ends=0.5)
    s = [float(draw(1, torch.device("cpu"))[0]["strength"][0]) for _ in range(2000)]
    zeros, ones = s.count(0.0) / len(s), s.count(1.0) / len(s)
    assert 0.2 < zeros < 0.3 and 0.2 < ones < 0.3  # a quarter at each end
    inside = [v for v in s if 0.0 < v < 1.0]
    assert 0.45 < sum(inside) / len(inside) < 0.55  # the rest uniform
    torch.manual_seed(0)
    plain = [float(RandomStrength(0.0, 1.0)(1, torch.device("cpu"))[0]["strength"][0]) for _ in range(50)]
    assert 0.0 not in plain and 1.0 not in plain  # ends=0 (the default): uniform only


def test_a_bad_strength_ends_is_refused():
    from nst.training.conditions import RandomStrength

    with pytest.raises(ValueError, match="strength_ends=1.5"):
        RandomStrength(0.0, 1.0, ends=1.5)


def test_the_centered_gram_ignores_each_channels_mean():
    f = torch.rand(2, 3, 4, 5, dtype=torch.float64)
    shifted = f + torch.tensor([1.0, -2.0, 5.0], dtype=torch.float64).view(1, 3, 1, 1)
    torch.testing.assert_close(gram_matrix(shifted, centered=True), gram_matrix(f, centered=True))
    assert not torch.allclose(gram_matrix(shifted), gram_matrix(f))


def test_centered_gram_and_mean_gradcheck():
    f = torch.rand(2, 3, 4, 4, dtype=torch.float64, requires_grad=True)
    target = torch.rand(1, 3, dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda a: gram_matrix(a, centered=True), (f,))
    assert torch.autograd.gradcheck(lambda a: mean_loss(feature_mean(a), target), (f,))


def test_centered_style_terms_are_zero_for_the_style_image_itself(vgg, image):
    loss = make_loss(vgg, tv_weight=0.0, style_moments="centered")
    loss.set_style([image])
    assert loss(image, image)["loss"].item() == pytest.approx(0.0, abs=1e-6)


def test_a_picture_without_spread_misses_the_whole_centered_term(vgg, image):
    """A flat picture of the painting's mean colour has no covariance at all: its centered term is
    the whole relative error (1), whatever share the mean has in the raw Gram matrix."""
    loss = make_loss(vgg, style_layers={"relu1_2": 1.0}, style_moments="centered")
    loss.set_style([image])
    flat = image.mean((2, 3), keepdim=True).expand_as(image)
    assert loss(flat, image)["style/relu1_2"].item() > 0.9


def test_an_unknown_style_moment_is_refused(vgg):
    with pytest.raises(NSTError, match="style_moments='median'"):
        make_loss(vgg, style_moments="median")
