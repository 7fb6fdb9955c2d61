#!/bin/sh
# make bench: runs every benchmark program the build produced (build/tools/bench_*), each
# printing its own figures; then, per shape, the same training step in lorafit f32 and bf16 (with
# each op class's share of the step and the products' GFLOP/s beside the sgemm, oneDNN f32 and
# oneDNN bf16 peaks) and in PyTorch float32 and bf16 autocast when Python has torch (Debian's
# python3-torch; optional), and a side-by-side table of them; and the MPI scaling of
# tools/bench_mpi.sh.
# Figures are printed, never asserted.
#   BENCH_SHAPES  shapes to train (default "smollm-135m llama-1b qwen3-0.6b gemma3-1b";
#                 llama-1b writes a 4.9 GB model to /tmp and takes minutes per step on 2
#                 cores, gemma3-1b 4 GB; qwen3-0.6b and gemma3-1b are the families' shapes
#                 with their forward in lorafit and PyTorch, each compared with the
#                 Llama-shaped step of the same run: llama-1b, else smollm-135m)
#   BENCH_STEPS   timed steps per run (default 2)
#   BENCH_LAYERS  every shape with this many layers instead of its own (a quicker run: the
#                 per-layer work is the same, lm_head's share of the step grows)
#   BENCH_SEQ     every shape at this sequence length instead of its own
#   BENCH_TORCH_BF16  1 runs PyTorch's bf16 autocast even on a CPU without native bf16
#   BENCH_CHECKPOINTING  0 skips the gradient-checkpointing comparison (default 1): peak RSS
#                 and step time without and with train.gradient_checkpointing, at the
#                 SmolLM-135M shape (F32, B 4 x 256, r 8) and, when BENCH_SHAPES has
#                 llama-1b, the Llama-3.2-1B shape with BF16 weights (a 2.5 GB BF16 file in
#                 /tmp, deleted afterwards; B 1 x 1024, r 16)
#   BENCH_QLORA   0 skips the quantized-base steps of tools/bench_qlora.sh (default 1)
#   BENCH_DPO     0 skips the DPO-against-SFT step of tools/bench_dpo.sh (default 1)
#   BENCH_LONG    0 skips the long-sequence table of tools/bench_long.sh (default 1; its
#                 BENCH_LONG_* variables choose shapes, lengths and precision)
#   BENCH_QWEN35  1 runs tools/bench_qwen35.sh (default 0: a 3.2 GB model, minutes per step
#                 at T 4096 on 2 cores): the Qwen3.5-0.8B shape in f32 and bf16 at T 1024 and
#                 4096, the DeltaNet layers' share, GFLOP/s, non-product share and per-token
#                 ratio (BENCH_QWEN35_LAYERS / BENCH_QWEN35_SEQS make it quicker)
#   BENCH_GEMMA4  0 skips tools/bench_gemma4.sh (default 1: a 9.2 GB BF16 model in /tmp, several
#                 minutes per step on 2 cores): the Gemma 4 E2B shape's step in f32 and bf16
#                 (B 1 x 1024, r 16, gradient checkpointing), peak RSS and the per-layer
#                 embedding table's share (BENCH_GEMMA4_LAYERS makes it quicker)
set -e
BUILD=${1:-build}
SHAPES=${BENCH_SHAPES:-smollm-135m llama-1b qwen3-0.6b gemma3-1b}
STEPS=${BENCH_STEPS:-2}
OUT=$(mktemp -d /tmp/lorafit-bench-XXXXXX)
trap 'rm -rf "$OUT"' EXIT
found=0
for b in "$BUILD"/tools/bench_*; do
  [ -x "$b" ] || continue
  case "$b" in *.o|*.d|*/bench_train) continue ;; esac
  found=1
  echo "== $(basename "$b")"
  LORAFIT_TOOLS="$BUILD/tools" "$b" | tee "$OUT/$(basename "$b")"
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
# Training from text vs from the same data pre-tokenized: stories260K on the TinyStories
# paragraphs as {"text"} records and as the committed ids (same rows, same order, same
# batches), so the only difference is tokenizing on the fly.
if [ -f "$SHARED/data/tinystories/raw.txt" ] && [ -d "$SHARED/models/stories260K" ]; then
  TXT=$(mktemp -d /tmp/lorafit-bench-text-XXXXXX)
  python3 - "$SHARED/data/tinystories/raw.txt" "$TXT/text.jsonl" <<'PYEOF'
