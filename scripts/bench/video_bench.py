#!/usr/bin/env python
"""Video speed and memory: frames/s of `mode=stylize` on a 640x360 clip, and the peak memory of a
1080p clip at two lengths (bounded memory: the longer clip should not need more).

Each measurement runs in its own process (peak RSS is per process), on synthetic clips written
first (a pan of a photo, H.264). Run it on a quiet machine; it prints a JSON report.

    python scripts/bench/video_bench.py --model starry_night \\
        --photo ../shared/data/photos/heldout/kodim12.png [--frames 100] [--hd-frames 8,32 | --no-hd] \\
        [--precision bf16-mixed] [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))


def _child(model: str, clip: str, out: str, batch: int, precision: str, split: bool,
           backend: str = "auto") -> None:
    from nst.inference.batch import stylize_files
    from nst.inference.jobs import Job
    from nst.inference.stylize import Stylizer
    from nst.models.modelfile import load_any

    net, meta = load_any(model)
    stylizer = Stylizer(net, meta, precision=precision, backend=backend)
    start = time.perf_counter()
    summary = stylize_files(stylizer, [Job(Path(clip), Path(out))], overwrite=True, batch_size=batch,
                            log=lambda line: None)
    seconds = time.perf_counter() - start
    if summary.failed:
        raise SystemExit(summary.failed[0][1])
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    report = {"seconds": seconds, "peak_rss_mb": peak_mb, "backend": stylizer.backend}
    if split:  # the network alone: the same frames decoded into memory first, stylized in batches
        import torch

        from nst.io.video import iter_frames

        frames = torch.cat(list(iter_frames(clip)))
        start = time.perf_counter()
        for i in range(0, len(frames), batch):
            stylizer.stylize_tensor(frames[i: i + batch])
        report["stylize_seconds"] = time.perf_counter() - start
    print(json.dumps(report))


def _measure(model: str, clip: Path, out: Path, batch: int, threads: int | None, precision: str = "32",
             split: bool = False, backend: str = "auto") -> dict:
    env = dict(os.environ)
    if threads:
        env["OMP_NUM_THREADS"] = str(threads)
    cmd = [sys.executable, __file__, "--child", model, str(clip), str(out), str(batch), precision,
           "1" if split else "0", backend]
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    if argv is None and sys.argv[1:2] == ["--child"]:
        _child(sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5]), sys.argv[6], sys.argv[7] == "1",
               sys.argv[8])
        return 0
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="starry_night")
    p.add_argument("--photo", required=True)
    p.add_argument("--frames", type=int, default=100, help="frames of the 640x360 clip")
    p.add_argument("--hd-frames", default="8,32", help="lengths of the 1080p clips (peak memory)")
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--precision", default="32", help='"32" (the default) or "bf16-mixed" (opt-in)')
    p.add_argument("--backend", default="auto", help="auto | onnxruntime | openvino | torch (the Stylizer's)")
    p.add_argument("--hd", action=argparse.BooleanOptionalAction, default=True,
                   help="also the 1080p memory runs")
    p.add_argument("--out", default=None)
    args = p.parse_args(argv)

    import torch

    from nst.evaluation import flicker
    from nst.io.image import load_image, resize
    from nst.io.video import write_frames

    work = Path(args.out or tempfile.mkdtemp(prefix="nst-video-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    photo = load_image(args.photo)
    report: dict = {"model": args.model, "photo": args.photo, "torch": torch.__version__,
                    "cpu_count": os.cpu_count(), "threads": args.threads, "batch": args.batch}
    # 640x360: the photo scaled so that the pan has room (1 px per frame)
    wide = resize(photo, size=(max(360, photo.shape[-2]), 640 + args.frames))
    sd = work / "sd.mp4"
    write_frames(sd, flicker.pan(wide, args.frames, 1, 640, 360), 25)
    r = _measure(args.model, sd, work / "sd_out.mp4", args.batch, args.threads, args.precision, split=True,
                 backend=args.backend)
    report["precision"] = args.precision
    report["640x360"] = {"frames": args.frames, "seconds": r["seconds"],
                         "frames_per_s": args.frames / r["seconds"], "peak_rss_mb": r["peak_rss_mb"],
                         "backend": r["backend"],
                         "stylize_only_frames_per_s": args.frames / r["stylize_seconds"]}
    print(f"640x360: {args.frames} frames in {r['seconds']:.1f} s = {args.frames / r['seconds']:.2f} "
          f"frames/s (decode, stylize, encode; {r['backend']}, precision {args.precision}); the network "
          f"alone {args.frames / r['stylize_seconds']:.2f} frames/s", file=sys.stderr)
    if args.hd:
        hd = resize(photo, size=(1080 + 64, 1920 + 64))
        report["1920x1080"] = []
        for n in (int(v) for v in args.hd_frames.split(",")):
            clip = work / f"hd_{n}.mp4"
            write_frames(clip, flicker.zoom(hd, n, 1.002, 1920, 1080), 25)
            r = _measure(args.model, clip, work / f"hd_{n}_out.mp4", args.batch, args.threads, args.precision)
            report["1920x1080"].append({"frames": n, "seconds": r["seconds"],
                                        "frames_per_s": n / r["seconds"], "peak_rss_mb": r["peak_rss_mb"]})
            print(f"1920x1080: {n} frames in {r['seconds']:.1f} s, peak RSS {r['peak_rss_mb']:.0f} MB",
                  file=sys.stderr)
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
