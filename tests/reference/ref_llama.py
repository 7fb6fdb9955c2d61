"""Reference forward/backward with LoRA in plain PyTorch, float64, for the decoder families
lorafit trains, following transformers' modeling_llama.py / modeling_qwen2.py /
modeling_qwen3.py: rotate_half RoPE, RMSNorm, SwiGLU, GQA, the biases the weights hold
(Qwen2's q/k/v, attention_bias's q/k/v/o), tied embeddings, causal-LM loss with labels
shifted by one and -100 ignored. Qwen3 (model_type qwen3) adds a per-head RMSNorm on q and k
(q_norm, k_norm, weights (head_dim)) before RoPE, and a head_dim of its own (128 when the
config has none, Qwen3Config's default). SmolLM3 (smollm3, modeling_smollm3.py) skips RoPE in
its NoPE layers (no_rope_layers, or every no_rope_layer_interval-th layer when the config has
no list; rope_theta 2e6 and tied embeddings by default). OLMo 2 (olmo2, modeling_olmo2.py)
has no input norms: q_norm / k_norm over the whole q and k projections before RoPE, and the
attention and MLP outputs normed (post_attention_layernorm, post_feedforward_layernorm)
before their residual adds. Granite (granite, modeling_granite.py) multiplies the embeddings
by embedding_multiplier, scales the scores by attention_multiplier (not 1/sqrt(head_dim)),
adds each sublayer's output times residual_multiplier, and divides the logits by
logits_scaling. Sliding windows as transformers applies them: a sliding layer's query t sees
keys s with t - sliding_window < s <= t (masking_utils.sliding_window_overlay); the sliding
layers are those layer_types names, else Mistral's every layer whenever sliding_window is
set, Qwen2 / Qwen3's (with use_sliding_window) those from max_window_layers on. Used to make
fixtures; not implemented: rope_scaling."""
import json, math, os, sys, torch
sys.path.insert(0, os.path.dirname(__file__)); import st
TARGETS = ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj']
SUB = {'q_proj': 'self_attn', 'k_proj': 'self_attn', 'v_proj': 'self_attn', 'o_proj': 'self_attn',
       'gate_proj': 'mlp', 'up_proj': 'mlp', 'down_proj': 'mlp',
       'qkv_proj': 'self_attn', 'gate_up_proj': 'mlp',  # Phi-3's fused linears (ref_phi3)
       'in_proj_qkv': 'linear_attn', 'in_proj_z': 'linear_attn', 'in_proj_b': 'linear_attn',
       'in_proj_a': 'linear_attn', 'out_proj': 'linear_attn',  # Qwen3.5's DeltaNet (ref_qwen3_5)
       'per_layer_input_gate': '', 'per_layer_projection': ''}  # Gemma 4's, the layer's own (ref_gemma4)
def path(t): return f'{SUB[t]}.{t}' if SUB[t] else t  # the module's name under its layer

# Multimodal wrapper checkpoints (...ForConditionalGeneration): config.json's text_config (of
# text_type; absent_type: what the wrapper's config class assumes without a model_type) over
# the text config class's defaults is the decoder's config; its tensors are under a prefix
# (transformers >= 4.52's, or the older one its _checkpoint_conversion_mapping still loads);
# the vision tower and projector are ignored. final_softcap: whether the wrapper's forward
# soft-caps the logits (Gemma3ForConditionalGeneration.forward does not).
GEMMA3_TEXT_DEFAULTS = dict(vocab_size=262208, hidden_size=2304, intermediate_size=9216, num_hidden_layers=26,
                            num_attention_heads=8, num_key_value_heads=4, head_dim=256, max_position_embeddings=131072,
                            rms_norm_eps=1e-6, rope_theta=1e6, query_pre_attn_scalar=256, sliding_window=4096,
                            rope_local_base_freq=10000.0, sliding_window_pattern=6, tie_word_embeddings=True,
                            hidden_activation='gelu_pytorch_tanh', final_logit_softcapping=None)
QWEN3_5_TEXT_DEFAULTS = dict(vocab_size=248320, hidden_size=4096, intermediate_size=12288, num_hidden_layers=32,
                             num_attention_heads=16, num_key_value_heads=4, head_dim=256, max_position_embeddings=32768,
                             rms_norm_eps=1e-6, tie_word_embeddings=False)
# Ministral3Config's (configuration_ministral3.py; its default rope_parameters: ref_ministral3).
MINISTRAL3_DEFAULTS = dict(vocab_size=131072, hidden_size=4096, intermediate_size=14336, num_hidden_layers=34,
                           num_attention_heads=32, num_key_value_heads=8, head_dim=128, max_position_embeddings=262144,
                           rms_norm_eps=1e-5, hidden_act='silu', tie_word_embeddings=False, sliding_window=None)
# Gemma4TextConfig's (configuration_gemma4.py; its Gemma 4 keys' defaults: ref_gemma4).
GEMMA4_TEXT_DEFAULTS = dict(vocab_size=262144, hidden_size=2304, intermediate_size=9216, num_hidden_layers=30,
                            num_attention_heads=8, num_key_value_heads=4, head_dim=256, max_position_embeddings=131072,
                            rms_norm_eps=1e-6, tie_word_embeddings=True, hidden_activation='gelu_pytorch_tanh')
