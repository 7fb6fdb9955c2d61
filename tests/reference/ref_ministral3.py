"""Reference forward/backward with LoRA in plain PyTorch, float64, for Ministral 3's text
decoder (Ministral3ForCausalLM, model_type ministral3), following transformers 5's
modeling_ministral3.py, configuration_ministral3.py and modeling_rope_utils.py, with
ref_llama.Ref's interface (key, set_lora, forward, loss, greedy) so make_fixture.py drives it:
  - Mistral's layer (no biases, sliding_window on every layer when set);
  - yarn RoPE (_compute_yarn_parameters): pos_freqs = base^(2i/dim), inv_freq blended
    between 1/pos_freqs and 1/(factor pos_freqs) by 1 - clamp((i - low) / (high - low)),
    low / high the correction dims of beta_fast / beta_slow at
    original_max_position_embeddings (floor / ceil unless truncate is false, clamped to
    [0, dim - 1], high + 0.001 when equal); cos and sin times attention_factor, else
    get_mscale(factor, mscale) / get_mscale(factor, mscale_all_dim) when both are set, else
    get_mscale(factor); factor = max_position_embeddings / original when absent;
  - the queries after RoPE times 1 + llama_4_scaling_beta * log(1 + floor(pos / original))
    (_get_llama_4_attn_scale, pos the index in the row: cache_position);
  - RMSNorm eps 1e-5 and rope_parameters as Ministral3Config's defaults when absent."""
import math, os, sys, torch
sys.path.insert(0, os.path.dirname(__file__)); import ref_llama

DEFAULT_ROPE = {'rope_type': 'yarn', 'rope_theta': 1e6, 'factor': 16.0, 'original_max_position_embeddings': 16384,
                'beta_fast': 32.0, 'beta_slow': 1.0, 'mscale_all_dim': 1.0, 'mscale': 1.0, 'llama_4_scaling_beta': 0.1}

def get_mscale(scale, mscale=1):
    return 1.0 if scale <= 1 else 0.1 * mscale * math.log(scale) + 1.0

class Ref(ref_llama.Ref):
    def __init__(s, model_dir, dtype=torch.float64):
        super().__init__(model_dir, dtype)
        c = s.cfg; rp = c.get('rope_parameters') or c.get('rope_scaling') or DEFAULT_ROPE
        assert (rp.get('rope_type') or rp.get('type')) == 'yarn'
        s.eps = c.get('rms_norm_eps', 1e-5); s.hd = c.get('head_dim') or 128
        s.theta = rp.get('rope_theta', c.get('rope_theta', 10000.0))
        s.orig = rp.get('original_max_position_embeddings') or c.get('original_max_position_embeddings') or c['max_position_embeddings']
        s.factor = rp.get('factor') or c['max_position_embeddings'] / s.orig
        af, ms, msa = rp.get('attention_factor'), rp.get('mscale'), rp.get('mscale_all_dim')
        if af is None:
            af = get_mscale(s.factor, ms) / get_mscale(s.factor, msa) if ms and msa else get_mscale(s.factor)
        s.af = af; s.beta = rp['llama_4_scaling_beta']
        s.beta_fast = rp.get('beta_fast') or 32; s.beta_slow = rp.get('beta_slow') or 1
        s.truncate = rp.get('truncate', True)
        s.window = c.get('sliding_window')
        s.types = ['sliding_attention' if s.window else 'full_attention'] * s.L
    def inv_freq(s):
        dim, base = s.hd, s.theta
        def corr(rot): return dim * math.log(s.orig / (rot * 2 * math.pi)) / (2 * math.log(base))
        low, high = corr(s.beta_fast), corr(s.beta_slow)
        if s.truncate: low, high = math.floor(low), math.ceil(high)
        low, high = max(low, 0), min(high, dim - 1)
        if low == high: high += 0.001
        ramp = ((torch.arange(dim // 2, dtype=s.dtype) - low) / (high - low)).clamp(0, 1)
        pos_freqs = base ** (torch.arange(0, dim, 2, dtype=s.dtype) / dim)
        extrapolation = 1 - ramp
        return (1 / (s.factor * pos_freqs)) * (1 - extrapolation) + (1 / pos_freqs) * extrapolation
    def forward(s, ids):
        B, T = ids.shape; x = s.w['model.embed_tokens.weight'][ids]
        pos = torch.arange(T, dtype=s.dtype)
        fr = torch.outer(pos, s.inv_freq()); fr = torch.cat((fr, fr), -1); cos, sin = fr.cos() * s.af, fr.sin() * s.af
        qscale = (1 + s.beta * torch.log(1 + torch.floor(pos / s.orig)))[:, None]
        def rope(q):
            a, b = q[..., : s.hd // 2], q[..., s.hd // 2:]; return q * cos + torch.cat((-b, a), -1) * sin
        t = torch.arange(T)[:, None]; s_ = torch.arange(T)[None, :]
        mask = s_ > t
        if s.window: mask = mask | (t - s_ >= s.window)
        for i in range(s.L):
            P = f'model.layers.{i}.'
            h = s.norm(x, s.w[P + 'input_layernorm.weight'])
            q = s.lin(h, i, 'q_proj').view(B, T, s.nh, s.hd).transpose(1, 2)
            k = s.lin(h, i, 'k_proj').view(B, T, s.nkv, s.hd).transpose(1, 2)
            v = s.lin(h, i, 'v_proj').view(B, T, s.nkv, s.hd).transpose(1, 2)
            q, k = rope(q) * qscale, rope(k)
            rep = s.nh // s.nkv
            k, v = k.repeat_interleave(rep, 1), v.repeat_interleave(rep, 1)
            att = ((q @ k.transpose(-1, -2)) / math.sqrt(s.hd)).masked_fill(mask, float('-inf')).softmax(-1)
            x = x + s.lin((att @ v).transpose(1, 2).reshape(B, T, s.nh * s.hd), i, 'o_proj')
            h = s.norm(x, s.w[P + 'post_attention_layernorm.weight'])
            x = x + s.lin(torch.nn.functional.silu(s.lin(h, i, 'gate_proj')) * s.lin(h, i, 'up_proj'), i, 'down_proj')
        x = s.norm(x, s.w['model.norm.weight'])
        return x @ s.w['lm_head.weight'].T
