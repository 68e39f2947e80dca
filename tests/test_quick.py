"""The command line's torch-free quick path (nst.inference.quick): the full path's result, or nothing."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from conftest import REPO, compose_config  # noqa: E402
from corpus import _png16  # noqa: E402
from PIL import Image

import nst.cli
from nst.inference.jobs import Job
from nst.inference.quick import lerp, recall, stylize_quick
from nst.io.image import save_image
from nst.models.graphs import IN_PROCESS_ORDER, available
from nst.models.modelfile import save_model
from nst.networks.transformer import TransformerNet

RUNTIME = next((r for r in IN_PROCESS_ORDER if available(r)), None)  # in this process: see conftest
needs_runtime = pytest.mark.skipif(RUNTIME is None or not available("onnx"),
                                   reason="no openvino or onnxruntime")


@pytest.fixture
def model(tmp_path, monkeypatch):
    monkeypatch.setenv("NST_BACKEND", "auto")  # conftest keeps torch; the quick path follows a runtime
    torch.manual_seed(0)
    return save_model(tmp_path / "tiny.safetensors", TransformerNet(channels=8, num_residual=1).eval(),
                      {"style": "starry_night.jpg"})


def photo(path, h=21, w=17, seed=0, alpha=False):
    g = torch.Generator().manual_seed(seed)
    a = torch.rand(1, 1, h, w, generator=g) if alpha else None
    save_image(torch.rand(1, 3, h, w, generator=g), path, alpha=a)
    return path


def stylize(tmp_path, *overrides: str):
    # the runtime this process may load (conftest): the quick path of a second run would take OpenVINO
    named = RUNTIME is None or any(o.startswith("backend=") for o in overrides)
    chosen = [] if named else [f"backend={RUNTIME}"]
    cfg = compose_config(["logger=none", f"paths.output_dir={tmp_path / 'run'}", "mode=stylize", *chosen,
                          *overrides])
    return nst.cli.run(cfg)


def pixels(path) -> np.ndarray:
    return np.asarray(Image.open(path)).astype(int)


@needs_runtime
def test_a_second_run_takes_the_quick_path_and_writes_the_same_pixels(tmp_path, model):
    src = photo(tmp_path / "a.png", 40, 33, alpha=True)
    assert recall(model) is None
    stylize(tmp_path, f"checkpoint={model}", f"input={src}", f"output={tmp_path / 'full.png'}")
    assert recall(model) is not None  # the full path recorded the graph of this file
    summary = stylize_quick(model, [Job(src, tmp_path / "quick.png")], backend=RUNTIME)
    assert summary is not None and summary.written == [tmp_path / "quick.png"]
    full, quick = pixels(tmp_path / "full.png"), pixels(tmp_path / "quick.png")
    assert full.shape == quick.shape == (40, 33, 4)  # alpha kept, as the full path keeps it
    assert np.abs(full - quick).max() <= 1  # float32 rounding may flip one level, no more


@needs_runtime
def test_strength_blends_as_the_stylizer_does(tmp_path, model):
    src = photo(tmp_path / "a.png")
    stylize(tmp_path, f"checkpoint={model}", f"input={src}", f"output={tmp_path / 'full.png'}",
            "strength=0.3", "backend=torch")  # the torch path records nothing; the runtime's run below does
    stylize(tmp_path, f"checkpoint={model}", f"input={src}", f"output={tmp_path / 'x.png'}")
    summary = stylize_quick(model, [Job(src, tmp_path / "quick.png")], strength=0.3, backend=RUNTIME)
    assert summary is not None
    assert np.abs(pixels(tmp_path / "full.png") - pixels(tmp_path / "quick.png")).max() <= 1


@pytest.mark.loads_openvino
@pytest.mark.skipif(not available("openvino") or RUNTIME is None, reason="no openvino")
def test_openvino_quick_pixels_match_the_full_path(tmp_path, model):
    src = photo(tmp_path / "a.png", 40, 33)
    stylize(tmp_path, f"checkpoint={model}", f"input={src}", f"output={tmp_path / 'full.png'}")
    assert stylize_quick(model, [Job(src, tmp_path / "quick.png")], backend="openvino") is not None
    assert np.abs(pixels(tmp_path / "full.png") - pixels(tmp_path / "quick.png")).max() <= 1


def test_lerp_is_torchs_to_float32_rounding():
    a, b = torch.rand(1000), torch.rand(1000)
    for w in (0.2, 0.5, 0.8):  # torch may fuse a multiply-add: a rounding or two apart, in [0, 1]
        np.testing.assert_allclose(lerp(a.numpy(), b.numpy(), w), torch.lerp(a, b, w).numpy(),
                                   rtol=0, atol=3e-7)
    for w in (0.0, 1.0):  # exact at both ends, as torch.lerp
        np.testing.assert_array_equal(lerp(a.numpy(), b.numpy(), w), torch.lerp(a, b, w).numpy())


def test_a_model_no_run_recorded_is_left_to_the_full_path(tmp_path, model, monkeypatch):
    monkeypatch.setenv("NST_CACHE", str(tmp_path / "cache"))  # other tests ran this very file
    src = photo(tmp_path / "a.png")
    assert stylize_quick(model, [Job(src, tmp_path / "o.png")], backend=RUNTIME) is None
    assert not (tmp_path / "o.png").exists()


@needs_runtime
def test_a_retrained_file_under_the_same_name_is_not_run_from_the_old_graph(tmp_path, model):
    src = photo(tmp_path / "a.png")
    stylize(tmp_path, f"checkpoint={model}", f"input={src}", f"output={tmp_path / 'o.png'}")
    torch.manual_seed(1)
    save_model(model, TransformerNet(channels=8, num_residual=1).eval(), {"style": "starry_night.jpg"})
    assert recall(model) is None


@needs_runtime
@pytest.mark.parametrize("case", ["tiled", "video", "corrupt", "png16", "torch"])
def test_what_the_quick_path_cannot_promise_goes_to_the_full_path(tmp_path, model, case, monkeypatch):
    src = photo(tmp_path / "a.png")
    stylize(tmp_path, f"checkpoint={model}", f"input={src}", f"output={tmp_path / 'o.png'}")
    options = {}
    if case == "tiled":
        src, options = photo(tmp_path / "big.png", 40, 70), {"tile_size": 64}
    elif case == "video":
        src = tmp_path / "clip.mp4"
        src.write_bytes(b"not read")
    elif case == "corrupt":
        src = tmp_path / "bad.png"
        src.write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    elif case == "png16":
        src = _png16(tmp_path / "deep.png")
    elif case == "torch":
        monkeypatch.setenv("NST_BACKEND", "torch")
    assert stylize_quick(model, [Job(src, tmp_path / "out.png")], backend="auto", **options) is None
    assert not (tmp_path / "out.png").exists()


@needs_runtime
def test_the_quick_path_imports_no_torch(tmp_path, model):
    src = photo(tmp_path / "a.png")
    stylize(tmp_path, f"checkpoint={model}", f"input={src}", f"output={tmp_path / 'o.png'}")
    script = ("import atexit, sys\n"
              "atexit.register(lambda: print('torch imported:', 'torch' in sys.modules))\n"
              "from nst.cli import main\nmain()\n")
    env = {**os.environ, "NST_BACKEND": "auto"}
    res = subprocess.run([sys.executable, "-c", script, "mode=stylize", f"checkpoint={model}", f"input={src}",
                          f"output={tmp_path / 'q.png'}", f"hydra.run.dir={tmp_path / 'h'}"],
                         capture_output=True, text=True, cwd=REPO, env=env, timeout=120)
    assert res.returncode == 0, res.stderr
    assert "torch imported: False" in res.stdout and (tmp_path / "q.png").is_file()


@needs_runtime
def test_a_cleared_graph_is_recorded_again(tmp_path, model):
    import shutil

    src = photo(tmp_path / "a.png")
    stylize(tmp_path, f"checkpoint={model}", f"input={src}", f"output={tmp_path / 'o.png'}")
    shutil.rmtree(recall(model).parent)
    assert recall(model) is None
    stylize(tmp_path, f"checkpoint={model}", f"input={src}", f"output={tmp_path / 'o.png'}", "overwrite=true")
    assert recall(model) is not None
