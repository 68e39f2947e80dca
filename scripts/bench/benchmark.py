#!/usr/bin/env python3
"""Speed and peak memory of nst's three workloads, with a plain float32 eager baseline beside them.

    python scripts/bench/benchmark.py --quick                          # ~2 min on a 2-core CPU, smaller sizes
    python scripts/bench/benchmark.py --device cuda --precision bf16 [--compile] --json bench.json

- training: images/s of one full step (TransformerNet forward, VGG16 Johnson loss with its content
  targets, backward, Adam step) at 256 px, batches 4 and 16;
- stylization: latency per image at 256, 512 and 1024 px (Stylizer, one pass, no tiling);
- Gatys: seconds per iteration at 512 px through ``nst.gatys.module.optimize`` (L-BFGS and Adam).
Times are medians over repeats after warm-up. The baseline ("a straightforward float32 eager
implementation of the same networks": NCHW, no channels_last, no compile) runs the training rows
too, unless --no-baseline, so the optimized/baseline ratio comes out of one run. VGG weights are
random: speed does not depend on their values. Memory: torch.cuda.max_memory_allocated on CUDA; on
CPU the process's peak RSS, reset per case through /proc/self/clear_refs where Linux allows it.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import datetime
import gc
import json
import logging
import os
import platform
import re
import resource
import statistics
import sys
import time
import warnings
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[2]
# Lightning's notes on every Gatys fit that say nothing here (one image needs no workers, the VGG is
# meant to be in eval mode, an internal deprecation of Lightning's own).
QUIET = r".*(does not have many workers|module\(s\) in eval mode|LeafSpec).*"
sys.path.insert(0, str(REPO))  # run from a checkout without installing

from nst.gatys.module import optimize  # noqa: E402
from nst.hardware import SPEED_FLAGS, cpu_flags, cpu_kind  # noqa: E402
from nst.inference.stylize import Stylizer  # noqa: E402
from nst.networks.transformer import TransformerNet  # noqa: E402
from nst.perceptual.build import build_loss  # noqa: E402
from nst.perceptual.losses import PerceptualLoss  # noqa: E402


@dataclass(frozen=True)
class Setup:
    """How the networks run: device, precision ("32" | "bf16"), memory format, compilation, model."""

    device: str = "cpu"
    precision: str = "32"
    channels_last: bool = True
    compile: bool = False
    model: str = "transformer"

    @property
    def label(self) -> str:
        parts = [self.device, "fp32" if self.precision == "32" else self.precision,
                 "channels_last" if self.channels_last else "NCHW", "compiled" if self.compile else "eager"]
        return " ".join(parts)

    def baseline(self) -> Setup:
        return replace(self, precision="32", channels_last=False, compile=False)


def config(group: str, name: str) -> dict:
    """configs/<group>/<name>.yaml as Hydra composes it (its defaults merged) as plain keyword
    arguments, ``_target_`` dropped; for the model group, its network (``model.net``)."""
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    import nst.cli  # noqa: F401 (registers the resolvers the configs use: count, asset)

    with initialize_config_dir(config_dir=str(REPO / "configs"), version_base="1.3"):
        cfg = compose("config", overrides=[f"{group}={name}"])
    node = OmegaConf.to_container(cfg[group].net if group == "model" else cfg[group], resolve=True)
    return {k: v for k, v in node.items() if not k.startswith("_")}


def make_loss(loss_name: str, device: torch.device, style_side: int, seed: int = 0) -> PerceptualLoss:
    """A PerceptualLoss from configs/loss/<name>.yaml on a random-weight VGG16, style target set."""
    loss = build_loss(config("loss", loss_name), "vgg16", "random", seed=seed).to(device)
    gen = torch.Generator().manual_seed(seed)
    loss.set_style([torch.rand(1, 3, style_side, style_side, generator=gen).to(device)])
    return loss


# ---- measuring -----------------------------------------------------------------------------------

def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class PeakMemory:
    """Peak memory of one case in MiB: CUDA allocator peak, or process peak RSS on the CPU; also how
    far above the memory in use at ``reset`` (the process's torch libraries alone hold ~1 GB of RSS)."""

    def __init__(self, device: torch.device):
        self.device = device
        self.base = 0.0
        self.kind = "cuda max_memory_allocated"
        if device.type != "cuda":
            self.kind = "process peak RSS" + ("" if self._clear() else " since start (ru_maxrss)")

    @staticmethod
    def _clear() -> bool:
        try:  # Linux >= 4.0: "5" resets VmHWM, the peak resident set, to the current one
            Path("/proc/self/clear_refs").write_text("5")
            return True
        except OSError:
            return False

    @staticmethod
    def _status(key: str) -> float | None:
        with contextlib.suppress(OSError, AttributeError):
            return int(re.search(rf"{key}:\s+(\d+)", Path("/proc/self/status").read_text()).group(1)) / 1024
        return None

    def reset(self) -> None:
        gc.collect()
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)
            self.base = torch.cuda.memory_allocated(self.device) / 2**20
        else:
            with contextlib.suppress(OSError, AttributeError):  # glibc: hand freed heap pages back, so
                ctypes.CDLL("libc.so.6").malloc_trim(0)          # the RSS counts live memory only
            self._clear()
            self.base = self._status("VmRSS") or 0.0

    def read_mb(self) -> float:
        if self.device.type == "cuda":
            return torch.cuda.max_memory_allocated(self.device) / 2**20
        peak = self._status("VmHWM")
        if peak is not None:
            return peak
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return peak / 2**20 if sys.platform == "darwin" else peak / 1024  # bytes on macOS, KiB on Linux

    def read(self) -> dict:
        peak = self.read_mb()
        return {"peak_mb": peak, "peak_extra_mb": max(0.0, peak - self.base), "memory": self.kind}


