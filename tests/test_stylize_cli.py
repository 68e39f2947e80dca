"""`nst mode=stylize` and `nst mode=export` as a user runs them: files, folders, checkpoints, exports."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch
from conftest import compose_config  # noqa: E402

import nst.cli
from nst.errors import NSTError
from nst.inference.jobs import plan_jobs
from nst.io.image import load_image, save_image
from nst.models.modelfile import save_model
from nst.networks.transformer import TransformerNet

pytestmark = pytest.mark.e2e


@pytest.fixture
def net() -> TransformerNet:
    torch.manual_seed(0)
    return TransformerNet(channels=8, num_residual=1).eval()


@pytest.fixture
def model(net, tmp_path):
    return save_model(tmp_path / "tiny.safetensors", net, {"style": "starry_night.jpg"})


def run(tmp_path, *overrides: str):
    cfg = compose_config(["logger=none", f"paths.output_dir={tmp_path / 'run'}", *overrides])
    return nst.cli.run(cfg)


def image(path, h=21, w=17, seed=0):
    save_image(torch.rand(1, 3, h, w, generator=torch.Generator().manual_seed(seed)), path)
    return path


def test_one_file_to_a_named_file_keeps_its_odd_size(tmp_path, model):
    src = image(tmp_path / "a.jpg", 37, 23)
    run(tmp_path, "mode=stylize", f"checkpoint={model}", f"input={src}", f"output={tmp_path / 'o.png'}")
    assert load_image(tmp_path / "o.png").shape == (1, 3, 37, 23)


def test_default_output_is_in_the_run_folder_with_the_input_extension(tmp_path, model):
    src = image(tmp_path / "a.webp")
    run(tmp_path, "mode=stylize", f"checkpoint={model}", f"input={src}")
    assert (tmp_path / "run" / "stylized" / "a.webp").is_file()


def test_folder_layout_is_mirrored_and_a_corrupt_file_fails_the_run(tmp_path, model, capsys):
    for rel in ("in/a.png", "in/sub/b.jpg", "in/sub/deeper/c.png"):
        image(tmp_path / rel)
    (tmp_path / "in/sub/broken.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    with pytest.raises(NSTError, match="1 of 4 inputs failed"):
        run(tmp_path, "mode=stylize", f"checkpoint={model}", f"input={tmp_path / 'in'}",
            f"output={tmp_path / 'out'}")
    written = sorted(str(p.relative_to(tmp_path / "out")) for p in (tmp_path / "out").rglob("*.*"))
    assert written == ["a.png", "sub/b.jpg", "sub/deeper/c.png"]
    err = capsys.readouterr()
    assert "broken.png" in err.err and "3 written, 1 failed, 0 skipped" in err.out


def test_existing_outputs_are_skipped_unless_overwrite(tmp_path, model, capsys):
    src = image(tmp_path / "in/a.png")
    out = tmp_path / "out/a.png"
    out.parent.mkdir()
    out.write_bytes(b"old")
    args = ["mode=stylize", f"checkpoint={model}", f"input={tmp_path / 'in'}", f"output={tmp_path / 'out'}"]
    summary = run(tmp_path, *args)
    assert summary.skipped == [out] and out.read_bytes() == b"old" and "1 skipped" in capsys.readouterr().out
    run(tmp_path, *args, "overwrite=true")
    assert load_image(out).shape == load_image(src).shape


def test_glob_and_output_ext(tmp_path, model):
    image(tmp_path / "in/x/a.jpg")
    image(tmp_path / "in/y/b.jpg")
    image(tmp_path / "in/y/c.png")
    run(tmp_path, "mode=stylize", f"checkpoint={model}", f"input='{tmp_path}/in/*/*.jpg'",
        f"output={tmp_path / 'out'}", "output_ext=.png", "size=12")
    assert sorted(str(p.relative_to(tmp_path / "out")) for p in (tmp_path / "out").rglob("*.*")) == \
        ["x/a.png", "y/b.png"]
    assert load_image(tmp_path / "out/x/a.png").shape == (1, 3, 12, 10)


def test_output_folder_inside_the_input_is_not_read_back_as_input(tmp_path):
    image(tmp_path / "in/a.png")
    image(tmp_path / "in/out/a.png")  # a result of an earlier run
    jobs = plan_jobs(tmp_path / "in", tmp_path / "in/out", tmp_path / "run")
    assert [j.source.name for j in jobs] == ["a.png"] and jobs[0].target == tmp_path / "in/out/a.png"


def test_writing_over_the_input_is_refused(tmp_path):
    image(tmp_path / "in/a.png")
    with pytest.raises(NSTError, match="overwrite its own input"):
        plan_jobs(tmp_path / "in", tmp_path / "in", tmp_path / "run")


def test_lightning_checkpoint_is_accepted(tmp_path, net):
    ckpt = tmp_path / "last.ckpt"
    torch.save({"state_dict": {f"net.{k}": v for k, v in net.state_dict().items()},
                "hyper_parameters": {"net_config": net.config, "export_metadata": {"style": "s.jpg"}}}, ckpt)
    src = image(tmp_path / "a.png")
    run(tmp_path, "mode=stylize", f"checkpoint={ckpt}", f"input={src}", f"output={tmp_path / 'o.png'}")
    with torch.no_grad():
        want = net(load_image(src))
    got = load_image(tmp_path / "o.png")
    assert (got - want).abs().max() <= 0.5 / 255 + 1e-6  # the same network, up to 8-bit rounding


def test_missing_checkpoint_is_one_line_error(tmp_path):
    with pytest.raises(NSTError, match="checkpoint"):
        run(tmp_path, "mode=stylize", f"input={tmp_path}")


@pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated")
def test_export_torchscript_and_onnx_match_pytorch(tmp_path, model, net):
    pytest.importorskip("onnxruntime")
    import onnxruntime as ort

    written = run(tmp_path, "mode=export", f"checkpoint={model}", f"output={tmp_path / 'exp'}",
                  "formats=[torchscript,onnx]")
    assert set(written) == {"torchscript", "onnx"}
    x = torch.rand(1, 3, 29, 50)
    with torch.no_grad():
        want = net(x)
        scripted = torch.jit.load(str(written["torchscript"]))(x)
    session = ort.InferenceSession(str(written["onnx"]), providers=["CPUExecutionProvider"])
    onnx_out = torch.from_numpy(session.run(None, {session.get_inputs()[0].name: x.numpy()})[0])
    torch.testing.assert_close(scripted, want, atol=1e-5, rtol=0)
    torch.testing.assert_close(onnx_out, want, atol=1e-4, rtol=0)


def test_export_refuses_an_unknown_format(tmp_path, model):
    with pytest.raises(NSTError, match="formats"):
        run(tmp_path, "mode=export", f"checkpoint={model}", "formats=[tflite]")


def test_command_line_exit_code_and_one_line_per_bad_file(tmp_path, model):
    image(tmp_path / "in/a.png")
    (tmp_path / "in/b.jpg").write_text("not an image")
    res = subprocess.run([sys.executable, "-m", "nst", "mode=stylize", f"checkpoint={model}", "logger=none",
                          f"input={tmp_path / 'in'}", f"hydra.run.dir={tmp_path / 'run'}"],
                         capture_output=True, text=True, timeout=300)
    assert res.returncode != 0 and "Traceback" not in res.stderr
    assert [ln for ln in res.stderr.splitlines() if "b.jpg" in ln][0].startswith("nst: ")
    assert "1 written, 1 failed" in res.stdout
    assert (tmp_path / "run/stylized/a.png").is_file()


@pytest.mark.gpu
def test_gpu_bf16_channels_last_matches_cpu(tmp_path, model):
    src = image(tmp_path / "a.png", 64, 48)
    run(tmp_path, "mode=stylize", "trainer=gpu", f"checkpoint={model}", f"input={src}",
        f"output={tmp_path / 'g.png'}")
    run(tmp_path, "mode=stylize", f"checkpoint={model}", f"input={src}", f"output={tmp_path / 'c.png'}")
    diff = np.abs(np.asarray(load_image(tmp_path / "g.png")) - np.asarray(load_image(tmp_path / "c.png")))
    assert diff.mean() < 0.02
