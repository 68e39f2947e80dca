"""nst beside pytorch/examples' fast_neural_style (the peer), in one process, steps alternating.

    python scripts/bench/benchmark.py --peer ../shared/peers/pytorch_examples_fast_neural_style

The peer is imported from the path given (never copied into this project) and run as its own
``neural_style.py`` runs it: its TransformerNet and Vgg16 modules, float32, NCHW, eager, pixels in
[0, 255], its ``normalize_batch`` and ``gram_matrix``, Adam 1e-3. Its VGG gets random weights
(its constructor asks torchvision for ImageNet weights, a download; speed does not depend on them).

nst runs the paths a user gets with no flags:

- training: what ``nst mode=train`` builds (configs composed by Hydra: model=transformer,
  loss=johnson2016, trainer=cpu with its ``precision: auto`` made concrete, ``perf.channels_last``),
  one step = ``module.training_step`` + backward + the module's own optimizer step, under the
  autocast Lightning would apply (none for 32-true). Lightning's own loop overhead is measured
  apart (``lightning_overhead``), as a full ``trainer.fit`` of the same steps.
- stylization: ``nst.load_model(file)(image)`` on a (1, 3, S, S) tensor: the Python API's defaults
  (float32, tiles above 1024 px), the same architecture (32 channels, 5 residual blocks, random
  weights saved to a model file and loaded back).

Each figure is the median of ``repeats`` timed calls after warm-up; peer and nst calls alternate
(peer, nst, peer, nst, ...) so a change of load on a shared machine hits both alike.
"""

from __future__ import annotations

import contextlib
import importlib
import statistics
import sys
import tempfile
import time
import types
from pathlib import Path
from typing import Any, Callable

import torch

REPO = Path(__file__).resolve().parents[2]


def import_peer(path: str | Path) -> types.SimpleNamespace:
    """The peer's modules from ``path`` (the folder holding ``neural_style/``), with its VGG built
    on random weights and Pillow's removed ``ANTIALIAS`` aliased (its README's two notes)."""
    import torchvision
    from PIL import Image

    root = Path(path).expanduser().resolve()
    if not (root / "neural_style" / "transformer_net.py").is_file():
        raise SystemExit(f"--peer {path}: no neural_style/transformer_net.py there")
    if not hasattr(Image, "ANTIALIAS"):
        Image.ANTIALIAS = Image.LANCZOS
    sys.path.insert(0, str(root))
    try:
        net = importlib.import_module("neural_style.transformer_net")
        vgg = importlib.import_module("neural_style.vgg")
        utils = importlib.import_module("neural_style.utils")
    finally:
        sys.path.remove(str(root))
    # Its Vgg16 calls models.vgg16(weights=IMAGENET1K_V1): give it a models namespace whose vgg16
    # ignores the weights (random init), so nothing is downloaded.
    vgg.models = types.SimpleNamespace(vgg16=lambda weights=None: torchvision.models.vgg16(weights=None),
                                       VGG16_Weights=torchvision.models.VGG16_Weights)
    return types.SimpleNamespace(TransformerNet=net.TransformerNet, Vgg16=vgg.Vgg16,
                                 gram_matrix=utils.gram_matrix, normalize_batch=utils.normalize_batch,
                                 path=str(root))


# ---- the peer ------------------------------------------------------------------------------------

