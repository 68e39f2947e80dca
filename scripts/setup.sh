#!/usr/bin/env bash
# Create .venv (if missing) and install nst with its test tools. Idempotent: a second run is quick.
# NST_VENV picks another venv folder; NST_TORCH_SPEC overrides the torch pins (default: the
# releases this project is tested with).
set -euo pipefail
cd "$(dirname "$0")/.."
venv="${NST_VENV:-.venv}"
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
fi
py="$venv/bin/python"
stamp="$venv/.nst-installed"
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  "$py" -m pip install -q --upgrade pip >/dev/null
  if ! "$py" -c "import torch, torchvision" 2>/dev/null; then
    # shellcheck disable=SC2086
    "$py" -m pip install -q ${NST_TORCH_SPEC:-torch==2.14.1 torchvision==0.29.1}
  fi
  "$py" -m pip install -q -e ".[dev]"
  touch "$stamp"
fi
