from __future__ import annotations

import pytest
import torch

from nst.errors import NSTError
from nst.inference.color import (
    color_mode,
    match_color,
    match_histograms,
    rgb_to_yiq,
    transfer_luminance,
    yiq_to_rgb,
)


def test_yiq_round_trip(image):
    torch.testing.assert_close(yiq_to_rgb(rgb_to_yiq(image)), image, atol=1e-5, rtol=0)


def test_luminance_transfer_keeps_content_chroma_and_result_luma(image):
    image = image * 0.5 + 0.25
    stylized = image.flip(-1).roll(5, -2) * 0.2 + 0.4  # mid-range: the recombination stays in gamut
    out = transfer_luminance(stylized, image)
    yo, yc, ys = rgb_to_yiq(out), rgb_to_yiq(image), rgb_to_yiq(stylized)
    torch.testing.assert_close(yo[:, 1:], yc[:, 1:], atol=2e-3, rtol=0)
    torch.testing.assert_close(yo[:, :1], ys[:, :1], atol=2e-3, rtol=0)


def test_match_color_moves_mean_and_covariance_to_reference(image):
    source = image.roll(9, -1) * torch.tensor([0.2, 0.9, 0.4]).view(1, 3, 1, 1)
    reference = image * 0.6 + 0.2
    out = match_color(source, reference)
    torch.testing.assert_close(out.mean((0, 2, 3)), reference.mean((0, 2, 3)), atol=2e-2, rtol=0)
    torch.testing.assert_close(torch.cov(out.reshape(3, -1)), torch.cov(reference.reshape(3, -1)),
                               atol=5e-3, rtol=0)


@pytest.mark.parametrize("value,expected", [(False, "none"), (None, "none"), (True, "luminance"),
                                            ("histogram", "histogram")])
def test_color_mode_values(value, expected):
    assert color_mode(value) == expected


def test_color_mode_rejects_unknown():
    with pytest.raises(NSTError, match="preserve_color"):
        color_mode("sepia")


def test_match_histograms_gives_the_reference_values_at_equal_sizes():
    g = torch.Generator().manual_seed(0)
    image, reference = torch.rand(2, 3, 9, 11, generator=g) ** 2, torch.rand(2, 3, 9, 11, generator=g)
    out = match_histograms(image, reference)
    assert torch.equal(out.flatten(2).sort(-1).values, reference.flatten(2).sort(-1).values)


def test_match_histograms_keeps_the_order_of_the_values():
    g = torch.Generator().manual_seed(1)
    image, reference = torch.rand(1, 3, 24, 20, generator=g), torch.rand(1, 3, 6, 5, generator=g) ** 3
    out = match_histograms(image, reference).flatten(2)
    order = image.flatten(2).argsort(-1)
    assert (out.gather(-1, order).diff(dim=-1) >= 0).all()


def test_match_histograms_of_a_larger_image_takes_the_reference_quantiles():
    g = torch.Generator().manual_seed(2)
    image = torch.rand(1, 1, 40, 40, generator=g)
    reference = torch.rand(1, 1, 10, 10, generator=g) * 0.5 + 0.2
    out = match_histograms(image, reference)
    assert out.min() >= reference.min() and out.max() <= reference.max()
    q = torch.tensor([0.1, 0.5, 0.9])
    assert torch.allclose(out.flatten().quantile(q), reference.flatten().quantile(q), atol=0.02)


def test_match_histograms_of_an_image_with_itself_is_the_identity(image):
    assert torch.equal(match_histograms(image, image), image)


def test_match_histograms_refuses_mismatched_channels():
    with pytest.raises(ValueError, match="equal N and C"):
        match_histograms(torch.rand(1, 3, 4, 4), torch.rand(1, 1, 4, 4))
