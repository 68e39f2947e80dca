"""Per-layer style terms of some pictures of one photo, raw Gram against mean and covariance.

    python scripts/repro/style_terms.py --photo P.jpg --style S.jpg --image gatys=G.png --image net=MODEL \
        [--style-weight 3] [--out sbs.png]

An ``--image`` is a picture file or a model (file or shipped name), which is then run on the
photo. Each is scored by configs/loss/johnson2016.yaml (``--style-weight`` changed) with
``style_moments`` raw and centered, and its
RGB spread is printed beside the painting's: a one-hue picture shows up as a small spread and a
centered relu1_2 term far above Gatys', while its raw term stays near Gatys' (docs/training.md).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import nst  # noqa: E402
from nst.evaluation.compare import model_loss  # noqa: E402
from nst.io.image import load_image, save_image  # noqa: E402

LOSS = Path(__file__).resolve().parents[2] / "configs/loss/johnson2016.yaml"  # the layers, weights, TV


def picture(spec: str, photo: torch.Tensor) -> torch.Tensor:
    path = Path(spec)
    if path.suffix.lower() in (".png", ".jpg", ".jpeg"):
        return load_image(path)
    return nst.load_model(spec)(photo)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--photo", required=True)
    ap.add_argument("--style", required=True)
    ap.add_argument("--image", action="append", required=True, help="NAME=PICTURE_OR_MODEL")
    ap.add_argument("--style-weight", type=float, default=3.0)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--weights", default="hed")
    ap.add_argument("--out", type=Path)
    args = ap.parse_args(argv)
    photo = load_image(args.photo, max_side=args.size)
    style = load_image(args.style, max_side=args.size)
    images = {}
    for item in args.image:
        name, _, spec = item.partition("=")
        images[name] = picture(spec, photo)
    base = {k: v for k, v in yaml.safe_load(LOSS.read_text()).items() if not k.startswith("_")}
    layers = list(base["style_layers"])
    print(f"| picture | moments | total | content | style | {' | '.join(layers)} | RGB std |")
    print("|" + " --- |" * (6 + len(layers)))
    for moments in ("raw", "centered"):
        spec = {**base, "arch": "vgg16", "weights": args.weights, "style_weight": args.style_weight,
                "style_moments": moments}
        loss = model_loss(spec)
        loss.set_style([style])
        with torch.no_grad():
            for name, img in images.items():
                out = loss(img, photo)
                terms = " | ".join(f"{float(out[f'style/{k}']):.3f}" for k in layers)
                spread = "/".join(f"{float(s):.2f}" for s in img.std((0, 2, 3)))
                print(f"| {name} | {moments} | {float(out['loss']):.3f} | {float(out['content']):.3f} | "
                      f"{float(out['style']):.3f} | {terms} | {spread} |")
    print(f"painting RGB std {'/'.join(f'{float(s):.2f}' for s in style.std((0, 2, 3)))}")
    if args.out:
        save_image(torch.cat([photo, *images.values()], -1), args.out)


if __name__ == "__main__":
    main()
