#!/bin/sh
# tools/bench_qlora.sh BUILD — make bench's quantized bases (issue 26): bench_train at the
# SmolLM-135M shape (B 4 x 256, r 8 on all modules) with the frozen linear weights held as
# F32, BF16, Q8_0, Q6_K and Q4_K (model.quantize's blocks: the same bytes a GGUF base of that
# type holds; rows of 576 cannot hold K-quants, so there llama-quantize's fallbacks Q8_0 /
# Q5_0 stand in, as in its files), each in a process of its own: ms per step and peak RSS,
# the quantized ones in both precisions. Figures, never asserted; run on an idle machine.
#   BENCH_STEPS  timed steps per run (default 2)
set -e
BUILD=${1:-build}
STEPS=${BENCH_STEPS:-2}
. "$(dirname "$0")/bench_lib.sh"
D=$(mktemp -d /tmp/lorafit-bench-qlora-XXXXXX)
trap 'rm -rf "$D"' EXIT
"$BUILD/tools/make_model" --out "$D/model" --preset smollm-135m >/dev/null
run() { # name args... -> D/name holds bench_train's output
  name=$1; shift
  LORAFIT_TOOLS="$BUILD/tools" "$BUILD/tools/bench_train" --model "$D/model" --steps "$STEPS" \
    "$@" >"$D/$name" 2>&1 || echo "bench_qlora: bench_train $* failed" >>"$D/$name"
}
run f32 --precision f32
run bf16 --precision bf16
for q in q8_0 q6_k q4_k; do
  run "$q-f32" --precision f32 --quantize "$q"
  run "$q-bf16" --precision bf16 --quantize "$q"
done
echo "bench_qlora: SmolLM-135M shape, B 4 x 256, r 8 all modules, $STEPS steps each"
printf '%-8s %-10s %9s %9s %8s\n' base precision ms/step tokens/s "RSS MB"
line() { # label precision file
  set -- "$1" "$2" $(figures "$D/$3")
  printf '%-8s %-10s %9s %9s %8s\n' "$1" "$2" "$3" "$4" "$5"
}
line F32 f32 f32
line BF16 bf16 bf16
for q in q8_0 q6_k q4_k; do
  Q=$(echo "$q" | tr a-z A-Z)
  line "$Q" f32 "$q-f32"
  line "$Q" bf16 "$q-bf16"
done
grep -h 'failed' "$D"/* || true
