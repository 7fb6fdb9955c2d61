"""Reference forward/backward with LoRA in plain PyTorch, float64, for Gemma 4's dense text
decoder (Gemma4ForCausalLM, gemma4_text; Gemma4ForConditionalGeneration, gemma4, through
ref_llama.unwrap), written from transformers' modeling_gemma4.py and configuration_gemma4.py,
with ref_llama.Ref's interface (key, set_lora, forward, loss, greedy):
  - embeddings times sqrt(hidden_size), the factor rounded to the weights' dtype
    (Gemma4TextScaledWordEmbedding: a float32 tensor .to(weight.dtype));
  - Gemma4RMSNorm: x * (mean(x^2) + eps)^-0.5 * w (plain w), or without a weight (v_norm);
  - Gemma4TextAttention: scaling 1.0; q_norm / k_norm per head before RoPE; V through the
    weightless norm; full layers with global_head_dim and, with attention_k_eq_v, no v_proj
    (V = k_proj's raw output) and num_global_key_value_heads; sliding layers head_dim, their
    window (t - window < s <= t);
  - RoPE per layer type from rope_parameters (Gemma4TextConfig's default when absent):
    "default" over head_dim (compute_default_rope_parameters uses config.head_dim), and
    "proportional" (_compute_proportional_rope_parameters) over global_head_dim: the first
    int(partial_rotary_factor * head_dim // 2) frequencies base^(-2i / head_dim), the others
    0, all / factor; cos and sin of cat(freqs, freqs), rotate_half;
  - KV sharing: the last num_kv_shared_layers layers take the (normed, rotated) K and V of
    the last earlier non-shared layer of their type (store_full_length_kv);
  - Gemma4TextMLP: down(gelu_tanh(gate x) * up x), intermediate_size doubled on the shared
    layers when use_double_wide_mlp;
  - per-layer inputs (hidden_size_per_layer_input > 0): embed_tokens_per_layer[ids] times
    sqrt(P) (rounded likewise) as (L, P) per token; per_layer_model_projection(embeddings)
    times hidden^-0.5, reshaped (L, P), per_layer_projection_norm; their sum times 2^-0.5;
    each layer after its MLP: x + post_per_layer_input_norm(per_layer_projection(
    gelu_tanh(per_layer_input_gate x) * input_l)), both linears with LoRA when targeted (PEFT's
    all-linear wraps them; per_layer_model_projection stays frozen, as lorafit keeps it);
  - the layer's output times layer_scalar; final norm, logits soft-capped by
    final_logit_softcapping when set (both Gemma4ForCausalLM and
    Gemma4ForConditionalGeneration apply it).
Layer types: layer_types, or every 6th full; the last layer forced full (as __post_init__)."""
import math, os, sys, torch
sys.path.insert(0, os.path.dirname(__file__)); import ref_llama

DEFAULT_ROPE = {'sliding_attention': {'rope_type': 'default', 'rope_theta': 10000.0},
                'full_attention': {'rope_type': 'proportional', 'partial_rotary_factor': 0.25, 'rope_theta': 1e6}}

