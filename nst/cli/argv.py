"""The command line's overrides, checked before Hydra sees them, and the run folder they imply.

Hydra's own answer to a misspelled key is six lines advising ``+strenght=``, which would add a key
nothing reads. Here every ``key=value`` must name a key of the composed config and every
``group=option`` an existing option, else one line: ``unknown key 'strenght' (did you mean
'strength'?)``. ``+key=`` (add on purpose), ``~key`` and ``hydra.*`` pass through to Hydra.
"""

from __future__ import annotations

import difflib
import tempfile
from pathlib import Path

from omegaconf import DictConfig, ListConfig, OmegaConf

from nst.cli.renamed import GONE
from nst.errors import NSTError

# Hydra flags that take the next word as their argument, or that print and exit: the words after
# them are not overrides, so nothing is checked.
_FLAGS_WITH_ARGUMENT = {"--cfg", "-c", "--package", "-p", "--info", "-i", "--config-path", "-cp",
                        "--config-name", "-cn", "--config-dir", "-cd", "--experimental-rerun",
                        "--shell-completion", "-sc", "--help", "-h", "--hydra-help", "--version"}
_MISSING = object()

def groups(config_dir: str | Path) -> dict[str, list[str]]:
    """Config group -> its options (the yaml files of each folder under configs/, hydra/ aside)."""
    found = {}
    for folder in sorted(Path(config_dir).iterdir()):
        if folder.is_dir() and folder.name != "hydra":
            found[folder.name] = sorted(p.stem for p in folder.glob("*.yaml"))
    return found


def leaf_keys(cfg: DictConfig, prefix: str = "") -> list[str]:
    """Every key path of ``cfg`` (``data.batch_size``), nodes and leaves, without resolving values."""
    keys = []
    for key in cfg.keys():
        path = f"{prefix}{key}"
        keys.append(path)
        node = cfg._get_node(key)
        if isinstance(node, DictConfig) and not node._is_missing() and not node._is_none():
            keys += leaf_keys(node, f"{path}.")
    return keys


def _closest(word: str, choices: list[str]) -> str | None:
    close = difflib.get_close_matches(word, choices, n=1, cutoff=0.6)
    if not close:  # a misspelled last part of a long path: data.batchsize -> data.batch_size
        tails = {c.rsplit(".", 1)[-1]: c for c in choices if c.startswith(word.rsplit(".", 1)[0] + ".")}
        hit = difflib.get_close_matches(word.rsplit(".", 1)[-1], list(tails), n=1, cutoff=0.6)
        close = [tails[hit[0]]] if hit else []
    return close[0] if close else None


def _exists(cfg: DictConfig, key: str) -> bool:
    node: object = cfg
    for part in key.split("."):
        if isinstance(node, DictConfig):
            if part not in node.keys():  # not `in node`: that is False for a mandatory ??? value
                return False
            node = node._get_node(part)
        elif isinstance(node, ListConfig):
            if not part.isdigit() or int(part) >= len(node):
                return False
            node = node._get_node(int(part))
        else:  # a key below a plain value
            return False
    return True


def is_checkable(args: list[str]) -> bool:
    """False when a Hydra flag makes the words something other than plain overrides."""
    return not any(a.split("=", 1)[0] in _FLAGS_WITH_ARGUMENT for a in args if a.startswith("-"))


