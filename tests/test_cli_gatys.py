"""``nst mode=gatys`` through the composed config (random VGG, 32-40 px, a few steps)."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch
from conftest import compose_config  # noqa: E402

import nst.cli
from nst.cli.build import config_loss
from nst.cli.gatys import prepare_style, side_by_side, style_side
from nst.errors import NSTError
from nst.gatys.multiscale import level_iterations, levels
from nst.inference.color import rgb_to_yiq
from nst.io.image import load_image, save_image

pytestmark = pytest.mark.e2e

FAST = ["vgg.weights=random", "logger=none", "trainer.enable_progress_bar=false", "iterations=3"]


@pytest.fixture
def files(image, tmp_path):
    """A content photo (48x40) and a style painting (40x40) on disk."""
    stripes = (torch.arange(40).view(1, 1, 1, 40) % 8 < 4).float().expand(1, 3, 40, 40)
    style = stripes * torch.tensor([0.9, 0.3, 0.1]).view(1, 3, 1, 1) + 0.05
    return save_image(image, tmp_path / "photo.png"), save_image(style, tmp_path / "painting.png")


def config(tmp_path, files, *overrides):
    content, style = files
    # loss=gatys_vgg16 is what mode=gatys selects itself; named here too so these tests do not
    # depend on where the mode sits in config.yaml's defaults (see the test below).
    return compose_config(["mode=gatys", "loss=gatys_vgg16", *FAST, f"content={content}", f"style={style}",
                           f"paths.output_dir={tmp_path / 'run'}", "size=32", *overrides])


def test_mode_gatys_selects_the_gatys_vgg16_loss():
    cfg = compose_config(["mode=gatys"])
    assert set(cfg.loss.style_layers) == {"relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1"}
    assert set(cfg.loss.content_layers) == {"relu4_2"}


def test_writes_output_and_side_by_side(tmp_path, files):
    out = tmp_path / "out" / "result.png"
    result = nst.cli.run(config(tmp_path, files, f"output={out}"))
    img = load_image(out)
    assert img.shape[-2:] == (32, 27)
    sbs = load_image(out.with_name("result_sbs.jpg"))
    assert sbs.shape[-2] == 32 and sbs.shape[-1] > 3 * 27
    assert result.losses["loss"] < result.history[0]["loss"]


def test_default_output_goes_into_the_run_folder_with_steps(tmp_path, files):
    nst.cli.run(config(tmp_path, files, "save_every=2", "iterations=4"))
    run = tmp_path / "run"
    assert (run / "photo_painting.png").is_file() and (run / "photo_painting_sbs.jpg").is_file()
    assert sorted(p.name for p in (run / "steps").iterdir()) == ["step_00002.png", "step_00004.png"]


def test_luminance_keeps_the_content_chroma(tmp_path, files, image):
    # Mid-range colours, so that recombining the luminance stays in gamut (no clamping).
    photo = save_image(image * 0.4 + 0.3, tmp_path / "mid.png")
    result = nst.cli.run(config(tmp_path, files, "preserve_color=luminance", f"content={photo}"))
    content = load_image(photo, max_side=32)
    # where the recombined colour fell out of gamut its clamp moves the chroma: only pixels inside count
    inside = ((result.image > 0.005) & (result.image < 0.995)).all(1, keepdim=True).expand(-1, 2, -1, -1)
    assert inside.float().mean() > 0.9
    torch.testing.assert_close(rgb_to_yiq(result.image)[:, 1:][inside], rgb_to_yiq(content)[:, 1:][inside],
                               atol=0.01, rtol=0)


def test_histogram_mode_changes_the_style_targets(tmp_path, files):
    content = load_image(files[0], max_side=32)
    style = [load_image(files[1], max_side=32)]
    targets = []
    for mode in ("false", "histogram"):
        cfg = config(tmp_path, files, f"preserve_color={mode}")
        loss = config_loss(cfg)
        prepare_style(cfg, loss, content, style, [str(files[1])], 32)
        targets.append(loss.style_target("relu1_1"))
    assert (targets[0] - targets[1]).abs().max() > 1e-3 * targets[0].abs().max()


def test_style_size_is_pixels_at_the_result_size_and_scales_with_each_level(tmp_path, files):
    assert style_side(config(tmp_path, files), 256, 128) == 128  # null: the level's own side
    cfg = config(tmp_path, files, "style_size=64")
    assert [style_side(cfg, 256, level) for level in (64, 128, 256)] == [16, 32, 64]


def test_old_spellings_of_gatys_keys_say_the_new_ones(tmp_path):
    from nst.cli.argv import check

    for old, new in (("style_scale=0.5", "style_size"), ("optimizer=adam", "model=gatys_adam"),
                     ("lr=0.1", "model.optimizer.lr")):
        with pytest.raises(NSTError, match=new):
            check(["mode=gatys", old], nst.cli.config_dir())


def test_a_model_that_is_not_an_image_optimizer_is_one_line(tmp_path, files):
    with pytest.raises(NSTError, match="model=nst.training.module.ImageToImageModule: mode=gatys optimizes"):
        nst.cli.run(config(tmp_path, files, "model=transformer"))


def test_multiscale_ends_at_the_requested_size(tmp_path, files):
    out = tmp_path / "ms.png"
    result = nst.cli.run(config(tmp_path, files, "size=40", "scales=2", "iterations=[2,2]", f"output={out}"))
    assert result.image.shape[-2:] == (40, 33)
    assert load_image(out).shape[-2:] == (40, 33)


def test_levels():
    assert levels(256, None) == [256]
    assert levels(256, 3) == [64, 128, 256]
    assert levels(256, [512, 128, 64]) == [64, 128, 256]
    with pytest.raises(NSTError, match="scales"):
        levels(256, [0])


def test_side_by_side_is_one_row_at_one_height():
    pic = side_by_side([torch.rand(1, 3, 20, 10), torch.rand(1, 3, 10, 10)], height=20, gap=2)
    assert pic.shape == (1, 3, 20, 10 + 2 + 20)


def test_bad_content_path_names_the_file(tmp_path, files):
    with pytest.raises(NSTError, match="nothing_here.jpg"):
        nst.cli.run(config(tmp_path, files, f"content={tmp_path / 'nothing_here.jpg'}"))


def test_style_image_too_small_names_the_file(tmp_path, files):
    tiny = save_image(torch.rand(1, 3, 8, 8), tmp_path / "tiny.png")
    with pytest.raises(NSTError, match="tiny.png"):
        nst.cli.run(config(tmp_path, files, f"style={tiny}", "style_size=8"))


def test_cli_missing_file_is_one_line_and_nonzero_exit(tmp_path, files):
    proc = subprocess.run([sys.executable, "-m", "nst", "mode=gatys", "loss=gatys_vgg16", *FAST,
                           f"content={tmp_path / 'missing.jpg'}", f"style={files[1]}",
                           f"hydra.run.dir={tmp_path / 'run'}"], capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert lines == [f"nst: error: {tmp_path / 'missing.jpg'}: no such file"], proc.stderr


def test_bad_output_extension_fails_before_optimizing(tmp_path, files):
    with pytest.raises(NSTError, match="result.txt"):
        nst.cli.run(config(tmp_path, files, f"output={tmp_path / 'result.txt'}", "iterations=100000"))


def test_level_iterations_one_for_all_or_one_per_level():
    assert level_iterations(5, 3) == [5, 5, 5]
    assert level_iterations([1, 2], 2) == [1, 2]
    with pytest.raises(NSTError, match="one per level"):
        level_iterations([1, 2], 3)
