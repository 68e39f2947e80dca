"""What a loss's optimum looks like: Gatys from noise to convergence over paintings, photos and
loss settings, as one picture and one table (docs/results/2026-12-06-paintings.md §2).

    python scripts/repro/loss_grid.py OUT --styles DIR/starry_night.jpg ... --photos P1.jpg P2.jpg \
        --sweep style_weight=0.3,1,3,10 [--sweep tv_weight=3,30 ...] [--init content]

Each cell is one run of nst's Gatys optimizer (L-BFGS, the best iterate kept), coarse to fine
(``--sides``, ``--iterations`` per side), under the base loss (``--loss``, a configs/loss file)
with one setting changed. Settings: any PerceptualLoss key (``style_weight``, ``tv_weight``,
``content_weight``), ``style_layers`` as a named weighting (:data:`LAYER_WEIGHTINGS`), or
``style_size`` (the painting's longer side in px at the result's size). Each run is saved as
OUT/runs/<key>.png with its terms in <key>.json, both written atomically: an interrupted grid
resumes where it stopped. OUT/grid.jpg (rows: photo x painting, columns: the settings, beside
the photo and the painting), OUT/results.json and OUT/results.md are written at the end.
"""

from __future__ import annotations

import argparse
import itertools
import json
import time
from pathlib import Path

import torch
import yaml

from nst.evaluation.compare import model_loss
from nst.gatys.multiscale import coarse_to_fine
from nst.hardware import describe
from nst.io.files import atomic_write_text
from nst.io.grid import grid
from nst.io.image import load_image, resize, save_image

# Per-layer style weights (relu1_2, relu2_2, relu3_3, relu4_3) by name: the johnson2016 loss's
# equal weights, and two shifts of the balance between fine texture and larger strokes.
LAYER_WEIGHTINGS = {
    "equal": {"relu1_2": 1.0, "relu2_2": 1.0, "relu3_3": 1.0, "relu4_3": 1.0},
    "deep": {"relu1_2": 0.25, "relu2_2": 0.5, "relu3_3": 1.0, "relu4_3": 2.0},
    "no_relu1_2": {"relu2_2": 1.0, "relu3_3": 1.0, "relu4_3": 1.0},
}


def parse_sweep(text: str) -> tuple[str, list]:
    key, _, values = text.partition("=")
    items = [v.strip() for v in values.split(",") if v.strip()]
    if not key or not items:
        raise SystemExit(f"--sweep {text!r}: expected KEY=V1,V2,...")
    if key == "style_layers":
        unknown = [v for v in items if v not in LAYER_WEIGHTINGS]
        if unknown:
            raise SystemExit(f"--sweep style_layers: unknown weighting {unknown}; "
                             f"choose {list(LAYER_WEIGHTINGS)}")
        return key, items
    return key, [float(v) for v in items]


def label(key: str, value) -> str:
    return f"{key}={value:g}" if isinstance(value, float) else f"{key}={value}"


def run_key(photo: Path, style: Path, key: str, value, init: str) -> str:
    text = f"{value:g}" if isinstance(value, float) else str(value)
    return f"{photo.stem}__{style.stem}__{key}_{text}__{init}"


