"""The command line: ``nst [mode=MODE] [key=value ...]`` (Hydra).

This package is the only place that imports Hydra. ``main`` composes the config, and each mode's
module (``nst/cli/<mode>.py``) turns it into calls of plain library functions.
"""

from __future__ import annotations

import importlib
import logging
import sys
from pathlib import Path

import hydra
from hydra.errors import InstantiationException
from omegaconf import DictConfig, ListConfig, OmegaConf

from nst.assets import asset
from nst.errors import NSTError

log = logging.getLogger("nst")


class _NoAdverts(logging.Filter):
    """Lightning logs an advertisement for a cloud logger on every fit; nothing a user can act on."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "litlogger" not in record.getMessage()


logging.getLogger("pytorch_lightning.utilities.rank_zero").addFilter(_NoAdverts())

MODES = ("train", "gatys", "stylize", "upscale", "evaluate", "export", "compare", "flicker", "serve",
         "weights", "models")
# What to lower when CUDA runs out of memory, per mode.
OOM_HINTS = {
    "train": "lower data.batch_size= or data.crop_size=, or model=transformer_small",
    "gatys": "lower size= (or style_size=)",
    "stylize": "lower tile_size= (e.g. tile_size=512) or batch_size=1, or stylize at a smaller size=",
    "compare": "lower size=",
    "export": "export on the CPU with trainer=cpu",
}


def config_dir() -> str:
    """The configs folder: the repository's in a checkout (editable install), else the packaged copy."""
    here = Path(__file__).resolve().parent
    for candidate in (here.parent.parent / "configs", here.parent / "configs"):
        if (candidate / "config.yaml").exists():
            return str(candidate)
    raise RuntimeError(f"nst: no configs folder found near {here}")


def count(value=None) -> int:
    """``${count:${styles}}``: the number of items of a list, 1 for one item or none (the network
    trains as many styles as ``styles=[...]`` names)."""
    if isinstance(value, (list, tuple, ListConfig)):
        return max(1, len(value))
    return 1


if not OmegaConf.has_resolver("count"):
    OmegaConf.register_new_resolver("count", count)
if not OmegaConf.has_resolver("asset"):
    OmegaConf.register_new_resolver("asset", asset)


def run(cfg: DictConfig) -> object:
    """Dispatch on ``cfg.mode`` to ``nst.cli.<mode>.run(cfg)``."""
    from nst.cli.renamed import migrate

    mode = migrate(cfg).get("mode")
    if mode not in MODES:
        raise NSTError(f"mode={mode!r}: unknown mode (choose from {', '.join(MODES)})")
    try:
        module = importlib.import_module(f"nst.cli.{mode}")
    except ModuleNotFoundError as e:
        if e.name != f"nst.cli.{mode}":
            raise
        raise NSTError(f"mode={mode} is not built yet in this version of nst") from e
    try:
        return module.run(cfg)
    except InstantiationException as e:
        # Hydra wraps what a _target_ raises (e.g. VGGFeatures on a bad vgg.weights file): unwrap
        # the user's mistake so that it stays one line, not a traceback.
        if isinstance(e.__cause__, NSTError):
            raise e.__cause__ from None
        raise
    except Exception as e:  # CUDA out of memory is a setting to change, not a crash: say which
        torch = sys.modules.get("torch")
        if torch is None or not isinstance(e, torch.cuda.OutOfMemoryError):
            raise
        first = (str(e).strip().splitlines() or ["CUDA out of memory"])[0][:160]
        hint = OOM_HINTS.get(mode, "lower size=")
        raise NSTError(f"mode={mode}: out of GPU memory ({first}); {hint}") from None


@hydra.main(version_base="1.3", config_path=config_dir(), config_name="config")
def _hydra_main(cfg: DictConfig) -> object:
    try:
        return run(cfg)
    except NSTError as e:
        # One line and a non-zero exit: a user mistake is not a crash.
        print(f"nst: error: {e}", file=sys.stderr)
        sys.exit(2)


def main() -> None:
    """``nst``: check the overrides (one line for an unknown key or option), keep a run with an
    explicit ``output=`` out of ``outputs/DATE/TIME``, then hand over to Hydra."""
    from nst.cli.argv import check, help_text, is_checkable, run_folder
    from nst.cli.renamed import rewrite

    args = rewrite(sys.argv[1:])
    sys.argv = [sys.argv[0], *args]
    if {"--help", "-h"} & set(args) and is_checkable([a for a in args if a not in ("--help", "-h")]):
        try:
            print(help_text([a for a in args if not a.startswith("-")], config_dir()))
        except NSTError as e:
            print(f"nst: error: {e}", file=sys.stderr)
            sys.exit(2)
        return
    if is_checkable(args):
        overrides = [a for a in args if not a.startswith("-")]
        try:
            cfg = check(overrides, config_dir())
        except NSTError as e:
            print(f"nst: error: {e}", file=sys.stderr)
            sys.exit(2)
        if not {"-m", "--multirun"} & set(args):
            sys.argv = [sys.argv[0], *args, *run_folder(cfg, overrides)]
    _hydra_main()
