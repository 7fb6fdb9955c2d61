#!/usr/bin/python3
"""Write a randomly initialised Gemma 4 text model (Gemma4ForCausalLM, gemma4_text) as a HF
model directory (config.json + model.safetensors), with the keys of configuration_gemma4.py:
--layer-types S,F,... (sliding / full; the last must be F), --window, --head-dim (sliding
layers) and --global-head-dim (full layers), --kv and --global-kv (num_global_key_value_heads,
with --k-eq-v: the full layers have no v_proj), rope_parameters per layer type (--local-theta
default, --theta and --proportion proportional), --final-softcap, --ple P (per-layer inputs:
embed_tokens_per_layer, per_layer_model_projection, per_layer_projection_norm, each layer's
per_layer_input_gate, per_layer_projection, post_per_layer_input_norm), --shared N
(num_kv_shared_layers: the last N layers without k/v projections and norms), --double-wide.
Norm weights 1 + --norm-spread * N(0, 1) (Gemma 4's RMSNorm scales by w), layer_scalar
uniform in 0.5 .. 1.5. --wrapper: as Gemma4ForConditionalGeneration (gemma4), the decoder under
model.language_model. beside bfloat16 vision and audio tensors."""
import argparse, json, os, sys, numpy as np
sys.path.insert(0, os.path.dirname(__file__)); import st
ap = argparse.ArgumentParser(); ap.add_argument('--out', required=True)
ap.add_argument('--hidden', type=int, default=32); ap.add_argument('--inter', type=int, default=48)
ap.add_argument('--heads', type=int, default=4); ap.add_argument('--kv', type=int, default=2)
ap.add_argument('--head-dim', type=int, default=16); ap.add_argument('--global-head-dim', type=int, default=32)
ap.add_argument('--global-kv', type=int, default=0, help='0: none (null)'); ap.add_argument('--k-eq-v', action='store_true')
ap.add_argument('--layer-types', default='S,S,F'); ap.add_argument('--window', type=int, default=5)
ap.add_argument('--vocab', type=int, default=97); ap.add_argument('--tied', action='store_true')
ap.add_argument('--theta', type=float, default=1e6); ap.add_argument('--local-theta', type=float, default=10000.0)
ap.add_argument('--proportion', type=float, default=0.25); ap.add_argument('--final-softcap', type=float, default=0)
ap.add_argument('--ple', type=int, default=0); ap.add_argument('--shared', type=int, default=0)
ap.add_argument('--double-wide', action='store_true'); ap.add_argument('--norm-spread', type=float, default=0.3)
ap.add_argument('--eps', type=float, default=1e-6); ap.add_argument('--seed', type=int, default=1)
ap.add_argument('--bf16', action='store_true'); ap.add_argument('--wrapper', action='store_true')
a = ap.parse_args(); r = np.random.default_rng(a.seed)
types = ['sliding_attention' if k == 'S' else 'full_attention' for k in a.layer_types.split(',')]
L = len(types); first_shared = L - a.shared
def W(*s, sc=None): x = (r.standard_normal(s) * (sc if sc else 1 / np.sqrt(s[-1]))).astype(np.float32); return ('BF16', x) if a.bf16 else x
def norm(n, spread=None): return (1 + (a.norm_spread if spread is None else spread) * r.standard_normal(n)).astype(np.float32)
t = {'model.embed_tokens.weight': W(a.vocab, a.hidden, sc=0.5 / np.sqrt(a.hidden)), 'model.norm.weight': norm(a.hidden, 0.1)}
if a.ple:
    t['model.embed_tokens_per_layer.weight'] = W(a.vocab, L * a.ple, sc=0.5 / np.sqrt(a.ple))
    t['model.per_layer_model_projection.weight'] = W(L * a.ple, a.hidden)
    t['model.per_layer_projection_norm.weight'] = norm(a.ple)
