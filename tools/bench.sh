#!/bin/sh
# make bench: runs every benchmark program the build produced (build/tools/bench_*),
# each printing its own figures. Figures are printed, never asserted.
set -e
BUILD=${1:-build}
found=0
for b in "$BUILD"/tools/bench_*; do
  [ -x "$b" ] || continue
  case "$b" in *.o|*.d) continue ;; esac
  found=1
  echo "== $(basename "$b")"
  "$b"
done
[ "$found" = 1 ] || echo "no benchmarks built"
