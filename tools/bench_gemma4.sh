#!/bin/sh
# tools/bench_gemma4.sh BUILD — make bench's Gemma 4 step (issue 28's acceptance 4): bench_train
# on a random model of Gemma 4 E2B's decoder shape (make_model --preset gemma4-e2b: 35 layers,
# hidden 1536, 8/1 heads, head_dim 512 on the 7 full layers and 256 on the 28 sliding ones
# (window 512), intermediate 6144 doubled on the 20 KV-sharing layers, per-layer inputs of 256,
# vocab 262144, tied), written in BF16 (9.2 GB in /tmp, deleted afterwards), at batch 1 x 1024,
# LoRA r 16 on every linear, gradient checkpointing, in f32 (the weights held as BF16,
# model.dtype: bf16: an F32 copy would be 18 GB) and bf16. Each run prints its step time, peak
# RSS and the per-layer embedding table (262144 x 35 * 256, 2.35 B parameters): its stored
# size, its share of the weights held (counted once, at that size: it is used in place from
# the mapped file, never widened) and of the peak RSS. Figures, never asserted; step times on
# a machine shared with other jobs are noise, peak RSS is not.
#   BENCH_GEMMA4_LAYERS  layers instead of 35 (a quicker run)
#   BENCH_STEPS          timed steps per run (default 2)
set -e
BUILD=${1:-build}
STEPS=${BENCH_STEPS:-2}
D=$(mktemp -d /tmp/lorafit-bench-gemma4-XXXXXX)
trap 'rm -rf "$D"' EXIT
layers=""
[ -z "${BENCH_GEMMA4_LAYERS:-}" ] || layers="--layers $BENCH_GEMMA4_LAYERS"
echo "== make_model --preset gemma4-e2b --dtype bf16${layers:+ $layers}"
# shellcheck disable=SC2086
"$BUILD/tools/make_model" --out "$D/model" --preset gemma4-e2b $layers --dtype bf16 \
  --max-position 2048
for prec in f32 bf16; do
  echo "== bench_train gemma4-e2b${layers:+ ($layers)} --precision $prec --dtype bf16 --batch 1" \
    "--seq 1024 --rank 16 --gradient-checkpointing"
  LORAFIT_TOOLS="$BUILD/tools" "$BUILD/tools/bench_train" --model "$D/model" --precision "$prec" \
    --dtype bf16 --batch 1 --seq 1024 --rank 16 --steps "$STEPS" --gradient-checkpointing |
    tee "$D/$prec" || true
done
echo "== Gemma 4 E2B shape (B 1 x T 1024, r 16, gradient checkpointing, BF16 weights)"
for prec in f32 bf16; do
  [ -f "$D/$prec" ] || continue
  sed -n "s/^bench_train: B 1 x T 1024, .*: \([0-9]*\) ms\/step, .*peak RSS \([0-9]*\) MB.*/gemma4-e2b $prec: \1 ms\/step, peak RSS \2 MB/p" "$D/$prec"
  sed -n 's/^bench_train: \(per-layer embedding table.*\)/  \1/p' "$D/$prec"
done
