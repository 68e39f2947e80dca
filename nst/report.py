"""``results.md`` of ``nst mode=compare``: a table per photo and the average, then the headline."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from nst.compare import TERMS


def markdown(report: dict[str, Any]) -> str:
    """results.md: a table per photo and the average, then the headline."""
    its = report["settings"]["iterations"]
    head = ["| photo | method | loss | content | style | TV | seconds |", "|" + " --- |" * 7]

    def rows(name: str, entry: dict[str, Any]) -> list[str]:
        lines = [f"| {name} | Gatys {c} it | " + " | ".join(f"{entry['gatys'][str(c)][k]:.4g}" for k in TERMS)
                 + f" | {entry['gatys'][str(c)]['seconds']:.3g} |" for c in its]
        net = entry["network"]
        lines.append(f"| {name} | network | " + " | ".join(f"{net[k]:.4g}" for k in TERMS)
                     + f" | {net['seconds']:.3g} |")
        return lines

    body = [line for r in report["images"] for line in rows(Path(r["content"]).name, r)]
    body += rows("**average**", report["average"])
    s = report["settings"]
    avg = report["average"]
    net_s = max(avg["network"]["seconds"], 1e-12)
    if avg["match_iterations"] is not None:
        matched = (f"Gatys ({s['optimizer']}, init {s['init']}) reached the network's loss after "
                   f"{avg['match_iterations']:.0f} iterations on average (~{avg['match_seconds']:.3g} s, "
                   f"{avg['match_seconds'] / net_s:.0f}x the network's time)")
    else:
        matched = "Gatys did not reach the network's loss on every photo within the iterations run"
    speed = avg["gatys"][str(its[-1])]["seconds"] / net_s
    return "\n".join([
        f"# Network vs Gatys: {Path(report['model']).name}", "",
        (f"{len(report['images'])} photos at {s['size']} px on {report['hardware']} ({s['precision']}); "
        f"loss: {s['vgg']} ({s['weights']} weights), style {', '.join(Path(p).name for p in s['style'])}. "
        "Every result is scored by the same loss (weighted terms); network seconds: one forward pass with "
        "transfers (median), Gatys seconds: time to reach that count."), "",
        *head, *body, "",
        f"{matched}; {its[-1]} Gatys iterations took {speed:.0f}x the network's time.", ""])
