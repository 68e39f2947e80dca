"""Quality against training time: "matches Gatys at N" for every kept checkpoint of some runs.

    python scripts/repro/quality_curve.py OUT RUN_DIR [RUN_DIR ...] --input 'PHOTOS/*' [--limit 4] \
        [--iterations 25 50 100 200] [key=value ...]   (more nst overrides)

Each RUN_DIR is a training run with ``ckpt_keep_all=true`` (its ``checkpoints/step_*.ckpt``).
Every checkpoint is scored by ``nst mode=compare init=noise`` on the same photos; the Gatys runs
are cached by photo and loss ($NST_CACHE/gatys), so after the first checkpoint only the network
runs. The training time is the ``train_seconds`` each checkpoint carries (resumes included).
Writes OUT/curve.json and OUT/curve.md (one row per checkpoint) and keeps each compare folder
(OUT/<run>/step_NNNNNN/) with its pictures. A checkpoint already scored is not scored again.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from nst.io.files import atomic_write_text  # noqa: E402


def score(ckpt: Path, out: Path, args: argparse.Namespace) -> dict:
    report = out / "results.json"
    if not report.is_file():
        cmd = [sys.executable, "-m", "nst", "mode=compare", f"checkpoint={ckpt}", f"input={args.input}",
               f"output={out}", "init=noise", f"snapshots=[{','.join(map(str, args.iterations))}]",
               "logger=none", *([f"limit={args.limit}"] if args.limit else []), *args.overrides]
        subprocess.run(cmd, check=True, cwd=ROOT)
    return json.loads(report.read_text())["average"]


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out", type=Path)
    ap.add_argument("runs", type=Path, nargs="+")
    ap.add_argument("--input", required=True)
    ap.add_argument("--limit", type=int, default=None)
    ap.add_argument("--iterations", type=int, nargs="+", default=[25, 50, 100, 200])
    argv = sys.argv[1:] if argv is None else list(argv)
    # key=value words are nst overrides wherever they stand (--iterations would take them as counts)
    overrides = [a for a in argv if "=" in a and not a.startswith("-")]
    args, extra = ap.parse_known_args([a for a in argv if a not in overrides])
    args.overrides = overrides + [o for o in extra if o != "--"]
    rows = []
    for run in args.runs:
        for ckpt in sorted((run / "checkpoints").glob("step_*.ckpt")):
            saved = torch.load(ckpt, map_location="cpu", weights_only=True)
            avg = score(ckpt, args.out / run.name / ckpt.stem, args)
            rows.append({"run": run.name, "step": int(saved["global_step"]),
                         "minutes": float(saved.get("train_seconds", float("nan"))) / 60,
                         "matches": avg.get("match_mean_loss"), "median": avg.get("match_median"),
                         "loss": avg["network"]["loss"], "content": avg["network"]["content"],
                         "style": avg["network"]["style"]})
            print(rows[-1], flush=True)
    atomic_write_text(args.out / "curve.json", json.dumps(rows, indent=1) + "\n")
    last = max(args.iterations)

    def n(v):
        return f"> {last}" if v is None else f"{v:.0f}"

    lines = ["| run | step | training minutes | matches Gatys at | median | loss | content | style |",
             "|" + " --- |" * 8]
    lines += [f"| {r['run']} | {r['step']} | {r['minutes']:.1f} | {n(r['matches'])} | {n(r['median'])} | "
              f"{r['loss']:.3f} | {r['content']:.3f} | {r['style']:.3f} |" for r in rows]
    atomic_write_text(args.out / "curve.md", "\n".join(lines) + "\n")
    print(f"wrote {args.out / 'curve.md'}")


if __name__ == "__main__":
    main()