import json, sys
paras = [p.replace("\n", " ").strip() for p in open(sys.argv[1]).read().split("\n\n")]
with open(sys.argv[2], "w") as f:
    for p in paras:
        if p:
            f.write(json.dumps({"text": p}) + "\n")
PYEOF
  for kind in text tokens; do
    if [ $kind = text ]; then train="[$TXT/text.jsonl]"; else
      train="[$SHARED/data/tinystories/valid.jsonl, $SHARED/data/tinystories/train.jsonl.gz]"; fi
    cat > "$TXT/$kind.yaml" <<YEOF
model: {path: $SHARED/models/stories260K}
data: {train: $train, seq_len: 256, packing: true}
train: {batch_size: 8, max_steps: ${BENCH_TEXT_STEPS:-20}}
output: {dir: $TXT/out-$kind, save_every: 0}
log: {every: 1000}
YEOF
    "$BUILD/lorafit" train "$TXT/$kind.yaml" > "$TXT/$kind.log" 2>&1 || true
  done
  echo "== training stories260K from text vs pre-tokenized (target tokens/s over the run)"
  for kind in text tokens; do
    printf '%-8s %s\n' "$kind" "$(tail -1 "$TXT/out-$kind/metrics.jsonl" 2>/dev/null |
      sed -n 's/.*"tokens_per_s": \([0-9.]*\).*/\1/p' | grep . || echo failed)"
  done
  rm -rf "$TXT"
fi
# Data parallelism: 2 ranks x 1 thread against 1 rank x 1 thread and 1 rank x 2 threads.
tools/bench_mpi.sh "$BUILD" || true
PY=""
for p in python3 /usr/bin/python3; do
  if "$p" -c "import torch" 2>/dev/null; then PY=$p; break; fi
done
[ -n "$PY" ] || echo "== bench_torch.py skipped: python3 cannot import torch (apt-get install python3-torch)"

# PyTorch links the same OpenBLAS: it runs with the kernels lorafit runs (lorafit sets
# OPENBLAS_CORETYPE itself where OpenBLAS does not know the CPU; PyTorch would fall back to
# the slow SSE3 ones), unless OPENBLAS_CORETYPE is set already.
CORE=$(sed -n 's/^OpenBLAS kernels //p' "$OUT/bench_kernels" 2>/dev/null)
[ -n "${OPENBLAS_CORETYPE:-}" ] || [ -z "$CORE" ] || { export OPENBLAS_CORETYPE="$CORE";
  echo "== PyTorch runs with OPENBLAS_CORETYPE=$CORE, the OpenBLAS kernels lorafit runs"; }

. "$(dirname "$0")/bench_lib.sh"
size=""
[ -z "${BENCH_LAYERS:-}" ] || size="$size --layers $BENCH_LAYERS"
[ -z "${BENCH_SEQ:-}" ] || size="$size --seq $BENCH_SEQ"
[ -z "$size" ] || echo "== every shape with$size (BENCH_LAYERS / BENCH_SEQ), not its own:" \
  "the per-layer work is the same, lm_head's share of the step is not"
for shape in $SHAPES; do
  for prec in f32 bf16; do
    echo "== bench_train --shape $shape --precision $prec$size"
    # shellcheck disable=SC2086
    LORAFIT_TOOLS="$BUILD/tools" "$BUILD/tools/bench_train" --shape "$shape" --precision "$prec" \
      --steps "$STEPS" --peaks $size | tee "$OUT/lorafit-$shape-$prec" || true
  done
  if [ -n "$PY" ]; then
    for amp in none bf16; do
      # Without native bf16 PyTorch's autocast runs for minutes per step (303 s at the SmolLM
      # shape on a Zen 3): skipped unless BENCH_TORCH_BF16=1.
      if [ $amp = bf16 ] && grep -q 'emulated' "$OUT/lorafit-$shape-bf16" 2>/dev/null &&
         [ "${BENCH_TORCH_BF16:-0}" != 1 ]; then
        echo "== bench_torch.py --shape $shape --amp bf16 skipped: this CPU has no native bf16" \
          "(BENCH_TORCH_BF16=1 runs it anyway)"
        continue
      fi
      echo "== bench_torch.py --shape $shape --amp $amp$size"
      # shellcheck disable=SC2086
      "$PY" tools/bench_torch.py --shape "$shape" --amp "$amp" --steps "$STEPS" $size |
        tee "$OUT/torch-$shape-$amp" || true
    done
  fi
