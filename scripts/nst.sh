#!/usr/bin/env bash
# Set up (first time only) and run nst with the given arguments, e.g. `bash scripts/nst.sh experiment=quickstart`.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
bash "$here/scripts/setup.sh" >&2
exec "$here/${NST_VENV:-.venv}/bin/python" -m nst "$@"
