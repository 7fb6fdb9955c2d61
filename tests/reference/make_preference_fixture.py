#!/usr/bin/python3
"""The float64 reference of TRL's DPOTrainer and ORPO trainer with LoRA (trl/trainer/dpo_trainer.py,
trl/experimental/orpo/orpo_trainer.py, trl/data_utils.py), on a preference set tokenized by
TRL's rules with the model's own tokenizer (sp_bpe.py).

Tokenization (DPOTrainer._prepare_dataset): the implicit-prompt form gets its prompt from
extract_prompt; text completions get the EOS text appended unless they end with it;
prompt_ids = tok(prompt), chosen_ids = tok(prompt + chosen)[len(prompt_ids):] (special tokens
added); conversational: the chat template (add_generation_prompt for the prompt) tokenized
without special tokens. Pairs with len(prompt_ids) >= max_length are dropped; the collator cuts
prompt + completion at max_length (keep_start).

Training: batch B pairs x grad_accum micro-batches, no shuffling, constant lr, AdamW as
torch.optim.AdamW with global-norm clipping (make_fixture.py's). Per micro-batch the loss is
the mean over its pairs, the step's the mean over micro-batches; metrics are each
micro-batch's means, averaged over the micro-batches of the step. Writes, per variant
(dpo-sigmoid-initial, ..., orpo): expected-VARIANT.safetensors (grad.* of step 1, final.*
after the steps) and expected.json (losses, metrics of each step); and expected_ids.json
(each data file's triples, and whether they are dropped)."""
import argparse, json, math, os, sys, numpy as np, torch
sys.path.insert(0, os.path.dirname(__file__)); import st, ref_llama, sp_bpe
F = torch.nn.functional
ap = argparse.ArgumentParser()
ap.add_argument('--model', required=True); ap.add_argument('--out', required=True)
ap.add_argument('--r', type=int, default=4); ap.add_argument('--alpha', type=float, default=8)
ap.add_argument('--batch', type=int, default=4); ap.add_argument('--accum', type=int, default=2)
ap.add_argument('--max-length', type=int, default=40); ap.add_argument('--steps', type=int, default=3)
ap.add_argument('--lr', type=float, default=1e-2); ap.add_argument('--wd', type=float, default=0.01)
ap.add_argument('--clip', type=float, default=1.0); ap.add_argument('--seed', type=int, default=7)
ap.add_argument('--beta', type=float, default=0.1); ap.add_argument('--orpo-beta', type=float, default=0.1)
a = ap.parse_args(); rng = np.random.default_rng(a.seed)
tok = sp_bpe.Tokenizer(os.path.join(a.model, 'tokenizer.json')); EOS = '</s>'
CHAT = ("{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}</s>{% endfor %}"
        "{% if add_generation_prompt %}<|assistant|>{% endif %}")
def render(messages, agp):  # CHAT, as Jinja renders it
    return ''.join(f"<|{m['role']}|>{m['content']}</s>" for m in messages) + ('<|assistant|>' if agp else '')

def extract_prompt(c, r):  # trl.data_utils.extract_prompt, corners included
    for idx in range(min(len(c), len(r))):
        if c[idx] != r[idx]:
            if c[idx - 1] == ' ': idx -= 1
            break
    return c[:idx], c[idx:], r[idx:]

def triple(rec):
    if 'prompt' not in rec: rec = dict(zip(('prompt', 'chosen', 'rejected'), extract_prompt(rec['chosen'], rec['rejected'])))
    if isinstance(rec['chosen'], list):
        p = tok.encode(render(rec['prompt'], True), False)
        pc = tok.encode(render(rec['prompt'] + rec['chosen'], False), False)
        pr = tok.encode(render(rec['prompt'] + rec['rejected'], False), False)
    else:
        c = rec['chosen'] if rec['chosen'].endswith(EOS) else rec['chosen'] + EOS
        r = rec['rejected'] if rec['rejected'].endswith(EOS) else rec['rejected'] + EOS
        p = tok.encode(rec['prompt']); pc = tok.encode(rec['prompt'] + c); pr = tok.encode(rec['prompt'] + r)
    return p, pc[len(p):], pr[len(p):]

