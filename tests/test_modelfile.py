"""The model file (nst.models.modelfile): format 2 round trip, format 1 still loads, refusals, checkpoints."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from nst import networks
from nst.errors import NSTError
from nst.models.export import export_onnx
from nst.models.modelfile import load_any, load_lightning_checkpoint, load_network, save_model
from nst.networks.transformer import TransformerNet
from nst.training.finetune import warm_start

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
    loaded, meta = load_network(path)
    assert _same_output(net, loaded)
    assert {k: meta[k] for k in META} == META
    assert meta["network"] == "transformer" and meta["args"] == net.config
    assert meta["format"] == "nst-model" and meta["format_version"] == 2
    assert not loaded.training


def test_file_is_float32_with_json_metadata_and_no_temp_left(net, tmp_path):
    path = save_model(tmp_path / "m.safetensors", net.half(), {"source": Path("/data/style.jpg")})
    with safe_open(str(path), framework="pt") as f:
        header = f.metadata()
        dtypes = {f.get_tensor(k).dtype for k in f.keys()}
    assert dtypes == {torch.float32}
    doc = json.loads(header["nst"])
    assert header["format"] == "nst-model" and doc["network"] == "transformer" and doc["args"] == net.config
    assert doc["card"]["source"] == "/data/style.jpg"
    assert os.listdir(tmp_path) == ["m.safetensors"]


def test_metadata_cannot_override_the_architecture(net, tmp_path):
    card = {"args": {"channels": 99}, "network": "x", "format": "x"}
    path = save_model(tmp_path / "m.safetensors", net, card)
    loaded, meta = load_network(path)
    assert meta["args"] == net.config and meta["network"] == "transformer" and meta["format"] == "nst-model"
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
     ({"channels": 8, "num_residual": 0}, "unexpected"), ({"channels": 8, "depth": 3}, "do not fit")],
)
def test_architecture_that_does_not_fit_the_weights_is_refused(net, tmp_path, arch, message):
    path = _write_raw(tmp_path / "m.safetensors", dict(net.state_dict()), arch)
    with pytest.raises(NSTError, match=message) as info:
        load_network(path)
    assert str(path) in str(info.value) and "\n" not in str(info.value)


def test_missing_file_is_refused_by_name(tmp_path):
    with pytest.raises(NSTError, match="no such model file"):
        load_network(tmp_path / "absent.safetensors")


@pytest.mark.parametrize("content", [b"not a model at all", b"\x00" * 4, b""])
def test_non_safetensors_file_is_refused_by_name(tmp_path, content):
    path = tmp_path / "fake.safetensors"
    path.write_bytes(content)
    with pytest.raises(NSTError, match="fake.safetensors: not a safetensors model file"):
        load_network(path)


def test_foreign_safetensors_file_is_refused(net, tmp_path):
    path = tmp_path / "other.safetensors"
    save_file({"w": torch.zeros(2)}, str(path))
    with pytest.raises(NSTError, match="not an nst model file"):
        load_network(path)


def test_newer_format_version_is_refused(net, tmp_path):
    doc = {"format": "nst-model", "format_version": 3, "network": "transformer", "args": net.config}
    path = tmp_path / "new.safetensors"
    save_file(dict(net.state_dict()), str(path), metadata={"format": doc["format"], "nst": json.dumps(doc)})
    with pytest.raises(NSTError, match="format_version 3"):
        load_network(path)


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
    assert {k: meta[k] for k in META} == META
    assert meta["args"] == net.config and meta["network"] == "transformer"
    out = save_model(tmp_path / "m.safetensors", loaded, meta)  # checkpoint -> model file
    assert _same_output(net, load_network(out)[0])


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


def test_format_1_files_still_load_with_the_same_meta(net, tmp_path):
    doc = {"format": "nst-transformer", "format_version": 1, "arch": net.config, "nst_version": "0.1.0",
           **META}
    path = tmp_path / "v1.safetensors"
    save_file(dict(net.state_dict()), str(path),
              metadata={"format": "nst-transformer", "nst": json.dumps(doc)})
    loaded, meta = load_network(path)
    assert _same_output(net, loaded)
    assert {k: meta[k] for k in META} == META
    assert meta["network"] == "transformer" and meta["args"] == net.config
    again, _ = load_network(save_model(tmp_path / "v2.safetensors", loaded, meta))  # upgraded on save
    assert _same_output(net, again)


def test_an_unknown_network_name_is_one_line(net, tmp_path):
    doc = {"format": "nst-model", "format_version": 2, "network": "upscaler9000", "args": {}, "card": {}}
    path = tmp_path / "m.safetensors"
    save_file(dict(net.state_dict()), str(path), metadata={"format": "nst-model", "nst": json.dumps(doc)})
    with pytest.raises(NSTError,
                       match=r"unknown network 'upscaler9000' \(this nst knows: .*transformer"):
        load_network(path)


@networks.register("tiny_test_net")
class _TinyNet(torch.nn.Module):
    """Another kind of network: registering it is all the model file needs."""

    def __init__(self, width: int = 3) -> None:
        super().__init__()
        self.config = {"width": int(width)}
        self.conv = torch.nn.Conv2d(3, 3, width, padding=width // 2)

    def forward(self, x):
        return self.conv(x)


def test_any_registered_network_round_trips(tmp_path):
    net = _TinyNet(5).eval()
    loaded, meta = load_network(save_model(tmp_path / "t.safetensors", net, {"style": ["x.jpg"]}))
    assert isinstance(loaded, _TinyNet)
    assert meta["network"] == "tiny_test_net" and meta["args"] == {"width": 5}
    assert _same_output(net, loaded)


def test_an_unregistered_module_cannot_be_saved(tmp_path):
    with pytest.raises(TypeError, match="not a registered network"):
        save_model(tmp_path / "m.safetensors", torch.nn.Conv2d(3, 3, 1), {})


def test_warm_start_refuses_another_network(net, tmp_path):
    path = save_model(tmp_path / "t.safetensors", _TinyNet(3), {})
    with pytest.raises(NSTError, match="init_from=.*tiny_test_net .* this run builds a transformer"):
        warm_start(net, path)


def test_checkpoint_names_its_network(net, tmp_path):
    path = _fake_ckpt(_TinyNet(3), tmp_path / "t.ckpt", network="tiny_test_net", net_config={"width": 3})
    loaded, meta = load_lightning_checkpoint(path)
    assert isinstance(loaded, _TinyNet) and meta["network"] == "tiny_test_net"


def test_read_meta_gives_the_loaders_meta_without_the_weights(net, tmp_path):
    from nst.models.modelfile import read_meta
    path = save_model(tmp_path / "m.safetensors", net, META)
    assert read_meta(path) == load_network(path)[1]


