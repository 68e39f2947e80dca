"""An ONNX Runtime twin of a TransformerNet, for stylizing on the CPU.

The same float32 network runs faster under ONNX Runtime than under eager PyTorch, to well within
one level of 255 (docs/benchmarks.md): its graph optimizer fuses what eager PyTorch runs op by op.
``OrtNet`` has the network's inference interface (``net(x, norm_stats=None)``,
``net.capture_norm_stats(x)``), so the Stylizer and its shared-statistics tiling run it unchanged.
Three graphs per network: the plain forward, the capture of the instance-norm statistics, and the
forward with given statistics (tiles). They are exported once per set of weights into
``$NST_CACHE/onnx/`` (atomically) and loaded from there afterwards.

Optional: needs ``onnxruntime`` (``pip install 'nst[export]'``); without it nothing changes.
"""

from __future__ import annotations

import hashlib
import importlib.util
import io
import os
import warnings
from pathlib import Path

import torch
from torch import Tensor, nn

from nst.io.files import atomic_path

_QUIET = ("You are using the legacy TorchScript-based ONNX export", "The feature will be removed",
          "ONNX export mode is set to TrainingMode.EVAL", "Converting a tensor to a Python",
          "Constant folding - Only steps=1")


def available() -> bool:
    """Whether onnxruntime can be imported here."""
    return importlib.util.find_spec("onnxruntime") is not None


def _cache_dir() -> Path:
    from nst.perceptual.hed import cache_dir

    return cache_dir() / "onnx"


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


class OrtNet:
    """``net`` (a TransformerNet in float32) run by ONNX Runtime on the CPU.

    ``threads``: ONNX Runtime's intra-op threads (default: torch's current number).
    """

    def __init__(self, net: nn.Module, threads: int | None = None) -> None:
        import onnxruntime as ort

        twin = _float_cpu_copy(net)
        self.num_norms = int(twin.num_norms)
        self.config = dict(getattr(twin, "config", {}))
        folder = _cache_dir() / _key(twin)
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
        options = ort.SessionOptions()
        options.intra_op_num_threads = int(threads or torch.get_num_threads())
        options.inter_op_num_threads = 1
        options.log_severity_level = 3  # errors only: its graph-optimizer notices are not for users
        self.sessions = {}
        for name, (module, args, inputs, outputs, axes) in graphs.items():
            path = folder / f"{name}.onnx"
            if not path.is_file():
                _export(module, args, path, inputs, outputs, axes)
            self.sessions[name] = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])

    # The parts of nn.Module's interface the Stylizer calls.
    training = False

    def to(self, *args, **kwargs) -> OrtNet:
        return self

    def eval(self) -> OrtNet:
        return self

    def requires_grad_(self, flag: bool = True) -> OrtNet:
        return self

    def __call__(self, x: Tensor, norm_stats: list[tuple[Tensor, Tensor]] | None = None) -> Tensor:
        feed = {"image": x.detach().float().cpu().contiguous().numpy()}
        if norm_stats is None:
            return torch.from_numpy(self.sessions["forward"].run(None, feed)[0])
        if len(norm_stats) != self.num_norms:
            raise ValueError(f"norm_stats has {len(norm_stats)} entries, this network has "
                             f"{self.num_norms} norms")
        flat = [t for pair in norm_stats for t in pair]
        feed.update({f"stat{i}": t.detach().float().cpu().contiguous().numpy() for i, t in enumerate(flat)})
        return torch.from_numpy(self.sessions["with_stats"].run(None, feed)[0])

    def capture_norm_stats(self, x: Tensor) -> list[tuple[Tensor, Tensor]]:
        out = self.sessions["capture"].run(None, {"image": x.detach().float().cpu().contiguous().numpy()})
        t = [torch.from_numpy(a) for a in out]
        return [(t[i], t[i + 1]) for i in range(0, len(t), 2)]


def _float_cpu_copy(net: nn.Module) -> nn.Module:
    import copy

    twin = copy.deepcopy(net).float().cpu().eval().requires_grad_(False)
    return twin.to(memory_format=torch.contiguous_format)


def wanted(backend: str, device: torch.device, precision: torch.dtype | None, net: nn.Module) -> bool:
    """Whether a Stylizer with these settings runs ``net`` under ONNX Runtime: ``onnxruntime``
    always (one-line error when it cannot), ``auto`` on the CPU in float32 for a network that can
    capture its norm statistics, when onnxruntime is installed; ``torch`` never."""
    from nst.errors import NSTError

    if backend == "torch":
        return False
    fits = device.type == "cpu" and precision is None and hasattr(net, "capture_norm_stats")
    if backend == "onnxruntime":
        if not available():
            raise NSTError("backend=onnxruntime: onnxruntime is not installed (pip install 'nst[export]')")
        if not fits:
            raise NSTError("backend=onnxruntime runs float32 on the CPU (trainer=cpu, precision 32)")
        return True
    if backend != "auto":
        raise NSTError(f"backend={backend!r}: choose auto, torch or onnxruntime")
    return fits and available() and os.environ.get("NST_BACKEND", "auto") != "torch"
