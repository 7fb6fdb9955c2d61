#!/bin/sh
# tools/bench_long.sh BUILD [BENCH_KERNELS_OUTPUT] — long sequences: the training step at
# batch 1 and seq_len 1024, 2048, 4096 and 8192, without and with gradient checkpointing, on
# a small model (hidden 256, intermediate 688, 4 layers, 4/2 heads, vocab 512) and at the
# SmolLM-135M shape; step time, peak RSS, and the step over its matrix products at the peak
# of bench_kernels' output (run here when not given, or with BENCH_LONG_THREADS set). make
# bench runs it last. Each run is a process of its own (peak RSS is the process's
# high-water mark). A run without checkpointing is skipped, and says so, when its peak RSS
# doubled from the previous length (memory is linear in seq_len) would pass 80% of
# MemAvailable.
#   BENCH_LONG_SHAPES     default "small smollm-135m"
#   BENCH_LONG_SEQS       default "1024 2048 4096 8192"
#   BENCH_LONG_PRECISION  f32 (default) or bf16
#   BENCH_LONG_STEPS      timed steps per run (default 1, after a warm-up step)
#   BENCH_LONG_THREADS    threads per run (default: all the processors)
set -e
BUILD=${1:-build}
. "$(dirname "$0")/bench_lib.sh"
SHAPES=${BENCH_LONG_SHAPES:-small smollm-135m}
SEQS=${BENCH_LONG_SEQS:-1024 2048 4096 8192}
PREC=${BENCH_LONG_PRECISION:-f32}
STEPS=${BENCH_LONG_STEPS:-1}
THREADS=${BENCH_LONG_THREADS:-0}
OUT=$(mktemp -d /tmp/lorafit-bench-long-XXXXXX)
trap 'rm -rf "$OUT"' EXIT
KERNELS=${2:-}
if [ -z "$KERNELS" ] || [ "$THREADS" -gt 0 ]; then # the peaks at the runs' thread count
  KERNELS=$OUT/bench_kernels
  "$BUILD/tools/bench_kernels" --threads "$THREADS" > "$KERNELS" || true
fi
avail_mb=$(awk '/^MemAvailable:/ { printf "%d", $2 / 1024 }' /proc/meminfo)
for shape in $SHAPES; do
  prev=""
  for seq in $SEQS; do
    for ck in off on; do
      f="$OUT/$shape-$seq-$ck"
      flag=""; [ $ck = on ] && flag="--gradient-checkpointing"
      if [ $ck = off ] && [ -n "$prev" ] && [ "$prev" -gt 0 ] 2>/dev/null &&
         [ $((prev * 2)) -gt $((avail_mb * 8 / 10)) ]; then
        echo "== bench_train --shape $shape --seq $seq: skipped without checkpointing" \
          "(about $((prev * 2)) MB, $avail_mb MB available)" | tee "$f"
        prev=skipped
        continue
      fi
      echo "== bench_train --shape $shape --batch 1 --seq $seq --precision $PREC $flag"
      # shellcheck disable=SC2086
      LORAFIT_TOOLS="$BUILD/tools" "$BUILD/tools/bench_train" --shape "$shape" --batch 1 \
        --seq "$seq" --precision "$PREC" --steps "$STEPS" --threads "$THREADS" $flag > "$f" 2>&1 ||
        true
      grep -E 'ms/step|where a step|products:|failed' "$f" || true
      [ $ck = off ] && prev=$(figures "$f" | cut -d' ' -f3)
    done
  done
done
echo "== long sequences, batch 1, $PREC, $(sed -n 's/^model name[^:]*: //p' /proc/cpuinfo | head -1)," \
  "$([ "$THREADS" -gt 0 ] && echo "$THREADS" || nproc) threads (step times depend on load; peak RSS" \
  "does not)"
printf '%-12s %8s %-14s %9s %9s %9s %10s %14s\n' shape seq_len checkpointing ms/step tokens/s \
  "RSS MB" "RSS/first" "step/products"
for shape in $SHAPES; do
  for ck in off on; do
    first=""
    for seq in $SEQS; do
      f="$OUT/$shape-$seq-$ck"
      # shellcheck disable=SC2046
      set -- $(figures "$f")
      [ -n "$first" ] || first=$3
      at_peak=$(products_at_peak_ms "$f" "$KERNELS" "$PREC")
      label=without; [ $ck = on ] && label=with
      grep -q skipped "$f" && set -- skipped - -
      printf '%-12s %8s %-14s %9s %9s %9s %10s %14s\n' "$shape" "$seq" "$label" "$1" "$2" "$3" \
        "$(ratio "$3" "$first")" "$(ratio "$1" "$at_peak")"
    done
  done
done
echo "(RSS/first: peak RSS over that at the first seq_len; linear memory doubles it with each"
echo " doubling of seq_len. step/products: the step over its matrix products at the" \
  "$([ "$PREC" = bf16 ] && echo "oneDNN bf16" || echo "f32 (the faster of OpenBLAS sgemm and oneDNN f32)") peak," \
  "$(peak_gflops "$KERNELS" "$PREC") GFLOP/s)"
