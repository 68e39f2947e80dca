"""The ONNX twin of a TransformerNet, run on the CPU by OpenVINO or ONNX Runtime.

The same float32 network runs faster under either runtime than under eager PyTorch, to well within
one level of 255 (docs/benchmarks.md): their graph compilers fuse what eager PyTorch runs op by op.
OpenVINO's kernels are the faster; ``auto`` still takes ONNX Runtime first in a process that lives
on (nst.models.graphs.IN_PROCESS_ORDER). ``OnnxNet`` has the network's inference interface
(``net(x, norm_stats=None)``, ``net.capture_norm_stats(x)``), so the Stylizer and its
shared-statistics tiling run it unchanged. Three graphs per network: the plain forward, the capture
of the instance-norm statistics, and the forward with given statistics (tiles). They are exported
once per set of weights into ``$NST_CACHE/onnx/`` (atomically) and loaded from there afterwards;
OpenVINO keeps its compiled form beside them (``ov/``), so a later process starts in milliseconds.

Optional: needs ``openvino`` (``pip install 'nst[fast]'``) or ``onnxruntime`` (``nst[export]``);
without either nothing changes.
"""

from __future__ import annotations

import hashlib
import io
import warnings
from pathlib import Path

import torch
from torch import Tensor, nn

from nst.io.files import atomic_path
from nst.models.graphs import IN_PROCESS_ORDER, RUNTIMES, available, cache_folder, first_installed, load_graph

_QUIET = ("You are using the legacy TorchScript-based ONNX export", "The feature will be removed",
          "ONNX export mode is set to TrainingMode.EVAL", "Converting a tensor to a Python",
          "Constant folding - Only steps=1")


def _key(net: nn.Module) -> str:
    """A digest of the network's class, arguments and weights: the cache entry's name."""
    h = hashlib.sha256(f"{type(net).__qualname__}{getattr(net, 'config', {})}{torch.__version__}".encode())
    for name, t in net.state_dict().items():
        h.update(name.encode())
        h.update(t.detach().float().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:24]


class _Capture(nn.Module):
    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: Tensor) -> tuple[Tensor, ...]:
        return tuple(t for pair in self.net.capture_norm_stats(x) for t in pair)


class _WithStats(nn.Module):
    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: Tensor, *flat: Tensor) -> Tensor:
        return self.net(x, norm_stats=[(flat[i], flat[i + 1]) for i in range(0, len(flat), 2)])


def _export(module: nn.Module, args: tuple, path: Path, inputs: list[str], outputs: list[str],
            axes: dict[str, dict[int, str]]) -> Path:
    with warnings.catch_warnings(), torch.no_grad(), atomic_path(path) as tmp:
        for message in _QUIET:
            warnings.filterwarnings("ignore", message=f".*{message}.*")
        buffer = io.BytesIO()
        torch.onnx.export(module, args, buffer, dynamo=False, opset_version=17, input_names=inputs,
                          output_names=outputs, dynamic_axes=axes)
        Path(tmp).write_bytes(buffer.getvalue())
    return path


class OnnxNet:
    """``net`` (a TransformerNet in float32) run on the CPU by ``runtime`` (openvino | onnxruntime).

    ``threads``: the runtime's threads (default: torch's current number).
    """

    def __init__(self, net: nn.Module, runtime: str = "onnxruntime", threads: int | None = None) -> None:
        if runtime not in RUNTIMES:
            raise ValueError(f"runtime={runtime!r}: choose one of {', '.join(RUNTIMES)}")
        twin = _float_cpu_copy(net)
        self.runtime = runtime
        self.num_norms = int(twin.num_norms)
        self.config = dict(getattr(twin, "config", {}))
        self.folder = cache_folder() / _key(twin)
        image = {0: "batch", 2: "height", 3: "width"}
        x = torch.rand(1, 3, 37, 45)
        stats = [t for pair in twin.capture_norm_stats(x) for t in pair]
        names = [f"stat{i}" for i in range(len(stats))]
        stat_axes = {n: {0: "stat_batch"} for n in names}
        graphs = {
            "forward": (twin, (x,), ["image"], ["stylized"], {"image": image, "stylized": image}),
            "capture": (_Capture(twin), (x,), ["image"], names, {"image": image, **stat_axes}),
            "with_stats": (_WithStats(twin), (x, *stats), ["image", *names], ["stylized"],
                           {"image": image, "stylized": image, **stat_axes}),
        }
        threads = int(threads or torch.get_num_threads())
        self.sessions = {}
        for name, (module, args, inputs, outputs, axes) in graphs.items():
            path = self.folder / f"{name}.onnx"
            if not path.is_file():
                _export(module, args, path, inputs, outputs, axes)
            self.sessions[name] = load_graph(path, runtime, threads)

    # The parts of nn.Module's interface the Stylizer calls.
    training = False

    def to(self, *args, **kwargs) -> OnnxNet:
        return self

    def eval(self) -> OnnxNet:
        return self

    def requires_grad_(self, flag: bool = True) -> OnnxNet:
        return self

    def __call__(self, x: Tensor, norm_stats: list[tuple[Tensor, Tensor]] | None = None) -> Tensor:
        feed = {"image": x.detach().float().cpu().contiguous().numpy()}
        if norm_stats is None:
            return torch.from_numpy(self.sessions["forward"](feed)[0])
        if len(norm_stats) != self.num_norms:
            raise ValueError(f"norm_stats has {len(norm_stats)} entries, this network has "
                             f"{self.num_norms} norms")
        flat = [t for pair in norm_stats for t in pair]
        feed.update({f"stat{i}": t.detach().float().cpu().contiguous().numpy() for i, t in enumerate(flat)})
        return torch.from_numpy(self.sessions["with_stats"](feed)[0])

    def capture_norm_stats(self, x: Tensor) -> list[tuple[Tensor, Tensor]]:
        out = self.sessions["capture"]({"image": x.detach().float().cpu().contiguous().numpy()})
        t = [torch.from_numpy(a) for a in out]
        return [(t[i], t[i + 1]) for i in range(0, len(t), 2)]


def _float_cpu_copy(net: nn.Module) -> nn.Module:
    import copy

    twin = copy.deepcopy(net).float().cpu().eval().requires_grad_(False)
    return twin.to(memory_format=torch.contiguous_format)


def choose(backend: str, device: torch.device, precision: torch.dtype | None, net: nn.Module) -> str:
    """The backend a Stylizer with these settings runs ``net`` on: ``torch``, ``openvino`` or
    ``onnxruntime``. ``auto``: the first installed of IN_PROCESS_ORDER, on the CPU in float32, for a network
    that can capture its norm statistics (the environment variable NST_BACKEND=torch keeps torch),
    else torch. A runtime named outright is used or refused in one line."""
    from nst.errors import NSTError

    choices = ("auto", "torch", *RUNTIMES)
    if backend not in choices:
        raise NSTError(f"backend={backend!r}: choose one of {', '.join(choices)}")
    if backend == "torch":
        return "torch"
    fits = device.type == "cpu" and precision is None and hasattr(net, "capture_norm_stats")
    if backend in RUNTIMES:
        if not available(backend):
            extra = "fast" if backend == "openvino" else "export"
            raise NSTError(f"backend={backend}: {backend} is not installed (pip install 'nst[{extra}]')")
        if not fits:
            raise NSTError(f"backend={backend} runs float32 on the CPU (trainer=cpu, precision 32)")
        return backend
    return (first_installed(IN_PROCESS_ORDER) if fits else None) or "torch"
