#!/usr/bin/python3
"""Make a LoRA training fixture from the float64 PyTorch reference: a PEFT-format initial
adapter, a JSONL batch file, and the expected losses, logits, gradients and adapters after
N AdamW steps (PyTorch AdamW semantics, global-norm clipping, constant LR); with --greedy,
the reference's greedy ids too (fixture.json). --model may name a llama .gguf (ref_gguf.py)."""
import argparse, json, math, os, sys, numpy as np, torch
sys.path.insert(0, os.path.dirname(__file__)); import st, ref_llama, ref_gemma3, ref_gemma4, ref_phi3, ref_ministral3, ref_qwen3_5
ap = argparse.ArgumentParser()
ap.add_argument('--model', required=True); ap.add_argument('--out', required=True)
ap.add_argument('--data', help='jsonl with input_ids rows to draw from'); ap.add_argument('--seed', type=int, default=0)
ap.add_argument('--targets', default=','.join(ref_llama.TARGETS)); ap.add_argument('--r', type=int, default=4)
ap.add_argument('--alpha', type=float, default=8); ap.add_argument('--rslora', action='store_true')
ap.add_argument('--batch', type=int, default=2); ap.add_argument('--seq', type=int, default=32)
ap.add_argument('--steps', type=int, default=3); ap.add_argument('--lr', type=float, default=1e-2)
ap.add_argument('--wd', type=float, default=0.01); ap.add_argument('--clip', type=float, default=1.0)
ap.add_argument('--b1', type=float, default=0.9); ap.add_argument('--b2', type=float, default=0.999)
ap.add_argument('--eps', type=float, default=1e-8); ap.add_argument('--mask-prefix', type=int, default=5)
ap.add_argument('--bf16-sensitivity', action='store_true', help="also the first step's gradient change when only the reference's weight matrices are rounded to bf16 (fixture.json bf16_weight_rounding_grad_rel)")
ap.add_argument('--greedy', type=int, default=0, help='also greedy ids (base, and with the initial adapter) for this many tokens')
a = ap.parse_args(); rng = np.random.default_rng(a.seed); gguf_hashes = None
model_name = os.path.basename(os.path.normpath(a.model))
if a.model.endswith('.gguf'):  # a llama GGUF: dequantized by gguf-py into a Hugging Face directory (ref_gguf.py)
    import atexit, shutil, tempfile, ref_gguf
    hf_dir = tempfile.mkdtemp(); atexit.register(shutil.rmtree, hf_dir)
    gguf_hashes = ref_gguf.to_hf(a.model, hf_dir)[1]; a.model = hf_dir
model_type = json.load(open(os.path.join(a.model, 'config.json'))).get('model_type')
ref = {'gemma3_text': ref_gemma3.Ref, 'gemma3': ref_gemma3.Ref, 'gemma2': ref_gemma3.Ref, 'phi3': ref_phi3.Ref, 'ministral3': ref_ministral3.Ref, 'mistral3': ref_ministral3.Ref, 'qwen3_5_text': ref_qwen3_5.Ref, 'qwen3_5': ref_qwen3_5.Ref, 'gemma4_text': ref_gemma4.Ref, 'gemma4': ref_gemma4.Ref}.get(model_type, ref_llama.Ref)(a.model); V = ref.cfg['vocab_size']; os.makedirs(a.out, exist_ok=True)
# data rows: exactly seq tokens each; first row of each batch masks a prefix with -100
n = a.batch * a.steps
if a.data:
    src = [json.loads(l)['input_ids'] for l in open(a.data)]; src = [r for r in src if len(r) >= a.seq]
    rows = [src[i][:a.seq] for i in rng.choice(len(src), n, replace=False)]
else:
    rows = [list(map(int, rng.integers(0, V, a.seq))) for _ in range(n)]
labels = [list(r) for r in rows]
for b in range(0, n, a.batch): labels[b][:a.mask_prefix] = [-100] * a.mask_prefix
with open(os.path.join(a.out, 'train.jsonl'), 'w') as f:
    for r, l in zip(rows, labels): f.write(json.dumps({'input_ids': r, 'labels': l}) + '\n')
# initial adapter with non-zero B so every gradient is non-zero
tg = a.targets.split(','); init = {}
own = any(not ref_llama.SUB[t] for t in tg)  # Gemma 4's per-layer gate / projection: no parent module
for i in range(ref.L):
    for t in tg:
        name = f'model.layers.{i}.{ref_llama.path(t)}.weight'
        if name not in ref.w: continue  # Qwen3.5: a DeltaNet layer has no q_proj, an attention layer no out_proj
        W = ref.w[name]; o, inn = W.shape; k = ref.key(i, t)
        init[k + '.lora_A.weight'] = (rng.standard_normal((a.r, inn)) * 0.2).astype(np.float32)
        init[k + '.lora_B.weight'] = (rng.standard_normal((o, a.r)) * 0.05).astype(np.float32)
