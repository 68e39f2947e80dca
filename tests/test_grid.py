"""nst.io.grid: the one picture layout."""

from __future__ import annotations

import torch

from nst.io.grid import grid


def test_rows_are_scaled_to_one_height_with_white_gaps():
    a, b = torch.zeros(1, 3, 10, 20), torch.zeros(1, 3, 20, 20)
    pic = grid([[a, b], [b]], height=10, gap=2)
    assert pic.shape == (1, 3, 10 + 2 + 10, 20 + 2 + 10)
    assert pic[..., :10, 20:22].eq(1).all() and pic[..., 10:12, :].eq(1).all()  # gaps are white
    assert pic[..., 12:, 10:].eq(1).all()  # a short row is padded with white


def test_labels_add_a_strip_with_text_above_each_image():
    plain = grid([[torch.zeros(1, 3, 16, 16)]], height=16)
    labelled = grid([[torch.zeros(1, 3, 16, 16)]], height=16, labels=[["Gatys 25"]])
    assert labelled.shape[-2] == plain.shape[-2] + 20
    assert labelled[..., :20, :].lt(1).any()  # some dark text pixels
