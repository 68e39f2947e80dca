"""``nst mode=export checkpoint=MODEL output=DIR formats=[torchscript,onnx]``: deployable copies of a
trained network, each checked against the PyTorch model on a random odd-sized image."""

from __future__ import annotations

import warnings
from pathlib import Path

import torch
from omegaconf import DictConfig, ListConfig

from nst.cli.values import output_folder, require
from nst.errors import NSTError
from nst.models.export import export_onnx, export_torchscript
from nst.models.modelfile import load_any, save_model
from nst.networks.transformer import TransformerNet

# TorchScript gets a double suffix: a plain .pt would read as a Lightning checkpoint to load_any.
SUFFIXES = {"safetensors": ".safetensors", "torchscript": ".torchscript.pt", "onnx": ".onnx"}
TOLERANCE = 1e-4  # float32 kernels of another runtime differ by ~1e-6 on [0,1] outputs


def _probe() -> torch.Tensor:
    return torch.rand(2, 3, 67, 45, generator=torch.Generator().manual_seed(0))


def max_difference(fmt: str, path: Path, net: TransformerNet) -> float | None:
    """max |exported(x) - net(x)| on a random (2,3,67,45) batch; None when the runtime is missing."""
    x = _probe()
    # a conditional network is checked at its first style (and full strength), the ONNX graph's inputs
    condition = {}
    if getattr(net, "num_styles", 1) > 1:
        condition["style"] = torch.eye(net.num_styles)[:1]
    if getattr(net, "strength_input", False):
        condition["strength"] = torch.ones(1)
    with torch.no_grad():
        want = net.cpu()(x, **condition)
        if fmt == "safetensors":
            from nst.models.modelfile import load_network

            got = load_network(path)[0](x, **condition)
        elif fmt == "torchscript":
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", FutureWarning)  # torch 2.14 deprecates torch.jit.load
                got = torch.jit.load(str(path), map_location="cpu")(x, **condition)
        else:
            try:
                import onnxruntime as ort
            except ImportError:
                return None
            session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
            names = {"style": "style_mix", "strength": "strength"}  # export_onnx's input names
            feed = {"image": x.numpy(), **{names[k]: v.numpy() for k, v in condition.items()}}
            got = torch.from_numpy(session.run(None, feed)[0])
    return (got - want).abs().max().item()


def run(cfg: DictConfig) -> dict[str, Path]:
    checkpoint = Path(str(require(cfg, "checkpoint", "an exported .safetensors model or a Lightning .ckpt")))
    value = cfg.get("formats")
    formats = [str(f) for f in (value if isinstance(value, ListConfig) else [value] if value else [])]
    unknown = [f for f in formats if f not in SUFFIXES]
    if unknown or not formats:
        raise NSTError(f"formats={formats}: choose from {', '.join(SUFFIXES)}")
    net, meta = load_any(checkpoint)
    out_dir = output_folder(cfg)
    stem = checkpoint.stem or "model"
    written: dict[str, Path] = {}
    for fmt in dict.fromkeys(formats):
        path = out_dir / f"{stem}{SUFFIXES[fmt]}"
        if path.resolve() == checkpoint.resolve():
            print(f"{fmt}: {path} is the checkpoint itself, left as it is")
            continue
        if fmt == "safetensors":
            save_model(path, net, meta)
        elif fmt == "torchscript":
            export_torchscript(net, path)
        else:
            try:
                export_onnx(net, path, opset=int(cfg.opset))
            except ModuleNotFoundError as e:
                raise NSTError(f"formats=onnx needs the {e.name} package (pip install 'nst[export]')") from e
        diff = max_difference(fmt, path, net)
        if diff is not None and diff > TOLERANCE:
            raise NSTError(f"{path}: the exported {fmt} model differs from PyTorch by {diff:.2g} "
                           f"(tolerance {TOLERANCE})")
        check = ("not checked: onnxruntime is not installed" if diff is None
                 else f"max |diff| vs PyTorch {diff:.1e}")
        print(f"{fmt}: {path} ({check})")
        written[fmt] = path
    return written