done

echo "== side by side (same machine, same run; tokens/s, higher is better)"
printf '%-12s %-22s %10s %10s %10s\n' shape run ms/step tokens/s "RSS MB"
for shape in $SHAPES; do
  for run in lorafit-f32 lorafit-bf16 torch-none torch-bf16; do
    f="$OUT/${run%%-*}-$shape-${run#*-}"
    [ -f "$f" ] || continue
    set -- $(figures "$f")
    case "$run" in torch-none) label="pytorch float32" ;; torch-bf16) label="pytorch bf16 autocast" ;;
      *) label="lorafit ${run#*-}" ;; esac
    printf '%-12s %-22s %10s %10s %10s\n' "$shape" "$label" "$1" "$2" "$3"
    eval "tps_${run%%-*}_${run#*-}=$2"
  done
  echo "$shape: lorafit f32 / pytorch float32 = $(ratio "${tps_lorafit_f32:-}" "${tps_torch_none:-}")," \
    "lorafit bf16 / pytorch bf16 = $(ratio "${tps_lorafit_bf16:-}" "${tps_torch_bf16:-}")," \
    "lorafit bf16 / lorafit f32 = $(ratio "${tps_lorafit_bf16:-}" "${tps_lorafit_f32:-}")"
  unset tps_lorafit_f32 tps_lorafit_bf16 tps_torch_none tps_torch_bf16
  for prec in f32 bf16; do
    f="$OUT/lorafit-$shape-$prec"
    [ -f "$f" ] || continue
    echo "$shape: lorafit $prec matrix products at $(products_gflops "$f") GFLOP/s" \
      "(peaks in this run, 1024^3: OpenBLAS sgemm $(sed -n 's/^sgemm *\([0-9.]*\) GFLOP.*/\1/p' "$OUT/bench_kernels" 2>/dev/null)," \
      "oneDNN f32 $(sed -n 's/^oneDNN f32 matmul *\([0-9.]*\) GFLOP.*/\1/p' "$OUT/bench_kernels" 2>/dev/null)," \
      "oneDNN bf16 $(sed -n 's/^oneDNN bf16 matmul *\([0-9.]*\) GFLOP.*/\1/p; s/^oneDNN bf16 matmul *unimplemented.*/unimplemented here/p' "$OUT/bench_kernels" 2>/dev/null))"
    sed -n 's/^bench_train: where a step goes/  where a step goes/p' "$f" | tail -1
    ms=$(figures "$f" | cut -d' ' -f1) at_peak=$(products_at_peak_ms "$f" "$OUT/bench_kernels" "$prec")
    case $prec in f32) peak="f32 (the faster of OpenBLAS sgemm and oneDNN f32)" target=1.15 ;;
      *) peak="oneDNN bf16" target=1.3 ;; esac
    echo "$shape: lorafit $prec step / its products at the $peak peak of this run =" \
      "$(ratio "$ms" "$at_peak") ($ms ms against $at_peak ms; the target is <= ${target}x);" \
      "each step against the peak measured just before it: median" \
      "$(sed -n 's/.*measured before it.*; median \([0-9.]*x\).*/\1/p' "$f" | tail -1)"
  done
done

# The families' steps against the Llama-shaped one of this run: the matrix products' share of
# the step and their GFLOP/s (new element-wise ops must not eat the products' gain).
llama=""
for shape in $SHAPES; do case "$shape" in smollm-135m) [ -n "$llama" ] || llama=$shape ;;
  llama-1b) llama=$shape ;; esac; done
for shape in $SHAPES; do
  case "$shape" in qwen3-0.6b|gemma3-1b) ;; *) continue ;; esac
  [ -n "$llama" ] || { echo "$shape: no Llama-shaped step in BENCH_SHAPES to compare with"; break; }
  for prec in f32 bf16; do
    f="$OUT/lorafit-$shape-$prec" l="$OUT/lorafit-$llama-$prec"
    [ -f "$f" ] && [ -f "$l" ] || continue
    fs=$(products_share "$f") fg=$(products_gflops "$f") ls=$(products_share "$l") lg=$(products_gflops "$l")
    echo "$shape: lorafit $prec matrix products ${fs:--}% of the step at ${fg:--} GFLOP/s;" \
      "$llama ${ls:--}% at ${lg:--} GFLOP/s: share $(ratio "$fs" "$ls"), GFLOP/s" \
      "$(ratio "$fg" "$lg") of the Llama shape's (the target is within 10%: 0.90x-1.10x)"
  done
