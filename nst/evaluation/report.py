"""``results.md`` of ``nst mode=compare``: a table per photo and the average, then the headline."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from nst.evaluation.compare import TERMS


def _iterations(match: float | None, last: int) -> str:
    """An interpolated iteration count, or "> last" where Gatys never got there."""
    return f"> {last}" if match is None else f"{match:.0f}"


def markdown(report: dict[str, Any]) -> str:
    """results.md: a table per photo and the average, then the headline."""
    its = report["settings"]["iterations"]
    head = ["| photo | method | loss | content | style | TV | seconds | matches Gatys at |",
            "|" + " --- |" * 8]

    def rows(name: str, entry: dict[str, Any]) -> list[str]:
        lines = [f"| {name} | Gatys {c} it | "
                 + " | ".join(f"{entry['gatys'][str(c)][k]:.4g}" for k in TERMS)
                 + f" | {entry['gatys'][str(c)]['seconds']:.3g} | |" for c in its]
        net = entry["network"]
        match = entry.get("match_mean_loss", entry.get("match_iterations"))
        lines.append(f"| {name} | network | " + " | ".join(f"{net[k]:.4g}" for k in TERMS)
                     + f" | {net['seconds']:.3g} | {_iterations(match, its[-1])} |")
        return lines

    body = [line for r in report["images"] for line in rows(Path(r["content"]).name, r)]
    body += rows("**average**", report["average"])
    s = report["settings"]
    avg = report["average"]
    net_s = max(avg["network"]["seconds"], 1e-12)
    last = its[-1]
    matched = (f"The network matches Gatys ({s['optimizer']}, init {s['init']}) at "
               f"**{_iterations(avg.get('match_mean_loss'), last)} iterations** (its mean loss on "
               f"Gatys' mean curve; median over photos {_iterations(avg.get('match_median'), last)})")
    if avg["match_iterations"] is not None:
        matched += (f"; Gatys needs ~{avg['match_seconds']:.3g} s for that on average, "
                    f"{avg['match_seconds'] / net_s:.0f}x the network's time")
    speed = avg["gatys"][str(its[-1])]["seconds"] / net_s
    return "\n".join([
        f"# Network vs Gatys: {Path(report['model']).name}", "",
        (f"{len(report['images'])} photos at {s['size']} px on {report['hardware']} ({s['precision']}); "
        f"loss: {s['vgg']} ({s['weights']} weights), style {', '.join(Path(p).name for p in s['style'])}. "
        "Every result is scored by the same loss (weighted terms); network seconds: one forward pass with "
        "transfers (median), Gatys seconds: time to reach that count."), "",
        *head, *body, "",
        f"{matched}; {its[-1]} Gatys iterations took {speed:.0f}x the network's time.", ""])
