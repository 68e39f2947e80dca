"""``nst mode=models``: the models shipped with nst, one line each; ``checkpoint=M``: one model's
card (its network, its styles with their indices, what ``strength=`` does to it)."""

from __future__ import annotations

from omegaconf import DictConfig

from nst.models.card import describe
from nst.models.shipped import MODELS, resolve, shipped_models


def _network(r: dict) -> str:
    args = r["args"]
    if r["network"] != "transformer":
        return f"{r['network']} " + " ".join(f"{k}={v}" for k, v in args.items())
    return (f"{r['network']} {args.get('channels')}ch x{args.get('num_residual')}, "
            f"{args.get('output', 'sigmoid')}")


def one(spec: str) -> dict:
    from nst.models.modelfile import load_any

    path = resolve(spec)
    # a Lightning checkpoint's card is in its hyper_parameters: loaded, not read from a header
    r = describe(path) if path.suffix.lower() == ".safetensors" else describe(path, load_any(path)[1])
    print(f"{r['name']}: {_network(r)}, {r['steps'] or '?'} steps on {r['data'] or '?'}")
    if r["network"] == "transformer":
        for i, name in enumerate(r["styles"] or ["?"]):
            print(f"  style {i}: {name}")
        print("  strength=: " + ("the network's own input (trained for it)" if r["strength"] == "input"
                                 else "a blend of the result toward the photo"))
    return r


def run(cfg: DictConfig) -> list[dict]:
    if cfg.get("checkpoint"):
        return [one(str(cfg.checkpoint))]
    rows = [describe(p) for p in shipped_models().values()]
    if not rows:
        print(f"no shipped models in {MODELS}")
        return rows
    width = max(len(r["name"]) for r in rows)
    print(f"{'name':<{width}}  {'KiB':>5}  {'steps':>6}  network                      style (trained on)")
    for r in rows:
        print(f"{r['name']:<{width}}  {r['kib']:>5}  {r['steps'] or '?':>6}  {_network(r):<27}  {r['style']} "
              f"({r['data'] or '?'})")
    print("use one with: nst mode=stylize checkpoint=NAME input=photo.jpg   (model cards: docs/models.md;"
          " nst mode=models checkpoint=NAME: one model's styles)")
    return rows



