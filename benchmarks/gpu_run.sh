#!/usr/bin/env bash
# The GPU benchmark, run once on a lent NVIDIA GPU from the repository root:
#     OUT=/some/folder bash benchmarks/gpu_run.sh
# Needs torch with CUDA (and Triton for torch.compile), typer and rich; no install, no
# network (PYTHONPATH=. runs the checkout). Budget: under 7 minutes; every step has its
# own timeout and later steps are skipped when the budget is spent. Writes at most 7
# files into $OUT: b1.json, b256.json, compile.json, RESULTS_GPU.md, log.txt, pytest.txt.
set -u
OUT=${OUT:?set OUT to the folder whose files come back}
mkdir -p "$OUT"
export PYTHONPATH=.${PYTHONPATH:+:$PYTHONPATH}
export PYTHONWARNINGS=ignore
BUDGET=${BUDGET:-400}   # seconds for the whole script
START=$SECONDS
LOG="$OUT/log.txt"

CASVIT=(python -c 'import sys; from casvit_deploy.cli import run; sys.argv[0] = "casvit"; run()')  # `timeout` needs a program, not a shell function
left() { echo $(( BUDGET - (SECONDS - START) )); }
step() {  # step NAME SECONDS_NEEDED TIMEOUT COMMAND...: run when the budget allows, log the outcome
  local name=$1 need=$2 limit=$3; shift 3
  if (( $(left) < need )); then echo "== $name: skipped, $(left)s left of the budget" | tee -a "$LOG"; return; fi
  echo "== $name (timeout ${limit}s, $(left)s left): $*" | tee -a "$LOG"
  local t0=$SECONDS
  timeout --kill-after=10 "$limit" "$@" >>"$LOG" 2>&1
  echo "== $name: exit $? after $(( SECONDS - t0 ))s" | tee -a "$LOG"
}

{ nvidia-smi -L; python -c 'import torch, sys; print(sys.version); print("torch", torch.__version__, "cuda", torch.version.cuda, torch.cuda.get_device_name())'; } >>"$LOG" 2>&1

COMMON=(--device cuda --resolution 224 --warmup 10 --min-time 1 --both-forms)
step b1 60 150 "${CASVIT[@]}" bench -b eager -b cudagraph -v xs -v s -v m -v t "${COMMON[@]}" --batch 1 \
  --precision fp32 --precision fp16 --channels-last --json "$OUT/b1.json"
step b256 60 120 "${CASVIT[@]}" bench -b eager -v xs -v s -v m -v t "${COMMON[@]}" --batch 256 \
  --precision fp32 --precision fp16 --channels-last --json "$OUT/b256.json"
# torch.compile: XS and T only, deploy form, fp16 channels-last; "default" mode compiles in
# well under a minute per model (max-autotune takes minutes and is out of budget here).
step compile 100 170 "${CASVIT[@]}" bench -b eager -b compile -v xs -v t --device cuda --resolution 224 --warmup 5 \
  --min-time 1 --batch 256 --precision fp16 --channels-last --compile-mode default --json "$OUT/compile.json"
if python -c 'import pytest' 2>/dev/null; then
  step pytest 30 90 python -m pytest -q -m gpu tests/test_bench.py -p no:cacheprovider
  grep -E "passed|failed|error|skipped" "$LOG" | tail -1 > "$OUT/pytest.txt"
else
  echo "pytest not installed: GPU tests not run" | tee "$OUT/pytest.txt" >>"$LOG"
fi
python benchmarks/gpu_summary.py "$OUT" > "$OUT/RESULTS_GPU.md" 2>>"$LOG"
echo "== total $(( SECONDS - START ))s" | tee -a "$LOG"
