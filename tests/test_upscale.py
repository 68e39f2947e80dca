"""nst.inference.upscale and `nst mode=upscale` / `mode=evaluate`: tiles, alpha, limits, bad inputs."""

from __future__ import annotations

import pytest
import torch
from conftest import compose_config  # noqa: E402
from PIL import Image

import nst
import nst.cli
from nst.errors import NSTError
from nst.inference.upscale import Upscaler
from nst.io.image import load_image, save_image
from nst.models.modelfile import save_model
from nst.networks.srnet import SRNet
from nst.networks.transformer import TransformerNet


@pytest.fixture
def net() -> SRNet:
    torch.manual_seed(0)
    net = SRNet(factor=4, channels=8, num_residual=1).eval()
    with torch.no_grad():  # not the bicubic start: something a tile border could spoil
        net.tail[1].weight.normal_(0, 0.02)
    return net


@pytest.fixture
def model(net, tmp_path):
    return save_model(tmp_path / "sr_x4.safetensors", net, {"degrade": {"factor": 4, "sigma": 1.0}})


def run(tmp_path, *overrides):
    cfg = compose_config(["logger=none", f"paths.output_dir={tmp_path / 'run'}", *overrides])
    return nst.cli.run(cfg)


def test_tiled_output_equals_the_untiled_one_within_tolerance(net):
    x = torch.rand(1, 3, 45, 61, generator=torch.Generator().manual_seed(3))
    whole = Upscaler(net, tile_size=None)(x)
    tiled = Upscaler(net, tile_size=24, tile_overlap=8)(x)
    assert tiled.shape == whole.shape == (1, 3, 180, 244)
    assert (tiled - whole).abs().max() < 0.02  # a receptive field's worth of border, cross-faded


def test_no_forward_pass_sees_more_than_the_tile_size(net):
    seen = []
    net.register_forward_pre_hook(lambda m, args: seen.append(tuple(args[0].shape[-2:])))
    Upscaler(net, tile_size=20, tile_overlap=4)(torch.rand(1, 3, 50, 33))
    assert seen and max(max(s) for s in seen) <= 20


def test_the_python_api_upscales_pil_images_with_alpha(model):
    up = nst.load_model(model, device="cpu")
    assert isinstance(up, Upscaler)
    rgba = Image.new("RGBA", (9, 7), (200, 100, 50, 128))
    out = up(rgba)
    assert out.size == (36, 28) and out.mode == "RGBA"
    assert abs(out.getpixel((18, 14))[3] - 128) <= 1


def test_mode_upscale_writes_factor_times_larger_files(tmp_path, model):
    save_image(torch.rand(1, 3, 13, 17), tmp_path / "in" / "a.png")
    save_image(torch.rand(1, 3, 10, 10), tmp_path / "in" / "sub" / "b.jpg")
    run(tmp_path, "mode=upscale", f"checkpoint={model}", f"input={tmp_path / 'in'}",
        f"output={tmp_path / 'out'}")
    assert load_image(tmp_path / "out" / "a.png").shape == (1, 3, 52, 68)
    assert load_image(tmp_path / "out" / "sub" / "b.jpg").shape == (1, 3, 40, 40)


def test_wrong_kinds_of_model_and_oversized_outputs_are_one_line(tmp_path, model):
    style = save_model(tmp_path / "style.safetensors", TransformerNet(channels=4, num_residual=1),
                       {"style": ["s"]})
    save_image(torch.rand(1, 3, 12, 12), tmp_path / "p.png")
    with pytest.raises(NSTError, match="not a super-resolution one"):
        run(tmp_path, "mode=upscale", f"checkpoint={style}", f"input={tmp_path / 'p.png'}")
    with pytest.raises(NSTError, match="use mode=upscale"):
        run(tmp_path, "mode=stylize", f"checkpoint={model}", f"input={tmp_path / 'p.png'}")
    with pytest.raises(NSTError, match="48x48 = 2,304 pixels, over the max_pixels limit of 1,000"):
        run(tmp_path, "mode=upscale", f"checkpoint={model}", f"input={tmp_path / 'p.png'}", "max_pixels=1000",
            f"output={tmp_path / 'o.png'}")


def test_mode_evaluate_scores_the_model_and_bicubic(tmp_path, model):
    for i in range(2):
        g = torch.Generator().manual_seed(i)
        img = torch.nn.functional.avg_pool2d(torch.rand(1, 3, 70, 66, generator=g), 5, 1, 2)
        save_image(img, tmp_path / "hr" / f"p{i}.png")
    report = run(tmp_path, "mode=evaluate", f"checkpoint={model}", f"input={tmp_path / 'hr'}",
                 "vgg.weights=random", f"output={tmp_path / 'ev'}")
    assert set(report["average"]) == {"bicubic", "sr_x4"}
    assert {"psnr_y", "ssim_y", "feature"} <= set(report["average"]["bicubic"])
    assert (tmp_path / "ev" / "results.md").is_file() and (tmp_path / "ev" / "p0_crop.jpg").is_file()


def test_histogram_matching_gives_the_output_the_inputs_histograms_through_the_tiles(net):
    x = torch.rand(1, 3, 30, 41, generator=torch.Generator().manual_seed(5)) ** 2
    for tile in (None, 16):
        out = Upscaler(net, tile_size=tile, tile_overlap=4, histogram_match=True)(x)
        assert out.shape == (1, 3, 120, 164)
        q = torch.tensor([0.05, 0.25, 0.5, 0.75, 0.95])
        for c in range(3):
            assert torch.allclose(out[0, c].flatten().quantile(q), x[0, c].flatten().quantile(q), atol=0.01)
    plain = Upscaler(net, tile_size=None)(x)
    assert not torch.allclose(plain[0, 0].flatten().quantile(q), x[0, 0].flatten().quantile(q), atol=0.01)


def test_mode_evaluate_with_histogram_matching_adds_a_row_per_model(tmp_path, model):
    img = torch.nn.functional.avg_pool2d(torch.rand(1, 3, 70, 66, generator=torch.Generator().manual_seed(0)),
                                         5, 1, 2)
    save_image(img, tmp_path / "hr" / "p.png")
    report = run(tmp_path, "mode=evaluate", f"checkpoint={model}", f"input={tmp_path / 'hr'}",
                 "histogram_match=true", "feature=false", f"output={tmp_path / 'ev'}")
    assert set(report["average"]) == {"bicubic", "sr_x4", "sr_x4+hm"}
    assert report["average"]["sr_x4+hm"]["psnr_y"] != report["average"]["sr_x4"]["psnr_y"]


@pytest.mark.parametrize("mode", ["upscale", "stylize"])
def test_threads_sets_the_torch_cpu_threads_for_one_pass_modes(tmp_path, model, mode):
    checkpoint = model if mode == "upscale" else save_model(
        tmp_path / "style.safetensors", TransformerNet(channels=4, num_residual=1), {"style": ["s"]})
    save_image(torch.rand(1, 3, 12, 12), tmp_path / "p.png")
    before = torch.get_num_threads()
    try:
        run(tmp_path, f"mode={mode}", f"checkpoint={checkpoint}", f"input={tmp_path / 'p.png'}",
            f"output={tmp_path / 'o.png'}", "threads=1")
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)