def peer_train_step(peer: types.SimpleNamespace, batch: int, size: int, style_size: int = 256) -> Callable:
    """One step of the peer's train(): the loop body of neural_style.py, batch of ``batch``."""
    torch.manual_seed(0)
    transformer = peer.TransformerNet()
    optimizer = torch.optim.Adam(transformer.parameters(), 1e-3)
    mse = torch.nn.MSELoss()
    vgg = peer.Vgg16(requires_grad=False)
    style = (torch.rand(1, 3, style_size, style_size) * 255).repeat(batch, 1, 1, 1)
    gram_style = [peer.gram_matrix(y) for y in vgg(peer.normalize_batch(style))]
    photos = torch.rand(batch, 3, size, size) * 255

    def step() -> None:
        optimizer.zero_grad()
        x = photos.clone()  # normalize_batch divides in place, as on the peer's fresh batches
        y = transformer(x)
        y = peer.normalize_batch(y)
        x = peer.normalize_batch(x)
        features_y, features_x = vgg(y), vgg(x)
        content = 1e5 * mse(features_y.relu2_2, features_x.relu2_2)
        style_loss = 0.0
        for ft_y, gm_s in zip(features_y, gram_style):
            style_loss += mse(peer.gram_matrix(ft_y), gm_s[:batch, :, :])
        (content + 1e10 * style_loss).backward()
        optimizer.step()

    return step


