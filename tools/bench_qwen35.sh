#!/bin/sh
# tools/bench_qwen35.sh BUILD — make bench's Qwen3.5 step (issue 25's acceptance 6): bench_train
# on a random Qwen3.5-0.8B-shaped model (make_model --preset qwen3.5-0.8b: 18 Gated DeltaNet
# and 6 gated attention layers, vocab 248320, tied; LoRA r 8 on every projection) in f32 and
# bf16, batch 1 at T 1024 and T 4096; then per precision the DeltaNet layers' share of the
# step, their products' GFLOP/s, their non-product share of their own time (target <= 25%)
# and their time per token at 4096 over that at 1024 (target <= 1.2x: linear in T).
# "The DeltaNet layers" are their mixers (the MLP is every layer's and is left out): the
# profile's DeltaNet class (delta rule, conv, L2 and gated norms, gates) with the delta rule's
# products, plus the in_proj_* / out_proj products and LoRA element-wise work, taken from the
# linear class in proportion to their multiply-adds (the profile times op classes, not
# layers). The delta rule reads q, k, v in place from the conv's output (no column copies).
# Figures, never asserted; on a shared machine they are noise.
#   BENCH_QWEN35_LAYERS  layers instead of 24 (a quicker run; every 4th is attention)
#   BENCH_QWEN35_SEQS    sequence lengths (default "1024 4096"; the ratio is last / first)
#   BENCH_STEPS          timed steps per run (default 2)
#   BENCH_QWEN35_CHECKPOINTING  0 runs without gradient checkpointing (default 1)
set -e
BUILD=${1:-build}
STEPS=${BENCH_STEPS:-2}
SEQS=${BENCH_QWEN35_SEQS:-1024 4096}
D=$(mktemp -d /tmp/lorafit-bench-qwen35-XXXXXX)
trap 'rm -rf "$D"' EXIT
max=2048
# Gradient checkpointing at every length (BENCH_QWEN35_CHECKPOINTING=0: off): without it the
# step at T 4096 keeps about 38 GB of activations (9.9 GB at T 1024).
ckpt=--gradient-checkpointing
[ "${BENCH_QWEN35_CHECKPOINTING:-1}" != 0 ] || ckpt=""
for t in $SEQS; do [ "$t" -le "$max" ] || max=$t; done
layers=""
[ -z "${BENCH_QWEN35_LAYERS:-}" ] || layers="--layers $BENCH_QWEN35_LAYERS"
# shellcheck disable=SC2086
"$BUILD/tools/make_model" --out "$D/model" --preset qwen3.5-0.8b $layers --max-position "$max"
for prec in f32 bf16; do
  for t in $SEQS; do
    echo "== bench_train qwen3.5-0.8b${layers:+ ($layers)} --precision $prec --batch 1 --seq $t $ckpt"
    LORAFIT_TOOLS="$BUILD/tools" "$BUILD/tools/bench_train" --model "$D/model" \
      --precision "$prec" --batch 1 --seq "$t" --steps "$STEPS" $ckpt | tee "$D/$prec-$t" || true
  done
done
# "share% us/token GFLOP/s non-product%" from bench_train's DeltaNet line in file $1.
deltanet() {
  sed -n 's/^bench_train: DeltaNet layers.*: [0-9]* ms\/step, \([0-9.]*\)% of the step, \([0-9.]*\) us\/token; products \([0-9.]*\) GFLOP\/s.*non-product \([0-9.]*\)% of their.*/\1 \2 \3 \4/p' \
    "$1" | tail -1 | grep . || echo "- - - -"
}
echo "== Qwen3.5-0.8B shape: the DeltaNet layers (mixers; projections by multiply-adds)"
first=${SEQS%% *} last=${SEQS##* }
for prec in f32 bf16; do
  for t in $SEQS; do
    [ -f "$D/$prec-$t" ] || continue
    set -- $(deltanet "$D/$prec-$t")
    echo "qwen3.5-0.8b $prec T $t: DeltaNet layers $1% of the step, $2 us/token," \
      "products $3 GFLOP/s, non-product $4% of their time (the target is <= 25%)"
  done
  [ "$first" != "$last" ] && [ -f "$D/$prec-$first" ] && [ -f "$D/$prec-$last" ] || continue
  a=$(deltanet "$D/$prec-$first" | cut -d' ' -f2) b=$(deltanet "$D/$prec-$last" | cut -d' ' -f2)
  r=$(awk -v a="$a" -v b="$b" 'BEGIN { if (a + 0 > 0 && b + 0 > 0) printf "%.2fx", b / a; else print "-" }')
  echo "qwen3.5-0.8b $prec: DeltaNet time per token at T $last / at T $first = $r" \
    "(the target is <= 1.2x)"
done
