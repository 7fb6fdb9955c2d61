#!/bin/sh
# make bench: runs every benchmark program the build produced (build/tools/bench_*), each
# printing its own figures, then the same training step in PyTorch when Python has torch
# (Debian's python3-torch; optional). Figures are printed, never asserted.
set -e
BUILD=${1:-build}
found=0
for b in "$BUILD"/tools/bench_*; do
  [ -x "$b" ] || continue
  case "$b" in *.o|*.d) continue ;; esac
  found=1
  echo "== $(basename "$b")"
  LORAFIT_TOOLS="$BUILD/tools" "$b"
done
[ "$found" = 1 ] || echo "no benchmarks built"
# The Rust tokenizers library on the same text as bench_tokenizer, when the scratch install of
# tools/gen_tokenizer_expect.sh exists (build/tokref) and node is there.
SHARED=${LORAFIT_SHARED:-../shared}
if [ -d build/tokref/node_modules/@anush008/tokenizers ] && command -v node >/dev/null &&
   [ -f "$SHARED/data/tinystories/raw.txt" ]; then
  echo "== bench_tokenizer.js (Rust tokenizers, same text)"
  node tools/bench_tokenizer.js build/tokref/node_modules "$SHARED/tokenizers/llama3" \
    "$SHARED/data/tinystories/raw.txt"
fi
PY=""
for p in python3 /usr/bin/python3; do
  if "$p" -c "import torch" 2>/dev/null; then PY=$p; break; fi
done
if [ -n "$PY" ]; then
  echo "== bench_torch.py (PyTorch, same step as bench_train)"
  "$PY" tools/bench_torch.py
else
  echo "== bench_torch.py skipped: python3 cannot import torch (apt-get install python3-torch)"
fi
