"""Flicker measures (nst/evaluation/flicker.py), the stability terms (nst/perceptual/stability.py) and
`nst mode=flicker`."""

from __future__ import annotations

import json

import pytest
import torch
from conftest import compose_config  # noqa: E402
from torch import nn

import nst.cli
from nst.errors import NSTError
from nst.evaluation import flicker
from nst.io.image import save_image
from nst.models.modelfile import save_model
from nst.networks.transformer import TransformerNet
from nst.perceptual.stability import StabilityLoss, random_affine, warp


def photo(h=40, w=100, seed=0):
    return torch.rand(1, 3, h, w, generator=torch.Generator().manual_seed(seed))


def test_a_pan_moves_by_exactly_its_step():
    frames = list(flicker.pan(photo(), 5, 3, 60, 30))
    assert len(frames) == 5 and frames[0].shape == (1, 3, 30, 60)
    for a, b in zip(frames, frames[1:]):
        torch.testing.assert_close(b[..., :-3], a[..., 3:])


def test_a_photo_too_small_for_the_pan_is_refused():
    with pytest.raises(NSTError, match="needs a photo of at least 108x30"):
        list(flicker.pan(photo(), 25, 2, 60, 30))


def test_the_identity_has_no_pan_error_and_noise_has_some():
    frames = list(flicker.pan(photo(), 4, 2, 60, 30))
    assert all(flicker.pan_error(a, b, 2) == 0 for a, b in zip(frames, frames[1:]))
    noisy = [f + 0.1 * torch.randn_like(f) for f in frames]
    assert flicker.pan_error(noisy[0], noisy[1], 2) == pytest.approx(0.02, rel=0.2)  # 2 x 0.1^2


def test_the_identity_has_almost_no_zoom_error():
    smooth = torch.nn.functional.avg_pool2d(photo(80, 120), 9, 1, 4)  # bilinear resampling blurs detail
    frames = list(flicker.zoom(smooth, 3, 1.01, 60, 40))
    assert flicker.zoom_error(frames[0], frames[1], 1.01) < 1e-4
    assert flicker.zoom_error(frames[0], frames[1], 1.01) < flicker.zoom_error(frames[1], frames[0], 1.01)


def test_flow_error_of_the_identity_on_a_pan_is_small():
    pytest.importorskip("cv2")
    smooth = torch.nn.functional.avg_pool2d(photo(64, 160), 5, 1, 2)
    a, b = list(flicker.pan(smooth, 2, 2, 96, 64))
    same = flicker.flow_error(a, b, a, b)
    flick = flicker.flow_error(a, b * 0.8, a, b)  # the output dims although the frame only moved
    assert same < 2e-4 and flick > 10 * same


def test_measure_averages_pairs_and_counts_frames():
    frames = torch.cat(list(flicker.pan(photo(), 6, 2, 60, 30)))
    m = flicker.Measure(lambda a, b, *_: flicker.pan_error(a, b, 2), keep=3)
    m.add(frames[:4], frames[:4], 0.5)
    m.add(frames[4:], frames[4:] + 0.1, 0.5)
    row = m.result()
    assert row["frames"] == 6 and row["frames_per_s"] == pytest.approx(6.0)
    assert row["warping_error"] == pytest.approx(0.01 / 5)  # one pair of five differs by 0.1
    assert m.pair is not None


class _Shift(nn.Module):
    """An identity plus a fixed spatial pattern: not equivariant to motion."""

    def __init__(self, h, w):
        super().__init__()
        self.pattern = nn.Parameter(0.1 * torch.randn(1, 3, h, w))

    def forward(self, x):
        return x + self.pattern


def test_the_identity_is_perfectly_stable_under_warps():
    x = photo(32, 32).expand(2, -1, -1, -1)
    terms = StabilityLoss(1.0, noise=0.05)(nn.Identity(), x, x)
    assert float(terms["stability/warp"]) < 1e-10
    assert float(terms["stability/noise"]) == pytest.approx(0.05 ** 2, rel=0.3)  # the noise itself


def test_a_constant_network_has_no_stability_terms():
    x = photo(32, 32)
    terms = StabilityLoss(1.0)(lambda z: torch.full_like(z, 0.5), x, torch.full_like(x, 0.5))
    assert float(terms["stability"]) == 0.0


def test_a_pattern_fixed_to_the_frame_is_penalized_and_trained_away():
    torch.manual_seed(0)
    x = photo(32, 32)
    net = _Shift(32, 32)
    loss = StabilityLoss(1.0, max_shift=4, max_zoom=0.0, noise=0.0)
    first = loss(net, x, net(x))
    first["stability"].backward()
    assert float(first["stability/warp"]) > 1e-3 and net.pattern.grad.abs().sum() > 0


def test_without_noise_the_network_runs_once_more_only_for_the_warp():
    calls = []

    def net(z):
        calls.append(z.shape[0])
        return z

    x = photo(16, 16).repeat(2, 1, 1, 1)
    terms = StabilityLoss(1.0, noise=0.0)(net, x, x)
    assert calls == [2] and float(terms["stability/noise"]) == 0.0
    StabilityLoss(1.0, noise=0.03)(net, x, x)
    assert calls[-1] == 4  # the warped and the noisy copies in one pass


