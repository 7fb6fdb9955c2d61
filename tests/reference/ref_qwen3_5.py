"""Reference forward/backward with LoRA in plain PyTorch, float64, for Qwen3.5's text decoder
(Qwen3_5ForCausalLM, model_type qwen3_5_text), following transformers' modeling_qwen3_5.py,
with ref_llama.Ref's interface (key, set_lora, forward, loss, greedy) so make_fixture.py
drives it. Independent of lorafit's chunked kernel: the gated delta rule runs token by token
(torch_recurrent_gated_delta_rule's loop),
  S_t = exp(g_t) S_{t-1};  S_t += k_t (beta_t (v_t - S_t^T k_t))^T;  o_t = S_t^T q_t.
  - layer_types ("linear_attention" / "full_attention"), else every full_attention_interval-th
    layer (default 4) full;
  - every Qwen3_5RMSNorm scales by (1 + w): input_layernorm, post_attention_layernorm, q_norm,
    k_norm, the final norm;
  - a linear layer: mixed = silu(depthwise causal conv1d(in_proj_qkv(h))) (kernel KW, no
    bias), split q (NK*DK), k (NK*DK), v (NV*DV); q = l2norm(q) / sqrt(DK), k = l2norm(k)
    (eps 1e-6 inside the sqrt); value head j reads key head j // (NV / NK) (repeat_interleave);
    beta = sigmoid(in_proj_b(h)), g = -exp(A_log) softplus(in_proj_a(h) + dt_bias);
    out_proj(w * rmsnorm(o) * silu(in_proj_z(h))) per value head (Qwen3_5RMSNormGated, plain w);
  - a full layer: q_proj gives per head D query then D gate values; (1 + w) q/k norms; RoPE
    (rotate_half) on the first int(D * partial_rotary_factor) values (0.25 by default);
    causal GQA scaled by D^-1/2; o_proj(attention * sigmoid(gate));
  - MLP down(silu(gate(h)) * up(h)); positions restart at 0 per row."""
import math, os, sys, torch
sys.path.insert(0, os.path.dirname(__file__)); import ref_llama

