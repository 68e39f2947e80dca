"""``nst mode=weights``: fetch (and convert) the loss network's weights once, print where they are."""

from __future__ import annotations

from omegaconf import DictConfig

from nst.perceptual.hed import fetch_hed
from nst.perceptual.sources import load_vgg_state


def run(cfg: DictConfig) -> str:
    source = cfg.vgg.weights
    if source == "hed" or cfg.get("weights_file"):
        path = str(fetch_hed(cfg.get("weights_file")))
        print(f"hed VGG16 weights ready: {path}")
        return path
    _, info = load_vgg_state(cfg.vgg.arch, source, seed=cfg.seed)
    print(f"{cfg.vgg.arch} weights ready: {info.name} ({info.description})")
    return info.name