ad = os.path.join(a.out, 'init_adapter'); os.makedirs(ad, exist_ok=True)
st.save(os.path.join(ad, 'adapter_model.safetensors'), init, {'format': 'pt'})
json.dump({'peft_type': 'LORA', 'task_type': 'CAUSAL_LM', 'r': a.r, 'lora_alpha': a.alpha, 'lora_dropout': 0.0,
           # a wrapper's: the regex PEFT fullmatch-es, reaching the language model only
           'target_modules': tg if ref.prefix == 'model.' else
               ref.prefix.replace('.', r'\.') + r'layers\.[0-9]+\.(' + ('(' if own else '') + ('self_attn|linear_attn|mlp' if model_type == 'qwen3_5' else 'self_attn|mlp') + (r')\.)?(' if own else r')\.(') + '|'.join(tg) + ')',
           'bias': 'none', 'use_rslora': a.rslora, 'fan_in_fan_out': False,
           'base_model_name_or_path': model_name, 'inference_mode': True},
          open(os.path.join(ad, 'adapter_config.json'), 'w'), indent=2, sort_keys=True)
greedy = {} if gguf_hashes is None else {'gguf_dequantized_fnv1a': gguf_hashes}
if a.greedy:  # from the first row's first 4 ids: the base model, then with the initial adapter
    prompt = rows[0][:4]
    greedy['greedy_prompt'] = prompt
    greedy['greedy_base'], greedy['greedy_base_min_gap'] = ref.greedy(prompt, a.greedy)
ref.set_lora(init, a.alpha, a.r, a.rslora)
if a.greedy: greedy['greedy_adapter'], greedy['greedy_adapter_min_gap'] = ref.greedy(prompt, a.greedy)
P = [ref.lora[k] for k in sorted(ref.lora)]; m = [torch.zeros_like(p) for p in P]; v = [torch.zeros_like(p) for p in P]
exp = {}; losses = []
for s in range(a.steps):
    ids = torch.tensor(rows[s * a.batch:(s + 1) * a.batch]); lab = torch.tensor(labels[s * a.batch:(s + 1) * a.batch])
    for p in P: p.grad = None
    loss, logits = ref.loss(ids, lab); loss.backward(); losses.append(loss.item())
    if s == 0:
        exp['logits_step0'] = logits.detach().numpy().astype(np.float32)
        for k in sorted(ref.lora): exp['grad.' + k] = ref.lora[k].grad.numpy().astype(np.float32)
    with torch.no_grad():
        norm = math.sqrt(sum(float((p.grad ** 2).sum()) for p in P))
        if s == 0: exp['grad_norm_step0'] = np.array([norm], dtype=np.float32)
        c = min(1.0, a.clip / (norm + 1e-6)) if a.clip > 0 else 1.0
        for i, p in enumerate(P):
            g = p.grad * c; p.mul_(1 - a.lr * a.wd)
            m[i] = a.b1 * m[i] + (1 - a.b1) * g; v[i] = a.b2 * v[i] + (1 - a.b2) * g * g
            mh = m[i] / (1 - a.b1 ** (s + 1)); vh = v[i] / (1 - a.b2 ** (s + 1))
            p.sub_(a.lr * mh / (vh.sqrt() + a.eps))
if a.bf16_sensitivity:  # how far bf16 weights alone move the first gradient: a floor for any bf16 run
    ref2 = type(ref)(a.model)
    for k, w in ref2.w.items():
        if w.dim() == 2: ref2.w[k] = w.to(torch.bfloat16).to(ref2.dtype)
    ref2.set_lora(init, a.alpha, a.r, a.rslora)
    ref2.loss(torch.tensor(rows[:a.batch]), torch.tensor(labels[:a.batch]))[0].backward()
    d2 = sum(float(((ref2.lora[k].grad.numpy() - exp['grad.' + k]) ** 2).sum()) for k in ref2.lora)
    r2 = sum(float((exp['grad.' + k].astype(np.float64) ** 2).sum()) for k in ref2.lora)
    greedy['bf16_weight_rounding_grad_rel'] = math.sqrt(d2 / r2)
exp['losses'] = np.array(losses, dtype=np.float32)
for k in sorted(ref.lora): exp['final.' + k] = ref.lora[k].detach().numpy().astype(np.float32)
st.save(os.path.join(a.out, 'expected.safetensors'), exp, {'format': 'pt'})
meta = {k: getattr(a, k) for k in ['r', 'alpha', 'rslora', 'batch', 'seq', 'steps', 'lr', 'wd', 'clip', 'b1', 'b2', 'eps', 'mask_prefix']}
meta.update(targets=tg, lr_schedule='constant', warmup_steps=0, dropout=0.0, shuffle=False, packing=False,
            losses=losses, grad_norm_step0=float(exp['grad_norm_step0'][0]), **greedy)
json.dump(meta, open(os.path.join(a.out, 'fixture.json'), 'w'), indent=2)
print(json.dumps(meta))
