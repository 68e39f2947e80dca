"""One-pass inference: sizes, tiles that agree with a whole-image pass, strength, colour, files."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from nst.errors import NSTError
from nst.inference.batch import stylize_files
from nst.inference.color import rgb_to_yiq
from nst.inference.jobs import Job
from nst.inference.stylize import Stylizer
from nst.inference.tiling import ramps, spans
from nst.io.image import load_image, save_image
from nst.networks.transformer import TransformerNet


@pytest.fixture
def stylizer() -> Stylizer:
    torch.manual_seed(0)
    return Stylizer(TransformerNet(channels=8, num_residual=1), tile_size=None)


def photo(h: int, w: int, seed: int = 0) -> torch.Tensor:
    """A smooth random image (1,3,h,w): low-frequency noise upsampled, so tiles have structure."""
    g = torch.Generator().manual_seed(seed)
    small = torch.rand(1, 3, max(2, h // 8), max(2, w // 8), generator=g)
    return torch.nn.functional.interpolate(small, size=(h, w), mode="bilinear", align_corners=False)


@pytest.mark.parametrize("size", [(1, 1), (7, 3), (33, 17), (45, 64)])
def test_output_has_the_input_size(stylizer, size):
    assert stylizer(torch.rand(1, 3, *size)).shape == (1, 3, *size)


def test_odd_sized_image_is_tiled_to_its_exact_size(stylizer):
    out = stylizer(photo(71, 53), tile_size=32, tile_overlap=8)
    assert out.shape == (1, 3, 71, 53) and out.min() >= 0 and out.max() <= 1


@pytest.mark.parametrize("length", [65, 100, 127, 130, 6000])
def test_tiles_cover_the_axis_on_the_net_grid_and_overlap(length):
    windows = spans(length, 64, 16)
    assert windows[0][0] == 0 and windows[-1][1] == length
    assert all(a % 4 == 0 and (b - a) % 4 == length % 4 and b - a <= 64 for a, b in windows)
    assert all(b - c >= 12 for (_, b), (c, _) in zip(windows, windows[1:]))


def test_tiles_are_no_larger_than_the_overlap_needs():
    windows = spans(2048, 1024, 64)
    assert len(windows) == 3 and all(b - a <= 740 for a, b in windows)  # not 3 of 1024
    assert sum(b - a for a, b in windows) <= 2048 + 2 * 72


def test_ramps_cross_fade_to_one():
    windows = spans(300, 64, 16)
    total = torch.zeros(300)
    for (a, b), w in zip(windows, ramps(windows)):
        total[a:b] += w
    torch.testing.assert_close(total, torch.ones(300))


def test_tiled_and_whole_image_outputs_agree_with_shared_stats(stylizer):
    x = photo(96, 128)
    whole = stylizer(x)
    tiled = stylizer(x, tile_size=64, tile_overlap=32, tile_stats_size=128)  # stats of the whole image
    diff = (whole - tiled).abs()
    assert diff.mean() < 0.01 and diff.max() < 0.1, (diff.mean().item(), diff.max().item())


def test_tiles_use_the_shared_stats_not_their_own(stylizer):
    # Without shared statistics each tile normalizes itself and changes tone: a visible seam.
    x = photo(96, 128)
    whole, net = stylizer(x), stylizer.net
    own = torch.cat([net(x[:, :, :, :64]), net(x[:, :, :, 64:])], dim=3)
    shared = stylizer(x, tile_size=64, tile_overlap=32, tile_stats_size=128)
    assert (whole - shared).abs().mean() * 3 < (whole - own).abs().mean()


def test_strength_zero_gives_the_content_back_exactly(stylizer):
    x = photo(20, 30)
    assert torch.equal(stylizer(x, strength=0), x)


def test_strength_blends_linearly(stylizer):
    x = photo(20, 30)
    torch.testing.assert_close(stylizer(x, strength=0.25), 0.75 * x + 0.25 * stylizer(x))


def test_preserve_color_keeps_the_content_chroma(stylizer):
    x = photo(40, 40) * 0.6 + 0.2  # away from 0 and 1, where clamping would change chroma
    out = stylizer(x, preserve_color=True)
    chroma = (rgb_to_yiq(out)[:, 1:] - rgb_to_yiq(x)[:, 1:]).abs()  # nonzero only where RGB was clamped
    assert chroma.mean() < 1e-3 and chroma.max() < 0.02
    assert not torch.allclose(rgb_to_yiq(out)[:, :1], rgb_to_yiq(x)[:, :1], atol=1e-2)


@pytest.mark.parametrize("opts", [{"strength": 1.5}, {"strength": True}, {"preserve_color": "histogram"},
                                  {"preserve_color": "sepia"}, {"tile_size": 64, "tile_overlap": 40},
                                  {"tile_size": -3}])
def test_bad_options_are_refused_in_one_line(stylizer, opts):
    with pytest.raises(NSTError):
        stylizer(torch.rand(1, 3, 8, 8), **opts)


def test_input_is_not_mutated(stylizer):
    x = photo(24, 24)
    before = x.clone()
    stylizer(x, preserve_color=True, strength=0.5)
    stylizer(x, tile_size=16, tile_overlap=4)
    assert torch.equal(x, before)


# ---- files ---------------------------------------------------------------------------------------

def _write(path, h=24, w=20, seed=0):
    save_image(photo(h, w, seed), path)
    return path


def test_a_bad_file_is_reported_and_the_others_are_written(stylizer, tmp_path):
    good = [_write(tmp_path / f"in/{i}.png", seed=i) for i in range(3)]
    bad = tmp_path / "in/bad.jpg"
    bad.write_bytes(b"not a jpeg")
    lines: list[str] = []
    jobs = [Job(p, tmp_path / "out" / p.name) for p in [good[0], bad, *good[1:]]]
    summary = stylize_files(stylizer, jobs, log=lines.append)
    assert [p.name for p in summary.written] == ["0.png", "1.png", "2.png"]
    assert [p for p, _ in summary.failed] == [bad] and len(lines) == 1 and "bad.jpg" in lines[0]
    assert "3 written, 1 failed, 0 skipped" in summary.line()


def test_existing_output_is_skipped_unless_overwrite(stylizer, tmp_path):
    src = _write(tmp_path / "a.png")
    target = tmp_path / "out.png"
    target.write_bytes(b"keep me")
    summary = stylize_files(stylizer, [Job(src, target)], log=lambda _: None)
    assert summary.skipped == [target] and target.read_bytes() == b"keep me"
    summary = stylize_files(stylizer, [Job(src, target)], overwrite=True, log=lambda _: None)
    assert summary.written == [target] and load_image(target).shape == (1, 3, 24, 20)


def test_alpha_is_carried_over(stylizer, tmp_path):
    alpha = photo(24, 20, seed=5)[:, :1]
    src = tmp_path / "a.png"
    save_image(photo(24, 20), src, alpha=alpha)
    stylize_files(stylizer, [Job(src, tmp_path / "out.png")])
    with Image.open(tmp_path / "out.png") as im:
        assert im.mode == "RGBA"
        got = np.asarray(im)[..., 3]
    np.testing.assert_array_equal(got, np.asarray(Image.open(src))[..., 3])


def test_strength_zero_writes_the_content_up_to_8_bit_rounding(stylizer, tmp_path):
    src = _write(tmp_path / "a.png", 17, 31)
    stylize_files(stylizer.with_options(strength=0.0), [Job(src, tmp_path / "out.png")])
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "out.png")), np.asarray(Image.open(src)))


def test_batches_give_the_same_images_as_one_by_one(stylizer, tmp_path):
    srcs = [_write(tmp_path / f"{i}.png", seed=i) for i in range(3)] + [_write(tmp_path / "odd.png", 20, 24)]
    one = stylize_files(stylizer, [Job(p, tmp_path / "one" / p.name) for p in srcs], batch_size=1)
    many = stylize_files(stylizer, [Job(p, tmp_path / "many" / p.name) for p in srcs], batch_size=3)
    for a, b in zip(one.written, many.written):
        np.testing.assert_array_equal(np.asarray(Image.open(a)), np.asarray(Image.open(b)))


def test_size_sets_the_longer_side(stylizer, tmp_path):
    src = _write(tmp_path / "a.png", 30, 20)
    stylize_files(stylizer, [Job(src, tmp_path / "out.png")], size=15)
    assert load_image(tmp_path / "out.png").shape == (1, 3, 15, 10)
