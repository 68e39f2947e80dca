from __future__ import annotations

import pytest
import torch

from nst.errors import NSTError
from nst.perceptual.vgg import LAYER_NAMES, load_vgg


def test_layer_names_follow_torchvision_indices():
    # torchvision's vgg16.features: conv at 0, relu at 1, ..., pool1 at 4, relu4_2 at 20.
    names = LAYER_NAMES["vgg16"]
    assert names[0] == "conv1_1" and names[4] == "pool1" and names[20] == "relu4_2" and len(names) == 31
    assert len(LAYER_NAMES["vgg19"]) == 37 and LAYER_NAMES["vgg19"][35] == "relu5_4"


def test_returns_named_layers_with_expected_shapes(image):
    vgg = load_vgg("vgg16", "random", ["relu1_2", "relu2_2", "relu3_3"])
    out = vgg(image)
    assert list(out) == ["relu1_2", "relu2_2", "relu3_3"]
    assert out["relu1_2"].shape == (1, 64, 48, 40)
    assert out["relu2_2"].shape == (1, 128, 24, 20)
    assert out["relu3_3"].shape == (1, 256, 12, 10)


def test_runs_only_as_deep_as_needed():
    vgg = load_vgg("vgg16", "random", ["relu2_1"])
    assert len(vgg.features) == LAYER_NAMES["vgg16"].index("relu2_1") + 1


def test_unknown_layer_is_a_clear_error():
    with pytest.raises(NSTError, match="relu9_9"):
        load_vgg("vgg16", "random", ["relu9_9"])


def test_too_small_input_is_a_clear_error():
    vgg = load_vgg("vgg16", "random", ["relu5_1"])
    with pytest.raises(NSTError, match="too small.*relu5_1"):
        vgg(torch.rand(1, 3, 8, 8))


def test_frozen_and_not_in_state_dict():
    vgg = load_vgg("vgg16", "random", ["relu2_2"])
    assert all(not p.requires_grad for p in vgg.parameters())
    assert not any(k.startswith("features.") for k in vgg.state_dict())
    parent = torch.nn.Sequential(vgg)
    parent.load_state_dict(parent.state_dict())  # strict load still works without the weights
    parent.train()
    assert not vgg.training


def test_random_weights_are_seeded():
    a = load_vgg("vgg16", "random", ["relu1_1"], seed=3).features[0].weight
    b = load_vgg("vgg16", "random", ["relu1_1"], seed=3).features[0].weight
    c = load_vgg("vgg16", "random", ["relu1_1"], seed=4).features[0].weight
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_does_not_mutate_input(image):
    vgg = load_vgg("vgg16", "random", ["relu1_2"])
    before = image.clone()
    vgg(image)
    assert torch.equal(image, before)


def test_gradient_reaches_the_input(image):
    vgg = load_vgg("vgg16", "random", ["relu3_1"])
    x = image.clone().requires_grad_(True)
    vgg(x)["relu3_1"].sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_forward_can_stop_at_a_shallower_layer(image):
    vgg = load_vgg("vgg16", "random", ["relu1_2", "relu4_3"])
    full, part = vgg(image), vgg(image, layers=["relu1_2"])
    assert list(part) == ["relu1_2"]
    torch.testing.assert_close(part["relu1_2"], full["relu1_2"])


def test_forward_refuses_a_layer_beyond_the_cut(image):
    vgg = load_vgg("vgg16", "random", ["relu1_2"])
    with pytest.raises(ValueError, match="relu3_1"):
        vgg(image, layers=["relu3_1"])
