"""How many steps and minutes norm-only fine-tuning needs to reach the loss of training from scratch.

Reads two training runs' ``csv/**/metrics.csv`` (``train/loss`` each logged step) and their log
(``step N/M ...`` lines with timestamps): the from-scratch run's final loss is the mean of its last
``--window`` logged losses; the fine-tuning run reaches it at the first step where the mean of the
``--window`` losses up to it is as low. Both runs must use the same loss and style.

    python scripts/finetune_speed.py --scratch RUN_A --finetune RUN_B [--window 100]
"""

from __future__ import annotations

import argparse
import csv
import json
import re
from datetime import datetime
from pathlib import Path


def losses(run: Path) -> list[tuple[int, float]]:
    path = next(run.glob("csv/**/metrics.csv"))
    rows = csv.DictReader(path.open())
    return [(int(r["step"]), float(r["train/loss"])) for r in rows if r.get("train/loss")]


def clock(log: Path) -> list[tuple[int, datetime]]:
    """(step, time) of each progress line of a run's log."""
    found = []
    for line in log.read_text(errors="replace").splitlines():
        m = re.match(r"\[(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d),\d+\].*? step (\d+)/\d+ ", line)
        if m:
            found.append((int(m.group(2)), datetime.strptime(m.group(1), "%Y-%m-%d %H:%M:%S")))
    return found


def minutes_at(times: list[tuple[int, datetime]], step: int) -> float | None:
    """Minutes from the first progress line to the first one at or after ``step``, scaled back to
    the first line's step (the set-up before it is not training)."""
    if len(times) < 2:
        return None
    (s0, t0) = times[0]
    rate = (times[-1][1] - t0).total_seconds() / max(1, times[-1][0] - s0)  # seconds per step
    return step * rate / 60


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--scratch", type=Path, required=True)
    p.add_argument("--finetune", type=Path, required=True)
    p.add_argument("--scratch-log", type=Path, help="default: <scratch>.log")
    p.add_argument("--finetune-log", type=Path, help="default: <finetune>.log")
    p.add_argument("--window", type=int, default=100)
    args = p.parse_args(argv)
    a, b = losses(args.scratch), losses(args.finetune)
    w = args.window
    target = sum(v for _, v in a[-w:]) / len(a[-w:])
    reached = None
    for i in range(w - 1, len(b)):
        if sum(v for _, v in b[i - w + 1:i + 1]) / w <= target:
            reached = b[i][0]
            break
    report = {"scratch_steps": a[-1][0], "scratch_final_loss": target, "window": w,
              "finetune_steps": b[-1][0], "finetune_final_loss": sum(v for _, v in b[-w:]) / len(b[-w:]),
              "finetune_reaches_at_step": reached}
    for name, run, log in (("scratch", args.scratch, args.scratch_log), ("finetune", args.finetune,
                                                                          args.finetune_log)):
        times = clock(log or run.with_suffix(".log"))
        report[f"{name}_minutes_per_1000_steps"] = None if not times else minutes_at(times, 1000)
    if reached is not None and report["finetune_minutes_per_1000_steps"]:
        report["finetune_minutes_to_reach"] = reached / 1000 * report["finetune_minutes_per_1000_steps"]
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
