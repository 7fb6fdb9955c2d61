#!/bin/sh
# tools/bench_dpo.sh BUILD — make bench's preference step: `lorafit train` at the SmolLM-135M
# shape (a random model from make_model) on the same policy tokens three ways: an SFT step
# (4 rows x 256, loss on the last 128 tokens of each row), a DPO step (2 pairs: prompt 128 +
# completion 128, chosen and rejected in one batch of 4 rows; the reference pass in the
# step) and the DPO step with dpo.precompute_ref_log_probs; CPU ms per step (step_ms below),
# one thread by default. Figures, never asserted.
#   BENCH_DPO_STEPS  steps per run (default 4)   BENCH_DPO_THREADS  threads (default 1)
set -e
BUILD=${1:-build}
STEPS=${BENCH_DPO_STEPS:-4}
THREADS=${BENCH_DPO_THREADS:-1}
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
run() { # name objective batch data steps extra... -> the run's CPU seconds (user + system)
  name=$1; obj=$2; batch=$3; data=$4; steps=$5; shift 5
  cat > "$D/$name.yaml" <<YEOF
model: {path: $D/model}
lora: {r: 8, alpha: 16}
data: {train: $D/$data, seq_len: 256, shuffle: false}
train: {objective: $obj, batch_size: $batch, max_steps: $steps, lr: 1.0e-4, threads: $THREADS}
output: {dir: $D/$name-$steps, save_every: 0}
log: {every: 1}
YEOF
  python3 - "$BUILD/lorafit" train "$D/$name.yaml" "$@" <<'PYEOF'
import os, sys
pid = os.fork()
if pid == 0:
    fd = os.open(os.devnull, os.O_WRONLY); os.dup2(fd, 1); os.dup2(fd, 2)
    os.execv(sys.argv[1], sys.argv[1:])
_, status, ru = os.wait4(pid, 0)
if status: sys.exit('bench_dpo: %s failed' % ' '.join(sys.argv[1:]))
print('%.3f' % (ru.ru_utime + ru.ru_stime))
PYEOF
}
# CPU ms of one step: the runs of STEPS and of 1 step differ by STEPS - 1 steps (model
# loading, the warm-up step and the precomputation cancel out); CPU time, unlike wall time,
# does not grow when other jobs share the cores.
step_ms() { # name objective batch data extra...
  n=$1; o=$2; bs=$3; f=$4; shift 4
  a=$(run "$n" "$o" "$bs" "$f" "$STEPS" "$@"); b=$(run "$n" "$o" "$bs" "$f" 1 "$@")
  python3 -c "print('%.0f' % (($a - $b) / ($STEPS - 1) * 1e3))"
}
sft=$(step_ms sft sft 4 rows.jsonl)
dpo=$(step_ms dpo dpo 2 pairs.jsonl)
pre=$(step_ms pre dpo 2 pairs.jsonl --set dpo.precompute_ref_log_probs=true)
echo "bench_dpo: SmolLM-135M shape, 4 rows x 256 (2 pairs of prompt 128 + completion 128), r 8"
echo "bench_dpo: CPU per step ($THREADS thread(s)): SFT $sft ms, DPO $dpo ms ($(python3 -c "print('%.2f' % ($dpo / $sft))")x), DPO with precomputed reference $pre ms ($(python3 -c "print('%.2f' % ($pre / $sft))")x)"