os.makedirs(a.out, exist_ok=True)
ids_out = {}
for name in ('train.jsonl', 'implicit.jsonl', 'chat.jsonl'):
    path = os.path.join(a.out, name)
    if not os.path.exists(path): continue
    ids_out[name] = [dict(zip(('prompt', 'chosen', 'rejected'), triple(json.loads(l)))) for l in open(path, encoding='utf-8') if l.strip()]
    for t in ids_out[name]: t['dropped'] = len(t['prompt']) >= a.max_length
json.dump({'max_length': a.max_length, 'chat_template': CHAT, 'files': ids_out}, open(os.path.join(a.out, 'expected_ids.json'), 'w'), indent=1)
pairs = [t for t in ids_out['train.jsonl'] if not t['dropped']]
assert len(pairs) >= a.batch * a.accum * a.steps

ref = ref_llama.Ref(a.model)
tg = ref_llama.TARGETS; init = {}
for i in range(ref.L):
    for t in tg:
        W = ref.w[f'model.layers.{i}.{ref_llama.SUB[t]}.{t}.weight']; o, inn = W.shape; k = ref.key(i, t)
        init[k + '.lora_A.weight'] = (rng.standard_normal((a.r, inn)) * 0.2).astype(np.float32)
        init[k + '.lora_B.weight'] = (rng.standard_normal((o, a.r)) * 0.05).astype(np.float32)
ad = os.path.join(a.out, 'init_adapter'); os.makedirs(ad, exist_ok=True)
st.save(os.path.join(ad, 'adapter_model.safetensors'), init, {'format': 'pt'})
json.dump({'peft_type': 'LORA', 'task_type': 'CAUSAL_LM', 'r': a.r, 'lora_alpha': a.alpha, 'lora_dropout': 0.0,
           'target_modules': tg, 'bias': 'none', 'use_rslora': False, 'fan_in_fan_out': False,
           'base_model_name_or_path': os.path.basename(os.path.normpath(a.model)), 'inference_mode': True},
          open(os.path.join(ad, 'adapter_config.json'), 'w'), indent=2, sort_keys=True)

def rows_of(pair):  # the collator's two rows, cut at max_length; completion mask
    out = []
    for comp in (pair['chosen'], pair['rejected']):
        ids = (pair['prompt'] + comp)[:a.max_length]
        mask = ([0] * len(pair['prompt']) + [1] * len(comp))[:a.max_length]
        out.append((ids, mask))
    return out

def row_logps(ids, mask, full=False):
    """sum of completion-token log-probs, their count, and (full) the summed NLL over every
    predicted token and its count."""
    logits = ref.forward(torch.tensor([ids]))[0]
    lp = F.log_softmax(logits[:-1], -1).gather(1, torch.tensor(ids[1:])[:, None])[:, 0]
    m = torch.tensor(mask[1:], dtype=lp.dtype)
    return (lp * m).sum(), float(m.sum()), -lp.sum(), len(ids) - 1

