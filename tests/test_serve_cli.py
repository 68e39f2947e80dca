"""``nst mode=serve`` (nst/cli/serve.py): its settings from the config, the URL it prints, the
warning for 0.0.0.0; uvicorn itself is replaced, so nothing listens."""

from __future__ import annotations

import logging

import pytest

pytest.importorskip("fastapi", reason="nst[serve] is not installed")
uvicorn = pytest.importorskip("uvicorn", reason="nst[serve] is not installed")
from conftest import compose_config  # noqa: E402

import nst.cli  # noqa: E402
from nst.errors import NSTError  # noqa: E402


@pytest.fixture
def served(monkeypatch):
    calls = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: calls.append((app, kw)))
    return calls


def test_serve_defaults_to_loopback_and_prints_the_url(served, capsys):
    nst.cli.run(compose_config(["mode=serve", "port=8123"]))
    [(app, kw)] = served
    assert kw["host"] == "127.0.0.1" and kw["port"] == 8123
    assert "http://127.0.0.1:8123/" in capsys.readouterr().out
    assert {m["name"] for m in app.state.catalog.listing()} >= {"starry_night", "four_styles"}


def test_all_interfaces_warn(served, caplog):
    with caplog.at_level(logging.WARNING, logger="nst"):
        nst.cli.run(compose_config(["mode=serve", "host=0.0.0.0"]))
    assert "every network" in caplog.text and served[0][1]["host"] == "0.0.0.0"


@pytest.mark.parametrize("override,phrase", [("port=0", "port=0"), ("port=http", "port="),
                                             ("models=/no/such/folder", "no such folder")])
def test_bad_settings_are_one_line_before_anything_listens(served, override, phrase):
    with pytest.raises(NSTError, match=phrase):
        nst.cli.run(compose_config(["mode=serve", override]))
    assert served == []


def test_serve_config_keys_reach_the_settings():
    from nst.cli.serve import settings

    s = settings(compose_config(["mode=serve", "queue=3", "gatys.max_iterations=50", "vgg.weights=random",
                                 "allowed_hosts=[nst.lan]"]))
    assert (s.queue, s.gatys_max_iterations, s.vgg_weights) == (3, 50, "random")
    assert s.allowed_hosts == ("nst.lan",)
