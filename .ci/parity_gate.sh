#!/usr/bin/env bash
# Parity gate: export every format for VARIANT at RESOLUTION (arguments; default XS at 224),
# fp32 and fp16, and check each artifact against eager PyTorch on random inputs and natural
# photographs. Any failure (export or parity) fails CI. JUnit reports land in build/parity/.
set -euo pipefail
CASVIT=${CASVIT:-.venv/bin/casvit}
OUT=build/parity
mkdir -p "$OUT"

gate() {  # gate VARIANT RESOLUTION
  local variant=$1 res=$2 dir="$OUT/${1}_${2}"
  "$CASVIT" export --variant "$variant" --resolution "$res" --format all --no-check --out "$dir"
  "$CASVIT" export --variant "$variant" --resolution "$res" --format coreml --precision fp32 --no-check --out "$dir"
  shopt -s nullglob  # .tflite only where the [litert] extra is installed
  "$CASVIT" parity "$dir"/*.onnx "$dir"/*.ort "$dir"/*.pte "$dir"/*.mlpackage "$dir"/*.tflite \
    --junit "$OUT/${variant}_${res}.xml" --json "$OUT/${variant}_${res}.json"
}

gate "${1:-xs}" "${2:-224}"
