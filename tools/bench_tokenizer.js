#!/usr/bin/env node
// tools/bench_tokenizer.js — the Rust tokenizers library's throughput on one thread, measured the
// way tools/bench_tokenizer.c measures ours: each line of TEXT_FILE encoded on its own without
// special tokens, a few passes, the best one reported. Needs build/tokref (tools/gen_tokenizer_expect.sh --install).
//   node tools/bench_tokenizer.js NODE_MODULES_DIR TOKENIZER_DIR TEXT_FILE [PASSES]
'use strict';
process.env.RAYON_NUM_THREADS = '1';
process.env.TOKENIZERS_PARALLELISM = 'false';
const fs = require('fs');
const path = require('path');
const [mods, dir, file, passesArg] = process.argv.slice(2);
const { Tokenizer } = require(path.resolve(mods, '@anush008/tokenizers'));
(async () => {
  let t0 = process.hrtime.bigint();
  const tok = Tokenizer.fromFile(path.join(dir, 'tokenizer.json'));
  const loadS = Number(process.hrtime.bigint() - t0) / 1e9;
  const text = fs.readFileSync(file, 'utf8');
  const lines = text.split('\n');
  const passes = Number(passesArg || 3);
  let best = Infinity, tokens = 0;
  for (let p = 0; p < passes; p++) {
    tokens = 0;
    t0 = process.hrtime.bigint();
    // in batches: one call per line would measure the Node binding's per-call cost, not the library
    for (let i = 0; i < lines.length; i += 2000) {
      const encs = await tok.encodeBatch(lines.slice(i, i + 2000), { addSpecialTokens: false });
      for (const e of encs) tokens += e.getLength();
    }
    const s = Number(process.hrtime.bigint() - t0) / 1e9;
    if (s < best) best = s;
  }
  const mb = Buffer.byteLength(text) / 1e6;
  console.log(`tokenizer Rust  ${dir.padEnd(28)} load ${loadS.toFixed(2)} s  ${tokens} tokens  ${Math.round(tokens / best)} tokens/s  ${(mb / best).toFixed(1)} MB/s`);
})();
