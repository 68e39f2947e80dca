#!/usr/bin/env python3
"""The bound a faster inference path must hold to be a default, measured against float32 eager.

    .venv/bin/python scripts/bench/bound.py --photos ../shared/data/photos/heldout --json bound.json \
        --crops docs/images/bound

For every shipped model (each style of a multi-style one) x the first 8 photos of ``--photos`` at
512 and 1024 px (longer side), each path's output is compared with torch float32 eager's, both
quantized to 8 bits as a saved file would be:

- PSNR (dB) over the image, the worst image reported;
- the share of pixels where any channel differs by more than 8/255, the worst image reported.

A path holds the bound when its worst PSNR >= 40 dB and its worst share <= 0.1 %. The third
condition, no visible banding, is judged by eye on ``--crops``: for each path, a 256 px crop of
one photo at 1024 px beside float32's, and their difference amplified 16x.

Paths: ``openvino`` and ``onnxruntime`` (float32 graphs, the Stylizer's backends), ``bf16-mixed``
(torch, first block and output conv in float32: emulated and slow on a CPU without native bf16,
but its rounding is the same), ``int8`` (the exported graph quantized statically, per channel,
first and last convs kept in float32, calibrated on 16 photos of ``--calibration``, never on
``--photos``; run by OpenVINO). A path whose runtime is not installed is left out and said so.
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from nst.hardware import SPEED_FLAGS, busy_cores, cpu_flags, cpu_kind, describe  # noqa: E402
from nst.inference.styles import style_names  # noqa: E402
from nst.inference.stylize import Stylizer  # noqa: E402
from nst.io.image import list_images, load_image, to_pil  # noqa: E402
from nst.models.graphs import available  # noqa: E402
from nst.models.modelfile import load_any  # noqa: E402
from nst.models.runtimes import OnnxNet  # noqa: E402
from nst.models.shipped import shipped_models  # noqa: E402

PSNR_MIN, SHARE_MAX, LEVEL = 40.0, 0.1, 8  # dB, % of pixels, /255: the bound


def as_bytes(y: torch.Tensor) -> np.ndarray:
    """(1,3,H,W) in [0,1] -> uint8 (H,W,3), rounded as nst.io.image.to_pil saves it."""
    return np.asarray(to_pil(y))


def compare(ref: np.ndarray, out: np.ndarray) -> tuple[float, float]:
    """(PSNR in dB, % of pixels with a channel off by more than LEVEL/255) of two 8-bit images."""
    d = ref.astype(np.float64) - out.astype(np.float64)
    mse = float((d ** 2).mean())
    psnr = 99.0 if mse == 0 else float(10 * np.log10(255.0 ** 2 / mse))
    return psnr, float((np.abs(d).max(axis=2) > LEVEL).mean() * 100)


class Int8:
    """The float32 forward graph quantized by ONNX Runtime's static QDQ quantizer, run by OpenVINO."""

    def __init__(self, net: torch.nn.Module, calibration: list[Path], folder: Path) -> None:
        import onnx
        from onnxruntime.quantization import (
            CalibrationDataReader,
            CalibrationMethod,
            QuantFormat,
            QuantType,
            quantize_static,
        )
        from onnxruntime.quantization.shape_inference import quant_pre_process

        from nst.models.graphs import load_graph

        twin = OnnxNet(net, "onnxruntime")
        pre, out = folder / "pre.onnx", folder / "int8.onnx"
        quant_pre_process(str(twin.folder / "forward.onnx"), str(pre), skip_symbolic_shape=True)
        convs = [n.name for n in onnx.load(str(pre)).graph.node if n.op_type in ("Conv", "ConvTranspose")]
        feeds = iter([{"image": load_image(p, max_side=512).numpy()} for p in calibration])

        class Reader(CalibrationDataReader):
            def get_next(self):
                return next(feeds, None)

        quantize_static(str(pre), str(out), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                        nodes_to_exclude=[convs[0], convs[-1]],
                        op_types_to_quantize=["Conv", "ConvTranspose"],
                        calibrate_method=CalibrationMethod.Percentile,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)
        runtime = "openvino" if available("openvino") else "onnxruntime"
        self.run = load_graph(out, runtime, torch.get_num_threads())

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(self.run({"image": x.numpy()})[0]).clamp(0, 1)


def models() -> list[tuple[str, torch.nn.Module, dict, object]]:
    """(label, network, card, style) for each shipped model, and each style of a multi-style one."""
    out = []
    for name, path in sorted(shipped_models().items()):
        net, meta = load_any(str(path), "cpu")
        styles = style_names(net, meta) if getattr(net, "conditional", False) else [None]
        for i, style in enumerate(styles):
            out.append((name if style is None else f"{name}:{i}", net, meta, None if style is None else i))
    return out


