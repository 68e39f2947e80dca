"""Model files: safetensors round trip, refusals, Lightning checkpoints, TorchScript and ONNX parity."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from nst.errors import NSTError
from nst.export import (
    export_onnx,
    export_torchscript,
    load_any,
    load_lightning_checkpoint,
    load_model,
    save_model,
)
from nst.transformer import TransformerNet

META = {"style": ["starry_night.jpg"], "loss": {"style_layers": {"relu1_2": 1.0}, "content_weight": 1.0},
        "weights": "hed", "steps": 40}


@pytest.fixture
def net() -> TransformerNet:
    torch.manual_seed(0)
    return TransformerNet(channels=8, num_residual=1).eval()


def _same_output(a: TransformerNet, b: TransformerNet) -> bool:
    x = torch.rand(1, 3, 33, 17, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        return torch.equal(a(x), b(x))


def test_round_trip_gives_identical_outputs_and_metadata(net, tmp_path):
    path = save_model(tmp_path / "m.safetensors", net, META)
    loaded, meta = load_model(path)
    assert _same_output(net, loaded)
    assert {k: meta[k] for k in META} == META
    assert meta["arch"] == net.config and meta["format"] == "nst-transformer" and meta["format_version"] == 1
    assert not loaded.training


def test_file_is_float32_with_json_metadata_and_no_temp_left(net, tmp_path):
    path = save_model(tmp_path / "m.safetensors", net.half(), {"source": Path("/data/style.jpg")})
    with safe_open(str(path), framework="pt") as f:
        header = f.metadata()
        dtypes = {f.get_tensor(k).dtype for k in f.keys()}
    assert dtypes == {torch.float32}
    assert header["format"] == "nst-transformer"
    assert json.loads(header["nst"])["source"] == "/data/style.jpg"
    assert os.listdir(tmp_path) == ["m.safetensors"]


def test_metadata_cannot_override_the_architecture(net, tmp_path):
    path = save_model(tmp_path / "m.safetensors", net, {"arch": {"channels": 99}, "format": "x"})
    loaded, meta = load_model(path)
    assert meta["arch"] == net.config and meta["format"] == "nst-transformer"
    save_model(tmp_path / "again.safetensors", loaded, meta)  # a loaded document saves again as is


def test_nan_weights_are_refused_and_nothing_is_written(net, tmp_path):
    with torch.no_grad():
        net.head[1].bias[0] = float("nan")
    with pytest.raises(NSTError, match="refusing to export: weights contain NaN/inf"):
        save_model(tmp_path / "m.safetensors", net, META)
    with pytest.raises(NSTError, match="NaN/inf"):
        export_onnx(net, tmp_path / "m.onnx")
    assert os.listdir(tmp_path) == []


def _write_raw(path: Path, state: dict, arch: dict) -> Path:
    doc = {"format": "nst-transformer", "format_version": 1, "arch": arch}
    save_file(state, str(path), metadata={"format": "nst-transformer", "nst": json.dumps(doc)})
    return path


@pytest.mark.parametrize(
    ("arch", "message"),
    [({"channels": 16, "num_residual": 1}, "shape"), ({"channels": 8, "num_residual": 2}, "missing"),
     ({"channels": 8, "num_residual": 0}, "unexpected"), ({"channels": 8, "depth": 3}, "does not fit")],
)
def test_architecture_that_does_not_fit_the_weights_is_refused(net, tmp_path, arch, message):
    path = _write_raw(tmp_path / "m.safetensors", dict(net.state_dict()), arch)
    with pytest.raises(NSTError, match=message) as info:
        load_model(path)
    assert str(path) in str(info.value) and "\n" not in str(info.value)


def test_missing_file_is_refused_by_name(tmp_path):
    with pytest.raises(NSTError, match="no such model file"):
        load_model(tmp_path / "absent.safetensors")


@pytest.mark.parametrize("content", [b"not a model at all", b"\x00" * 4, b""])
def test_non_safetensors_file_is_refused_by_name(tmp_path, content):
    path = tmp_path / "fake.safetensors"
    path.write_bytes(content)
    with pytest.raises(NSTError, match="fake.safetensors: not a safetensors model file"):
        load_model(path)


def test_foreign_safetensors_file_is_refused(net, tmp_path):
    path = tmp_path / "other.safetensors"
    save_file({"w": torch.zeros(2)}, str(path))
    with pytest.raises(NSTError, match="not an nst model file"):
        load_model(path)


def test_newer_format_version_is_refused(net, tmp_path):
    doc = {"format": "nst-transformer", "format_version": 2, "arch": net.config}
    path = tmp_path / "new.safetensors"
    save_file(dict(net.state_dict()), str(path), metadata={"format": doc["format"], "nst": json.dumps(doc)})
    with pytest.raises(NSTError, match="format_version 2"):
        load_model(path)


class _Payload:
    """Unpickling this runs os.mkdir(marker): what a crafted checkpoint would do."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.mkdir, (str(self.marker),))


