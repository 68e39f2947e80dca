#!/usr/bin/env python3
"""Wall time of the calls a user feels: ``nst --help`` and ``nst mode=stylize`` of one photo with a
shipped model, each a whole process, as a shell runs them.

    .venv/bin/python scripts/bench/startup.py --photo ../shared/data/photos/heldout/kodim05.png \
        [--model starry_night] [--repeats 5] [--json startup.json]

The first stylize call (which exports the model's graph into a fresh cache) is reported apart; the
figure the target is about is the median of the calls after it. ``python -X importtime`` of one
later call gives the modules that cost most to import, and whether torch was among them.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from nst.hardware import SPEED_FLAGS, busy_cores, cpu_flags, cpu_kind  # noqa: E402


def wall(args: list[str], env: dict) -> float:
    start = time.perf_counter()
    res = subprocess.run(args, env=env, capture_output=True, text=True, cwd=REPO)
    seconds = time.perf_counter() - start
    if res.returncode != 0:
        raise SystemExit(f"{' '.join(args)} failed:\n{res.stderr[-2000:]}")
    return seconds


def imports(args: list[str], env: dict, top: int = 8) -> list[tuple[str, float]]:
    """The ``top`` costliest top-level imports (cumulative seconds) of one run under -X importtime."""
    res = subprocess.run([sys.executable, "-X", "importtime", *args], env=env, capture_output=True, text=True,
                         cwd=REPO)
    found = []
    for line in res.stderr.splitlines():
        m = re.match(r"import time:\s+\d+ \|\s+(\d+) \| (\S.*)$", line)
        if m and not m.group(2).startswith(" "):
            found.append((m.group(2).strip(), int(m.group(1)) / 1e6))
    return sorted(found, key=lambda t: -t[1])[:top]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--photo", required=True)
    ap.add_argument("--model", default="starry_night")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    nst = [sys.executable, "-m", "nst"]
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "NST_CACHE": str(Path(tmp) / "cache")}
        stylize = [*nst, "mode=stylize", f"checkpoint={args.model}", f"input={Path(args.photo).resolve()}",
                   f"output={Path(tmp) / 'out.png'}", "overwrite=true", f"hydra.run.dir={tmp}/run"]
        report = {"date": time.strftime("%Y-%m-%d %H:%M %Z"), "cpu_kind": cpu_kind(),
                  "cpu_flags": sorted(cpu_flags() & set(SPEED_FLAGS)), "busy_cores_before": busy_cores(),
                  "photo": Path(args.photo).name, "model": args.model}
        report["stylize_first_s"] = wall(stylize, env)
        report["stylize_s"] = [wall(stylize, env) for _ in range(args.repeats)]
        report["help_s"] = [wall([*nst, "--help"], env) for _ in range(args.repeats)]
        report["stylize_imports"] = imports(stylize[1:], env)
        report["busy_cores_after"] = busy_cores()
    print(f"stylize, first call (exports the graph): {report['stylize_first_s']:.2f} s")
    print(f"stylize, later calls: median {statistics.median(report['stylize_s']):.2f} s "
          f"({', '.join(f'{s:.2f}' for s in report['stylize_s'])})")
    print(f"nst --help: median {statistics.median(report['help_s']):.2f} s "
          f"({', '.join(f'{s:.2f}' for s in report['help_s'])})")
    print("costliest imports of a later stylize call: "
          + ", ".join(f"{name} {s:.2f} s" for name, s in report["stylize_imports"]))
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1) + "\n")


if __name__ == "__main__":
    main()
