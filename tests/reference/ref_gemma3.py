"""Reference forward/backward with LoRA in plain PyTorch, float64, for Gemma 3's text decoder
(Gemma3ForCausalLM, model_type gemma3_text), following transformers' modeling_gemma3.py, and
Gemma 2 (Gemma2ForCausalLM, gemma2: modeling_gemma2.py, the same without q/k norms, with one
RoPE for every layer, even layers sliding by default, and the attention soft-cap), with
ref_llama.Ref's interface (key, set_lora, forward, loss, greedy) so make_fixture.py drives it:
  - embeddings times sqrt(hidden_size) rounded to the weights' dtype first
    (Gemma3TextScaledWordEmbedding: float32, or bfloat16 for a bfloat16 checkpoint);
  - RMSNorm scaling by (1 + w) (Gemma3RMSNorm), four per layer: input_layernorm before
    attention, post_attention_layernorm on its output before the residual add,
    pre_feedforward_layernorm before the MLP, post_feedforward_layernorm on its output;
  - q_norm / k_norm: that RMSNorm over each head's head_dim values, before RoPE;
  - attention scores scaled by query_pre_attn_scalar^-1/2, soft-capped by
    attn_logit_softcapping when set (tanh(s / cap) cap, before the mask) in Gemma 2 only:
    Gemma3Attention never passes it to the attention function;
  - layer_types (or, when absent, every sliding_window_pattern-th layer full, the others
    sliding): a sliding layer's query t sees keys s with t - sliding_window < s <= t
    (masking_utils.sliding_window_overlay), a full one s <= t;
  - RoPE per layer type: sliding layers with rope_local_base_freq and no scaling, full ones
    with rope_theta and rope_scaling (default or linear: inv_freq / factor); transformers 5's
    rope_parameters {"full_attention": ..., "sliding_attention": ...} read the same way;
  - MLP down(gelu_pytorch_tanh(gate(x)) * up(x));
  - final_logit_softcapping on the logits when set.
Biases (attention_bias) as their tensors say. Positions restart at 0 per row."""
import math, os, sys, torch
sys.path.insert(0, os.path.dirname(__file__)); import st, ref_llama

def _rope_params(c):
    """(theta, linear factor) of the full and of the sliding layers."""
    if c.get('model_type') == 'gemma2': return (c.get('rope_theta', 10000.0), 1.0), (c.get('rope_theta', 10000.0), 1.0)
    rp = c.get('rope_parameters')
    if isinstance(rp, dict) and 'full_attention' in rp:
        def one(p): return (p.get('rope_theta', 10000.0), p.get('factor', 1.0) if p.get('rope_type') == 'linear' else 1.0)
        return one(rp['full_attention']), one(rp['sliding_attention'])
    rs = c.get('rope_scaling') or {}
    typ = rs.get('rope_type', rs.get('type', 'default'))
    assert typ in ('default', 'linear'), f'rope_scaling type {typ} not in the reference'
    full = (c.get('rope_theta', 1e6), rs.get('factor', 1.0) if typ == 'linear' else 1.0)
    return full, (c.get('rope_local_base_freq', 10000.0), 1.0)

class Ref(ref_llama.Ref):
    def __init__(s, model_dir, dtype=torch.float64):
        super().__init__(model_dir, dtype)
        c = s.cfg
        s.hd = c.get('head_dim', 256)
        s.scaling = c.get('query_pre_attn_scalar', 256) ** -0.5
        s.attn_cap = c.get('attn_logit_softcapping') if c.get('model_type') == 'gemma2' else None; s.final_cap = c.get('final_logit_softcapping')
        s.window = c.get('sliding_window', 4096)
        pattern = c.get('sliding_window_pattern', 2 if c.get('model_type') == 'gemma2' else 6)
        s.qk_norm = c.get('model_type') != 'gemma2'
        s.types = c.get('layer_types') or ['sliding_attention' if (i + 1) % pattern else 'full_attention' for i in range(s.L)]
        s.full_rope, s.local_rope = _rope_params(c)
        sc = torch.tensor(c['hidden_size'] ** 0.5)  # float32, then .to(the weights' dtype)
        bf16 = c.get('torch_dtype', c.get('dtype')) == 'bfloat16'
        s.embed_scale = float(sc.to(torch.bfloat16) if bf16 else sc)
    def norm(s, x, wt): return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + s.eps) * (1.0 + wt)
    def tables(s, T, theta_factor):
        theta, factor = theta_factor
        inv = 1.0 / (theta ** (torch.arange(0, s.hd, 2, dtype=s.dtype) / s.hd)) / factor
        fr = torch.outer(torch.arange(T, dtype=s.dtype), inv); fr = torch.cat((fr, fr), -1)
        return fr.cos(), fr.sin()
    def forward(s, ids):
        B, T = ids.shape; x = s.w['model.embed_tokens.weight'][ids] * s.embed_scale
        ropes = {'full_attention': s.tables(T, s.full_rope), 'sliding_attention': s.tables(T, s.local_rope)}
        q_idx = torch.arange(T)[:, None]; k_idx = torch.arange(T)[None, :]
        masks = {'full_attention': k_idx > q_idx, 'sliding_attention': (k_idx > q_idx) | (k_idx <= q_idx - s.window)}
        def rope(q, cos, sin):
            a, b = q[..., : s.hd // 2], q[..., s.hd // 2:]; return q * cos + torch.cat((-b, a), -1) * sin
        gelu = lambda g: 0.5 * g * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (g + 0.044715 * g ** 3)))
        for i in range(s.L):
            P = f'model.layers.{i}.'; cos, sin = ropes[s.types[i]]
            h = s.norm(x, s.w[P + 'input_layernorm.weight'])
            q = s.lin(h, i, 'q_proj').view(B, T, s.nh, s.hd); k = s.lin(h, i, 'k_proj').view(B, T, s.nkv, s.hd)
            if s.qk_norm: q, k = s.norm(q, s.w[P + 'self_attn.q_norm.weight']), s.norm(k, s.w[P + 'self_attn.k_norm.weight'])
            q, k = q.transpose(1, 2), k.transpose(1, 2)
            v = s.lin(h, i, 'v_proj').view(B, T, s.nkv, s.hd).transpose(1, 2)
            q, k = rope(q, cos, sin), rope(k, cos, sin); rep = s.nh // s.nkv
            k, v = k.repeat_interleave(rep, 1), v.repeat_interleave(rep, 1)
            sc = (q @ k.transpose(-1, -2)) * s.scaling
            if s.attn_cap is not None: sc = torch.tanh(sc / s.attn_cap) * s.attn_cap
            att = sc.masked_fill(masks[s.types[i]], float('-inf')).softmax(-1)
            o = s.lin((att @ v).transpose(1, 2).reshape(B, T, s.nh * s.hd), i, 'o_proj')
            x = x + s.norm(o, s.w[P + 'post_attention_layernorm.weight'])
            h = s.norm(x, s.w[P + 'pre_feedforward_layernorm.weight'])
            m = s.lin(gelu(s.lin(h, i, 'gate_proj')) * s.lin(h, i, 'up_proj'), i, 'down_proj')
            x = x + s.norm(m, s.w[P + 'post_feedforward_layernorm.weight'])
        logits = s.norm(x, s.w['model.norm.weight']) @ s.w['lm_head.weight'].T
        if s.final_cap is not None: logits = torch.tanh(logits / s.final_cap) * s.final_cap
        return logits