def test_crafted_pickle_checkpoint_is_refused_and_not_executed(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.ckpt"
    torch.save({"state_dict": {}, "hyper_parameters": {"net_config": _Payload(marker)}}, path)
    with pytest.raises(NSTError, match="evil.ckpt: refusing to load"):
        load_lightning_checkpoint(path)
    assert not marker.exists()


def _fake_ckpt(net: torch.nn.Module, path: Path, **hparams) -> Path:
    state = {f"net.{k}": v for k, v in net.state_dict().items()}
    state["loss.style_grams.relu1_2"] = torch.zeros(1, 4, 4)  # other submodules' entries are ignored
    state["network.extra"] = torch.zeros(1)  # a look-alike prefix that is not "net."
    torch.save({"epoch": 0, "global_step": 40, "pytorch-lightning_version": "2.6.0", "state_dict": state,
                "optimizer_states": [], "hyper_parameters": hparams}, path)
    return path


def test_lightning_checkpoint_loads_net_and_metadata(net, tmp_path):
    path = _fake_ckpt(net, tmp_path / "last.ckpt", net_config=dict(net.config), export_metadata=META, lr=1e-3)
    loaded, meta = load_lightning_checkpoint(path)
    assert _same_output(net, loaded)
    assert meta == {**META, "arch": net.config}
    out = save_model(tmp_path / "m.safetensors", loaded, meta)  # checkpoint -> model file
    assert _same_output(net, load_model(out)[0])


def test_lightning_checkpoint_of_a_compiled_net_loads(net, tmp_path):
    compiled = torch.nn.Module()
    compiled._orig_mod = net  # what torch.compile's wrapper registers; its keys gain "_orig_mod."
    path = _fake_ckpt(compiled, tmp_path / "c.ckpt", net_config=dict(net.config))
    assert _same_output(net, load_lightning_checkpoint(path)[0])


def test_lightning_checkpoint_without_net_config_is_refused(net, tmp_path):
    path = _fake_ckpt(net, tmp_path / "last.ckpt", lr=1e-3)
    with pytest.raises(NSTError, match="net_config"):
        load_lightning_checkpoint(path)


def test_load_any_chooses_by_suffix(net, tmp_path):
    save_model(tmp_path / "m.safetensors", net, META)
    _fake_ckpt(net, tmp_path / "m.ckpt", net_config=dict(net.config))
    assert _same_output(net, load_any(tmp_path / "m.safetensors")[0])
    assert _same_output(net, load_any(tmp_path / "m.ckpt")[0])
    (tmp_path / "m.txt").write_text("hi")
    with pytest.raises(NSTError, match="unknown model file type"):
        load_any(tmp_path / "m.txt")


SIZES = [(37, 45), (64, 48)]


@pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated")
def test_torchscript_matches_pytorch_on_two_sizes(net, tmp_path):
    path = export_torchscript(net, tmp_path / "m.pt")
    scripted = torch.jit.load(str(path))
    with torch.no_grad():
        for h, w in SIZES:
            x = torch.rand(2, 3, h, w)
            torch.testing.assert_close(scripted(x), net(x), rtol=0, atol=1e-4)
        stats, tile = scripted.capture_norm_stats(x), x[..., :20, :20]
        torch.testing.assert_close(scripted(tile, stats), net(tile, stats), rtol=0, atol=1e-4)


def test_onnx_matches_pytorch_on_two_sizes_and_batches(net, tmp_path):
    ort = pytest.importorskip("onnxruntime")
    path = export_onnx(net, tmp_path / "m.onnx")
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    with torch.no_grad():
        for n, (h, w) in zip((1, 2), SIZES):
            x = torch.rand(n, 3, h, w)
            (y,) = session.run(None, {"image": x.numpy()})
            torch.testing.assert_close(torch.from_numpy(y), net(x), rtol=0, atol=1e-4)


def test_export_leaves_the_callers_net_alone(net, tmp_path):
    net.train()
    export_torchscript(net, tmp_path / "m.pt")
    assert net.training and next(net.parameters()).dtype == torch.float32