done

long_sequences() {
  [ "${BENCH_LONG:-1}" = 0 ] || "$(dirname "$0")/bench_long.sh" "$BUILD" "$OUT/bench_kernels"
}
# The Qwen3.5 step and its DeltaNet layers (tools/bench_qwen35.sh), when asked for.
[ "${BENCH_QWEN35:-0}" = 0 ] || "$(dirname "$0")/bench_qwen35.sh" "$BUILD" || true
# The Gemma 4 E2B step and its per-layer embedding table (tools/bench_gemma4.sh).
[ "${BENCH_GEMMA4:-1}" = 0 ] || "$(dirname "$0")/bench_gemma4.sh" "$BUILD" || true
# Quantized bases: the SmolLM-135M step on F32, BF16, Q8_0, Q6_K, Q4_K weights (tools/bench_qlora.sh).
if [ "${BENCH_QLORA:-1}" != 0 ]; then
  echo "== bench_qlora: the SmolLM-135M step on quantized bases"
  "$(dirname "$0")/bench_qlora.sh" "$BUILD" || true
fi
# The preference step: DPO against SFT on the same policy tokens (tools/bench_dpo.sh).
if [ "${BENCH_DPO:-1}" != 0 ]; then
  echo "== bench_dpo: DPO and SFT steps at the SmolLM-135M shape"
  "$(dirname "$0")/bench_dpo.sh" "$BUILD" || true
fi
[ "${BENCH_CHECKPOINTING:-1}" = 0 ] && { long_sequences; exit 0; }
# Each run in a process of its own: peak RSS (getrusage) is the process's high-water mark.
echo "== gradient checkpointing: bench_train without and with --gradient-checkpointing"
ck_shapes=""
for shape in $SHAPES; do
  case "$shape" in
    smollm-135m) ck_shapes="$ck_shapes smollm-135m" ;;
    llama-1b)
      echo "== make_model: Llama-3.2-1B shape, BF16 (2.5 GB in $OUT)"
      if "$BUILD/tools/make_model" --out "$OUT/llama-1b-bf16" --hidden 2048 --intermediate 8192 \
        --layers 16 --heads 32 --kv-heads 8 --vocab 128256 --tied --dtype bf16; then
        ck_shapes="$ck_shapes llama-1b"
      fi ;;
  esac
done
for shape in $ck_shapes; do
  case "$shape" in
    smollm-135m) args="--shape smollm-135m --batch 4 --seq 256 --rank 8" ;;
    llama-1b) args="--model $OUT/llama-1b-bf16 --dtype bf16 --batch 1 --seq 1024 --rank 16" ;;
  esac
  for ck in off on; do
    flag=""; [ "$ck" = on ] && flag="--gradient-checkpointing"
    echo "== bench_train $args $flag"
    # shellcheck disable=SC2086
    LORAFIT_TOOLS="$BUILD/tools" "$BUILD/tools/bench_train" $args $flag --steps "$STEPS" |
      tee "$OUT/ckpt-$shape-$ck" || true
  done
done
rm -rf "$OUT/llama-1b-bf16"
if [ -n "$ck_shapes" ]; then
  echo "== gradient checkpointing side by side (peak RSS does not depend on load; step times"
  echo "   do, on a machine shared with other jobs)"
  printf '%-12s %-22s %10s %10s\n' shape run ms/step "RSS MB"
  for shape in $ck_shapes; do
    set -- $(figures "$OUT/ckpt-$shape-off"); ms_off=$1; rss_off=$3
    set -- $(figures "$OUT/ckpt-$shape-on"); ms_on=$1; rss_on=$3
    printf '%-12s %-22s %10s %10s\n' "$shape" "without" "$ms_off" "$rss_off"
    printf '%-12s %-22s %10s %10s\n' "$shape" "with checkpointing" "$ms_on" "$rss_on"
    echo "$shape: peak RSS with / without = $(ratio "$rss_on" "$rss_off"), step time with / without = $(ratio "$ms_on" "$ms_off")"
  done
fi
long_sequences