def timed(fn, device: torch.device, warmup: int, repeats: int) -> list[float]:
    """Seconds of ``repeats`` calls of ``fn`` after ``warmup`` untimed ones (device synchronized)."""
    for _ in range(warmup):
        fn()
    sync(device)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        sync(device)
        times.append(time.perf_counter() - start)
    return times


def _autocast(setup: Setup, device: torch.device):
    if setup.precision == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def _compiled(module: torch.nn.Module, setup: Setup) -> torch.nn.Module:
    return torch.compile(module, dynamic=False) if setup.compile else module


# ---- the three workloads -------------------------------------------------------------------------

def _train_step(setup: Setup, batch: int, size: int):
    """A closure running one full training step of ``setup``, and a dict holding its last loss."""
    device = torch.device(setup.device)
    torch.manual_seed(0)
    fmt = torch.channels_last if setup.channels_last else torch.contiguous_format
    net = TransformerNet(**config("model", setup.model)).to(device, memory_format=fmt)
    loss = make_loss("johnson2016", device, size).to(memory_format=fmt)
    loss.vgg = _compiled(loss.vgg, setup)
    run_net = _compiled(net, setup)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    x = torch.rand(batch, 3, size, size, device=device).contiguous(memory_format=fmt)
    last: dict = {}

    def step() -> None:
        with _autocast(setup, device):
            out = loss(run_net(x), x)
        opt.zero_grad(set_to_none=True)
        out["loss"].backward()
        opt.step()
        last["loss"] = out["loss"].detach()

    return step, last


def train_steps(setups: list[Setup], batch: int, size: int, warmup: int = 2, repeats: int = 5) -> list[dict]:
    """Training throughput of each setup: {images_per_s, step_ms, peak_mb, loss}. After each setup's
    warm-up (which is when its peak memory is read), the timed steps alternate between the setups,
    so that a change of load on a shared machine hits them alike and their ratio stays fair."""
    device = torch.device(setups[0].device)
    runs = [_train_step(s, batch, size) for s in setups]
    mem = PeakMemory(device)
    memory = []
    for step, _ in runs:
        mem.reset()
        timed(step, device, warmup, 0)
        memory.append(mem.read())
    times: list[list[float]] = [[] for _ in runs]
    for _ in range(repeats):
        for (step, _), t in zip(runs, times):
            t += timed(step, device, 0, 1)
    out = []
    for (_, last), t, m in zip(runs, times, memory):
        med = statistics.median(t)
        out.append({"images_per_s": batch / med, "step_ms": 1e3 * med, **m, "loss": float(last["loss"]),
                    "times_s": t})
    return out


def train_throughput(setup: Setup, batch: int, size: int, warmup: int = 2, repeats: int = 5) -> dict:
    """One full training step, repeated: {images_per_s, step_ms, peak_mb, loss (last, finite?)}."""
    return train_steps([setup], batch, size, warmup, repeats)[0]


