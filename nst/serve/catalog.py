"""The models a client may name: the shipped ones and the model files of ``models=DIR``.

A client names a model; it never sends a path, and only names from this list are opened. Each
model is loaded on first use and kept (the ``keep`` most recently used), so a request pays for
the network only.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from pathlib import Path
from typing import Any

from nst.errors import NSTError
from nst.models.card import describe
from nst.models.shipped import shipped_models
from nst.serve.errors import ApiError


class Catalog:
    def __init__(self, folder: str | Path | None = None, keep: int = 4, device: str = "cpu",
                 backend: str = "auto") -> None:
        """``folder``: more .safetensors models (a name there replaces a shipped one of that name)."""
        self.paths: dict[str, Path] = dict(shipped_models())
        if folder is not None:
            folder = Path(folder).expanduser()
            if not folder.is_dir():
                raise NSTError(f"models={folder}: no such folder")
            self.paths.update({p.stem: p for p in sorted(folder.glob("*.safetensors"))
                               if not p.name.startswith(".")})
        self.cards: dict[str, dict[str, Any]] = {}
        for name, path in list(self.paths.items()):
            try:
                self.cards[name] = describe(path)
            except NSTError as e:  # one bad file in the folder does not take the page down
                print(f"nst: warning: serve: {e}; left out of the model list")
                del self.paths[name]
        self.keep, self.device, self.backend = int(keep), device, backend
        self._loaded: OrderedDict[str, Any] = OrderedDict()
        self._lock = threading.Lock()

    def listing(self) -> list[dict[str, Any]]:
        """What ``GET /api/models`` returns: name, kind, styles, strength, factor, network, steps."""
        keys = ("name", "kind", "styles", "strength", "factor", "network", "steps", "kib")
        return [{k: card[k] for k in keys} for card in self.cards.values()]

    def card(self, name: str) -> dict[str, Any]:
        if name not in self.cards:
            raise ApiError(404, f"model {name!r}: unknown (GET /api/models lists them)")
        return self.cards[name]

    def model(self, name: str):
        """The loaded Stylizer (or Upscaler) of ``name``, loaded once and kept."""
        from nst.api import load_model

        self.card(name)
        with self._lock:
            if name in self._loaded:
                self._loaded.move_to_end(name)
                return self._loaded[name]
        try:
            model = load_model(self.paths[name], self.device,
                               **({} if self.cards[name]["kind"] == "upscale" else {"backend": self.backend}))
        except NSTError as e:  # a model file that went bad on the server: not the client's mistake
            raise ApiError(500, f"model {name!r} could not be loaded: {e}") from None
        with self._lock:
            self._loaded[name] = model
            while len(self._loaded) > self.keep:
                self._loaded.popitem(last=False)
        return model