def check(overrides: list[str], config_dir: str | Path) -> DictConfig:
    """The config composed from ``overrides`` (their first value where they sweep); NSTError in one
    line for an unknown group option or key, or an override Hydra cannot parse."""
    from hydra import compose, initialize_config_dir
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.core.override_parser.types import OverrideType
    from hydra.errors import HydraException

    try:
        parsed = OverridesParser.create().parse_overrides(overrides)
    except HydraException as e:
        raise NSTError(f"cannot read the arguments: {str(e).strip().splitlines()[0]}") from None
    options = groups(config_dir)
    first: list[str] = []  # what is composed: group choices, with a sweep's first value
    keys = []
    for o in parsed:
        name = o.key_or_group
        if name.startswith("hydra") or o.type is not OverrideType.CHANGE or o.package:
            continue
        if name in options:
            values = list(o.sweep_string_iterator()) if o.is_sweep_override() else [o.value()]
            for value in values:
                if value is not None and str(value) not in options[name]:
                    close = _closest(str(value), options[name])
                    hint = f"did you mean {close!r}? " if close else ""
                    raise NSTError(f"unknown {name} {str(value)!r} "
                                   f"({hint}choose from {', '.join(options[name])})")
            first.append(f"{name}={values[0] if values[0] is not None else 'null'}")
        else:
            keys.append(name)
    try:
        with initialize_config_dir(config_dir=str(config_dir), version_base="1.3"):
            cfg = compose(config_name="config", overrides=first)
    except HydraException as e:
        raise NSTError(str(e).strip().splitlines()[0]) from None
    known = leaf_keys(cfg)
    for key in keys:
        if not _exists(cfg, key) and key.split(".", 1)[0] in GONE:
            raise NSTError(f"unknown key {key!r} ({GONE[key.split('.', 1)[0]]})")
        if not _exists(cfg, key):
            close = _closest(key, known)
            elsewhere = [m for m in options.get("mode", [])
                         if m != cfg.get("mode") and _in_mode(config_dir, m, key)]
            # a key that another mode has exactly says so, before any near miss of this mode's keys
            hint = (f"it is a key of mode={elsewhere[0]}, not of mode={cfg.get('mode')}" if elsewhere else
                    f"did you mean {close!r}?" if close else "")
            raise NSTError(f"unknown key {key!r}" + (f" ({hint})" if hint else ""))
    return cfg


def _in_mode(config_dir: str | Path, mode: str, key: str) -> bool:
    """Whether configs/mode/<mode>.yaml sets ``key`` (read as plain YAML, nothing composed)."""
    try:
        return _exists(OmegaConf.load(Path(config_dir) / "mode" / f"{mode}.yaml"), key)
    except Exception:  # a mode file that does not parse alone is not a hint worth a crash
        return False


def _quote(value: str) -> str:
    """``value`` as one Hydra override value (quoted: paths may hold '=', ',', '*' or spaces)."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


# Modes that write no file: their runs never need a run folder.
_WRITE_NOTHING = ("models", "serve")


def run_folder(cfg: DictConfig, overrides: list[str]) -> list[str]:
    """Hydra overrides that keep a run out of ``outputs/DATE/TIME`` when it says where its files go.

    - ``mode=train output=DIR``: Hydra's run folder *is* DIR, so the composed config (``.hydra/``)
      and the log file sit beside the checkpoints, samples and CSV/wandb logs.
    - any other mode with ``output=``, and modes that write nothing (``models``): nothing of
      Hydra's is written (no ``.hydra/``, logs to stderr only) and its run folder is the system's
      temporary folder, which exists already, so no folder is made anywhere.
    Nothing is added when the user chose ``hydra.run.dir`` or ``hydra.sweep.dir``.
    """
    if any(o.lstrip("+").startswith(("hydra.run.dir", "hydra.sweep.dir")) for o in overrides):
        return []
    output = None
    for o in overrides:
        if o.startswith("output="):
            output = o.split("=", 1)[1].strip().strip("'\"")
    if output == "null":
        output = None
    mode = cfg.get("mode")
    if mode == "train":
        return [f"hydra.run.dir={_quote(output)}"] if output else []
    if output or mode in _WRITE_NOTHING:
        return [f"hydra.run.dir={_quote(tempfile.gettempdir())}", "hydra.output_subdir=null",
                "hydra/job_logging=console"]
    return []


def help_text(overrides: list[str], config_dir: str | Path) -> str:
    """What ``nst [overrides] --help`` prints: the help template of configs/config.yaml
    (``hydra.help``) with the config groups and the config composed from ``overrides``. Hydra's own
    --help composes every group's options first, which doubled the time of the call."""
    import string

    from omegaconf import OmegaConf

    cfg = check(overrides, config_dir)
    template = OmegaConf.load(Path(config_dir) / "config.yaml").hydra.help.template  # header, footer resolved
    listed = "\n".join(f"{name}: {', '.join(options)}" for name, options in groups(config_dir).items())
    return string.Template(template).safe_substitute(APP_CONFIG_GROUPS=listed + "\n",
                                                     CONFIG=OmegaConf.to_yaml(cfg))