def stylize_latency(setup: Setup, size: int, warmup: int = 2, repeats: int = 10) -> dict:
    """Latency of one (1,3,size,size) image: on the device (``ms``) and from/to host memory
    (``ms_host``: with the transfers; the same on CPU)."""
    device = torch.device(setup.device)
    torch.manual_seed(0)
    stylizer = Stylizer(TransformerNet(**config("model", setup.model)), device=device,
                        precision="bf16-mixed" if setup.precision == "bf16" else "32",
                        channels_last=setup.channels_last, tile_size=None)
    stylizer.net = _compiled(stylizer.net, setup)
    host = torch.rand(1, 3, size, size)
    on_device = host.to(device)
    mem = PeakMemory(device)
    mem.reset()
    times = timed(lambda: stylizer.stylize_tensor(on_device), device, warmup, repeats)
    out = {"ms": 1e3 * statistics.median(times), **mem.read(), "times_s": times}
    if device.type == "cuda":
        host_times = timed(lambda: stylizer.stylize_tensor(host), device, 1, repeats)
        out["ms_host"] = 1e3 * statistics.median(host_times)
    else:
        out["ms_host"] = out["ms"]
    out["finite"] = bool(torch.isfinite(stylizer.stylize_tensor(on_device)).all())
    return out


def gatys_speed(setup: Setup, size: int, optimizer: str, iterations: int = 5, warmup: int = 2) -> dict:
    """Seconds per Gatys iteration (median of per-step times after ``warmup`` steps) through
    ``nst.gatys.module.optimize``; ``iterations_s``: the ``iterations`` timed steps together; ``fit_s``: the
    whole ``trainer.fit`` (Lightning's setup and the warm-up steps too); first and last loss."""
    import pytorch_lightning as pl

    device = torch.device(setup.device)
    loss = make_loss("gatys_vgg16", device, size)
    loss.vgg = _compiled(loss.vgg, setup)
    stamps: list[float] = []

    class Clock(pl.Callback):
        def on_train_batch_end(self, *args, **kwargs) -> None:
            sync(device)
            stamps.append(time.perf_counter())

        def on_train_start(self, *args, **kwargs) -> None:
            sync(device)
            stamps.append(time.perf_counter())

    content = torch.rand(1, 3, size, size, generator=torch.Generator().manual_seed(1))
    accel = "gpu" if device.type == "cuda" else "cpu"
    mem = PeakMemory(device)
    mem.reset()
    precision = "bf16-mixed" if setup.precision == "bf16" else "32-true"
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=QUIET)
        result = optimize(content, loss, iterations=warmup + iterations, optimizer=optimizer, init="content",
                          callbacks=[Clock()], channels_last=setup.channels_last,
                          trainer_kwargs={"accelerator": accel, "precision": precision})
    steps = [b - a for a, b in zip(stamps, stamps[1:])][warmup:]
    return {"s_per_iteration": statistics.median(steps), "iterations": len(steps), "iterations_s": sum(steps),
            "fit_s": result.seconds, **mem.read(), "loss_first": result.history[0]["loss"],
            "loss_last": result.losses["loss"], "times_s": steps}


# ---- the run -------------------------------------------------------------------------------------

@dataclass
class Plan:
    """Sizes and repeats; ``--quick`` shrinks them (and the table says so)."""

    train_size: int = 256
    batches: tuple[int, ...] = (4, 16)
    stylize_sizes: tuple[int, ...] = (256, 512, 1024)
    gatys_size: int = 512
    gatys_optimizers: tuple[str, ...] = ("lbfgs", "adam")
    gatys_iterations: int = 10
    warmup: int = 2
    repeats: int = 5
    stylize_repeats: int = 20


FULL = {"cpu": Plan(warmup=1, repeats=3, stylize_repeats=5, gatys_iterations=3),
        "cuda": Plan(repeats=10, stylize_repeats=50)}
QUICK = Plan(train_size=128, batches=(4,), stylize_sizes=(256, 512), gatys_size=256, gatys_iterations=3,
             warmup=1, repeats=2, stylize_repeats=3)


def hardware(device: torch.device) -> dict:
    cpu = platform.processor()
    with contextlib.suppress(OSError, AttributeError):
        cpu = re.search(r"model name\s*:\s*(.+)", Path("/proc/cpuinfo").read_text()).group(1).strip()
    info = {"cpu": cpu, "cores": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "torch": torch.__version__, "python": platform.python_version(), "platform": platform.platform(),
            "device": "cpu", "loadavg_start": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
            "cpu_kind": cpu_kind(), "cpu_flags": sorted(cpu_flags() & set(SPEED_FLAGS))}
    if device.type == "cuda":
        info.update(device=torch.cuda.get_device_name(device), cuda=torch.version.cuda,
                    cudnn=torch.backends.cudnn.version())
    return info