class Ref(ref_llama.Ref):
    def __init__(s, model_dir, dtype=torch.float64):
        super().__init__(model_dir, dtype)
        c = s.cfg; rp = c.get('rope_parameters') or {}
        s.hd = c.get('head_dim', 256)
        s.theta = rp.get('rope_theta', c.get('rope_theta', 10000.0))
        s.rot = int(s.hd * rp.get('partial_rotary_factor', c.get('partial_rotary_factor', 0.25)))
        iv = c.get('full_attention_interval', 4)
        s.types = c.get('layer_types') or ['linear_attention' if (i + 1) % iv else 'full_attention' for i in range(s.L)]
        s.nk, s.nv = c.get('linear_num_key_heads', 16), c.get('linear_num_value_heads', 32)
        s.dk, s.dv = c.get('linear_key_head_dim', 128), c.get('linear_value_head_dim', 128)
        s.kw = c.get('linear_conv_kernel_dim', 4)
    def norm(s, x, wt): return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + s.eps) * (1.0 + wt)
    def attention(s, h, i, cos, sin):
        B, T, _ = h.shape; P = f'model.layers.{i}.self_attn.'; D = s.hd
        q, gate = s.lin(h, i, 'q_proj').view(B, T, s.nh, 2 * D).chunk(2, dim=-1)
        gate = gate.reshape(B, T, s.nh * D)
        q = s.norm(q, s.w[P + 'q_norm.weight']).transpose(1, 2)
        k = s.norm(s.lin(h, i, 'k_proj').view(B, T, s.nkv, D), s.w[P + 'k_norm.weight']).transpose(1, 2)
        v = s.lin(h, i, 'v_proj').view(B, T, s.nkv, D).transpose(1, 2)
        def rope(x):
            r, p = x[..., :s.rot], x[..., s.rot:]
            a, b = r[..., : s.rot // 2], r[..., s.rot // 2:]
            return torch.cat((r * cos + torch.cat((-b, a), -1) * sin, p), -1)
        q, k = rope(q), rope(k); rep = s.nh // s.nkv
        k, v = k.repeat_interleave(rep, 1), v.repeat_interleave(rep, 1)
        mask = torch.arange(T)[None, :] > torch.arange(T)[:, None]
        att = ((q @ k.transpose(-1, -2)) / math.sqrt(D)).masked_fill(mask, float('-inf')).softmax(-1)
        o = (att @ v).transpose(1, 2).reshape(B, T, s.nh * D)
        return s.lin(o * torch.sigmoid(gate), i, 'o_proj')
    def deltanet(s, h, i):
        B, T, _ = h.shape; P = f'model.layers.{i}.linear_attn.'
        lk, lv = s.nk * s.dk, s.nv * s.dv
        x = s.lin(h, i, 'in_proj_qkv')  # (B, T, CH)
        w = s.w[P + 'conv1d.weight'][:, 0, :]  # (CH, KW)
        xp = torch.cat((torch.zeros(B, s.kw - 1, x.shape[-1], dtype=x.dtype), x), 1)
        conv = sum(w[:, j] * xp[:, j:j + T] for j in range(s.kw))
        mixed = torch.nn.functional.silu(conv)
        q = mixed[..., :lk].view(B, T, s.nk, s.dk); k = mixed[..., lk:2 * lk].view(B, T, s.nk, s.dk)
        v = mixed[..., 2 * lk:].view(B, T, s.nv, s.dv)
        l2 = lambda t: t * torch.rsqrt((t * t).sum(-1, keepdim=True) + 1e-6)
        q, k = l2(q) / math.sqrt(s.dk), l2(k)
        rep = s.nv // s.nk; q, k = q.repeat_interleave(rep, 2), k.repeat_interleave(rep, 2)
        beta = torch.sigmoid(s.lin(h, i, 'in_proj_b'))  # (B, T, NV)
        g = -s.w[P + 'A_log'].exp() * torch.nn.functional.softplus(s.lin(h, i, 'in_proj_a') + s.w[P + 'dt_bias'])
        S = torch.zeros(B, s.nv, s.dk, s.dv, dtype=x.dtype); outs = []
        for t in range(T):
            S = S * g[:, t].exp()[..., None, None]
            kv = (S * k[:, t, :, :, None]).sum(-2)  # (B, NV, DV)
            delta = (v[:, t] - kv) * beta[:, t, :, None]
            S = S + k[:, t, :, :, None] * delta[:, :, None, :]
            outs.append((S * q[:, t, :, :, None]).sum(-2))
        o = torch.stack(outs, 1)  # (B, T, NV, DV)
        z = s.lin(h, i, 'in_proj_z').view(B, T, s.nv, s.dv)
        o = o * torch.rsqrt(o.pow(2).mean(-1, keepdim=True) + s.eps) * s.w[P + 'norm.weight']
        o = o * torch.nn.functional.silu(z)
        return s.lin(o.reshape(B, T, lv), i, 'out_proj')
    def forward(s, ids):
        B, T = ids.shape; x = s.w['model.embed_tokens.weight'][ids]
        inv = 1.0 / (s.theta ** (torch.arange(0, s.rot, 2, dtype=s.dtype) / s.rot))
        fr = torch.outer(torch.arange(T, dtype=s.dtype), inv); fr = torch.cat((fr, fr), -1); cos, sin = fr.cos(), fr.sin()
        for i in range(s.L):
            P = f'model.layers.{i}.'
            h = s.norm(x, s.w[P + 'input_layernorm.weight'])
            x = x + (s.deltanet(h, i) if s.types[i] == 'linear_attention' else s.attention(h, i, cos, sin))
            h = s.norm(x, s.w[P + 'post_attention_layernorm.weight'])
            x = x + s.lin(torch.nn.functional.silu(s.lin(h, i, 'gate_proj')) * s.lin(h, i, 'up_proj'), i, 'down_proj')
        return s.norm(x, s.w['model.norm.weight']) @ s.w['lm_head.weight'].T
