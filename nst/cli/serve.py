"""``nst mode=serve``: the web page of nst.serve on ``host:port``, until Ctrl-C."""

from __future__ import annotations

import logging

from omegaconf import DictConfig

from nst.cli.build import set_threads
from nst.cli.values import as_list
from nst.errors import NSTError

log = logging.getLogger("nst")
INSTALL = "pip install 'nst[serve]' (fastapi, uvicorn, python-multipart)"


def settings(cfg: DictConfig):
    """The server's Settings from the config (checked: a bad value is one line before it starts)."""
    try:
        from nst.serve.app import Settings
    except ImportError as e:
        raise NSTError(f"mode=serve needs {e.name}: {INSTALL}") from None
    port = cfg.get("port")
    if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
        raise NSTError(f"port={port!r}: a whole number from 1 to 65535")
    gatys = cfg.get("gatys") or {}
    return Settings(host=str(cfg.host), port=port, models=cfg.get("models"),
                    allowed_hosts=tuple(str(h) for h in as_list(cfg.get("allowed_hosts"))),
                    max_upload_mb=float(cfg.max_upload_mb), max_pixels=int(cfg.max_pixels),
                    workers=int(cfg.workers), queue=int(cfg.queue), keep_models=int(cfg.keep_models),
                    gatys_queue=int(gatys.get("queue", 2)),
                    gatys_max_iterations=int(gatys.get("max_iterations", 500)),
                    gatys_max_side=int(gatys.get("max_size", 512)),
                    vgg_weights=cfg.vgg.get("weights") if cfg.get("vgg") else None)


def run(cfg: DictConfig) -> None:
    s = settings(cfg)
    from nst.serve.app import create_app

    try:
        import uvicorn
    except ImportError:
        raise NSTError(f"mode=serve needs uvicorn: {INSTALL}") from None
    set_threads(cfg.get("threads"))
    # each Gatys job is a Lightning fit: its per-fit device lines would fill the server's log
    logging.getLogger("pytorch_lightning.utilities.rank_zero").setLevel(logging.WARNING)
    if s.host in ("0.0.0.0", "::"):
        log.warning("host=%s: listening on every network this machine is on, with no login; other "
                    "machines reach it by the names in allowed_hosts=[...] (its LAN name or address)", s.host)
    app = create_app(s)
    shown = "127.0.0.1" if s.host in ("0.0.0.0", "::") else f"[{s.host}]" if ":" in s.host else s.host
    print(f"nst: serving {len(app.state.catalog.paths)} models at http://{shown}:{s.port}/ (Ctrl-C stops)",
          flush=True)
    uvicorn.run(app, host=s.host, port=s.port, log_level="warning")