def micro_batch(mb, variant, frozen):
    """The loss and metrics of one micro-batch (TRL's), differentiable in ref.lora."""
    orpo = variant == 'orpo'
    beta = a.orpo_beta if orpo else a.beta
    losses, m = [], {k: [] for k in ('rewards/chosen', 'rewards/rejected', 'rewards/accuracies', 'rewards/margins',
                                     'logps/chosen', 'logps/rejected', 'log_odds_ratio', 'log_odds_chosen')}
    nll_sum, nll_n = 0, 0
    for pair in mb:
        (ic, mc), (ir, mr) = rows_of(pair)
        lc, nc, nllc, nnc = row_logps(ic, mc); lr, nr, _, _ = row_logps(ir, mr)
        if orpo:
            lc, lr = lc / nc, lr / nr  # average_log_prob
            log1mexp = lambda x: torch.log1p(-torch.exp(x)) if x < -0.6931471805599453 else torch.log(-torch.expm1(x))
            odds = (lc - lr) - (log1mexp(lc) - log1mexp(lr)); ratio = F.logsigmoid(odds)
            losses.append(-beta * ratio); nll_sum = nll_sum + nllc; nll_n += nnc
            m['log_odds_ratio'].append(float(ratio)); m['log_odds_chosen'].append(float(odds))
            rc, rr = beta * float(lc), beta * float(lr)
        else:
            saved = ref.lora
            with torch.no_grad():
                ref.lora = frozen  # the reference: the initial adapter frozen, or none (base)
                rlc, _, _, _ = row_logps(ic, mc); rlr, _, _, _ = row_logps(ir, mr)
            ref.lora = saved
            cl, rl = lc - rlc, lr - rlr; delta = cl - rl
            kind = variant.split('-')[1]
            if kind == 'sigmoid': losses.append(-F.logsigmoid(beta * delta))
            elif kind == 'hinge': losses.append(torch.relu(1 - beta * delta))
            else:  # ipo: completion tokens of the (cut) rows, unshifted mask
                losses.append((cl / max(sum(mc), 1) - rl / max(sum(mr), 1) - 1 / (2 * beta)) ** 2)
            rc, rr = beta * float(cl), beta * float(rl)
        m['rewards/chosen'].append(rc); m['rewards/rejected'].append(rr)
        m['rewards/accuracies'].append(float(rc > rr)); m['rewards/margins'].append(rc - rr)
        m['logps/chosen'].append(float(lc)); m['logps/rejected'].append(float(lr))
    loss = torch.stack(losses).mean()
    metrics = {k: sum(v) / len(v) for k, v in m.items() if v}
    if orpo:
        nll = nll_sum / nll_n; loss = nll + loss; metrics['nll_loss'] = float(nll)
    return loss, metrics

variants = ['dpo-sigmoid-initial', 'dpo-sigmoid-base', 'dpo-ipo-initial', 'dpo-ipo-base',
            'dpo-hinge-initial', 'dpo-hinge-base', 'orpo']
summary = {'batch': a.batch, 'grad_accum': a.accum, 'max_length': a.max_length, 'steps': a.steps, 'lr': a.lr,
           'wd': a.wd, 'clip': a.clip, 'r': a.r, 'alpha': a.alpha, 'beta': a.beta, 'orpo_beta': a.orpo_beta,
           'variants': {}}
for variant in variants:
    ref.set_lora(init, a.alpha, a.r)
    frozen = {k: v.detach().clone() for k, v in ref.lora.items()} if variant.endswith('initial') else {}
    P = [ref.lora[k] for k in sorted(ref.lora)]; mo = [torch.zeros_like(p) for p in P]; vo = [torch.zeros_like(p) for p in P]
    exp, losses, metrics = {}, [], []
    for s in range(a.steps):
        for p in P: p.grad = None
        step_loss, step_m = 0.0, {}
        for j in range(a.accum):
            k0 = (s * a.accum + j) * a.batch
            loss, mm = micro_batch(pairs[k0:k0 + a.batch], variant, frozen)
            (loss / a.accum).backward(); step_loss += float(loss) / a.accum
            for k, v in mm.items(): step_m[k] = step_m.get(k, 0.0) + v / a.accum
        losses.append(step_loss); metrics.append(step_m)
        if s == 0:
            for k in sorted(ref.lora): exp['grad.' + k] = ref.lora[k].grad.numpy().astype(np.float32)
        with torch.no_grad():
            norm = math.sqrt(sum(float((p.grad ** 2).sum()) for p in P))
            c = min(1.0, a.clip / (norm + 1e-6)) if a.clip > 0 else 1.0
            for i, p in enumerate(P):
                g = p.grad * c; p.mul_(1 - a.lr * a.wd)
                mo[i] = 0.9 * mo[i] + 0.1 * g; vo[i] = 0.999 * vo[i] + 0.001 * g * g
                mh = mo[i] / (1 - 0.9 ** (s + 1)); vh = vo[i] / (1 - 0.999 ** (s + 1))
                p.sub_(a.lr * mh / (vh.sqrt() + 1e-8))
    for k in sorted(ref.lora): exp['final.' + k] = ref.lora[k].detach().numpy().astype(np.float32)
    st.save(os.path.join(a.out, f'expected-{variant}.safetensors'), exp, {'format': 'pt'})
    summary['variants'][variant] = {'losses': losses, 'metrics': metrics}
    print(variant, losses[0], metrics[0])
json.dump(summary, open(os.path.join(a.out, 'expected.json'), 'w'), indent=1)
