"""A picture of a multi-style model's styles on one photo, beside single-style models and mixes.

Rows: the multi-style model's styles (and the mixes asked for), then, when given, one single-style
model per style in the same order. Each row starts with the photo.

    python scripts/repro/style_grid.py --model multi.safetensors --photo nst/assets/samples/kodim12.jpg \\
        --single a.safetensors --single b.safetensors ... --mix 0.5,0,0,0.5 --out grid.jpg
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import nst  # noqa: E402
from nst.io.grid import grid  # noqa: E402
from nst.io.image import load_image, save_image  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", required=True)
    p.add_argument("--photo", required=True)
    p.add_argument("--single", action="append", default=[], help="a single-style model, in style order")
    p.add_argument("--mix", action="append", default=[], help="comma-separated weights over the styles")
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--out", required=True)
    args = p.parse_args(argv)
    model = nst.load_model(args.model, "cpu", tile_size=None)
    x = load_image(args.photo, max_side=args.size)
    names = model.styles
    rows, labels = [[x, *(model(x, style=k) for k in range(len(names)))]], [["photo", *names]]
    for mix in args.mix:
        weights = [float(w) for w in mix.split(",")]
        rows[0].append(model(x, style_mix=weights))
        labels[0].append("mix " + "/".join(f"{w:g}" for w in weights))
    if args.single:
        singles = [nst.load_model(m, "cpu", tile_size=None) for m in args.single]
        rows.append([x, *(s(x) for s in singles)])
        labels.append(["photo", *(f"single: {Path(m).stem}" for m in args.single)])
    save_image(grid(rows, args.size, labels=labels), args.out, quality=88)
    print(args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
