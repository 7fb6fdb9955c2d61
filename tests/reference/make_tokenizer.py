#!/usr/bin/python3
"""Write a small byte-level BPE tokenizer in Qwen2 / Qwen3's tokenizer.json form (NFC, the
Qwen2 pre-tokenizer regex, ByteLevel without its regex, byte-level decoder) into --out:
the 256 byte symbols, --merges merges learnt from a fixed English text, Qwen3's special
tokens after them, and tokenizer_config.json with --chat-template's template (a Jinja file,
or a tests/data/chat/template_*.json whose "source" it takes). For tiny random models whose
vocabulary must fit a tokenizer that llama.cpp and lorafit both load. --gemma: Gemma's special
tokens and bos / eos instead (the byte-level BPE stays: llama.cpp's gemma3 loads either);
--gemma4: Gemma 4's (<|turn>, <turn|>, <|channel>, <channel|>)."""
import argparse, json, os, unicodedata
ap = argparse.ArgumentParser(); ap.add_argument('--out', required=True)
ap.add_argument('--merges', type=int, default=48); ap.add_argument('--chat-template', required=True)
ap.add_argument('--gemma', action='store_true', help="Gemma's special tokens (<bos>, <start_of_turn>, ...) instead of Qwen3's")
ap.add_argument('--gemma4', action='store_true', help="Gemma 4's special tokens (<bos>, <|turn>, <turn|>, ...)")
a = ap.parse_args()
TEXT = ("The quick brown fox jumps over the lazy dog. Once upon a time there was a little girl "
        "who liked to read stories about the sea and the stars. She said hello to the world, and "
        "the world said hello back. What is the answer? The answer is that there is no answer, "
        "only the question and the time we spend on it.")
QWEN2_RE = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+"
            r"|\s+(?!\S)|\s+")
def bytes_to_unicode():  # GPT-2's byte <-> printable character table
    bs = list(range(ord('!'), ord('~') + 1)) + list(range(ord('¡'), ord('¬') + 1)) + list(range(ord('®'), ord('ÿ') + 1))
    cs = bs[:]; n = 0
    for b in range(256):
        if b not in bs: bs.append(b); cs.append(256 + n); n += 1
    return dict(zip(bs, map(chr, cs)))
B2U = bytes_to_unicode()
vocab = {B2U[b]: i for i, b in enumerate(sorted(B2U))}
# words split on spaces (a space starts a word, as the regex does), as byte symbols
words = {}
for w in TEXT.replace('.', ' .').replace(',', ' ,').replace('?', ' ?').split(' '):
    sym = tuple(B2U[b] for b in (' ' + w).encode())
    words[sym] = words.get(sym, 0) + 1
merges = []
for _ in range(a.merges):  # the most frequent pair, first seen on ties: deterministic
    pairs = {}
    for w, f in words.items():
        for p in zip(w, w[1:]): pairs[p] = pairs.get(p, 0) + f
    if not pairs: break
    best = max(pairs, key=lambda p: (pairs[p], -list(pairs).index(p)))
    merges.append(best); vocab[best[0] + best[1]] = len(vocab)
    nw = {}
    for w, f in words.items():
        out, i = [], 0
        while i < len(w):
            if i + 1 < len(w) and (w[i], w[i + 1]) == best: out.append(w[i] + w[i + 1]); i += 2
            else: out.append(w[i]); i += 1
        nw[tuple(out)] = f
    words = nw
if a.gemma4: a.gemma = True
specials = [('<pad>', True), ('<eos>', True), ('<bos>', True), ('<|turn>', True), ('<turn|>', True),
            ('<|channel>', True), ('<channel|>', True)] if a.gemma4 else [
            ('<pad>', True), ('<eos>', True), ('<bos>', True), ('<start_of_turn>', True),
            ('<end_of_turn>', True)] if a.gemma else [('<|endoftext|>', True), ('<|im_start|>', True), ('<|im_end|>', True), ('<tool_call>', False),
            ('</tool_call>', False), ('<think>', False), ('</think>', False)]
added = [{'id': len(vocab) + i, 'content': t, 'single_word': False, 'lstrip': False, 'rstrip': False,
          'normalized': False, 'special': sp} for i, (t, sp) in enumerate(specials)]
tok = {'version': '1.0', 'truncation': None, 'padding': None, 'added_tokens': added,
       'normalizer': {'type': 'NFC'},
       'pre_tokenizer': {'type': 'Sequence', 'pretokenizers': [
           {'type': 'Split', 'pattern': {'Regex': QWEN2_RE}, 'behavior': 'Isolated', 'invert': False},
           {'type': 'ByteLevel', 'add_prefix_space': False, 'trim_offsets': False, 'use_regex': False}]},
       'post_processor': {'type': 'ByteLevel', 'add_prefix_space': False, 'trim_offsets': False, 'use_regex': False},
       'decoder': {'type': 'ByteLevel', 'add_prefix_space': False, 'trim_offsets': False, 'use_regex': False},
       'model': {'type': 'BPE', 'dropout': None, 'unk_token': None, 'continuing_subword_prefix': '',
                 'end_of_word_suffix': '', 'fuse_unk': False, 'byte_fallback': False, 'ignore_merges': False,
                 'vocab': vocab, 'merges': [' '.join(m) for m in merges]}}
src = a.chat_template
template = json.load(open(src))['source'] if src.endswith('.json') else open(src).read()
tcfg = {'add_bos_token': False, 'add_prefix_space': False,
        'added_tokens_decoder': {str(t['id']): {k: t[k] for k in t if k != 'id'} for t in added},
        'bos_token': '<bos>' if a.gemma else None, 'chat_template': template, 'clean_up_tokenization_spaces': False,
        'eos_token': '<eos>' if a.gemma4 else '<end_of_turn>' if a.gemma else '<|im_end|>', 'errors': 'replace', 'model_max_length': 4096,
        'pad_token': '<pad>' if a.gemma else '<|endoftext|>',
        'split_special_tokens': False, 'tokenizer_class': 'Qwen2Tokenizer', 'unk_token': None}
os.makedirs(a.out, exist_ok=True)
json.dump(tok, open(os.path.join(a.out, 'tokenizer.json'), 'w'), ensure_ascii=False, indent=1)
json.dump(tcfg, open(os.path.join(a.out, 'tokenizer_config.json'), 'w'), ensure_ascii=False, indent=2)
print(json.dumps({'tokens': len(vocab) + len(added), 'merges': len(merges),
                  'specials': {t['content']: t['id'] for t in added}}))
