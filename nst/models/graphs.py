"""Exported ONNX graphs, loaded for OpenVINO or ONNX Runtime: torch-free, so that the command
line's quick path (nst.inference.quick) starts without importing PyTorch.

The graphs themselves are exported by nst.models.runtimes, into ``cache_folder()``.
"""

from __future__ import annotations

import importlib.util
import os
import sys
import threading
from collections.abc import Callable
from pathlib import Path

from nst.io.files import cache_dir

RUNTIMES = ("openvino", "onnxruntime")
# auto's order. A short command-line process takes OpenVINO, whose CPU kernels are the faster; a
# process that lives on takes ONNX Runtime first: with OpenVINO loaded, a later subprocess and
# DataLoader-worker test crashed the test process with SIGSEGV, for a reason not yet found
# (docs/benchmarks.md, "Runtimes").
QUICK_ORDER = ("openvino", "onnxruntime")
IN_PROCESS_ORDER = ("onnxruntime", "openvino")


def available(runtime: str = "onnxruntime") -> bool:
    """Whether ``runtime`` (openvino | onnxruntime) can be imported here."""
    return importlib.util.find_spec(runtime) is not None


def first_installed(order: tuple[str, ...]) -> str | None:
    """What ``backend=auto`` runs: the first installed runtime of ``order``, or None (torch) where
    none is or the environment says NST_BACKEND=torch."""
    if os.environ.get("NST_BACKEND", "auto") == "torch":
        return None
    return next((r for r in order if available(r)), None)


def cache_folder() -> Path:
    """Where exported graphs live: one folder per network's weights (nst.models.runtimes)."""
    return cache_dir() / "onnx"


def import_openvino():
    """``import openvino`` without its usage report. The import sends an event to Google Analytics
    from a forked subprocess (openvino_telemetry) unless it sees a CI job or an opt-out file in the
    user's home. nst is an offline tool, and that fork, from a thread, crashed or hung processes that
    ran subprocesses and DataLoader workers afterwards. So the import runs with CI=true, which the
    telemetry honours, and the variable is restored afterwards."""
    if "openvino" in sys.modules:
        return sys.modules["openvino"]
    before = os.environ.get("CI")
    os.environ["CI"] = "true"
    try:
        import openvino
    finally:
        if before is None:
            os.environ.pop("CI", None)
        else:
            os.environ["CI"] = before
    return openvino


def load_graph(path: Path, runtime: str, threads: int) -> Callable[[dict], list]:
    """One exported graph ready to run: ``f({input name: float32 array}) -> [arrays]`` in the
    graph's output order."""
    if runtime == "openvino":
        ov = import_openvino()
        core = ov.Core()
        # the compiled form is cached beside the graph: the next process skips OpenVINO's compile
        core.set_property({"CACHE_DIR": str(path.parent / "ov")})
        # f32 said outright: on a CPU with AMX or AVX512-BF16 OpenVINO would otherwise run bf16
        compiled = core.compile_model(str(path), "CPU", {"INFERENCE_NUM_THREADS": threads,
                                                          "PERFORMANCE_HINT": "LATENCY",
                                                          "INFERENCE_PRECISION_HINT": "f32"})
        outputs = list(compiled.outputs)
        local = threading.local()  # an infer request serves one call at a time: one per thread

        def run(feed: dict) -> list:
            if not hasattr(local, "request"):
                local.request = compiled.create_infer_request()
            result = local.request.infer(feed)
            return [result[o].copy() for o in outputs]  # the request reuses its buffers next call

        return run
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.log_severity_level = 3  # errors only: its graph-optimizer notices are not for users
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    return lambda feed: session.run(None, feed)