def test_warp_masks_the_pixels_from_outside():
    theta = torch.tensor([[[1.0, 0.0, 0.5], [0.0, 1.0, 0.0]]])  # a quarter of the width to the right
    _, valid = warp(torch.rand(1, 3, 8, 8), theta)
    assert valid[0, 0, :, :6].all() and not valid[0, 0, :, 7].any()


def test_random_affine_stays_within_its_bounds():
    theta = random_affine(200, 64, 64, max_shift=4, max_zoom=0.05)
    assert theta[:, 0, 0].min() >= 1 / 1.05 - 1e-6 and theta[:, 0, 0].max() <= 1.05 + 1e-6
    assert theta[:, :, 2].abs().max() <= 2 * 4 / 64 + 1e-6


def test_the_loss_config_builds_the_stability_term():
    cfg = compose_config(["experiment=quickstart_stable"])
    assert cfg.loss.stability_weight > 0
    from nst.perceptual.losses import PerceptualLoss
    from nst.perceptual.vgg import load_vgg
    vgg = load_vgg("vgg16", "random", ["relu2_2"])
    loss = PerceptualLoss(vgg, {"relu2_2": 1.0}, {"relu2_2": 1.0}, stability=dict(cfg.loss.stability),
                          stability_weight=float(cfg.loss.stability_weight))
    assert isinstance(loss.stability, StabilityLoss) and loss.stability.weight == cfg.loss.stability_weight


def run(tmp_path, *overrides: str):
    cfg = compose_config(["logger=none", f"paths.output_dir={tmp_path / 'run'}", *overrides])
    return nst.cli.run(cfg)


def test_flicker_mode_reports_every_model_and_statistics_choice(tmp_path):
    torch.manual_seed(0)
    a = save_model(tmp_path / "a.safetensors", TransformerNet(channels=8, num_residual=1).eval(), {})
    b = save_model(tmp_path / "b.safetensors", TransformerNet(channels=8, num_residual=1).eval(), {})
    save_image(photo(48, 120), tmp_path / "p.png")
    report = run(tmp_path, "mode=flicker", f"checkpoint={a}", f"baselines=[{b}]",
                 f"input={tmp_path / 'p.png'}", "frames=6", "width=64", "height=48",
                 "video_stats=[frame,clip]", f"output={tmp_path / 'fl'}")
    rows = report["rows"]
    assert [(r["model"].endswith("a.safetensors"), r["video_stats"]) for r in rows] == \
        [(True, "frame"), (True, "clip"), (False, "frame"), (False, "clip")]
    assert all(r["frames"] == 6 and r["warping_error"] > 0 for r in rows)
    saved = json.loads((tmp_path / "fl" / "results.json").read_text())
    assert saved["rows"] == json.loads(json.dumps(rows))
    assert (tmp_path / "fl" / "flicker.jpg").is_file() and "| a.safetensors | clip |" in \
        (tmp_path / "fl" / "results.md").read_text()


def test_flicker_mode_refuses_an_unknown_motion(tmp_path):
    a = save_model(tmp_path / "a.safetensors", TransformerNet(channels=8, num_residual=1).eval(), {})
    save_image(photo(48, 120), tmp_path / "p.png")
    with pytest.raises(NSTError, match="motion='spin'"):
        run(tmp_path, "mode=flicker", f"checkpoint={a}", f"input={tmp_path / 'p.png'}", "motion=spin")


def test_make_clip_script_writes_a_pan_with_sound(tmp_path):
    import importlib.util
    from pathlib import Path

    pytest.importorskip("av")
    from nst.io.video import probe

    path = Path(__file__).resolve().parent.parent / "scripts" / "make_clip.py"
    spec = importlib.util.spec_from_file_location("make_clip", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    save_image(photo(48, 120), tmp_path / "p.png")
    out = tmp_path / "pan.mp4"
    assert module.main([str(tmp_path / "p.png"), str(out), "--frames", "10", "--width", "64",
                        "--height", "48", "--audio"]) == 0
    info = probe(out)
    assert (info.width, info.height, info.frames, info.audio) == (64, 48, 10, "aac")
    assert module.main([str(tmp_path / "p.png"), str(out) + ".mp4", "--frames", "100", "--width", "64",
                        "--height", "48"]) == 2  # the photo is too small for that pan: one line


def test_flicker_mode_measures_a_real_clip_with_optical_flow(tmp_path):
    pytest.importorskip("av")
    pytest.importorskip("cv2")
    from nst.io.video import write_frames

    smooth = torch.nn.functional.avg_pool2d(photo(64, 140), 5, 1, 2)
    clip = tmp_path / "pan.mp4"
    write_frames(clip, flicker.pan(smooth, 6, 2, 96, 64), 25)
    a = save_model(tmp_path / "a.safetensors", TransformerNet(channels=8, num_residual=1).eval(), {})
    report = run(tmp_path, "mode=flicker", f"checkpoint={a}", f"input={clip}", "frames=6",
                 f"output={tmp_path / 'fl'}")
    assert "optical flow" in report["source"]["motion"]
    assert report["rows"][0]["frames"] == 6 and report["rows"][0]["warping_error"] > 0


def test_a_zoom_out_is_refused():
    with pytest.raises(NSTError, match="zoom_rate=0.99"):
        list(flicker.zoom(photo(80, 120), 3, 0.99, 60, 40))
