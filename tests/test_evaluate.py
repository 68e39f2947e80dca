"""nst.evaluation.superres: PSNR/SSIM on Y with the SR convention, and the bicubic baseline."""

from __future__ import annotations

import math

import pytest
import torch

from nst.evaluation.superres import evaluate_image, psnr_y, rgb_to_y, ssim_y
from nst.training.degrade import bicubic, degrade


def test_identical_images_score_the_maximum():
    x = torch.rand(1, 3, 40, 40)
    assert psnr_y(x, x, 4) == math.inf
    assert ssim_y(x, x, 4) == pytest.approx(1.0)


def test_y_is_the_bt601_luma_of_rgb2ycbcr():
    white, black = torch.ones(1, 3, 1, 1), torch.zeros(1, 3, 1, 1)
    assert float(rgb_to_y(white)) == pytest.approx(235 / 255, abs=1e-4)
    assert float(rgb_to_y(black)) == pytest.approx(16 / 255)


def test_psnr_matches_a_hand_computation():
    # a uniform error of 10 grey levels on Y: MSE = (10 * 219 / 255 / 255)^2 for an RGB step of
    # 10/255 on every channel (Y spans 219 levels for 255 of RGB)
    a = torch.full((1, 3, 16, 16), 100 / 255)
    b = torch.full((1, 3, 16, 16), 110 / 255)
    dy = rgb_to_y(torch.round(b * 255) / 255) - rgb_to_y(torch.round(a * 255) / 255)
    want = 10 * math.log10(1 / float(dy.mean()) ** 2)
    assert psnr_y(a, b, 2) == pytest.approx(want, abs=1e-4)  # Y is computed in float32


def test_the_bicubic_baseline_on_a_small_synthetic_image_matches_the_functions_it_combines():
    g = torch.Generator().manual_seed(1)
    hr = torch.nn.functional.avg_pool2d(torch.rand(1, 3, 34, 30, generator=g), 3, 1, 1)
    scores, lr, cropped, outputs = evaluate_image(hr, {}, factor=4)
    assert cropped.shape == (1, 3, 32, 28) and lr.shape == (1, 3, 8, 7)
    by_hand = bicubic(degrade(hr[..., :32, :28], 4), 4)
    torch.testing.assert_close(outputs["bicubic"], by_hand)
    assert scores["bicubic"]["psnr_y"] == pytest.approx(psnr_y(by_hand, cropped, 4))
    assert 0 < scores["bicubic"]["ssim_y"] < 1


def test_a_better_method_scores_higher_than_bicubic():
    hr = torch.nn.functional.avg_pool2d(torch.rand(1, 3, 48, 48, generator=torch.Generator().manual_seed(2)),
                                        3, 1, 1)
    cheat = {"oracle": lambda lr: hr[..., :48, :48]}  # returns the original itself
    scores = evaluate_image(hr, cheat, factor=4)[0]
    assert scores["oracle"]["psnr_y"] > scores["bicubic"]["psnr_y"]
