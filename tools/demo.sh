#!/bin/sh
# make demo: a self-contained fine-tune (no ../shared, no internet). Generates a small random
# Llama-family model and a synthetic but learnable tokenized dataset, fine-tunes LoRA adapters
# on it with configs/demo.yaml, and shows where the adapter and metrics are.
set -e
BUILD=${1:-build}
DEMO=runs/demo
rm -rf "$DEMO"
mkdir -p "$DEMO"
echo "== generating a random model (4 layers, hidden 128, vocab 256) and a synthetic dataset"
"$BUILD"/tools/make_model --out "$DEMO/model" --arch llama --hidden 128 --intermediate 344 \
  --layers 4 --heads 4 --kv-heads 2 --vocab 256 --std 0.1 --seed 1
"$BUILD"/tools/make_dataset --out "$DEMO/train.jsonl" --rows 4000 --seq 64 --vocab 256 --seed 1
"$BUILD"/tools/make_dataset --out "$DEMO/valid.jsonl" --rows 64 --seq 64 --vocab 256 --seed 2
echo "== lorafit eval configs/demo.yaml   (the base model on the validation rows)"
"$BUILD"/lorafit eval configs/demo.yaml
echo "== lorafit train configs/demo.yaml"
"$BUILD"/lorafit train configs/demo.yaml
echo "== lorafit eval configs/demo.yaml --adapter $DEMO/out/adapter   (after fine-tuning)"
"$BUILD"/lorafit eval configs/demo.yaml --adapter "$DEMO/out/adapter"
OUT=$DEMO/out
cat <<EOF

== the demo is done
adapter: $OUT/adapter   (PEFT: adapter_model.safetensors + adapter_config.json)
metrics: $OUT/metrics.jsonl   (one JSON line per logged step and evaluation)

What to try next:
  ./lorafit eval configs/demo.yaml --adapter $OUT/adapter
  ./lorafit generate --model $DEMO/model --adapter $OUT/adapter --prompt-ids "1 2 3" -n 16
  ./lorafit export $OUT/adapter --out $DEMO/adapter-f16 --dtype f16
  ./lorafit inspect $OUT/adapter
EOF
