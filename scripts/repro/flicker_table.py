"""Flicker and style of several networks on pans of several photos, as ratios to the first network.

One pan of a single photo scores a network on one picture's content: two training runs that
differ only by their seed spread by more there than a setting moves them. This runs ``nst
mode=flicker`` on a pan of each photo (every model in one run per photo) and sums it up: for each
model, the geometric mean over the photos of its warping error and of its style and content terms
as ratios to the first model's, with the lowest and highest ratio. Writes ``results.json`` and
``results.md`` into ``--out``, and each photo's own ``nst mode=flicker`` folder under it.

    python scripts/repro/flicker_table.py --out DIR --photos ../shared/data/content \\
        plain.safetensors stable_a.safetensors stable_b.safetensors

The style and content terms are each model's own loss terms (nst mode=flicker) divided by that
model's style and content weights, so a network trained with another style weight is scored by
the same measure; rows compare only when the models share their content and style layers (and
VGG), and the script refuses models that do not. TV is a term of its own and may differ.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from nst.evaluation.compare import loss_settings  # noqa: E402
from nst.io.files import atomic_write_text, ensure_folder  # noqa: E402
from nst.io.image import list_images  # noqa: E402
from nst.models.modelfile import read_meta  # noqa: E402

# what must match for two models' unweighted style and content terms to be the same measure
YARDSTICK = ("arch", "weights", "content_layers", "style_layers", "normalize")


def yardstick(settings: dict) -> dict:
    return {k: settings.get(k) for k in YARDSTICK}


def unweighted(row: dict, settings: dict) -> dict:
    """A nst mode=flicker row with its style and content terms divided by the model's own weights."""
    row = dict(row)
    for term in ("style", "content"):
        if term in row:
            row[term] = row[term] / float(settings.get(f"{term}_weight", 1.0))
    return row


def summarize(models: list[str], per_photo: dict[str, list[dict]]) -> list[dict]:
    """Per model: geometric means (over photos) of its terms' ratios to the first model's."""
    rows = []
    for i, model in enumerate(models):
        row = {"model": model}
        for key in ("warping_error", "style", "content"):
            if any(key not in r[0] for r in per_photo.values()):
                continue  # a model without loss settings: flicker only
            ratios = [rows_[i][key] / rows_[0][key] for rows_ in per_photo.values()]
            row[key] = {"geomean": statistics.geometric_mean(ratios), "min": min(ratios), "max": max(ratios)}
        rows.append(row)
    return rows


def markdown(rows: list[dict], photos: list[str], args) -> str:
    lines = [f"# Flicker on pans of {len(photos)} photos, as ratios to {Path(rows[0]['model']).name}", "",
             f"{args.frames} frames each, {args.step} px/frame, {args.width}x{args.height}; style and "
             f"content every {args.loss_every} frames. Geometric mean over the photos (lowest-highest).", "",
             "| model | warping error | style | content |", "| --- | --- | --- | --- |"]
    for row in rows:
        cells = [f"{row[k]['geomean']:.3f} ({row[k]['min']:.3f}-{row[k]['max']:.3f})" if k in row else "-"
                 for k in ("warping_error", "style", "content")]
        lines.append(f"| {row['model']} | " + " | ".join(cells) + " |")
    lines += ["", "Photos: " + ", ".join(Path(p).name for p in photos), ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("models", nargs="+", help="the first is the reference (ratio 1)")
    p.add_argument("--photos", required=True, help="a folder of photos, or one photo")
    p.add_argument("--out", required=True)
    p.add_argument("--frames", type=int, default=40)
    p.add_argument("--step", type=int, default=2)
    p.add_argument("--width", type=int, default=480)
    p.add_argument("--height", type=int, default=320)
    p.add_argument("--loss-every", type=int, default=2)
    p.add_argument("--threads", default="2")
    p.add_argument("--limit", type=int, default=None, help="the first N photos of the folder (sorted)")
    args = p.parse_args(argv)
    models = [str(Path(m).resolve()) for m in args.models]
    # each model's loss, read once: the yardstick check, and the weights divided out of every row
    settings = [loss_settings(read_meta(m)) or {} for m in models]
    for m, own in zip(models[1:], settings[1:]):
        if yardstick(own) != yardstick(settings[0]):
            print(f"{m}: its content or style loss differs from {models[0]}'s, so its terms are not "
                  "the same measure", file=sys.stderr)
            return 2
    source = Path(args.photos)
    photos = [str(x) for x in (list_images(source) if source.is_dir() else [source])][:args.limit]
    need = (args.width + (args.frames - 1) * args.step, args.height)
    out = ensure_folder(Path(args.out))
    per_photo: dict[str, list[dict]] = {}
    for photo in photos:
        folder = out / Path(photo).stem
        cmd = [sys.executable, "-m", "nst", "mode=flicker", f"checkpoint={models[0]}",
               f"baselines=[{','.join(models[1:])}]", f"input={photo}", f"frames={args.frames}",
               f"step={args.step}", f"width={args.width}", f"height={args.height}",
               f"loss_every={args.loss_every}", f"threads={args.threads}", f"output={folder}"]
        done = subprocess.run(cmd, capture_output=True, text=True)
        if done.returncode == 2 and "needs a photo of at least" in done.stderr + done.stdout:
            print(f"{photo}: smaller than a pan needs ({need[0]}x{need[1]} px): left out", file=sys.stderr)
            continue
        if done.returncode != 0:
            print(f"{photo}: nst mode=flicker failed (exit {done.returncode}):\n{done.stderr[-2000:]}",
                  file=sys.stderr)
            return done.returncode
        rows_ = json.loads((folder / "results.json").read_text())["rows"]
        per_photo[photo] = [unweighted(r, own) for r, own in zip(rows_, settings, strict=True)]
        print(f"{Path(photo).name}: " + ", ".join(
            f"{r['warping_error'] / per_photo[photo][0]['warping_error']:.3f}/"
            f"{r.get('style', 1) / per_photo[photo][0].get('style', 1):.3f}" for r in per_photo[photo][1:]),
            flush=True)
    if not per_photo:
        print(f"{args.photos}: no photo large enough for a pan of {need[0]}x{need[1]} px", file=sys.stderr)
        return 2
    rows = summarize(models, per_photo)
    atomic_write_text(out / "results.json", json.dumps(
        {"photos": list(per_photo), "frames": args.frames, "step": args.step, "width": args.width,
         "height": args.height, "loss_every": args.loss_every, "rows": rows,
         "per_photo": per_photo}, indent=1))
    text = markdown(rows, list(per_photo), args)
    atomic_write_text(out / "results.md", text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