def crop(ref: np.ndarray, out: np.ndarray, size: int = 256) -> Image.Image:
    """float32 | path | |difference| x 16, a ``size`` crop from the image's centre."""
    h, w = ref.shape[:2]
    top, left = (h - size) // 2, (w - size) // 2
    a, b = ref[top:top + size, left:left + size], out[top:top + size, left:left + size]
    diff = np.clip(np.abs(a.astype(np.int16) - b.astype(np.int16)) * 16, 0, 255).astype(np.uint8)
    return Image.fromarray(np.concatenate([a, b, diff], axis=1))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--photos", default=str(REPO.parent / "shared/data/photos/heldout"))
    ap.add_argument("--calibration", default=str(REPO.parent / "shared/data/photos/train"))
    ap.add_argument("--count", type=int, default=8)
    ap.add_argument("--sizes", default="512,1024")
    ap.add_argument("--paths", default="openvino,onnxruntime,bf16-mixed,int8")
    ap.add_argument("--json", default=None)
    ap.add_argument("--crops", default=None, help="folder for the side-by-side crops")
    args = ap.parse_args()
    torch.set_num_threads(max(1, torch.get_num_threads()))
    photos = list_images(args.photos)[:args.count]
    calibration = [p for p in list_images(args.calibration) if "train" in p.name][:16]
    sizes = [int(s) for s in args.sizes.split(",")]
    wanted = args.paths.split(",")
    missing = [p for p in wanted if p in ("openvino", "onnxruntime") and not available(p)]
    if "int8" in wanted and not (available("onnxruntime") and available("onnx")):
        missing.append("int8")
    paths = [p for p in wanted if p not in missing]
    started = time.time()
    record = {"date": datetime.datetime.now().isoformat(timespec="minutes"),
              "machine": describe(torch.device("cpu")),
              "cpu_kind": cpu_kind(), "cpu_flags": sorted(cpu_flags() & set(SPEED_FLAGS)),
              "busy_cores_before": busy_cores(), "python": platform.python_version(),
              "torch": torch.__version__,
              "photos": [p.name for p in photos], "sizes": sizes, "left_out": missing,
              "bound": {"psnr_min_db": PSNR_MIN, "share_max_pct": SHARE_MAX, "level": LEVEL}, "rows": []}
    per_path: dict[tuple[str, int], list[tuple[float, float]]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for label, net, meta, style in models():
            ref_run = Stylizer(net, meta, backend="torch", style=style, tile_size=None)
            runs = {}
            for path in paths:
                if path == "bf16-mixed":
                    runs[path] = Stylizer(net, meta, backend="torch", precision="bf16-mixed", style=style,
                                          tile_size=None)
                elif path == "int8":
                    folder = Path(tmp) / label.replace(":", "_")
                    folder.mkdir()
                    runs[path] = Int8(ref_run.net, calibration, folder)
                else:
                    runs[path] = Stylizer(net, meta, backend=path, style=style, tile_size=None)
            for size in sizes:
                for photo in photos:
                    x = load_image(photo, max_side=size)
                    ref = as_bytes(ref_run(x))
                    for path, run in runs.items():
                        out = as_bytes(run(x))
                        psnr, share = compare(ref, out)
                        per_path.setdefault((path, size), []).append((psnr, share))
                        record["rows"].append({"model": label, "photo": photo.name, "size": size,
                                               "path": path,
                                               "psnr_db": round(psnr, 2), "share_pct": round(share, 4)})
                        if args.crops and size == 1024 and photo == photos[0] and style in (None, 0):
                            folder = Path(args.crops)
                            folder.mkdir(parents=True, exist_ok=True)
                            crop(ref, out).save(folder / f"{label.split(':')[0]}_{path}.png")
                print(f"{label} {size}px done ({time.time() - started:.0f} s)", flush=True)
    summary = []
    for (path, size), values in per_path.items():
        worst_psnr, worst_share = float(min(v[0] for v in values)), float(max(v[1] for v in values))
        holds = bool(worst_psnr >= PSNR_MIN and worst_share <= SHARE_MAX)
        summary.append({"path": path, "size": size, "images": len(values),
                        "worst_psnr_db": round(worst_psnr, 2),
                        "mean_psnr_db": round(float(np.mean([v[0] for v in values])), 2),
                        "worst_share_pct": round(worst_share, 4), "holds": holds})
    record["summary"] = summary
    record["busy_cores_after"], record["seconds"] = busy_cores(), round(time.time() - started)
    print("| path | size | images | worst PSNR (dB) | mean PSNR (dB) | worst % > 8/255 | holds |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for s in summary:
        print(f"| {s['path']} | {s['size']} | {s['images']} | {s['worst_psnr_db']} | {s['mean_psnr_db']} | "
              f"{s['worst_share_pct']} | {'yes' if s['holds'] else 'no'} |")
    if missing:
        print(f"left out (not installed): {', '.join(missing)}")
    if args.json:
        Path(args.json).write_text(json.dumps(record, indent=1) + "\n")


if __name__ == "__main__":
    main()