def cases(setup: Setup, plan: Plan, baseline: bool):
    """(workload, setups, size, batch, callable -> one result per setup) in run order."""
    train = [setup] + ([setup.baseline()] if baseline and setup.baseline() != setup else [])
    for batch in plan.batches:
        yield "train", train, plan.train_size, batch, lambda b=batch: train_steps(
            train, b, plan.train_size, max(1, plan.warmup), plan.repeats)
    for size in plan.stylize_sizes:
        yield "stylize", [setup], size, 1, lambda n=size: [stylize_latency(
            setup, n, plan.warmup, plan.stylize_repeats)]
    for name in plan.gatys_optimizers:
        yield f"gatys_{name}", [setup], plan.gatys_size, 1, lambda o=name: [gatys_speed(
            setup, plan.gatys_size, o, plan.gatys_iterations, plan.warmup)]


def run(setup: Setup, plan: Plan, baseline: bool = True, log=print, done=None) -> list[dict]:
    """Every case's result rows; a case that fails records its error and the run goes on.
    ``done(rows)`` is called after each case (to save partial results before a time limit hits)."""
    rows = []
    for workload, setups, size, batch, fn in cases(setup, plan, baseline):
        start = time.perf_counter()
        try:
            results = fn()
        except Exception as e:  # noqa: BLE001 -- e.g. torch.compile without a compiler: report, go on
            results = [{"error": f"{type(e).__name__}: {' '.join(str(e).split())[:300]}"}] * len(setups)
        wall = time.perf_counter() - start
        for s, result in zip(setups, results):
            row = {"workload": workload, "setup": s.label, "baseline": s == setup.baseline() and s != setup,
                   "size": size, "batch": batch, **{f"setup_{k}": v for k, v in asdict(s).items()},
                   **result, "wall_s": wall}
            log(f"  {workload:12s} {s.label:30s} {size:5d} px  b{batch:<3d} {_value(row):>16s}  "
                f"[{wall:.0f} s]")
            rows.append(row)
        if done is not None:
            done(rows)
        if setup.device == "cuda":
            torch.cuda.empty_cache()
    return rows


def _value(row: dict) -> str:
    if "error" in row:
        return "error"
    if row["workload"] == "train":
        return f"{row['images_per_s']:.2f} img/s"
    if row["workload"] == "stylize":
        return f"{row['ms']:.1f} ms"
    return f"{row['s_per_iteration'] * 1e3:.1f} ms/it ({row['iterations']} it: {row['iterations_s']:.2f} s)"


def ratios(rows: list[dict]) -> dict[str, float]:
    """optimized / baseline training throughput per batch size."""
    out = {}
    for r in rows:
        if r["workload"] == "train" and not r["baseline"] and "error" not in r:
            base = [b for b in rows if b["workload"] == "train" and b["baseline"] and b["batch"] == r["batch"]
                    and "error" not in b]
            if base:
                out[f"train_b{r['batch']}_{r['size']}px"] = r["images_per_s"] / base[0]["images_per_s"]
    return out


