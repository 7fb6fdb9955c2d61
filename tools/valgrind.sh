#!/bin/sh
# tools/valgrind.sh — the end-to-end training path under valgrind memcheck: a few steps of
# the committed qwen2-untied test model with a checkpoint, then a --resume that continues
# from it, both with --error-exitcode=1 --leak-check=full. Exit 0 only when both are clean.
#
#   tools/valgrind.sh [BUILD]      BUILD defaults to build (uses BUILD/lorafit, built if absent)
#
# tests/valgrind.supp silences one thing: the TLS block of libgomp's worker threads, which
# live until exit by design ("possibly lost"); nothing of lorafit is suppressed.
set -eu
cd "$(dirname "$0")/.."
BUILD=${1:-build}
[ -x "$BUILD/lorafit" ] || make --no-print-directory BUILD="$BUILD" "$BUILD/lorafit"
BIN=$(pwd)/$BUILD/lorafit
ROOT=$(pwd)
W=$(mktemp -d "${TMPDIR:-/tmp}/lorafit-valgrind-XXXXXX")
trap 'rm -rf "$W"' EXIT

make_rows() { # 24 deterministic rows of ids < 97, lengths 3..20, without Python
    i=0
    while [ $i -lt 24 ]; do
        n=$((3 + (i * 7) % 18)); j=0; ids=""
        while [ $j -lt $n ]; do ids="$ids${ids:+, }$(((i * 31 + j * 17) % 97))"; j=$((j + 1)); done
        echo "{\"input_ids\": [$ids]}"
        i=$((i + 1))
    done
}
make_rows >"$W/rows.jsonl"
cat >"$W/config.yaml" <<YAML
model:
  path: $ROOT/tests/data/train/qwen2-untied/model
lora:
  r: 4
  alpha: 8
  dropout: 0.1
data:
  train: rows.jsonl
  seq_len: 16
  packing: true
  shuffle: true
  shuffle_buffer: 8
train:
  batch_size: 2
  grad_accum: 2
  max_steps: 3
  lr: 5.0e-3
  threads: 2
output:
  dir: out
  save_every: 2
log:
  every: 1
YAML

VG="valgrind --error-exitcode=1 --leak-check=full --show-leak-kinds=definite,indirect,possible \
  --errors-for-leak-kinds=definite,indirect,possible --track-origins=yes \
  --suppressions=$ROOT/tests/valgrind.supp -q"
echo "valgrind.sh: lorafit train (3 steps, checkpoint at 2)"
OMP_NUM_THREADS=2 $VG "$BIN" train "$W/config.yaml" >"$W/run1.log" 2>&1 || { cat "$W/run1.log"; echo "valgrind.sh: FAILED (train)"; exit 1; }
rm -rf "$W/out/checkpoint-3" "$W/out/adapter"
echo "valgrind.sh: lorafit train --resume (from checkpoint-2)"
OMP_NUM_THREADS=2 $VG "$BIN" train "$W/config.yaml" --resume >"$W/run2.log" 2>&1 || { cat "$W/run2.log"; echo "valgrind.sh: FAILED (resume)"; exit 1; }
grep -q "resuming from" "$W/run2.log" || { cat "$W/run2.log"; echo "valgrind.sh: the second run did not resume"; exit 1; }
echo "valgrind.sh: clean"
