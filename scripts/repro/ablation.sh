#!/usr/bin/env bash
# One row of the ablation table in docs/results/2026-12-01-recipe.md: train experiment=quickstart with the given
# overrides, then score the model with mode=compare against Gatys (25 and 50 L-BFGS iterations
# from the content) on the four *tuning* photos: the first four of BSDS500's val split, which no
# recipe trains on and which the reported numbers never use.
#   bash scripts/repro/ablation.sh OUT_DIR [override ...]      e.g.  bash scripts/repro/ablation.sh /tmp/r1 model.net.output=linear
# Prints the wall time of the training run and the compare table (OUT_DIR/compare/results.md).
set -euo pipefail
cd "$(dirname "$0")/../.."
out=$1; shift
data=${NST_DATA:-../shared/data}
[ -d "$data/photos/train" ] || { echo "ablation: needs $data/photos/train (BSDS500; set NST_DATA)" >&2; exit 2; }
bash scripts/setup.sh
start=$(date +%s)
.venv/bin/nst experiment=quickstart output="$out" stylize_after=null threads=2 "$@"
echo "train wall: $(( $(date +%s) - start )) s"
.venv/bin/nst mode=compare checkpoint="$(ls "$out"/*.safetensors | head -1)" \
  input="$data/photos/train/bsds500_val_*" limit=4 snapshots=[25,50] output="$out/compare" threads=2
cat "$out/compare/results.md"