def peer_stylizer(peer: types.SimpleNamespace) -> Callable[[torch.Tensor], torch.Tensor]:
    """The peer's stylize(): its TransformerNet in eval mode under no_grad, pixels in [0, 255]."""
    torch.manual_seed(0)
    net = peer.TransformerNet().eval()

    def run(x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return net(x * 255).clamp(0, 255) / 255

    return run


# ---- nst, the default paths ----------------------------------------------------------------------

def nst_config(*overrides: str):
    from hydra import compose, initialize_config_dir

    import nst.cli  # noqa: F401 (registers the resolvers the configs use: count, asset)

    with initialize_config_dir(config_dir=str(REPO / "configs"), version_base="1.3"):
        return compose("config", overrides=["mode=train", "vgg.weights=random", "logger=none",
                                            "style=unused.jpg", *overrides])


def nst_train_step(batch: int, size: int, style_size: int = 256, *overrides: str) -> tuple[Callable, dict]:
    """One step of what ``nst mode=train`` builds, and what it ran with (precision, layout)."""
    from hydra.utils import instantiate

    from nst.cli.build import config_loss, precision

    cfg = nst_config(f"data.crop_size={size}", f"data.batch_size={batch}", *overrides)
    torch.manual_seed(0)
    loss = config_loss(cfg)
    loss.set_style([torch.rand(1, 3, style_size, style_size)])
    module = instantiate(cfg.model, loss=loss, _convert_="all")
    module.setup("fit")  # channels_last on the net and the VGG, as Lightning's setup hook does
    module.log = lambda *a, **k: None  # no trainer attached: logging is Lightning's, timed apart
    module.log_dict = lambda *a, **k: None
    optimizer = module.configure_optimizers()
    optimizer = optimizer["optimizer"] if isinstance(optimizer, dict) else optimizer
    mode = precision(cfg)
    amp = (torch.autocast("cpu", dtype=torch.bfloat16) if mode.startswith("bf16")
           else contextlib.nullcontext())
    photos = torch.rand(batch, 3, size, size)

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        with amp:
            out = module.training_step({"input": photos}, 0)
        out.backward()
        optimizer.step()

    return step, {"precision": mode, "channels_last": bool(cfg.perf.channels_last),
                  "model": str(cfg.model.net._target_).rsplit(".", 1)[-1],
                  "net": dict(cfg.model.net)}


def nst_stylizer(folder: Path, **options: Any) -> Callable[[torch.Tensor], torch.Tensor]:
    """``nst.load_model(file)`` for a TransformerNet of the default size (random weights)."""
    import nst
    from nst.models.modelfile import save_model
    from nst.networks.transformer import TransformerNet

    torch.manual_seed(0)
    path = save_model(folder / "bench.safetensors", TransformerNet(), {"style": ["random"]})
    return nst.load_model(path, device="cpu", **options)


# ---- measuring -----------------------------------------------------------------------------------

def alternate(fns: dict[str, Callable[[], Any]], warmup: int, repeats: int) -> dict[str, list[float]]:
    """Seconds per call of each function: ``warmup`` untimed calls each, then ``repeats`` rounds
    that call every function once, in turn."""
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return times


def flops(fn: Callable[[], Any]) -> float:
    """Floating-point operations of one call (torch.utils.flop_counter: convs, matmuls, their
    backward; the elementwise rest is not counted)."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        fn()
    return float(counter.get_total_flops())


def matmul_peak(dtype: torch.dtype, n: int = 2048, repeats: int = 5) -> float:
    """FLOP/s of a large square matmul in ``dtype`` on this CPU: the practical peak the workloads
    are measured against (a theoretical peak needs clock and unit counts a VM does not show)."""
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    for _ in range(2):
        a @ b
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        a @ b
        times.append(time.perf_counter() - start)
    return 2 * n ** 3 / statistics.median(times)


def run(peer_path: str | Path, *, train_size: int = 256, batch: int = 4, sizes=(512, 1024, 2048),
        warmup: int = 1, repeats: int = 3, log: Callable[[str], None] = print,
        train_overrides: tuple[str, ...] = (), peak_size: int = 2048) -> dict:
    """The side-by-side report: per workload the peer's and nst's median seconds, their ratio
    (peer / nst: above 1 nst is faster), FLOPs, achieved FLOP/s against the matmul peaks, memory."""
    sys.path.insert(0, str(REPO / "scripts" / "bench"))
    from benchmark import PeakMemory  # scripts/bench/benchmark.py

    peer = import_peer(peer_path)
    device = torch.device("cpu")
    report: dict[str, Any] = {"peer": peer.path, "threads": torch.get_num_threads(), "rows": []}
    # peak_size: the matmul's side (a test passes a small one: without native bf16 a 2048 bf16
    # matmul is emulated and takes minutes)
    peaks = {"fp32": matmul_peak(torch.float32, peak_size), "bf16": matmul_peak(torch.bfloat16, peak_size)}
    report["matmul_peak_tflops"] = {k: v / 1e12 for k, v in peaks.items()}
    log(f"matmul peaks: fp32 {peaks['fp32'] / 1e12:.3f}, bf16 {peaks['bf16'] / 1e12:.3f} TFLOP/s")

    def add(workload: str, size: int, fns: dict[str, Callable], info: dict,
            count_with: dict[str, Callable] | None = None) -> None:
        mem = PeakMemory(device)
        peak = {}
        for name, fn in fns.items():  # memory from each one's own warm-up call, one after the other
            mem.reset()
            fn()
            peak[name] = mem.read()["peak_extra_mb"]
        times = alternate(fns, max(0, warmup - 1), repeats)
        med = {name: statistics.median(t) for name, t in times.items()}
        # FLOPs as torch counts them: ONNX Runtime's kernels are invisible to it, so a run on that
        # backend is counted on the same network under torch (``count_with``)
        count = {name: flops((count_with or {}).get(name, fn)) for name, fn in fns.items()}
        row = {"workload": workload, "size": size, **info, "seconds": med, "times_s": times,
               "peak_extra_mb": peak, "flops": count, "ratio": med["peer"] / med["nst"],
               "fraction_of_fp32_peak": {n: count[n] / med[n] / peaks["fp32"] for n in fns},
               "fraction_of_bf16_peak": {n: count[n] / med[n] / peaks["bf16"] for n in fns}}
        report["rows"].append(row)
        log(f"{workload} {size} px: peer {med['peer'] * 1e3:.0f} ms, nst {med['nst'] * 1e3:.0f} ms -> "
            f"{row['ratio']:.2f}x; GFLOP peer {count['peer'] / 1e9:.0f}, nst {count['nst'] / 1e9:.0f}; "
            f"peak MiB over start: peer {peak['peer']:.0f}, nst {peak['nst']:.0f}")

    if train_size:
        step, info = nst_train_step(batch, train_size, 256, *train_overrides)
        add("train", train_size, {"peer": peer_train_step(peer, batch, train_size), "nst": step},
            {"batch": batch, **info})
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        stylizer = nst_stylizer(Path(tmp))  # the first load of a model exports its ONNX graphs (cached)
        report["nst_first_load_s"] = time.perf_counter() - start
        report["nst_backend"] = stylizer.backend
        log(f"nst.load_model: backend {stylizer.backend}, first load {report['nst_first_load_s']:.1f} s")
        peer_run = peer_stylizer(peer)
        counted = nst_stylizer(Path(tmp), backend="torch")
        # the command line's quick path runs OpenVINO: timed too, as its own row, where installed
        from nst.models.graphs import available

        fast = nst_stylizer(Path(tmp), backend="openvino") if available("openvino") else None
        for size in sizes:
            x = torch.rand(1, 3, size, size)
            add("stylize", size, {"peer": lambda x=x: peer_run(x), "nst": lambda x=x: stylizer(x)},
                {"batch": 1, "tile_size": stylizer.tile_size, "backend": stylizer.backend},
                count_with={"nst": lambda x=x: counted(x)})
            if fast is not None:
                add("stylize", size, {"peer": lambda x=x: peer_run(x), "nst": lambda x=x: fast(x)},
                    {"batch": 1, "tile_size": fast.tile_size, "backend": fast.backend},
                    count_with={"nst": lambda x=x: counted(x)})
    return report


# ---- levers: what each change buys, on the same network ------------------------------------------

def stylize_levers(peer_path: str | Path, size: int = 512, warmup: int = 1, repeats: int = 3,
                   compile: bool = True, log: Callable[[str], None] = print) -> list[dict]:
    """Median ms of one (1, 3, size, size) stylization for each lever on the default TransformerNet
    (random weights), beside the peer, alternating; with each one's max abs difference from the
    float32 eager output (in 1/255) and, for torch.compile, the first call's seconds."""
    import copy

    from nst.networks.transformer import TransformerNet

    torch.manual_seed(0)
    x = torch.rand(1, 3, size, size)
    net = TransformerNet().eval().requires_grad_(False)
    nhwc = copy.deepcopy(net).to(memory_format=torch.channels_last)
    mixed = copy.deepcopy(net).mixed_precision()
    x_nhwc = x.contiguous(memory_format=torch.channels_last)
    peer_run = peer_stylizer(import_peer(peer_path))
    bf16 = torch.autocast("cpu", dtype=torch.bfloat16)
    fns: dict[str, Callable[[], torch.Tensor]] = {
        "peer (fp32 eager)": lambda: peer_run(x),
        "composite instance norm (before)": lambda: net._run(x, None, True)[0],
        "fused F.instance_norm (fp32, NCHW)": lambda: net(x),
        "fused, channels_last": lambda: nhwc(x_nhwc),
        "bf16 autocast, whole net": lambda: _under(bf16, lambda: net(x)),
        "bf16 mixed_precision (ends fp32)": lambda: mixed(x),
    }
    from nst.models import runtimes

    for runtime in runtimes.RUNTIMES:
        if runtimes.available(runtime):
            twin = runtimes.OnnxNet(net, runtime)
            fns[f"{runtime} fp32"] = lambda twin=twin: twin(x)
    compile_s = {}
    if compile:
        import torch._inductor.config as inductor

        inductor.freezing = True  # weights as constants: inference only
        for name, module in (("torch.compile fp32", net), ("torch.compile mixed bf16", mixed)):
            compiled = torch.compile(copy.deepcopy(module), dynamic=False)
            start = time.perf_counter()
            with torch.no_grad():
                compiled(x)
            compile_s[name] = time.perf_counter() - start
            fns[name] = lambda c=compiled: c(x)
    with torch.no_grad():
        ref = net(x)
        diffs = {name: float((fn().float() - ref).abs().max()) * 255 for name, fn in fns.items()
                 if not name.startswith("peer")}
        times = alternate(fns, warmup, repeats)
    rows = []
    for name, t in times.items():
        row = {"lever": name, "size": size, "ms": 1e3 * statistics.median(t),
               "vs_peer": statistics.median(times["peer (fp32 eager)"]) / statistics.median(t),
               "max_diff_255": diffs.get(name), "compile_s": compile_s.get(name)}
        rows.append(row)
        log(f"{name}: {row['ms']:.0f} ms, {row['vs_peer']:.2f}x the peer"
            + (f", max diff {row['max_diff_255']:.3f}/255" if row["max_diff_255"] is not None else "")
            + (f", first call {row['compile_s']:.0f} s" if row["compile_s"] else ""))
    return rows


def train_levers(peer_path: str | Path, batch: int = 4, size: int = 256, warmup: int = 1, repeats: int = 3,
                 log: Callable[[str], None] = print) -> list[dict]:
    """Median ms of one training step of what ``nst mode=train`` builds, under each precision and
    memory layout, beside the peer's step, alternating."""
    from nst.hardware import cpu_has_fast_bf16

    variants = {"fp32, channels_last": ["trainer.precision=32-true"],
                "fp32, NCHW": ["trainer.precision=32-true", "perf.channels_last=false"],
                "fp32, channels_last, torch.compile": ["trainer.precision=32-true", "perf.compile=true"]}
    if cpu_has_fast_bf16():  # elsewhere bf16 is emulated: minutes a step, and never the default
        variants.update({"bf16 autocast, channels_last": ["trainer.precision=bf16-mixed"],
                         "bf16 autocast, NCHW": ["trainer.precision=bf16-mixed", "perf.channels_last=false"]})
    fns = {"peer (fp32 eager)": peer_train_step(import_peer(peer_path), batch, size)}
    for name, overrides in variants.items():
        fns[name] = nst_train_step(batch, size, 256, *overrides)[0]
    times = alternate(fns, warmup, repeats)
    peer_s = statistics.median(times["peer (fp32 eager)"])
    rows = [{"lever": name, "size": size, "batch": batch, "ms": 1e3 * statistics.median(t),
             "vs_peer": peer_s / statistics.median(t)} for name, t in times.items()]
    for r in rows:
        log(f"train {r['lever']}: {r['ms']:.0f} ms, {r['vs_peer']:.2f}x the peer")
    return rows


def _under(context, fn: Callable[[], torch.Tensor]) -> torch.Tensor:
    with context:
        return fn()


def tile_levers(peer_path: str | Path, size: int = 2048, warmup: int = 0, repeats: int = 2,
                log: Callable[[str], None] = print) -> list[dict]:
    """A (1, 3, size, size) image through ``nst.load_model`` with tiles of 1024 px (the default)
    and in one pass, on ONNX Runtime and on torch, beside the peer's one pass."""
    torch.manual_seed(0)
    x = torch.rand(1, 3, size, size)
    peer_run = peer_stylizer(import_peer(peer_path))
    with tempfile.TemporaryDirectory() as tmp:
        fns = {"peer (fp32 eager, one pass)": lambda: peer_run(x)}
        for backend in ("onnxruntime", "torch"):
            for tile in (1024, None):
                stylizer = nst_stylizer(Path(tmp), backend=backend, tile_size=tile)
                label = f"nst {backend}, " + (f"tiles of {tile}" if tile else "one pass")
                fns[label] = lambda s=stylizer: s(x)
        times = alternate(fns, warmup, repeats)
    peer_s = statistics.median(times["peer (fp32 eager, one pass)"])
    rows = [{"lever": name, "size": size, "ms": 1e3 * statistics.median(t),
             "vs_peer": peer_s / statistics.median(t)} for name, t in times.items()]
    for r in rows:
        log(f"{r['lever']} {size} px: {r['ms']:.0f} ms, {r['vs_peer']:.2f}x the peer")
    return rows
