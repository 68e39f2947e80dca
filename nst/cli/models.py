"""``nst mode=models``: the models shipped with nst, one line each."""

from __future__ import annotations

from omegaconf import DictConfig

from nst.shipped import MODELS, describe, shipped_models


def run(cfg: DictConfig) -> list[dict]:
    rows = [describe(p) for p in shipped_models().values()]
    if not rows:
        print(f"no shipped models in {MODELS}")
        return rows
    width = max(len(r["name"]) for r in rows)
    print(f"{'name':<{width}}  {'KiB':>5}  {'steps':>6}  network                      style (trained on)")
    for r in rows:
        args = r["args"]
        net = (f"{r['network']} {args.get('channels')}ch x{args.get('num_residual')}, "
               f"{args.get('output', 'sigmoid')}")
        print(f"{r['name']:<{width}}  {r['kib']:>5}  {r['steps'] or '?':>6}  {net:<27}  {r['style']} "
              f"({r['data'] or '?'})")
    print("use one with: nst mode=stylize checkpoint=NAME input=photo.jpg   (model cards: docs/models.md)")
    return rows
