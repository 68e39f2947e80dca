#!/usr/bin/env bash
# Set up (first time only) and run the default test suite: fast, offline, CPU-only.
# Extra arguments go to pytest (e.g. `-m slow`). pytest's exit code is kept: 5 (no tests ran) fails.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
bash "$here/scripts/setup.sh" >&2
cd "$here"
exec "${NST_VENV:-.venv}/bin/python" -m pytest "$@"
