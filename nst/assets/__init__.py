"""Small files shipped inside the package (see PROVENANCE.md here for where each came from)."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parent


def asset(name: str) -> str:
    """Absolute path of a bundled asset, e.g. ``asset("styles/the_great_wave.jpg")``."""
    path = ROOT / name
    if not path.exists():
        from nst.errors import NSTError

        raise NSTError(f"no bundled asset named {name!r} (see {ROOT})")
    return str(path)
