"""Config keys that changed name: the old spelling keeps working for one release, with a warning.

Two ways an old key arrives, both handled here:
- on the command line (``data.crop=256``): ``rewrite`` turns the override into the new key before
  the overrides are checked and composed;
- in a config file of the user's own (``data: {crop: 256}`` in an experiment): ``migrate`` moves the
  value to the new key of the composed config.
Keys that went away without a one-to-one successor are in ``GONE``: one line naming what replaced
them. The size vocabulary the renames serve is the table in docs/configuration.md.
"""

from __future__ import annotations

import sys

from omegaconf import DictConfig, OmegaConf, open_dict

# old key -> (new key, the modes it applies to: None for every mode)
ALIASES: dict[str, tuple[str, frozenset[str] | None]] = {
    "data.crop": ("data.crop_size", None),          # a square's side is <thing>_size, as tile_size
    "data.resize": ("data.short_side", None),       # the shorter side, not the max side `size` means
    "samples.max_side": ("samples.size", None),     # the max side is `size` everywhere
    "iterations": ("snapshots", frozenset({"compare"})),  # gatys' iterations is a count per level
}

# Keys that moved when each concept got one name, with no one-to-one successor: one line each.
GONE = {
    "optimizer": "the optimizer is model.optimizer now (mode=gatys/compare: model=gatys for L-BFGS, "
                 "model=gatys_adam for Adam)",
    "scheduler": "the learning-rate schedule is model.scheduler now",
    "lr": "the learning rate is model.optimizer.lr now",
    "history_size": "the L-BFGS memory is model.optimizer.history_size now",
    "line_search": "the L-BFGS line search is model.optimizer.line_search_fn now",
    "style_scale": "style_scale (relative) is style_size now: the style image's max side in px",
}

_warned: set[str] = set()


def _warn(old: str, new: str) -> None:
    if old not in _warned:  # once per key and process
        _warned.add(old)
        print(f"nst: warning: {old} is now {new} (the old name still works in this release)",
              file=sys.stderr)


def _applies(modes: frozenset[str] | None, mode: str | None) -> bool:
    return modes is None or mode in modes


def rewrite(overrides: list[str]) -> list[str]:
    """The command-line overrides with every old key spelled the new way (a warning for each)."""
    mode = next((o.split("=", 1)[1] for o in reversed(overrides) if o.startswith("mode=")), None)
    out = []
    for o in overrides:
        prefix = "+" if o.startswith("+") and not o.startswith("++") else ""
        key, sep, value = o[len(prefix):].partition("=")
        if sep and key in ALIASES and _applies(ALIASES[key][1], mode):
            new = ALIASES[key][0]
            _warn(key, new)
            o = f"{new}={value}"  # the new key exists in the composed config: no '+'
        out.append(o)
    return out


def migrate(cfg: DictConfig) -> DictConfig:
    """``cfg`` with the value of every old key a config file set moved to its new key (in place)."""
    mode = cfg.get("mode")
    for old, (new, modes) in ALIASES.items():
        if not _applies(modes, mode) or OmegaConf.select(cfg, old, default="<absent>") == "<absent>":
            continue
        _warn(old, new)
        parent, _, leaf = old.rpartition(".")
        node = OmegaConf.select(cfg, parent) if parent else cfg
        with open_dict(cfg):
            OmegaConf.update(cfg, new, node._get_node(leaf)._value(), merge=False, force_add=True)
            node.pop(leaf)
    return cfg