def table(report: dict) -> str:
    """The results as a Markdown table, with hardware and conditions above it."""
    hw, rows = report["hardware"], report["rows"]
    lines = [f"{report['date']}: {hw['cpu']} ({hw['cores']} cores, {hw['torch_threads']} torch threads), "
             f"device {hw['device']}, torch {hw['torch']}; load average {hw.get('loadavg_start')} -> "
             f"{hw.get('loadavg_end')}" + ("; --quick: reduced sizes and repeats" if report["quick"] else ""),
             "", "| workload | setup | size | batch | result | peak MiB (+ over start) | repeats |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for r in rows:
        mem = f"{r['peak_mb']:.0f} (+{r['peak_extra_mb']:.0f})" if "peak_mb" in r else "-"
        extra = f" ({r['ms_host']:.1f} ms from host)" if r["workload"] == "stylize" and "ms_host" in r and \
            r["setup_device"] == "cuda" else ""
        setup = f"{r['setup']}{' (baseline)' if r['baseline'] else ''}"
        lines.append(f"| {r['workload']} | {setup} | {r['size']} | "
                     f"{r['batch']} | {_value(r)}{extra} | {mem} | {len(r.get('times_s', []))} |")
    for name, ratio in report["ratios"].items():
        lines.append(f"\n{name}: optimized / baseline = {ratio:.2f}x")
    for r in rows:
        if "error" in r:
            lines.append(f"\n{r['workload']} {r['setup']} {r['size']} px: {r['error']}")
    mem_kinds = sorted({r["memory"] for r in rows if "memory" in r})
    lines.append(f"\nMemory: {', '.join(mem_kinds)}. Times: medians after warm-up.")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    p.add_argument("--precision", choices=("32", "bf16"), default="32")
    p.add_argument("--channels-last", action=argparse.BooleanOptionalAction, default=True)
    p.add_argument("--compile", action="store_true", help="torch.compile the transformer and the VGG")
    p.add_argument("--model", default="transformer", help="a configs/model/ name (transformer_small)")
    p.add_argument("--quick", action="store_true", help="smaller sizes, fewer repeats (~2 min, 2 CPU cores)")
    p.add_argument("--baseline", action=argparse.BooleanOptionalAction, default=True,
                   help="also run the float32 eager NCHW baseline for the training rows (default: yes)")
    p.add_argument("--only", default="train,stylize,gatys", help="comma-separated workloads to run")
    p.add_argument("--train-size", type=int)
    p.add_argument("--batches", type=lambda s: tuple(int(v) for v in s.split(",")))
    p.add_argument("--stylize-sizes", type=lambda s: tuple(int(v) for v in s.split(",")))
    p.add_argument("--gatys-size", type=int)
    p.add_argument("--gatys-iterations", type=int)
    p.add_argument("--gatys-optimizers", type=lambda s: tuple(s.split(",")), help="lbfgs,adam")
    p.add_argument("--warmup", type=int)
    p.add_argument("--repeats", type=int)
    p.add_argument("--threads", type=int, help="torch CPU threads (default: torch's, one per core)")
    p.add_argument("--json", type=Path, help="write the report here as well")
    p.add_argument("--peer", type=Path, help="pytorch/examples' fast_neural_style folder: nst's default "
                   "paths beside it on the CPU, alternating (scripts/bench/peer.py); --only, "
                   "--stylize-sizes, --train-size, --batches, --repeats, --warmup and --threads apply")
    p.add_argument("--levers", action="store_true", help="with --peer: the table of levers instead (each "
                   "precision, layout, backend and torch.compile on the same network, beside the peer)")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.peer:
        return peer_main(args)
    if args.device == "cuda" and not torch.cuda.is_available():
        p.error("--device cuda: no CUDA device here")
    if not (REPO / "configs" / "model" / f"{args.model}.yaml").is_file():
        p.error(f"--model {args.model}: no configs/model/{args.model}.yaml")
    plan = replace(QUICK if args.quick else FULL[args.device])
    for key in ("train_size", "batches", "stylize_sizes", "gatys_size", "gatys_iterations",
                "gatys_optimizers", "warmup", "repeats"):
        if getattr(args, key) is not None:
            setattr(plan, key, getattr(args, key))
    only = set(args.only.split(","))
    plan.batches = plan.batches if "train" in only else ()
    plan.stylize_sizes = plan.stylize_sizes if "stylize" in only else ()
    plan.gatys_optimizers = plan.gatys_optimizers if "gatys" in only else ()
    setup = Setup(args.device, args.precision, args.channels_last, args.compile, args.model)
    device = torch.device(args.device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # as trainer=gpu; the baseline rows get it too
    for name in ("pytorch_lightning", "lightning.pytorch", "lightning_fabric"):
        logging.getLogger(name).setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", message=QUIET)
    report = {"date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"), "quick": args.quick,
              "hardware": hardware(device), "setup": asdict(setup), "plan": asdict(plan)}
    hw = report["hardware"]
    print(f"benchmark: {hw['cpu']}, {hw['device']}, torch {torch.__version__}; "
          f"{setup.label}, model {setup.model}{' (quick)' if args.quick else ''}", flush=True)

    def save(rows: list[dict]) -> None:
        report.update(rows=rows, ratios=ratios(rows))
        report["hardware"]["loadavg_end"] = list(os.getloadavg()) if hasattr(os, "getloadavg") else None
        if args.json:
            from nst.io.files import atomic_write_text

            args.json.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_text(args.json, json.dumps(report, indent=2))

    save(run(setup, plan, baseline=args.baseline, log=lambda s: print(s, flush=True), done=save))
    print("\n" + table(report))
    return 1 if any("error" in r for r in report["rows"]) else 0


def peer_main(args: argparse.Namespace) -> int:
    """``--peer PATH``: the side-by-side report of scripts/bench/peer.py, printed as a table."""
    import peer

    warnings.filterwarnings("ignore", message=QUIET)
    hw = hardware(torch.device("cpu"))
    only = set(args.only.split(","))
    if args.levers:
        rows = []
        for size in (args.stylize_sizes or (512,)) if "stylize" in only else ():
            if size > 1024:  # tiles: the tile-size lever (the others at this size take minutes each)
                rows += peer.tile_levers(args.peer, size, repeats=args.repeats or 2)
                continue
            rows += peer.stylize_levers(args.peer, size, warmup=args.warmup or 1, repeats=args.repeats or 3)
        if "train" in only:
            rows += peer.train_levers(args.peer, (args.batches or (4,))[0], args.train_size or 256,
                                      warmup=args.warmup or 1, repeats=args.repeats or 3)
        print(f"\n{datetime.datetime.now().astimezone().isoformat(timespec='seconds')}: {hw['cpu']}, "
              f"{torch.get_num_threads()} torch threads; load average {hw.get('loadavg_start')} -> "
              f"{list(os.getloadavg())}\n\n| lever | size | ms | vs the peer | max diff from fp32 (/255) "
              "| first call (compile) |\n| --- | --- | --- | --- | --- | --- |")
        for r in rows:
            diff = "-" if r.get("max_diff_255") is None else f"{r['max_diff_255']:.3f}"
            first = f"{r['compile_s']:.0f} s" if r.get("compile_s") else "-"
            size = f"{r['size']}" + (f", batch {r['batch']}" if "batch" in r else "")
            print(f"| {r['lever']} | {size} | {r['ms']:.0f} | {r['vs_peer']:.2f}x | {diff} | {first} |")
        if args.json:
            from nst.io.files import atomic_write_text

            atomic_write_text(args.json, json.dumps({"hardware": hw, "rows": rows}, indent=2))
        return 0
    report = peer.run(args.peer, train_size=(args.train_size or 256) if "train" in only else 0,
                      batch=(args.batches or (4,))[0],
                      sizes=(args.stylize_sizes or (512, 1024, 2048)) if "stylize" in only else (),
                      warmup=args.warmup or 1, repeats=args.repeats or 3)
    report.update(date=datetime.datetime.now().astimezone().isoformat(timespec="seconds"), hardware=hw,
                  loadavg_end=list(os.getloadavg()))
    print(f"\n{report['date']}: {hw['cpu']} (kind {hw['cpu_kind']}: {', '.join(hw['cpu_flags'])}), "
          f"{report['threads']} torch threads, torch {hw['torch']}; "
          f"load average {hw.get('loadavg_start')} -> {report['loadavg_end']}; matmul peaks "
          f"{report['matmul_peak_tflops']['fp32']:.3f} (fp32) / {report['matmul_peak_tflops']['bf16']:.3f} "
          f"(bf16) TFLOP/s; nst stylizes with {report.get('nst_backend')} "
          f"(first load {report.get('nst_first_load_s', 0):.1f} s)\n")
    print("| workload | size | peer | nst | nst speed-up | GFLOP (nst) | nst % of fp32 / bf16 matmul peak "
          "| peak MiB over start (peer / nst) |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for r in report["rows"]:
        s = r["seconds"]
        label = (f"{r['workload']}, batch {r['batch']}" if r["workload"] == "train"
                 else f"{r['workload']} ({r.get('backend')})")
        print(f"| {label} | {r['size']} | {s['peer'] * 1e3:.0f} ms | {s['nst'] * 1e3:.0f} ms | "
              f"{r['ratio']:.2f}x | {r['flops']['nst'] / 1e9:.0f} | "
              f"{100 * r['fraction_of_fp32_peak']['nst']:.0f} % / "
              f"{100 * r['fraction_of_bf16_peak']['nst']:.0f} % | "
              f"{r['peak_extra_mb']['peer']:.0f} / {r['peak_extra_mb']['nst']:.0f} |")
    if args.json:
        from nst.io.files import atomic_write_text

        atomic_write_text(args.json, json.dumps(report, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
