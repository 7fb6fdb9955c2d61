#!/bin/sh
# tools/bench_dpo.sh BUILD — make bench's preference step: `lorafit train` at the SmolLM-135M
# shape (a random model from make_model) on the same policy tokens three ways: an SFT step
# (4 rows x 256, loss on the last 128 tokens of each row), a DPO step (2 pairs: prompt 128 +
# completion 128, chosen and rejected in one batch of 4 rows; the reference pass in the
# step) and the DPO step with dpo.precompute_ref_log_probs; ms per step (step_ms below),
# one thread by default. Figures, never asserted; run it on an idle machine.
#   BENCH_DPO_STEPS  steps per run (default 4)   BENCH_DPO_THREADS  threads (default 1)
set -e
BUILD=${1:-build}
STEPS=${BENCH_DPO_STEPS:-4}
THREADS=${BENCH_DPO_THREADS:-1}
. "$(dirname "$0")/bench_lib.sh"
D=$(mktemp -d /tmp/lorafit-bench-dpo-XXXXXX)
[ -n "$BENCH_DPO_KEEP" ] || trap 'rm -rf "$D"' EXIT
"$BUILD/tools/make_model" --out "$D/model" --preset smollm-135m >/dev/null
python3 - "$D" "$STEPS" <<'PYEOF'
import json, random, sys
d, steps = sys.argv[1], int(sys.argv[2])
rng = random.Random(5); V = 49152; ids = lambda n: [rng.randrange(3, V) for _ in range(n)]
with open(d + '/pairs.jsonl', 'w') as p, open(d + '/rows.jsonl', 'w') as r:
    for _ in range(2 * steps + 2):
        prompt, c, j = ids(128), ids(128), ids(128)
        p.write(json.dumps({'prompt_ids': prompt, 'chosen_ids': c, 'rejected_ids': j}) + '\n')
        for comp in (c, j):
            r.write(json.dumps({'input_ids': prompt + comp, 'labels': [-100] * 128 + comp}) + '\n')
PYEOF
# Wall ms of one step: the steps after the first, from metrics.jsonl's elapsed_s (model
# loading, the warm-up step and the precomputation are before step 1 ends). Not the
# process's CPU time: on a VM the kernel's time to fault in the arenas at load varies by
# seconds from run to run, which swamped the difference of two runs' CPU times.
step_ms() { # name objective batch data extra...
  name=$1; obj=$2; batch=$3; data=$4; shift 4
  cat > "$D/$name.yaml" <<YEOF
model: {path: $D/model}
lora: {r: 8, alpha: 16}
data: {train: $D/$data, seq_len: 256, shuffle: false}
train: {objective: $obj, batch_size: $batch, max_steps: $STEPS, lr: 1.0e-4, threads: $THREADS}
output: {dir: $D/$name, save_every: 0}
log: {every: 1}
YEOF
  "$BUILD/lorafit" train "$D/$name.yaml" "$@" >"$D/$name.log" 2>&1 ||
    { cat "$D/$name.log" >&2; echo "bench_dpo: $name failed" >&2; exit 1; }
  python3 - "$D/$name/metrics.jsonl" <<'PYEOF'
import json, sys
t = [r['elapsed_s'] for r in map(json.loads, open(sys.argv[1])) if 'loss' in r and 'step' in r]
print('%.0f' % ((t[-1] - t[0]) / (len(t) - 1) * 1e3))
PYEOF
}
sft=$(step_ms sft sft 4 rows.jsonl)
dpo=$(step_ms dpo dpo 2 pairs.jsonl)
pre=$(step_ms pre dpo 2 pairs.jsonl --set dpo.precompute_ref_log_probs=true)
echo "bench_dpo: SmolLM-135M shape, 4 rows x 256 (2 pairs of prompt 128 + completion 128), r 8"
echo "bench_dpo: ms per step ($THREADS thread(s)): SFT $sft ms, DPO $dpo ms ($(ratio "$dpo" "$sft")), DPO with precomputed reference $pre ms ($(ratio "$pre" "$sft"))"
