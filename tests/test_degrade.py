"""nst.training.degrade: the low-resolution inputs super-resolution learns from."""

from __future__ import annotations

import pytest
import torch

from nst.training.degrade import Degrade, bicubic, blur, crop_to_multiple, degrade, gaussian_kernel


def test_the_degradation_is_deterministic_and_divides_the_size():
    hr = torch.rand(2, 3, 48, 40, generator=torch.Generator().manual_seed(0))
    a, b = degrade(hr, 4), degrade(hr.clone(), 4)
    assert a.shape == (2, 3, 12, 10) and torch.equal(a, b)
    assert degrade(hr, 8).shape == (2, 3, 6, 5)


def test_a_flat_image_stays_flat_through_blur_and_downsampling():
    flat = torch.full((1, 3, 32, 32), 0.3)
    torch.testing.assert_close(degrade(flat, 4), torch.full((1, 3, 8, 8), 0.3))
    torch.testing.assert_close(bicubic(torch.full((1, 3, 8, 8), 0.3), 4), torch.full((1, 3, 32, 32), 0.3))


def test_the_gaussian_sums_to_one_and_blur_keeps_the_mean():
    k = gaussian_kernel(1.0)
    assert k.numel() == 7 and float(k.sum()) == pytest.approx(1.0)
    x = torch.rand(1, 3, 20, 20)
    assert float(blur(x, 1.0).mean()) == pytest.approx(float(x.mean()), abs=0.02)
    assert torch.equal(blur(x, 0.0), x)


def test_sizes_that_are_not_multiples_are_cropped_or_refused():
    hr = torch.rand(1, 3, 50, 43)
    assert crop_to_multiple(hr, 4).shape == (1, 3, 48, 40)
    with pytest.raises(ValueError, match="multiple"):
        degrade(hr, 4)
    lr, target = Degrade(4)(hr)
    assert lr.shape == (1, 3, 12, 10) and target.shape == (1, 3, 48, 40)
