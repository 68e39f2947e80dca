"""The Gatys optimizer: library function, init modes, determinism (random VGG, tiny images)."""

from __future__ import annotations

import pytest
import torch

from nst.errors import NSTError
from nst.gatys.initial_image import initial_image
from nst.gatys.module import GatysModule, optimize
from nst.io.image import resize, save_image
from nst.perceptual.losses import PerceptualLoss, tv_loss
from nst.perceptual.vgg import load_vgg

STYLE = {"relu1_1": 1.0, "relu2_1": 1.0, "relu3_1": 1.0}


@pytest.fixture
def loss(image) -> PerceptualLoss:
    """A shallow Gatys-like loss (cheap on 2 cores) with the style of a pattern set."""
    vgg = load_vgg("vgg16", "random", layers=[*STYLE, "relu2_2"], seed=0)
    loss = PerceptualLoss(vgg, {"relu2_2": 1.0}, STYLE, content_weight=1.0, style_weight=10.0, tv_weight=1.0)
    stripes = (torch.arange(40).view(1, 1, 1, 40) % 8 < 4).float().expand(1, 3, 40, 40)
    loss.set_style([stripes * torch.tensor([0.9, 0.3, 0.1]).view(1, 3, 1, 1)])
    return loss


@pytest.mark.parametrize("opt", ["lbfgs", "adam"])
def test_loss_falls(image, loss, opt):
    result = optimize(image, loss, iterations=8, optimizer=opt, lr=0.05 if opt == "adam" else None)
    assert len(result.history) == 8
    assert result.losses["loss"] < 0.7 * result.history[0]["loss"]
    assert result.image.shape == image.shape
    assert 0.0 <= float(result.image.min()) and float(result.image.max()) <= 1.0


def test_logs_every_term_per_layer(image, loss):
    result = optimize(image, loss, iterations=2)
    expected = {"loss", "content", "style", "tv", "content/relu2_2", *(f"style/{n}" for n in STYLE)}
    assert set(result.history[0]) == expected
    assert set(result.losses) == expected


def test_content_init_starts_at_the_content(image, loss):
    assert torch.equal(initial_image(image, "content"), image)
    result = optimize(image, loss, iterations=1, init="content")
    assert result.history[0]["content"] == 0.0


def test_noise_init_differs_from_content_and_follows_the_seed(image):
    noise = initial_image(image, "noise", seed=1)
    assert noise.shape == image.shape
    assert (noise - image).abs().mean() > 0.1
    assert torch.equal(noise, initial_image(image, "noise", seed=1))
    assert not torch.equal(noise, initial_image(image, "noise", seed=2))


def test_blurred_noise_is_smoother_than_noise(image):
    noise, blurred = initial_image(image, "noise", seed=0), initial_image(image, "blurred_noise", seed=0)
    assert tv_loss(blurred) < 0.2 * tv_loss(noise)
    assert blurred.std() > 0.05  # not flat grey: it still has structure to start from


def test_image_path_init_starts_from_that_image_at_the_content_size(image, tmp_path):
    path = save_image(resize(image.flip(-1), scale=2.0), tmp_path / "start.png")
    start = initial_image(image, str(path))
    assert start.shape == image.shape
    torch.testing.assert_close(start, image.flip(-1), atol=0.05, rtol=0)


def test_bad_init_and_bad_init_path_are_one_line_errors(image, tmp_path):
    with pytest.raises(NSTError, match="init='nois'"):
        initial_image(image, "nois")
    with pytest.raises(NSTError, match="nowhere.png"):
        initial_image(image, str(tmp_path / "nowhere.png"))


def test_same_seed_same_image_bitwise(image, loss):
    a = optimize(image, loss, iterations=3, init="noise", seed=5).image
    b = optimize(image, loss, iterations=3, init="noise", seed=5).image
    assert torch.equal(a, b)


def test_lbfgs_step_is_one_forward_backward(image, loss):
    """Without a line search one trainer step evaluates the loss exactly once."""
    calls = []
    loss.vgg.register_forward_hook(lambda *a: calls.append(1))
    optimize(image, loss, iterations=4)
    assert len(calls) == 1 + 4 + 1  # the content targets once; one per step; the final image's terms


def test_pixels_stay_in_range(image, loss):
    module = GatysModule(loss, image, optimizer="adam", lr=5.0)
    assert module.image.requires_grad and module.image.shape == image.shape
    result = optimize(image, loss, iterations=2, optimizer="adam", lr=5.0)
    assert 0.0 <= float(result.image.min()) and float(result.image.max()) <= 1.0


def test_bad_options_are_nst_errors(image, loss):
    with pytest.raises(NSTError, match="optimizer='sgd'"):
        GatysModule(loss, image, optimizer="sgd")
    with pytest.raises(NSTError, match="iterations=0"):
        optimize(image, loss, iterations=0)
    with pytest.raises(NSTError, match="too small"):
        optimize(image[..., :1, :1], loss, iterations=1)



def test_bf16_autocast_and_channels_last_keep_a_float32_image(image, loss):
    """The GPU settings, exercised on the CPU: the image stays float32 and the loss still falls.

    Adam here: unguarded L-BFGS steps on this tiny random-weight problem overshoot now and then
    (in float32 too); on real images bf16 L-BFGS converged like float32 (128 px, 50 steps)."""
    result = optimize(image, loss, iterations=4, channels_last=True, optimizer="adam", lr=0.05,
                      trainer_kwargs={"accelerator": "cpu", "precision": "bf16-mixed"})
    assert result.image.dtype == torch.float32 and result.image.is_contiguous()
    assert torch.isfinite(result.image).all()
    assert result.losses["loss"] < result.history[0]["loss"]


def test_strong_wolfe_line_search_lowers_the_loss_every_step(image, loss):
    result = optimize(image, loss, iterations=4, line_search="strong_wolfe")
    losses = [h["loss"] for h in result.history] + [result.losses["loss"]]
    assert len(losses) == 5
    assert all(b < a for a, b in zip(losses, losses[1:])), losses


def test_the_result_is_the_best_iterate_even_when_steps_go_uphill(image, loss):
    """Without a line search a too-long L-BFGS step raises the loss; the result is still the best
    image seen, so a reference run never goes backwards."""
    result = optimize(image, loss, iterations=10, init="noise", lr=8.0)
    losses = [h["loss"] for h in result.history]
    assert any(b > a for a, b in zip(losses, losses[1:])), losses  # the raw iterates did rise
    assert result.losses["loss"] <= min(losses) * (1 + 1e-6)


def test_a_line_search_step_does_not_evaluate_its_start_point_twice(image, loss):
    """torch's L-BFGS re-evaluates where the previous step's line search ended; the module answers
    that from the line search's own evaluation. Re-evaluating would cost 1 + 2n + 1 forwards."""
    calls = []
    loss.vgg.register_forward_hook(lambda *a: calls.append(1))
    n = 6
    result = optimize(image, loss, iterations=n, line_search="strong_wolfe")
    assert len(calls) < 1 + 2 * n + 1
    losses = [h["loss"] for h in result.history] + [result.losses["loss"]]
    assert all(b < a for a, b in zip(losses, losses[1:])), losses