for i, typ in enumerate(types):
    P = f'model.layers.{i}.'; full = typ == 'full_attention'
    d = a.global_head_dim if full else a.head_dim; nkv = a.global_kv if full and a.k_eq_v and a.global_kv else a.kv
    ff = a.inter * (2 if a.double_wide and i >= first_shared > 0 else 1)
    for n in ('input_layernorm', 'post_attention_layernorm', 'pre_feedforward_layernorm', 'post_feedforward_layernorm'):
        t[P + n + '.weight'] = norm(a.hidden)
    t[P + 'self_attn.q_proj.weight'] = W(a.heads * d, a.hidden); t[P + 'self_attn.o_proj.weight'] = W(a.hidden, a.heads * d)
    t[P + 'self_attn.q_norm.weight'] = norm(d)
    if i < first_shared:
        t[P + 'self_attn.k_proj.weight'] = W(nkv * d, a.hidden); t[P + 'self_attn.k_norm.weight'] = norm(d)
        if not (full and a.k_eq_v): t[P + 'self_attn.v_proj.weight'] = W(nkv * d, a.hidden)
    t[P + 'mlp.gate_proj.weight'] = W(ff, a.hidden); t[P + 'mlp.up_proj.weight'] = W(ff, a.hidden)
    t[P + 'mlp.down_proj.weight'] = W(a.hidden, ff)
    if a.ple:
        t[P + 'per_layer_input_gate.weight'] = W(a.ple, a.hidden); t[P + 'per_layer_projection.weight'] = W(a.hidden, a.ple)
        t[P + 'post_per_layer_input_norm.weight'] = norm(a.hidden)
    t[P + 'layer_scalar'] = r.uniform(0.5, 1.5, 1).astype(np.float32)
if not a.tied: t['lm_head.weight'] = W(a.vocab, a.hidden)
cfg = {'architectures': ['Gemma4ForCausalLM'], 'model_type': 'gemma4_text', 'hidden_size': a.hidden,
       'intermediate_size': a.inter, 'num_hidden_layers': L, 'num_attention_heads': a.heads, 'num_key_value_heads': a.kv,
       'head_dim': a.head_dim, 'global_head_dim': a.global_head_dim, 'num_global_key_value_heads': a.global_kv or None,
       'attention_k_eq_v': a.k_eq_v, 'vocab_size': a.vocab, 'vocab_size_per_layer_input': a.vocab,
       'hidden_size_per_layer_input': a.ple, 'num_kv_shared_layers': a.shared, 'use_double_wide_mlp': a.double_wide,
       'max_position_embeddings': 4096, 'rms_norm_eps': a.eps, 'hidden_activation': 'gelu_pytorch_tanh',
       'sliding_window': a.window, 'layer_types': types, 'final_logit_softcapping': a.final_softcap or None,
       'rope_parameters': {'sliding_attention': {'rope_type': 'default', 'rope_theta': a.local_theta},
                           'full_attention': {'rope_type': 'proportional', 'partial_rotary_factor': a.proportion,
                                              'rope_theta': a.theta}},
       'attention_bias': False, 'enable_moe_block': False, 'use_bidirectional_attention': None,
       'tie_word_embeddings': a.tied, 'torch_dtype': 'bfloat16' if a.bf16 else 'float32', 'bos_token_id': 2,
       'eos_token_id': 1, 'pad_token_id': 0}
if a.wrapper:  # Gemma4ForConditionalGeneration: model.language_model., vision and audio towers
    t = {('model.language_model.' + k[6:] if k.startswith('model.') else k): v for k, v in t.items()}
    def B(*s): return ('BF16', (0.1 * r.standard_normal(s)).astype(np.float32))
    t.update({'model.vision_tower.encoder.layers.0.self_attn.q_proj.linear.weight': B(16, 16),
              'model.vision_tower.encoder.layers.0.mlp.gate_proj.linear.weight': B(32, 16),
              'model.embed_vision.embedding_projection.weight': B(a.hidden, 16),
              'model.audio_tower.layers.0.self_attn.q_proj.linear.weight': B(16, 16),
              'model.embed_audio.embedding_projection.weight': B(a.hidden, 16)})
    text = {k: v for k, v in cfg.items() if k not in ('architectures', 'torch_dtype', 'bos_token_id', 'eos_token_id')}
    cfg = {'architectures': ['Gemma4ForConditionalGeneration'], 'model_type': 'gemma4', 'text_config': text,
           'vision_config': {'model_type': 'gemma4_vision', 'hidden_size': 16}, 'audio_config': {'model_type': 'gemma4_audio', 'hidden_size': 16},
           'tie_word_embeddings': a.tied, 'torch_dtype': cfg['torch_dtype'], 'bos_token_id': 2, 'eos_token_id': 1}
os.makedirs(a.out, exist_ok=True); st.save(os.path.join(a.out, 'model.safetensors'), t, {'format': 'pt'})
json.dump(cfg, open(os.path.join(a.out, 'config.json'), 'w'), indent=2)