class Ref(ref_llama.Ref):
    def __init__(s, model_dir, dtype=torch.float64):
        super().__init__(model_dir, dtype)
        c = s.cfg
        s.hd = c.get('head_dim', 256); s.ghd = c.get('global_head_dim', 512) or s.hd
        s.k_eq_v = bool(c.get('attention_k_eq_v', False))
        s.gkv = c.get('num_global_key_value_heads') if s.k_eq_v else None
        s.window = c.get('sliding_window', 512); s.final_cap = c.get('final_logit_softcapping')
        s.types = list(c.get('layer_types') or ['sliding_attention' if (i + 1) % 6 else 'full_attention' for i in range(s.L)])
        s.types[-1] = 'full_attention'
        s.rope = c.get('rope_parameters') or DEFAULT_ROPE
        s.ple = c.get('hidden_size_per_layer_input', 256) or 0
        s.first_shared = s.L - (c.get('num_kv_shared_layers', 0) or 0)
        prev = s.types[:s.first_shared]  # the layer whose K/V a shared layer of type t reads
        s.kv_source = {t: len(prev) - 1 - prev[::-1].index(t) for t in set(prev)}
        bf16 = c.get('torch_dtype', c.get('dtype')) == 'bfloat16'
        def scale(v): sc = torch.tensor(v ** 0.5); return float(sc.to(torch.bfloat16) if bf16 else sc)
        s.embed_scale, s.ple_scale = scale(c['hidden_size']), scale(s.ple or 1)
    def norm(s, x, wt=None):
        y = x * torch.pow(x.pow(2).mean(-1, keepdim=True) + s.eps, -0.5)
        return y if wt is None else y * wt
    def tables(s, T, typ):
        p = s.rope[typ]; theta = p['rope_theta']
        if p.get('rope_type', 'default') == 'proportional':
            hd = s.ghd if typ == 'full_attention' else s.hd
            angles = int(p.get('partial_rotary_factor', 1.0) * hd // 2)
            inv = 1.0 / (theta ** (torch.arange(0, 2 * angles, 2, dtype=s.dtype) / hd))
            inv = torch.cat((inv, torch.zeros(hd // 2 - angles, dtype=s.dtype))) / p.get('factor', 1.0)
        else:
            assert p.get('rope_type', 'default') == 'default', 'rope_type not in the reference'
            inv = 1.0 / (theta ** (torch.arange(0, s.hd, 2, dtype=s.dtype) / s.hd))
        fr = torch.outer(torch.arange(T, dtype=s.dtype), inv); fr = torch.cat((fr, fr), -1)
        return fr.cos(), fr.sin()
    def forward(s, ids):
        B, T = ids.shape; x = s.w['model.embed_tokens.weight'][ids] * s.embed_scale
        gelu = lambda g: 0.5 * g * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (g + 0.044715 * g ** 3)))
        if s.ple:
            P = s.ple
            tok = (s.w['model.embed_tokens_per_layer.weight'][ids] * s.ple_scale).view(B, T, s.L, P)
            ctx = (x @ s.w['model.per_layer_model_projection.weight'].T) * s.h ** -0.5
            ctx = s.norm(ctx.view(B, T, s.L, P), s.w['model.per_layer_projection_norm.weight'])
            per_layer = (ctx + tok) * 2.0 ** -0.5
        ropes = {t: s.tables(T, t) for t in set(s.types)}
        q_idx = torch.arange(T)[:, None]; k_idx = torch.arange(T)[None, :]
        masks = {'full_attention': k_idx > q_idx, 'sliding_attention': (k_idx > q_idx) | (k_idx <= q_idx - s.window)}
        def rope(q, cos, sin):
            h = q.shape[-1] // 2; a, b = q[..., :h], q[..., h:]; return q * cos + torch.cat((-b, a), -1) * sin
        shared = {}
        for i in range(s.L):
            Pf = f'model.layers.{i}.'; typ = s.types[i]; cos, sin = ropes[typ]; full = typ == 'full_attention'
            d = s.ghd if full else s.hd; nkv = s.gkv if full and s.gkv else s.nkv
            h = s.norm(x, s.w[Pf + 'input_layernorm.weight'])
            q = s.norm(s.lin(h, i, 'q_proj').view(B, T, s.nh, d), s.w[Pf + 'self_attn.q_norm.weight'])
            q = rope(q.transpose(1, 2), cos, sin)
            if i >= s.first_shared:
                k, v = shared[typ]
            else:
                kr = s.lin(h, i, 'k_proj').view(B, T, nkv, d)
                v = kr if full and s.k_eq_v else s.lin(h, i, 'v_proj').view(B, T, nkv, d)
                k = rope(s.norm(kr, s.w[Pf + 'self_attn.k_norm.weight']).transpose(1, 2), cos, sin)
                v = s.norm(v).transpose(1, 2)
                if s.kv_source.get(typ) == i: shared[typ] = (k, v)
            rep = s.nh // k.shape[1]
            kk, vv = k.repeat_interleave(rep, 1), v.repeat_interleave(rep, 1)
            att = (q @ kk.transpose(-1, -2)).masked_fill(masks[typ], float('-inf')).softmax(-1)
            o = s.lin((att @ vv).transpose(1, 2).reshape(B, T, s.nh * d), i, 'o_proj')
            x = x + s.norm(o, s.w[Pf + 'post_attention_layernorm.weight'])
            h = s.norm(x, s.w[Pf + 'pre_feedforward_layernorm.weight'])
            m = s.lin(gelu(s.lin(h, i, 'gate_proj')) * s.lin(h, i, 'up_proj'), i, 'down_proj')
            x = x + s.norm(m, s.w[Pf + 'post_feedforward_layernorm.weight'])
            if s.ple:
                g = gelu(s.lin(x, i, 'per_layer_input_gate')) * per_layer[:, :, i, :]
                x = x + s.norm(s.lin(g, i, 'per_layer_projection'), s.w[Pf + 'post_per_layer_input_norm.weight'])
            x = x * s.w[Pf + 'layer_scalar']
        logits = s.norm(x, s.w['model.norm.weight']) @ s.w['lm_head.weight'].T
        if s.final_cap is not None: logits = torch.tanh(logits / s.final_cap) * s.final_cap
        return logits
