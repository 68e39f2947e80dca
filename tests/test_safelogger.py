"""A failing logger warns once and is dropped; training goes on (nst/training/safelogger.py)."""

from __future__ import annotations

import errno

from pytorch_lightning.loggers import CSVLogger, Logger

from nst.training.safelogger import Safe


class _Full(Logger):
    """A logger whose disk is full."""

    calls = 0

    @property
    def name(self):
        return "full"

    @property
    def version(self):
        return 0

    def log_hyperparams(self, params, *args, **kwargs):
        pass

    def log_metrics(self, metrics, step=None):
        _Full.calls += 1
        raise OSError(errno.ENOSPC, "No space left on device")


def test_the_first_failure_warns_once_and_drops_the_logger(caplog):
    safe = Safe(_Full())
    for step in range(3):
        safe.log_metrics({"loss": 1.0}, step)
    assert _Full.calls == 1 and "No space left on device" in safe.failed
    assert caplog.text.count("failed, training continues without it") == 1


def test_a_working_logger_is_passed_through(tmp_path):
    safe = Safe(CSVLogger(tmp_path, name="csv"))
    safe.log_metrics({"loss": 0.5}, 0)
    safe.save()
    assert safe.failed is None and "loss" in next(tmp_path.rglob("metrics.csv")).read_text()
