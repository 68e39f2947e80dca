"""The content and style terms of style networks at several strengths, and a strip of pictures.

For a strength-conditioned model (``experiment=quickstart_strength``) at each strength s, and for
models trained with a fixed style weight (``loss.style_weight=s``): the mean, over held-out
photos, of the unweighted content term and style term of one loss (the conditioned model's own,
style weight 1), so every row is scored by the same measure, and the PSNR of the output against
the photo (how nearly s = 0 gives the photo back). Writes ``results.json``,
``results.md`` and ``strip.jpg`` (the photo, then the conditioned network from s = 0 to 1).

    python scripts/repro/strength_table.py --model strength.safetensors --fixed 0.5=fixed_05.safetensors \\
        --fixed 1.0=fixed_10.safetensors --photos ../shared/data/photos/heldout --limit 4 --out DIR
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from nst.evaluation.compare import loss_settings, model_loss, resolve_styles, set_styles  # noqa: E402
from nst.inference.stylize import Stylizer  # noqa: E402
from nst.io.files import atomic_write_text, ensure_folder  # noqa: E402
from nst.io.grid import grid  # noqa: E402
from nst.io.image import list_images, load_image, save_image  # noqa: E402
from nst.models.modelfile import load_any  # noqa: E402


def terms(loss, image: torch.Tensor, content: torch.Tensor) -> dict[str, float]:
    """Unweighted content and style terms (the loss's layer weights, no overall weights)."""
    with torch.no_grad():
        out = loss(image, content)
    c = sum(w * float(out[f"content/{n}"]) for n, w in loss.content_layers.items())
    s = sum(w * float(out[f"style/{n}"]) for n, w in loss.style_layers.items())
    # how near the photo itself the output is (strength 0 should give it back): PSNR in dB
    mse = float(torch.mean((image.float().clamp(0, 1) - content.float()) ** 2))
    return {"content": c, "style": s, "psnr": 10 * math.log10(1 / max(mse, 1e-10))}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", required=True, help="the strength-conditioned model")
    p.add_argument("--fixed", action="append", default=[], help="S=MODEL: trained with style weight S")
    p.add_argument("--strengths", default="0,0.25,0.5,0.75,1")
    p.add_argument("--photos", required=True)
    p.add_argument("--limit", type=int, default=4)
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--out", required=True)
    args = p.parse_args(argv)
    torch.set_num_threads(max(1, torch.get_num_threads()))
    net, meta = load_any(args.model)
    settings = loss_settings(meta)
    loss = model_loss({**settings, "content_weight": 1.0, "style_weight": 1.0, "tv_weight": 0.0})
    set_styles(loss, resolve_styles(meta, args.model), None, meta.get("style_size"))
    conditioned = Stylizer(net, meta, backend="torch", tile_size=None)
    if not conditioned.strength_conditioned:
        raise SystemExit(f"{args.model}: not a strength-conditioned model")
    strengths = [float(s) for s in args.strengths.split(",")]
    fixed = {float(s): Stylizer(*load_any(m), backend="torch", tile_size=None)
             for s, m in (f.split("=", 1) for f in args.fixed)}
    photos = [load_image(q, max_side=args.size) for q in list_images(args.photos)[: args.limit]]
    rows, keys = [], ("content", "style", "psnr")
    for s in strengths:
        scored = [terms(loss, conditioned(x, strength=s), x) for x in photos]
        rows.append({"model": "conditioned", "strength": s,
                     **{k: sum(t[k] for t in scored) / len(scored) for k in keys}})
        if s in fixed:
            scored = [terms(loss, fixed[s](x), x) for x in photos]
            rows.append({"model": f"fixed style weight {s:g}", "strength": s,
                         **{k: sum(t[k] for t in scored) / len(scored) for k in keys}})
    out = ensure_folder(Path(args.out))
    report = {"model": args.model, "fixed": args.fixed, "photos": args.photos, "limit": args.limit,
              "size": args.size, "loss": {k: v for k, v in settings.items() if k not in ("arch", "weights")},
              "rows": rows}
    atomic_write_text(out / "results.json", json.dumps(report, indent=2) + "\n")
    lines = ["| model | s | content term | style term | PSNR vs the photo (dB) |",
             "| --- | --- | --- | --- | --- |"]
    lines += [f"| {r['model']} | {r['strength']:g} | {r['content']:.4f} | {r['style']:.4f} | "
              f"{r['psnr']:.2f} |" for r in rows]
    atomic_write_text(out / "results.md", "\n".join(lines) + "\n")
    x = photos[0]
    strip = grid([[x, *(conditioned(x, strength=s) for s in strengths)]], args.size,
                 labels=[["photo", *(f"s = {s:g}" for s in strengths)]])
    save_image(strip, out / "strip.jpg", quality=90)
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
