"""A preference set from TinyStories text: each record's prompt is the start of a story,
chosen the sentence that follows it in the story, rejected the same sentence with its
words shuffled (a deterministic shuffle). Standard (text) form by default; --form
implicit writes chosen/rejected as prompt + completion with no prompt field, --form chat
writes the conversational form (user: prompt, assistant: completion).

  make_preference_set.py --raw ../shared/data/tinystories/raw.txt --out FILE --n N
      [--skip S] [--prompt-sentences K] [--seed SEED] [--form text|implicit|chat]
"""
import argparse, json, random, re

ap = argparse.ArgumentParser()
ap.add_argument('--raw', required=True); ap.add_argument('--out', required=True)
ap.add_argument('--n', type=int, required=True); ap.add_argument('--skip', type=int, default=0)
ap.add_argument('--prompt-sentences', type=int, default=1); ap.add_argument('--seed', type=int, default=1)
ap.add_argument('--form', default='text', choices=['text', 'implicit', 'chat'])
a = ap.parse_args()
rng = random.Random(a.seed)
stories = [s for s in open(a.raw, encoding='utf-8').read().split('\n') if s.strip()]
out, k = [], 0
for story in stories:
    sents = re.findall(r'[^.!?]+[.!?]', story)
    if len(sents) < a.prompt_sentences + 1: continue
    k += 1
    if k <= a.skip: continue
    prompt = ''.join(sents[:a.prompt_sentences]).strip()
    chosen = ' ' + sents[a.prompt_sentences].strip()
    words = chosen.split()
    if len(words) < 3: continue
    shuffled = words[:]
    while shuffled == words: rng.shuffle(shuffled)
    rejected = ' ' + ' '.join(shuffled)
    if a.form == 'text': out.append({'prompt': prompt, 'chosen': chosen, 'rejected': rejected})
    elif a.form == 'implicit': out.append({'chosen': prompt + chosen, 'rejected': prompt + rejected})
    else:
        u = [{'role': 'user', 'content': prompt}]
        out.append({'prompt': u, 'chosen': [{'role': 'assistant', 'content': chosen.strip()}],
                    'rejected': [{'role': 'assistant', 'content': rejected.strip()}]})
    if len(out) == a.n: break
with open(a.out, 'w', encoding='utf-8') as f:
    for r in out: f.write(json.dumps(r, ensure_ascii=False) + '\n')
