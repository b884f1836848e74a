#!/usr/bin/env bash
# ExecuTorch int8 configurations of XS at 224, exported one by one with the speed choice off and
# then timed together, interleaved, against the fp32 program (issue 24: "report every
# configuration tried with its ratio and cosine"). Cosine: the export's agreement with fp32
# eager on the calibration photographs (smallest per sample), read by bench from each manifest.
#   bash benchmarks/int8_configs.sh CHECKPOINT OUT_DIR [ROUNDS] [ITERS]
# CHECKPOINT: trained-like weights (benchmarks/int8_bench.py writes one under models/int8_bench).
set -euo pipefail
ckpt=$1 out=$2 rounds=${3:-9} iters=${4:-40}
casvit=${CASVIT:-casvit}
export_one() {  # NAME, then export flags
  local name=$1; shift
  [ -e "$out/$name" ] || $casvit export -f executorch -c "$ckpt" -r 224 -o "$out/$name" "$@"
}
export_one fp32 -p fp32
export_one int8_plan -p int8 --no-speed-choice
export_one int8_dw_float -p int8 --no-speed-choice --keep-float depthwise
export_one int8_mul_float -p int8 --no-speed-choice --keep-float multiplies
export_one int8_dw_mul_float -p int8 --no-speed-choice --keep-float depthwise,multiplies
export_one int8_all -p int8 --no-speed-choice --quantize-residual
export_one int8_all_mul_float -p int8 --no-speed-choice --quantize-residual --keep-float multiplies
export_one int8_all_dw_mul_float -p int8 --no-speed-choice --quantize-residual --keep-float depthwise,multiplies
$casvit bench "$out"/*/*.pte --threads 2 --rounds "$rounds" --iters "$iters" --no-baseline \
  --json "$out/bench.json" --markdown "$out/bench.md"
