"""docs/configuration.md's table of config groups names every option configs/ has, and no other."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DOC = REPO / "docs" / "configuration.md"


def documented() -> dict[str, set[str]]:
    rows = re.findall(r"^\| `(\w+)` \| ([^|]+) \|", DOC.read_text(), re.M)
    return {group: set(re.findall(r"[a-z][a-z0-9_]*", options)) - {"all", "extend"}
            for group, options in rows}


def groups() -> list[str]:
    return sorted(p.name for p in (REPO / "configs").iterdir() if p.is_dir() and p.name != "hydra")


@pytest.mark.parametrize("group", groups())
def test_every_option_of_a_group_is_in_the_table(group):
    options = {p.stem for p in (REPO / "configs" / group).glob("*.yaml")}
    table = documented()
    assert group in table, f"docs/configuration.md has no row for the {group} group"
    assert options - table[group] == set(), f"{group}: options missing from the table"
    assert table[group] - options == set(), f"{group}: the table names options that do not exist"
