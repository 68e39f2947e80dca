"""How many steps and minutes norm-only fine-tuning needs to reach the loss of training from scratch.

Reads two training runs' ``csv/**/metrics.csv`` (``train/loss`` at each logged step) and their log
(``step N/M ...`` lines with timestamps): the from-scratch run's final loss is the mean of the
losses logged in its last ``--window`` steps; the fine-tuning run reaches it at the first step
where the mean over the ``--window`` steps up to it is as low. Both runs must use the same loss
and style. Steps are counted from 1.

    python scripts/bench/finetune_speed.py --scratch RUN_A --finetune RUN_B [--window 100]
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
    p.add_argument("--window", type=int, default=100, help="steps")
    args = p.parse_args(argv)
    a, b = losses(args.scratch), losses(args.finetune)
    w = args.window

    def mean_before(points: list[tuple[int, float]], step: int) -> float:
        """The mean loss logged in the ``w`` steps up to ``step`` (logged every few steps)."""
        window = [v for s, v in points if step - w < s <= step]
        return sum(window) / len(window)

    target = mean_before(a, a[-1][0])
    reached = next((s for s, _ in b if s >= b[0][0] + w - 1 and mean_before(b, s) <= target), None)
    report = {"scratch_steps": a[-1][0] + 1, "scratch_final_loss": target, "window_steps": w,
              "finetune_steps": b[-1][0] + 1, "finetune_final_loss": mean_before(b, b[-1][0]),
              "finetune_loss_at_start": mean_before(b, b[0][0] + w - 1),
              "finetune_reaches_at_step": None if reached is None else reached + 1}
    for name, run, log in (("scratch", args.scratch, args.scratch_log), ("finetune", args.finetune,
                                                                          args.finetune_log)):
        times = clock(log or run.with_suffix(".log"))
        report[f"{name}_minutes_per_1000_steps"] = None if not times else minutes_at(times, 1000)
    if reached is not None and report["finetune_minutes_per_1000_steps"]:
        report["finetune_minutes_to_reach"] = (reached + 1) / 1000 * report["finetune_minutes_per_1000_steps"]
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
