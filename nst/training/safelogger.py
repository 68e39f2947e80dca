"""A logger that cannot stop a training run: losing a log must not lose a run.

``Safe(inner)`` passes every call to a Lightning logger (CSV, wandb, ...). The first call that
fails (an unwritable or full log folder, a wandb service that died) costs one warning naming the
logger and the error; after it the logger is dropped for the rest of the run and training goes on.
"""

from __future__ import annotations

import logging
from typing import Any

from pytorch_lightning.loggers import Logger

log = logging.getLogger("nst")


class Safe(Logger):
    def __init__(self, inner: Logger) -> None:
        super().__init__()
        self.inner = inner
        self.failed: str | None = None

    def _fail(self, e: Exception) -> None:
        self.failed = f"{type(e).__name__}: {e}".splitlines()[0]
        log.warning("logger %s failed, training continues without it: %s", type(self.inner).__name__,
                    self.failed)

    def _call(self, what: str, *args: Any, **kwargs: Any) -> Any:
        if self.failed is not None:
            return None
        try:
            return getattr(self.inner, what)(*args, **kwargs)
        except Exception as e:  # noqa: BLE001 - any logger failure, by design (see the module doc)
            self._fail(e)
            return None

    def _prop(self, what: str) -> Any:
        """A property of the inner logger (CSVLogger's version lists its folder: that may fail too)."""
        try:
            return getattr(self.inner, what, None)
        except Exception as e:  # noqa: BLE001
            if self.failed is None:
                self._fail(e)
            return None

    @property
    def name(self) -> str | None:
        return self._prop("name")

    @property
    def version(self) -> int | str | None:
        return self._prop("version")

    @property
    def save_dir(self) -> str | None:
        return self._prop("save_dir")

    @property
    def log_dir(self) -> str | None:
        return self._prop("log_dir")

    @property
    def experiment(self) -> Any:
        return self._prop("experiment")  # CSVLogger makes its folder here

    def log_image(self, *args: Any, **kwargs: Any) -> None:
        self._call("log_image", *args, **kwargs)

    def log_hyperparams(self, params: Any, *args: Any, **kwargs: Any) -> None:
        self._call("log_hyperparams", params, *args, **kwargs)

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        self._call("log_metrics", metrics, step)

    def log_graph(self, model: Any, input_array: Any = None) -> None:
        self._call("log_graph", model, input_array)

    def save(self) -> None:
        self._call("save")

    def finalize(self, status: str) -> None:
        self._call("finalize", status)

    def after_save_checkpoint(self, checkpoint_callback: Any) -> None:
        self._call("after_save_checkpoint", checkpoint_callback)