def one_run(args, base: dict, photo: Path, style: Path, key: str, value) -> dict:
    spec = dict(base)
    style_size = args.style_size
    if key == "style_layers":
        spec["style_layers"] = LAYER_WEIGHTINGS[value]
    elif key == "style_size":
        style_size = int(value)
    else:
        spec[key] = value
    loss = model_loss(spec, weights=args.weights)
    content = load_image(photo, max_side=args.size)
    painting = load_image(style)
    size = max(content.shape[-2:])

    def set_style(level):  # the painting's scale follows the level's, as mode=gatys does
        side = max(16, round(style_size * max(level.shape[-2:]) / size))
        loss.set_style([resize(painting, max_side=side)], names=[str(style)])

    start = time.perf_counter()
    result = coarse_to_fine(content, loss, sides=args.sides, iterations=args.iterations, set_style=set_style,
                            init=args.init, seed=0, line_search=args.line_search)
    return {"image": result.image, "terms": result.losses, "seconds": time.perf_counter() - start,
            "loss_at_ends": [result.history[0]["loss"], result.losses["loss"]]}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out", type=Path)
    ap.add_argument("--styles", type=Path, nargs="+", required=True)
    ap.add_argument("--photos", type=Path, nargs="+", required=True)
    ap.add_argument("--sweep", action="append", required=True, help="KEY=V1,V2,... (repeatable)")
    ap.add_argument("--loss", type=Path, default=Path(__file__).parents[2] / "configs/loss/johnson2016.yaml")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="change the base loss (e.g. style_moments=centered), repeatable")
    ap.add_argument("--weights", default="hed")
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--style-size", type=int, default=256)
    ap.add_argument("--sides", type=int, nargs="+", default=[128, 256])
    ap.add_argument("--iterations", type=int, nargs="+", default=[200, 150])
    ap.add_argument("--line-search", default=None, help="strong_wolfe, or none (default)")
    ap.add_argument("--init", default="noise")
    ap.add_argument("--threads", type=int, default=None)
    args = ap.parse_args(argv)
    args.line_search = None if args.line_search in (None, "none") else args.line_search
    if args.threads:
        torch.set_num_threads(args.threads)
    base = yaml.safe_load(args.loss.read_text())
    base = {k: v for k, v in base.items() if not k.startswith("_")}
    base.update(arch="vgg16", weights=args.weights)
    for item in args.set:
        key, _, value = item.partition("=")
        base[key] = yaml.safe_load(value)
    sweeps = [parse_sweep(s) for s in args.sweep]
    runs_dir = args.out / "runs"
    runs_dir.mkdir(parents=True, exist_ok=True)
    results, rows, labels = [], [], []
    for photo, style in itertools.product(args.photos, args.styles):
        content = load_image(photo, max_side=args.size)
        row, names = [content, load_image(style, max_side=args.size)], ["photo", style.stem]
        for key, values in sweeps:
            for value in values:
                name = run_key(photo, style, key, value, args.init)
                png, meta = runs_dir / f"{name}.png", runs_dir / f"{name}.json"
                if not (png.is_file() and meta.is_file()):
                    done = one_run(args, base, photo, style, key, value)
                    save_image(done["image"], png)
                    record = {k: v for k, v in done.items() if k != "image"}
                    atomic_write_text(meta, json.dumps(record, indent=1))
                    terms = done["terms"]
                    print(f"{name}: loss {terms['loss']:.4f} (content {terms['content']:.3f}, "
                          f"style {terms['style']:.3f}, tv {terms['tv']:.3f}) in {done['seconds']:.0f} s",
                          flush=True)
                record = json.loads(meta.read_text())
                results.append({"photo": photo.name, "style": style.name, "key": key, "value": value,
                                **record})
                row.append(load_image(png))
                names.append(label(key, value))
        rows.append(row)
        labels.append(names)
    save_image(grid(rows, 192, labels=labels), args.out / "grid.jpg", quality=88)
    report = {"hardware": describe(torch.device("cpu")), "threads": torch.get_num_threads(),
              "torch": torch.__version__, "base_loss": str(args.loss), "size": args.size,
              "style_size": args.style_size, "sides": args.sides, "iterations": args.iterations,
              "line_search": args.line_search, "init": args.init, "runs": results}
    atomic_write_text(args.out / "results.json", json.dumps(report, indent=1) + "\n")
    atomic_write_text(args.out / "results.md", table(results))
    print(f"wrote {args.out / 'grid.jpg'}, {args.out / 'results.json'} and {args.out / 'results.md'}")


def table(results: list[dict]) -> str:
    """One Markdown row per run: the final weighted terms (each under its own run's weights)."""
    lines = ["| photo | painting | setting | loss | content | style | TV | seconds |", "|" + " --- |" * 8]
    for r in results:
        t = r["terms"]
        lines.append(f"| {Path(r['photo']).stem} | {Path(r['style']).stem} | {label(r['key'], r['value'])} | "
                     f"{t['loss']:.3f} | {t['content']:.3f} | {t['style']:.3f} | {t['tv']:.3f} | "
                     f"{r['seconds']:.0f} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
