#!/bin/sh
# tools/bench_mpi.sh BUILD — data-parallel scaling of `lorafit train` on this machine (run by
# make bench): the same job as one rank with one thread, as two ranks with one thread each
# (mpirun -np 2, each rank bound to a core) at the same per-rank batch, and as one rank with
# two threads at the two ranks' global batch. Target tokens per second over the steps after
# the first (metrics.jsonl), and the ratios. Figures are printed, never asserted.
#   BENCH_MPI_MODEL  stories260K (default when ../shared has it: TinyStories, seq_len 512,
#                    4 rows per rank) or smollm-135m (a random model of that shape from
#                    make_model on make_dataset rows, seq_len 256, 1 row per rank)
#   BENCH_MPI_STEPS  steps per run (default 12 for stories260K, 4 for smollm-135m)
BUILD=${1:-build}
SHARED=${LORAFIT_SHARED:-../shared}
if ! command -v mpirun >/dev/null 2>&1; then
  echo "== MPI scaling skipped: mpirun is missing (tools/install-deps installs openmpi-bin)"
  exit 0
fi
MODEL=${BENCH_MPI_MODEL:-stories260K}
[ -d "$SHARED/models/stories260K" ] || MODEL=smollm-135m
DIR=$(mktemp -d /tmp/lorafit-bench-mpi-XXXXXX)
trap 'rm -rf "$DIR"' EXIT
case "$MODEL" in
  stories260K)
    model="$SHARED/models/stories260K"; train="$SHARED/data/tinystories/train.jsonl.gz"
    seq=512; batch=4; steps=${BENCH_MPI_STEPS:-12} ;;
  smollm-135m)
    model="$DIR/model"; train="$DIR/rows.jsonl"; seq=256; batch=1; steps=${BENCH_MPI_STEPS:-4}
    "$BUILD/tools/make_model" --out "$model" --hidden 576 --intermediate 1536 --layers 30 \
      --heads 9 --kv-heads 3 --vocab 49152 --tied >/dev/null &&
      "$BUILD/tools/make_dataset" --out "$train" --rows 2000 --seq "$seq" --vocab 49152 \
        >/dev/null || { echo "== MPI scaling: cannot make the $MODEL model"; exit 0; } ;;
  *) echo "BENCH_MPI_MODEL: stories260K or smollm-135m, not $MODEL" >&2; exit 2 ;;
esac
cat > "$DIR/job.yaml" <<YEOF
model: {path: $model}
data: {train: $train, seq_len: $seq, packing: true, shuffle: false}
train: {batch_size: $batch, max_steps: $steps, lr: 1.0e-4, threads: 1}
output: {dir: $DIR/out, save_every: 0}
log: {every: 1}
YEOF
# Target tokens/s from the second metrics line to the last (the first step warms up).
rate() {
  python3 - "$1" <<'PYEOF'
import json, sys
lines = [json.loads(l) for l in open(sys.argv[1]) if '"loss"' in l]
a, b = lines[0], lines[-1]
dt = b["elapsed_s"] - a["elapsed_s"]
print("%.0f" % ((b["tokens"] - a["tokens"]) / dt) if len(lines) > 1 and dt > 0 else "-")
PYEOF
}
# One run: the variable to set, a label, then the command's words; prints "label tokens/s".
run() {
  var=$1; label=$2; shift 2
  rm -rf "$DIR/out"
  if "$@" > "$DIR/$var.log" 2>&1; then r=$(rate "$DIR/out/metrics.jsonl"); else r=failed; fi
  printf '%-36s %10s\n' "$label" "$r"
  eval "$var=\$r"
}
MPIRUN="mpirun --allow-run-as-root --bind-to core --map-by core --mca btl self,vader \
--mca btl_vader_single_copy_mechanism none"
echo "== MPI scaling: $MODEL, seq_len $seq, $batch rows per rank, $steps steps (target tokens/s)"
run one "1 rank x 1 thread, batch $batch" "$BUILD/lorafit" train "$DIR/job.yaml"
# shellcheck disable=SC2086
run two "2 ranks x 1 thread, batch $batch each" $MPIRUN -np 2 "$BUILD/lorafit" train \
  "$DIR/job.yaml"
run threads "1 rank x 2 threads, batch $((batch * 2))" "$BUILD/lorafit" train "$DIR/job.yaml" \
  --set train.threads=2 --set train.batch_size=$((batch * 2))
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a + 0 > 0 && b + 0 > 0) printf "%.2fx", a / b; else print "-" }'; }
echo "2 ranks x 1 thread / 1 rank x 1 thread (same per-rank batch): $(ratio "$two" "$one")"
echo "2 ranks x 1 thread / 1 rank x 2 threads (same global batch): $(ratio "$two" "$threads")"
