"""The stories260K tokenizer (a Llama sentencepiece-style BPE in tokenizer.json form) in plain
Python, as tokenizers applies it: added tokens cut out of the raw text first (none is
normalized), then each remaining piece normalized (spaces at both ends removed, runs of
spaces made one, '▁' prepended to a non-empty piece, ' ' -> '▁'), then BPE over the whole
piece (no pre-tokenizer): the lowest-ranked adjacent pair merged first, leftmost on ties;
characters outside the vocabulary fall back to their UTF-8 bytes <0xXX>. The post-processor
puts <s> first when special tokens are added. Checked against the Hugging Face ids of
tests/data/tokenizer/stories260k.json (python3 sp_bpe.py TOKENIZER_JSON CASES_JSON)."""
import json, re, sys

class Tokenizer:
    def __init__(s, path):
        t = json.load(open(path, encoding='utf-8'))
        s.vocab = t['model']['vocab']
        s.ranks = {tuple(m.split(' ') if isinstance(m, str) else m): i for i, m in enumerate(t['model']['merges'])}
        s.added = {a['content']: a['id'] for a in t['added_tokens']}
        s.bos = s.added.get('<s>')
        s.split = re.compile('|'.join(re.escape(a) for a in sorted(s.added, key=len, reverse=True)))
    def piece(s, text):
        text = re.sub(r'\A +| +\Z', '', text); text = re.sub(r' {2,}', ' ', text)
        if not text: return []
        text = ('▁' + text).replace(' ', '▁')
        sym = []
        for ch in text:
            if ch in s.vocab: sym.append(ch)
            else: sym.extend('<0x%02X>' % b for b in ch.encode('utf-8'))
        while len(sym) > 1:
            best = None
            for i in range(len(sym) - 1):
                r = s.ranks.get((sym[i], sym[i + 1]))
                if r is not None and (best is None or r < best[0]): best = (r, i)
            if best is None: break
            i = best[1]; sym[i:i + 2] = [sym[i] + sym[i + 1]]
        return [s.vocab[x] for x in sym]
    def encode(s, text, special=True):
        ids, at = [], 0
        for m in s.split.finditer(text):
            ids += s.piece(text[at:m.start()]); ids.append(s.added[m.group()]); at = m.end()
        ids += s.piece(text[at:])
        return ([s.bos] if special else []) + ids

if __name__ == '__main__':
    tok = Tokenizer(sys.argv[1]); cases = json.load(open(sys.argv[2]))['cases']; bad = 0
    for c in cases:
        if tok.encode(c['text']) != c['ids'] or tok.encode(c['text'], False) != c['ids_no_special']:
            bad += 1; print('MISMATCH', repr(c['text'][:50]), tok.encode(c['text'])[:16], c['ids'][:16])
    print(f'{len(cases) - bad}/{len(cases)} cases agree')
