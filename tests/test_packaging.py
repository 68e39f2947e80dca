"""The wheel's package list (pyproject.toml) covers every package under nst/."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def test_every_subpackage_is_in_the_wheel():
    text = (REPO / "pyproject.toml").read_text()
    listed = set(re.findall(r'"(nst[\w.]*)"', re.search(r"^packages = \[(.*)\]$", text, re.M).group(1)))
    found = {".".join(p.parent.relative_to(REPO).parts) for p in (REPO / "nst").rglob("__init__.py")}
    assert found <= listed, f"missing from [tool.setuptools] packages: {sorted(found - listed)}"
    assert "nst.configs" in listed