LAYOUTS = (('model.language_model.', 'lm_head.weight'), ('language_model.model.', 'language_model.lm_head.weight'))
WRAPPERS = {'gemma3': dict(text_type='gemma3_text', absent_type='gemma3_text', defaults=GEMMA3_TEXT_DEFAULTS, final_softcap=False, layouts=LAYOUTS),
            # Mistral3Config reads a text_config without model_type as Mistral's: not this decoder
            'mistral3': dict(text_type='ministral3', absent_type='mistral', defaults=MINISTRAL3_DEFAULTS, final_softcap=False, layouts=LAYOUTS),
            # Qwen3_5ForConditionalGeneration: model.visual.* and mtp.* are ignored
            'qwen3_5': dict(text_type='qwen3_5_text', absent_type='qwen3_5_text', defaults=QWEN3_5_TEXT_DEFAULTS, final_softcap=False,
                            layouts=(LAYOUTS[0],)),
            # Gemma4ForConditionalGeneration soft-caps its logits; vision and audio towers ignored
            'gemma4': dict(text_type='gemma4_text', absent_type='gemma4_text', defaults=GEMMA4_TEXT_DEFAULTS, final_softcap=True,
                           layouts=(LAYOUTS[0],))}

def unwrap(cfg, w):
    """(the decoder's config, its tensors under the decoder's own names, the PEFT module prefix)."""
    wr = WRAPPERS.get(cfg.get('model_type'))
    if wr is None: return cfg, w, 'model.'
    assert cfg['text_config'].get('model_type', wr['absent_type']) == wr['text_type'], 'text_config is not ' + wr['text_type']
    c = dict(wr['defaults']); c.update(cfg['text_config']); c['model_type'] = wr['text_type']
    for k in ('tie_word_embeddings', 'bos_token_id', 'eos_token_id', 'torch_dtype'):
        if k not in cfg['text_config'] and k in cfg: c[k] = cfg[k]
    if not wr['final_softcap']: c['final_logit_softcapping'] = None
    prefix, head = next(l for l in wr['layouts'] if l[0] + 'embed_tokens.weight' in w)
    out = {('model.' + k[len(prefix):]) if k.startswith(prefix) else 'lm_head.weight': v
           for k, v in w.items() if k.startswith(prefix) or k == head}
    return c, out, wr['layouts'][0][0]

