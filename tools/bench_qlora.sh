#!/bin/sh
# tools/bench_qlora.sh BUILD — make bench's quantized bases (issue 26): bench_train at the
# SmolLM-135M shape (B 4 x 256, r 8 on all modules) with the frozen linear weights held as
# F32, BF16, Q8_0, Q6_K and Q4_K (model.quantize's blocks: the same bytes a GGUF base of that
# type holds; rows of 576 cannot hold K-quants, so there llama-quantize's fallbacks Q8_0 /
# Q5_0 stand in, as in its files), each in a process of its own: ms per step and peak RSS,
# the quantized ones in both precisions. Then the Llama-3.1-8B shape (hidden 4096,
# intermediate 14336, 32 layers, 32/8 heads, vocab 128256, untied) at batch 1 x 1024, r 16 on
# all modules, gradient checkpointing, bf16 precision: a random Q4_K_M GGUF base
# (tools/make_gguf_model, 4.9 GB) against a random BF16 base (make_model --dtype bf16, 16 GB),
# step time and peak RSS; the files are deleted afterwards. Figures, never asserted; run on
# an idle machine.
#   BENCH_STEPS     timed steps per run (default 2; the 8B runs take 1)
#   BENCH_QLORA_8B  0 skips the 8B shape (default 1; needs 21 GB of disk, 18 GB of memory)
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
grep -hs 'failed' "$D"/* || true
[ "${BENCH_QLORA_8B:-1}" != 0 ] || exit 0
mem_kb=$(sed -n 's/^MemAvailable: *\([0-9]*\) kB/\1/p' /proc/meminfo)
disk_kb=$(df -Pk "$D" | awk 'NR == 2 { print $4 }')
if [ "${mem_kb:-0}" -lt 18000000 ] || [ "${disk_kb:-0}" -lt 22000000 ]; then
  echo "bench_qlora: the 8B shape needs 18 GB of memory and 22 GB of disk in $D: skipped"
  exit 0
fi
rm -rf "$D/model"
shape8b="--hidden 4096 --intermediate 14336 --layers 32 --heads 32 --kv-heads 8 --vocab 128256"
args8b="--precision bf16 --batch 1 --seq 1024 --rank 16 --gradient-checkpointing --steps 1"
"$BUILD/tools/make_gguf_model" --out "$D/8b-q4_k_m.gguf"
# shellcheck disable=SC2086
LORAFIT_TOOLS="$BUILD/tools" "$BUILD/tools/bench_train" --model "$D/8b-q4_k_m.gguf" $args8b \
  >"$D/8b-q4" 2>&1 || echo "bench_qlora: the Q4_K_M 8B run failed" >>"$D/8b-q4"
rm -f "$D/8b-q4_k_m.gguf"
# shellcheck disable=SC2086
"$BUILD/tools/make_model" --out "$D/8b-bf16" $shape8b --dtype bf16 --max-position 1024 >/dev/null
# shellcheck disable=SC2086
LORAFIT_TOOLS="$BUILD/tools" "$BUILD/tools/bench_train" --model "$D/8b-bf16" $args8b \
  >"$D/8b-bf16-run" 2>&1 || echo "bench_qlora: the BF16 8B run failed" >>"$D/8b-bf16-run"
rm -rf "$D/8b-bf16"
echo "bench_qlora: Llama-3.1-8B shape, B 1 x 1024, r 16 all modules, gradient checkpointing, bf16"
printf '%-8s %9s %8s\n' base ms/step "RSS MB"
set -- $(figures "$D/8b-q4")
q4_ms=$1
printf '%-8s %9s %8s\n' Q4_K_M "$1" "$3"
set -- $(figures "$D/8b-bf16-run")
printf '%-8s %9s %8s\n' BF16 "$1" "$3"
echo "bench_qlora: Q4_K_M step / BF16 step: $(ratio "$q4_ms" "$1") (issue 26: at most 1.25x, RSS at most 7 GB)"
grep -h 'failed' "$D/8b-q4" "$D/8b-bf16-run" || true
