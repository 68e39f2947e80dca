"""docs/api.md names only what exists: every ``nst.`` path it gives resolves to a module attribute."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import pytest

API_DOC = Path(__file__).resolve().parent.parent / "docs" / "api.md"
NAMES = sorted(set(re.findall(r"\bnst(?:\.[A-Za-z_]\w*)+", API_DOC.read_text())))


def _resolve(dotted: str) -> object:
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):  # the longest importable module, then attributes
        try:
            obj = importlib.import_module(".".join(parts[:cut]))
        except ModuleNotFoundError:
            continue
        for attr in parts[cut:]:
            obj = getattr(obj, attr)
        return obj
    raise ModuleNotFoundError(dotted)


def test_the_page_names_api_paths():
    assert len(NAMES) > 20


@pytest.mark.parametrize("name", NAMES)
def test_every_named_path_exists(name):
    _resolve(name)