class Ref:
    def __init__(s, model_dir, dtype=torch.float64):
        cfg = json.load(open(os.path.join(model_dir, 'config.json')))
        w, _ = st.load(os.path.join(model_dir, 'model.safetensors'))
        s.cfg, w, s.prefix = unwrap(cfg, w)
        s.w = {k: torch.tensor(v, dtype=dtype) for k, v in w.items()}; s.dtype = dtype
        c = s.cfg; s.h = c['hidden_size']; s.nh = c['num_attention_heads']; s.nkv = c.get('num_key_value_heads', s.nh)
        s.type = c.get('model_type'); s.qk_norm = s.type == 'qwen3'
        s.hd = c.get('head_dim') or (128 if s.qk_norm else s.h // s.nh)
        s.L = c['num_hidden_layers']; s.eps = c.get('rms_norm_eps', 1e-5 if s.type == 'olmo2' else 1e-6)
        s.theta = (c.get('rope_parameters') or c).get('rope_theta', 2e6 if s.type == 'smollm3' else 10000.0)
        # SmolLM3Config: no_rope_layers[l] 1 = RoPE, 0 = NoPE; derived from the interval when absent
        nope = c.get('no_rope_layers') if s.type == 'smollm3' else None
        if s.type == 'smollm3' and nope is None:
            iv = c.get('no_rope_layer_interval', 4); nope = [int((l + 1) % iv != 0) for l in range(s.L)]
        s.use_rope = [bool(x) for x in nope[:s.L]] if nope is not None else [True] * s.L
        g = s.type == 'granite'  # GraniteConfig's multipliers (1.0 when absent)
        s.emb_mult = c.get('embedding_multiplier', 1.0) if g else 1.0
        s.att_scale = c.get('attention_multiplier', 1.0) if g else None  # None: / sqrt(head_dim)
        s.res_mult = c.get('residual_multiplier', 1.0) if g else 1.0
        s.logits_scaling = c.get('logits_scaling', 1.0) if g else 1.0
        if 'lm_head.weight' not in s.w: s.w['lm_head.weight'] = s.w['model.embed_tokens.weight']
        s.lora = {}; s.scale = 0.0
        mt, L = c.get('model_type'), s.L
        if c.get('layer_types'): types = c['layer_types']
        elif mt == 'mistral': types = ['sliding_attention' if c.get('sliding_window') else 'full_attention'] * L
        elif mt in ('qwen2', 'qwen3') and c.get('use_sliding_window') and c.get('sliding_window'):
            types = ['sliding_attention' if i >= c.get('max_window_layers', 28) else 'full_attention' for i in range(L)]
        else: types = ['full_attention'] * L
        s.types = types; s.window = c.get('sliding_window')
    def key(s, i, t): return f'base_model.model.{s.prefix}layers.{i}.{path(t)}'
    def set_lora(s, tensors, alpha, r, rslora=False):
        s.lora = {k: torch.tensor(v, dtype=s.dtype).requires_grad_(True) for k, v in tensors.items()}
        s.scale = alpha / (math.sqrt(r) if rslora else r)
    def lin(s, x, i, t):
        P = f'model.layers.{i}.{path(t)}'
        y = x @ s.w[P + '.weight'].T
        if P + '.bias' in s.w: y = y + s.w[P + '.bias']
        k = s.key(i, t)
        if k + '.lora_A.weight' in s.lora:
            y = y + (x @ s.lora[k + '.lora_A.weight'].T @ s.lora[k + '.lora_B.weight'].T) * s.scale
        return y
    def norm(s, x, wt): return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + s.eps) * wt
    def forward(s, ids):
        B, T = ids.shape; x = s.w['model.embed_tokens.weight'][ids] * s.emb_mult
        inv = 1.0 / (s.theta ** (torch.arange(0, s.hd, 2, dtype=s.dtype) / s.hd))
        fr = torch.outer(torch.arange(T, dtype=s.dtype), inv); fr = torch.cat((fr, fr), -1); cos, sin = fr.cos(), fr.sin()
        def rope(q):
            a, b = q[..., : s.hd // 2], q[..., s.hd // 2:]; return q * cos + torch.cat((-b, a), -1) * sin
        q_idx = torch.arange(T)[:, None]; k_idx = torch.arange(T)[None, :]
        masks = {'full_attention': k_idx > q_idx}
        if s.window: masks['sliding_attention'] = (k_idx > q_idx) | (k_idx <= q_idx - s.window)
        for i in range(s.L):
            P = f'model.layers.{i}.'; olmo2 = s.type == 'olmo2'
            h = x if olmo2 else s.norm(x, s.w[P + 'input_layernorm.weight'])
            q, k = s.lin(h, i, 'q_proj'), s.lin(h, i, 'k_proj')
            if olmo2:  # Olmo2Attention: q_norm / k_norm over the whole projections
                q, k = s.norm(q, s.w[P + 'self_attn.q_norm.weight']), s.norm(k, s.w[P + 'self_attn.k_norm.weight'])
            q, k = q.view(B, T, s.nh, s.hd), k.view(B, T, s.nkv, s.hd)
            if s.qk_norm:  # Qwen3Attention: q_norm / k_norm over each head's head_dim values
                q = s.norm(q, s.w[P + 'self_attn.q_norm.weight'])
                k = s.norm(k, s.w[P + 'self_attn.k_norm.weight'])
            q, k = q.transpose(1, 2), k.transpose(1, 2)
            v = s.lin(h, i, 'v_proj').view(B, T, s.nkv, s.hd).transpose(1, 2)
            if s.use_rope[i]: q, k = rope(q), rope(k)
            rep = s.nh // s.nkv
            k, v = k.repeat_interleave(rep, 1), v.repeat_interleave(rep, 1)
            sc = q @ k.transpose(-1, -2); sc = sc / math.sqrt(s.hd) if s.att_scale is None else sc * s.att_scale
            att = sc.masked_fill(masks[s.types[i]], float('-inf')).softmax(-1)
            a = s.lin((att @ v).transpose(1, 2).reshape(B, T, s.nh * s.hd), i, 'o_proj')
            if olmo2: a = s.norm(a, s.w[P + 'post_attention_layernorm.weight'])
            x = x + a * s.res_mult
            h = x if olmo2 else s.norm(x, s.w[P + 'post_attention_layernorm.weight'])
            f = s.lin(torch.nn.functional.silu(s.lin(h, i, 'gate_proj')) * s.lin(h, i, 'up_proj'), i, 'down_proj')
            if olmo2: f = s.norm(f, s.w[P + 'post_feedforward_layernorm.weight'])
            x = x + f * s.res_mult
        x = s.norm(x, s.w['model.norm.weight'])
        return (x @ s.w['lm_head.weight'].T) / s.logits_scaling
    def loss(s, ids, labels):
        logits = s.forward(ids)
        return torch.nn.functional.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]), labels[:, 1:].reshape(-1),
                                                 ignore_index=-100), logits
    def greedy(s, prompt, n):
        """prompt + n greedy ids (first maximum on ties), and the smallest gap between the
        best and the second-best logit on the way (how safely an fp32 run can agree)."""
        ids = list(prompt); gap = float('inf')
        with torch.no_grad():
            for _ in range(n):
                row = s.forward(torch.tensor([ids]))[0, -1]
                top = torch.topk(row, 2).values; gap = min(gap, float(top[0] - top[1]))
                ids.append(int(torch.argmax(row)))
        return ids, gap
