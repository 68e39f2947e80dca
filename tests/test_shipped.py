"""Shipped models: a bare name resolves inside the package, an unknown one lists what there is."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from nst.api import load_model
from nst.errors import NSTError
from nst.models import shipped
from nst.models.card import describe
from nst.models.modelfile import save_model
from nst.networks.transformer import TransformerNet


@pytest.fixture
def models(tmp_path, monkeypatch):
    folder = tmp_path / "models"
    folder.mkdir()
    for name in ("waves", "dots"):
        save_model(folder / f"{name}.safetensors", TransformerNet(channels=8, num_residual=1),
                   {"style": [f"{name}.jpg"], "steps": 7, "data": "photos"})
    monkeypatch.setattr(shipped, "MODELS", folder)
    return folder


def test_bare_name_is_a_shipped_model(models):
    assert shipped.resolve("waves") == models / "waves.safetensors"
    model = load_model("waves", device="cpu")
    assert model.metadata["style"] == ["waves.jpg"]
    assert model(torch.rand(1, 3, 16, 16)).shape == (1, 3, 16, 16)


def test_unknown_name_lists_the_shipped_models(models):
    with pytest.raises(NSTError, match=r"no shipped model of that name \(shipped: dots, waves\)"):
        shipped.resolve("starry")


@pytest.mark.parametrize("spec", ["model.safetensors", "sub/waves", "./waves"])
def test_paths_are_never_taken_for_names(models, spec):
    assert shipped.resolve(spec).name == spec.rsplit("/", 1)[-1]


def test_a_file_in_the_working_directory_wins_over_a_shipped_name(models, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "waves").write_bytes(b"")
    assert shipped.resolve("waves").resolve() == (tmp_path / "waves").resolve()


def test_describe_reads_the_card_fields(models):
    card = describe(models / "dots.safetensors")
    assert card["name"] == "dots" and card["style"] == "dots.jpg" and card["steps"] == 7
    assert card["network"] == "transformer" and card["args"]["channels"] == 8 and card["kib"] > 0


def test_every_packaged_model_loads_and_stylizes():
    # The real shipped files (none yet is a pass with nothing to check, so say so).
    found = shipped.shipped_models()
    if not found:
        pytest.skip("no models shipped in this checkout")
    for name in found:
        model = load_model(name, device="cpu")
        out = model(torch.rand(1, 3, 40, 56))
        assert out.shape == (1, 3, 40, 56) and 0 <= out.min() and out.max() <= 1, name
        assert model.metadata.get("style"), name


def test_models_mode_lists_them(tmp_path):
    res = subprocess.run([sys.executable, "-m", "nst", "mode=models", f"hydra.run.dir={tmp_path}"],
                         capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    for name in shipped.shipped_models():
        assert name in res.stdout
    assert "checkpoint=NAME" in res.stdout or "no shipped models" in res.stdout


def test_stylize_with_an_unknown_name_is_one_line(tmp_path):
    photo = tmp_path / "p.png"
    from PIL import Image

    Image.new("RGB", (16, 16), "red").save(photo)
    res = subprocess.run([sys.executable, "-m", "nst", "mode=stylize", "checkpoint=no_such_style",
                          f"input={photo}",
                          f"output={tmp_path / 'o.png'}", f"hydra.run.dir={tmp_path}"],
                         capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert res.returncode == 2
    lines = [ln for ln in res.stderr.splitlines() if ln.startswith("nst: error:")]
    assert len(lines) == 1 and "no_such_style" in lines[0] and "shipped" in lines[0]
