"""The notebook API: nst.api.load_model -> a callable Stylizer; PIL in -> PIL out, tensor in -> tensor out."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from nst.api import Stylizer, load_model, stylize
from nst.models.modelfile import save_model
from nst.networks.transformer import TransformerNet


@pytest.fixture
def model_path(tmp_path):
    torch.manual_seed(0)
    net = TransformerNet(channels=8, num_residual=1)
    return save_model(tmp_path / "tiny.safetensors", net, {"style": "x.jpg"})


@pytest.fixture
def model(model_path) -> Stylizer:
    return load_model(model_path, device="cpu")


def test_pil_round_trip_keeps_size_and_mode(model):
    pil = Image.fromarray(np.random.default_rng(0).integers(0, 256, (23, 37, 3), dtype=np.uint8))
    out = model(pil)
    assert isinstance(out, Image.Image) and out.mode == "RGB" and out.size == (37, 23)
    assert np.asarray(out).std() > 0


def test_pil_alpha_is_kept(model):
    rgba = np.random.default_rng(1).integers(0, 256, (16, 20, 4), dtype=np.uint8)
    out = stylize(model, Image.fromarray(rgba, "RGBA"))
    assert out.mode == "RGBA"
    np.testing.assert_array_equal(np.asarray(out)[..., 3], rgba[..., 3])


@pytest.mark.parametrize("shape", [(3, 19, 26), (2, 3, 19, 26)])
def test_tensor_in_tensor_out_of_the_same_shape(model, shape):
    x = torch.rand(shape)
    out = stylize(model, x)
    assert isinstance(out, torch.Tensor) and out.shape == x.shape and out.dtype == torch.float32


def test_per_call_options_do_not_change_the_model(model):
    x = torch.rand(1, 3, 16, 16)
    assert torch.equal(stylize(model, x, strength=0.0), x)
    assert not torch.equal(model(x), x) and model.strength == 1.0


def test_options_at_load_time_and_metadata(model_path):
    model = load_model(model_path, device="cpu", strength=0.0)
    x = torch.rand(1, 3, 16, 16)
    assert torch.equal(model(x), x)
    assert model.metadata["style"] == "x.jpg" and model.metadata["args"]["channels"] == 8


def test_stylize_refuses_something_that_is_not_a_model(model):
    with pytest.raises(TypeError):
        stylize(torch.nn.Identity(), torch.rand(3, 8, 8))
    with pytest.raises(TypeError):
        model("photo.jpg")


def test_package_exposes_the_api_lazily():
    import nst
    from nst import api

    assert nst.load_model is api.load_model and nst.Stylizer is api.Stylizer
