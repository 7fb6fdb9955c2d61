"""Reference forward/backward with LoRA in plain PyTorch, float64, for Phi-3 / Phi-4-mini
(Phi3ForCausalLM, model_type phi3), following transformers' modeling_phi3.py and
modeling_rope_utils.py, with ref_llama.Ref's interface (key, set_lora, forward, loss, greedy)
so make_fixture.py drives it:
  - fused qkv_proj (rows q, then k, then v; the output sliced at NH*D and NH*D + NKV*D) and
    gate_up_proj (output chunked in half: gate, up; up * silu(gate)), LoRA on the fused
    linears as PEFT wraps them;
  - partial rotary: the first int(head_dim * partial_rotary_factor) values of each head
    rotate (rotate_half within them), the rest pass through;
  - longrope (_compute_longrope_parameters): inv_freq = 1 / (ext * base^(2i/dim)) with ext
    the short factors, or the long ones when the pass's max(position) + 1 exceeds
    original_max_position_embeddings (longrope_frequency_update); cos and sin times the
    attention factor (rope_scaling's attention_factor, else sqrt(1 + ln(f) / ln(orig)) with
    f = max_position_embeddings / original_max_position_embeddings, 1 when f <= 1);
  - sliding_window: query t sees keys s with t - window < s <= t (sliding_window_overlay);
  - RMSNorm with rms_norm_eps (Phi3Config's default 1e-5), tied or untied head.
Positions restart at 0 per row."""
import math, os, sys, torch
sys.path.insert(0, os.path.dirname(__file__)); import ref_llama

class Ref(ref_llama.Ref):
    def __init__(s, model_dir, dtype=torch.float64):
        super().__init__(model_dir, dtype)
        c = s.cfg; rp = c.get('rope_parameters') or {}
        s.eps = c.get('rms_norm_eps', 1e-5)
        s.rot = int(s.hd * rp.get('partial_rotary_factor', c.get('partial_rotary_factor', 1.0)))
        s.window = c.get('sliding_window')
        rs = c.get('rope_scaling') or (rp if rp.get('rope_type') == 'longrope' else None)
        s.longrope = rs is not None and (rs.get('rope_type') or rs.get('type')) == 'longrope'
        if s.longrope:
            s.short, s.long = rs['short_factor'], rs['long_factor']
            orig = rs.get('original_max_position_embeddings') or c.get('original_max_position_embeddings')
            f = rs.get('factor')
            if orig: f = c['max_position_embeddings'] / orig
            else: orig = c['max_position_embeddings']
            s.orig = orig
            af = rs.get('attention_factor')
            s.af = af if af is not None else (math.sqrt(1 + math.log(f) / math.log(orig)) if f and f > 1.0 else 1.0)
    def rope_tables(s, T):
        ext = torch.ones(s.rot // 2, dtype=s.dtype); af = 1.0
        if s.longrope:
            ext = torch.tensor(s.long if T > s.orig else s.short, dtype=s.dtype); af = s.af
        inv = 1.0 / (ext * s.theta ** (torch.arange(0, s.rot, 2, dtype=s.dtype) / s.rot))
        fr = torch.outer(torch.arange(T, dtype=s.dtype), inv); fr = torch.cat((fr, fr), -1)
        return fr.cos() * af, fr.sin() * af
    def forward(s, ids):
        B, T = ids.shape; x = s.w['model.embed_tokens.weight'][ids]
        cos, sin = s.rope_tables(T); r = s.rot
        def rope(q):
            qr, qp = q[..., :r], q[..., r:]
            a, b = qr[..., : r // 2], qr[..., r // 2:]
            return torch.cat((qr * cos + torch.cat((-b, a), -1) * sin, qp), -1)
        t = torch.arange(T)[:, None]; s_ = torch.arange(T)[None, :]
        mask = s_ > t
        if s.window: mask = mask | (t - s_ >= s.window)
        nq, nk = s.nh * s.hd, s.nkv * s.hd
        for i in range(s.L):
            P = f'model.layers.{i}.'
            h = s.norm(x, s.w[P + 'input_layernorm.weight'])
            qkv = s.lin(h, i, 'qkv_proj')
            q = qkv[..., :nq].view(B, T, s.nh, s.hd).transpose(1, 2)
            k = qkv[..., nq:nq + nk].view(B, T, s.nkv, s.hd).transpose(1, 2)
            v = qkv[..., nq + nk:].view(B, T, s.nkv, s.hd).transpose(1, 2)
            q, k = rope(q), rope(k)
            rep = s.nh // s.nkv
            k, v = k.repeat_interleave(rep, 1), v.repeat_interleave(rep, 1)
            att = ((q @ k.transpose(-1, -2)) / math.sqrt(s.hd)).masked_fill(mask, float('-inf')).softmax(-1)
            x = x + s.lin((att @ v).transpose(1, 2).reshape(B, T, nq), i, 'o_proj')
            h = s.norm(x, s.w[P + 'post_attention_layernorm.weight'])
            gate, up = s.lin(h, i, 'gate_up_proj').chunk(2, dim=-1)
            x = x + s.lin(up * torch.nn.functional.silu(gate), i, 'down_proj')
        x = s.norm(x, s.w['model.norm.weight'])
        return x @ s.w['lm_head.weight'].T
