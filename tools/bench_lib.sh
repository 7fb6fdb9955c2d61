# tools/bench_lib.sh — what tools/bench.sh and tools/bench_long.sh share: reading the figures
# out of the benchmark programs' output. Sourced, not run.
# shellcheck shell=sh

# "ms/step tokens/s peak-RSS-MB" from bench_train's summary line in file $1, or "- - -".
figures() {
  sed -n 's/.* \([0-9]*\) ms\/step, \([0-9]*\) tokens\/s.*peak RSS \([0-9]*\) MB.*/\1 \2 \3/p' "$1" |
    tail -1 | grep . || echo "- - -"
}

# $1 / $2 as "1.23x", or "-" unless both are positive numbers.
ratio() {
  awk -v a="$1" -v b="$2" 'BEGIN { if (a + 0 > 0 && b + 0 > 0) printf "%.2fx", a / b; else print "-" }'
}

# The peak GFLOP/s (1024^3) in bench_kernels' output $1 for precision $2: f32 the faster of
# OpenBLAS sgemm and oneDNN's f32 matmul (F32 precision's layer products run on oneDNN's, the
# rest on sgemm), bf16 oneDNN's bf16 matmul; empty where it is not there.
peak_gflops() {
  case "$2" in
    bf16) sed -n 's/^oneDNN bf16 matmul *\([0-9.]*\) GFLOP.*/\1/p' "$1" 2>/dev/null | head -1 ;;
    *) sed -n 's/^sgemm *\([0-9.]*\) GFLOP.*/\1/p; s/^oneDNN f32 matmul *\([0-9.]*\) GFLOP.*/\1/p' \
         "$1" 2>/dev/null | sort -g | tail -1 ;;
  esac
}

# The time the matrix products of one step in bench_train's output $1 (its profile's GFLOP
# per step) would take at the peak in bench_kernels' output $2 for precision $3, in ms.
products_at_peak_ms() {
  gflop=$(sed -n 's/.*matrix products: \([0-9.]*\) GFLOP per step.*/\1/p' "$1" | tail -1)
  awk -v g="$gflop" -v p="$(peak_gflops "$2" "$3")" \
    'BEGIN { if (g + 0 > 0 && p + 0 > 0) printf "%.0f", g / p * 1e3; else print "-" }'
}

# The matrix products' share of the step (percent) in bench_train's output $1, from its profile.
products_share() {
  sed -n 's/^bench_train: where a step goes.* matrix products [0-9]* \([0-9.]*\)%.*/\1/p' "$1" |
    tail -1
}

# The matrix products' GFLOP/s in bench_train's output $1.
products_gflops() {
  sed -n 's/.*GFLOP per step at \([0-9.]*\) GFLOP\/s.*/\1/p' "$1" | tail -1
}
