"""scripts/bench/benchmark.py in a tiny configuration (finite numbers, no timing asserts), and the
``gpu``-marked checks that scripts/gpu_check.sh runs on a CUDA machine (skipped without one)."""

from __future__ import annotations

import importlib.util
import json
import math
import sys
from pathlib import Path

import pytest
import torch

from nst.inference.stylize import Stylizer
from nst.networks.transformer import TransformerNet

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "bench" / "benchmark.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("nst_benchmark", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


def finite(*values) -> bool:
    return all(isinstance(v, float) and math.isfinite(v) for v in values)


def test_training_step_throughput_is_finite(bench):
    small = bench.Setup(model="transformer_small")
    out = bench.train_throughput(small, batch=2, size=32, warmup=1, repeats=1)
    assert finite(out["images_per_s"], out["step_ms"], out["peak_mb"], out["loss"])
    assert out["images_per_s"] > 0 and out["peak_mb"] > 0


def test_stylize_latency_is_finite(bench):
    nchw = bench.Setup(model="transformer_small", channels_last=False)
    out = bench.stylize_latency(nchw, 32, warmup=1, repeats=1)
    assert finite(out["ms"], out["ms_host"], out["peak_mb"]) and out["finite"]


@pytest.mark.parametrize("optimizer", ["lbfgs", "adam"])
def test_gatys_seconds_per_iteration_is_finite(bench, optimizer):
    out = bench.gatys_speed(bench.Setup(), 32, optimizer, iterations=2, warmup=1)
    assert finite(out["s_per_iteration"], out["fit_s"], out["loss_first"], out["loss_last"])
    assert len(out["times_s"]) == 2


def test_the_baseline_is_float32_eager_nchw(bench):
    base = bench.Setup("cuda", "bf16", channels_last=True, compile=True).baseline()
    assert (base.device, base.precision, base.channels_last, base.compile) == ("cuda", "32", False, False)


def test_main_writes_json_with_a_baseline_ratio(bench, tmp_path, capsys):
    path = tmp_path / "bench.json"
    code = bench.main(["--quick", "--model", "transformer_small", "--only", "train", "--train-size", "32",
                       "--batches", "2", "--repeats", "1", "--json", str(path)])
    assert code == 0
    report = json.loads(path.read_text())
    assert [r["baseline"] for r in report["rows"]] == [False, True]
    assert finite(report["ratios"]["train_b2_32px"])
    assert {"cpu", "cores", "torch", "device"} <= set(report["hardware"])
    assert "optimized / baseline" in capsys.readouterr().out


# ---- on a CUDA machine only (pytest -m gpu; scripts/gpu_check.sh) --------------------------------

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


@pytest.mark.gpu
@cuda
def test_bf16_training_step_on_cuda_is_finite(bench):
    out = bench.train_throughput(bench.Setup("cuda", "bf16"), batch=4, size=64, warmup=1, repeats=2)
    assert finite(out["loss"], out["images_per_s"], out["peak_mb"])


@pytest.mark.gpu
@cuda
@pytest.mark.parametrize("precision, tol", [("32", 2e-3), ("bf16-mixed", 6e-2)])
def test_stylize_on_cuda_matches_cpu(precision, tol):
    torch.manual_seed(0)
    net = TransformerNet(channels=16, num_residual=2)
    x = torch.rand(2, 3, 96, 80)
    ref = Stylizer(TransformerNet(**net.config).eval(), device="cpu")
    ref.net.load_state_dict(net.state_dict())
    on_gpu = Stylizer(net, device="cuda", precision=precision, channels_last=True)
    diff = (on_gpu.stylize_tensor(x.cuda()).cpu() - ref.stylize_tensor(x)).abs().max()
    assert float(diff) < tol


@pytest.mark.gpu
@cuda
def test_gatys_on_cuda_lowers_the_loss_in_bf16(bench):
    out = bench.gatys_speed(bench.Setup("cuda", "bf16"), 128, "lbfgs", iterations=10, warmup=1)
    assert finite(out["loss_last"]) and out["loss_last"] < out["loss_first"]


@pytest.mark.gpu
@cuda
def test_cuda_peak_memory_is_the_allocator_peak(bench):
    mem = bench.PeakMemory(torch.device("cuda"))
    mem.reset()
    block = torch.empty(64 * 2**20, dtype=torch.uint8, device="cuda")
    assert mem.read_mb() >= 64 and mem.kind == "cuda max_memory_allocated"
    del block


PEER = (Path(__file__).resolve().parent.parent.parent / "shared" / "peers"
        / "pytorch_examples_fast_neural_style")


@pytest.fixture(scope="module")
def peer():
    if not (PEER / "neural_style" / "transformer_net.py").is_file():
        pytest.skip("the peer (../shared/peers/pytorch_examples_fast_neural_style) is not here")
    sys.path.insert(0, str(SCRIPT.parent))
    import peer as module

    return module


@pytest.mark.loads_openvino  # its OpenVINO row, where installed
def test_peer_side_by_side_gives_ratios_flops_and_memory(peer):
    report = peer.run(PEER, train_size=32, batch=1, sizes=(32,), warmup=1, repeats=1, log=lambda s: None,
                      peak_size=64)
    train, stylize, *others = report["rows"]
    assert [r["workload"] for r in others] == ["stylize"] * len(others)  # openvino's row, where installed
    assert train["workload"] == "train" and stylize["workload"] == "stylize"
    for row in report["rows"]:
        assert row["ratio"] > 0 and finite(*row["seconds"].values())
        # the same architecture on both sides; nst pads each side by 4-7 px (to a multiple of 4,
        # plus 4) before the network, so its convolutions see up to ((S + 8) / S)^2 the pixels
        pad = ((row["size"] + 8) / row["size"]) ** 2
        assert 0.9 <= row["flops"]["nst"] / row["flops"]["peer"] <= 1.1 * pad
    assert train["precision"] in ("32-true", "bf16-mixed") and train["model"] == "TransformerNet"


def test_the_peer_is_imported_from_its_path_with_random_vgg_weights(peer):
    imported = peer.import_peer(PEER)
    assert imported.path == str(PEER.resolve())
    vgg = imported.Vgg16()  # would download ImageNet weights without the stand-in
    assert sum(p.numel() for p in vgg.parameters()) > 0


@pytest.fixture(scope="module")
def bound():
    spec = importlib.util.spec_from_file_location("nst_bound", SCRIPT.parent / "bound.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_bound_counts_pixels_past_eight_levels_and_psnr_on_8_bits(bound):
    import numpy as np

    ref = np.full((10, 10, 3), 100, np.uint8)
    assert bound.compare(ref, ref) == (99.0, 0.0)  # identical: the cap, nothing over
    out = ref.copy()
    out[0, 0, 1] = 109  # one channel of one pixel 9 levels off: over 8/255
    out[0, 1, 2] = 108  # 8 levels: not over
    psnr, share = bound.compare(ref, out)
    assert share == pytest.approx(1.0)  # 1 of 100 pixels, in %
    assert psnr == pytest.approx(10 * math.log10(255 ** 2 / ((81 + 64) / 300)))
