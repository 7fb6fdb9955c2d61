#!/usr/bin/python3
"""Write a randomly initialised HF model directory of a family lorafit trains
(llama / qwen2 / mistral / qwen3), or of Gemma 3's text model (gemma3_text, for the
reference ahead of lorafit). Qwen3: --head-dim (independent of hidden / heads),
q_norm / k_norm weights 1 + --qk-norm-spread * N(0, 1), --attention-bias for biases on
q/k/v/o. Gemma 3: its norms hold offsets from 1 (weights --qk-norm-spread * N(0, 1), also
its four layer norms), --window and --pattern (every pattern-th layer full, the others
sliding), --local-theta for the sliding layers' RoPE, --scaling-factor for the full ones'
linear rope_scaling, --query-pre-attn-scalar. SmolLM3: --no-rope-layers 1,1,0 (else the
config derives them), --rope-parameters (transformers 5's rope_parameters instead of
rope_theta), tie_word_embeddings left out when tied (SmolLM3Config's default). OLMo 2: no
input norms; post-attention and post-feedforward norms and q/k norms over the whole
projections, all 1 + --qk-norm-spread * N(0, 1). Granite: --embedding-multiplier,
--attention-multiplier, --residual-multiplier, --logits-scaling. Gemma 2 (gemma2): Gemma 3's without q/k norms,
local RoPE or scaling, with --attn-softcap and --final-softcap. Mistral: --window is its sliding_window.
--wrapper: the same decoder weights (the same seed draws them first) as the multimodal
checkpoint around it, under model.language_model. (--legacy-layout: language_model.model.,
transformers < 4.52), beside a one-layer vision tower and the projector in bfloat16.
gemma3_text: Gemma3ForConditionalGeneration (model_type gemma3) with a SigLIP tower;
config.json's text_config naming only what differs from Gemma3TextConfig's defaults (as
gemma-3-4b-it's), layer_types left to sliding_window_pattern, and final_logit_softcapping
30, which the wrapper never applies. ministral3: Mistral3ForConditionalGeneration (model_type
mistral3) with a Pixtral tower (modeling_pixtral.py: patch_conv, ln_pre, transformer.layers
with attention q/k/v/o_proj and feed_forward gate/up/down_proj, the names a plain
target_modules list would also reach) and Mistral3MultiModalProjector (norm,
patch_merger.merging_layer, linear_1, linear_2, no biases); text_config naming what differs
from Ministral3Config's defaults, with model_type ministral3 (without one Mistral3Config
would read a Mistral text config).
Ministral 3 (ministral3): yarn rope_parameters with --yarn-original, --yarn-factor, --mscale,
--mscale-all-dim and --llama4-beta; --sliding-window as Phi-3's."""
import argparse, json, os, sys, numpy as np
sys.path.insert(0, os.path.dirname(__file__)); import st
ap = argparse.ArgumentParser(); ap.add_argument('--out', required=True); ap.add_argument('--arch', default='qwen2')
ap.add_argument('--hidden', type=int, default=48); ap.add_argument('--inter', type=int, default=80)
ap.add_argument('--layers', type=int, default=2); ap.add_argument('--heads', type=int, default=6)
ap.add_argument('--kv', type=int, default=2); ap.add_argument('--vocab', type=int, default=97)
ap.add_argument('--head-dim', type=int, default=0, help='0: hidden / heads')
ap.add_argument('--attention-bias', action='store_true'); ap.add_argument('--qk-norm-spread', type=float, default=0.3)
ap.add_argument('--tied', action='store_true'); ap.add_argument('--bf16', action='store_true')
ap.add_argument('--theta', type=float, default=1e6); ap.add_argument('--eps', type=float, default=1e-6)
ap.add_argument('--seed', type=int, default=1)
ap.add_argument('--window', type=int, default=4); ap.add_argument('--pattern', type=int, default=2)
ap.add_argument('--local-theta', type=float, default=10000.0); ap.add_argument('--scaling-factor', type=float, default=0)
ap.add_argument('--query-pre-attn-scalar', type=float, default=0, help='0: head_dim')
ap.add_argument('--no-rope-layers', default=''); ap.add_argument('--rope-parameters', action='store_true')
ap.add_argument('--sliding-window', type=int, default=0, help='phi3: the window (0: none)')
ap.add_argument('--partial-rotary', type=float, default=1.0, help='phi3: partial_rotary_factor')
ap.add_argument('--longrope-original', type=int, default=0, help='phi3: longrope with this original_max_position_embeddings')
ap.add_argument('--max-pos', type=int, default=4096)
ap.add_argument('--layer-types', default='', help='qwen3_5_text: L,F,... (linear / full); none: full_attention_interval --interval')
ap.add_argument('--interval', type=int, default=4)
ap.add_argument('--linear-heads', default='2,4', help='qwen3_5_text: NK,NV'); ap.add_argument('--linear-dims', default='8,12', help='qwen3_5_text: DK,DV')
ap.add_argument('--conv-kernel', type=int, default=4); ap.add_argument('--conv-scale', type=float, default=0.5)
ap.add_argument('--a-range', default='0.05,2.0', help='qwen3_5_text: A = exp(A_log) uniform in this range')
ap.add_argument('--wrapper', action='store_true', help='gemma3_text / ministral3 / qwen3_5_text: as the multimodal checkpoint (see the top)')
ap.add_argument('--legacy-layout', action='store_true', help='--wrapper: the tensor names of transformers < 4.52')
ap.add_argument('--yarn-original', type=int, default=16, help='ministral3: original_max_position_embeddings')
ap.add_argument('--yarn-factor', type=float, default=8.0); ap.add_argument('--mscale', type=float, default=1.0)
ap.add_argument('--mscale-all-dim', type=float, default=1.0); ap.add_argument('--llama4-beta', type=float, default=0.1)
ap.add_argument('--embedding-multiplier', type=float, default=1.0); ap.add_argument('--attention-multiplier', type=float, default=1.0)
ap.add_argument('--residual-multiplier', type=float, default=1.0); ap.add_argument('--logits-scaling', type=float, default=1.0)
ap.add_argument('--attn-softcap', type=float, default=50.0); ap.add_argument('--final-softcap', type=float, default=30.0)
a = ap.parse_args(); r = np.random.default_rng(a.seed); hd = a.head_dim or a.hidden // a.heads
gemma = a.arch in ('gemma3_text', 'gemma2')
q35 = a.arch == 'qwen3_5_text'  # (1 + w) norms like Gemma's, two kinds of layer
if q35:
    nk, nv = map(int, a.linear_heads.split(',')); dk, dv = map(int, a.linear_dims.split(',')); a.a_low, a.a_high = map(float, a.a_range.split(','))
    kinds = a.layer_types.split(',') if a.layer_types else ['L' if (i + 1) % a.interval else 'F' for i in range(a.layers)]
def W(*s, sc=None): x = (r.standard_normal(s) * (sc if sc else 1 / np.sqrt(s[-1]))).astype(np.float32); return ('BF16', x) if a.bf16 else x
def norm(n, spread=0.1): return ((0 if gemma or q35 else 1) + spread * r.standard_normal(n)).astype(np.float32)
# Gemma multiplies the embeddings by sqrt(hidden): its table is that much smaller
t = {'model.embed_tokens.weight': W(a.vocab, a.hidden, sc=0.5 / np.sqrt(a.hidden) if gemma else 0.5),
     'model.norm.weight': norm(a.hidden)}
for i in range(a.layers):
    P = f'model.layers.{i}.'
    if a.arch != 'olmo2': t[P + 'input_layernorm.weight'] = norm(a.hidden)
    t[P + 'post_attention_layernorm.weight'] = norm(a.hidden, a.qk_norm_spread if a.arch == 'olmo2' else 0.1)
    if a.arch == 'olmo2':
        t[P + 'post_feedforward_layernorm.weight'] = norm(a.hidden, a.qk_norm_spread)
        t[P + 'self_attn.q_norm.weight'] = norm(a.heads * hd, a.qk_norm_spread); t[P + 'self_attn.k_norm.weight'] = norm(a.kv * hd, a.qk_norm_spread)
    if gemma:
        t[P + 'pre_feedforward_layernorm.weight'] = norm(a.hidden, 0.3); t[P + 'post_feedforward_layernorm.weight'] = norm(a.hidden, 0.3)
    if q35 and kinds[i] == 'L':  # Qwen3_5GatedDeltaNet
        ch = 2 * nk * dk + nv * dv; Q = P + 'linear_attn.'
        t[Q + 'in_proj_qkv.weight'] = W(ch, a.hidden); t[Q + 'in_proj_z.weight'] = W(nv * dv, a.hidden)
        t[Q + 'in_proj_b.weight'] = W(nv, a.hidden); t[Q + 'in_proj_a.weight'] = W(nv, a.hidden)
        t[Q + 'out_proj.weight'] = W(a.hidden, nv * dv)
        t[Q + 'conv1d.weight'] = (a.conv_scale * r.standard_normal((ch, 1, a.conv_kernel))).astype(np.float32)
        t[Q + 'dt_bias'] = (1 + 0.5 * r.standard_normal(nv)).astype(np.float32)
        t[Q + 'A_log'] = np.log(r.uniform(a.a_low, a.a_high, nv)).astype(np.float32)  # -g = A softplus(...)
        t[Q + 'norm.weight'] = (1 + 0.3 * r.standard_normal(dv)).astype(np.float32)  # plain w
        t[P + 'mlp.gate_proj.weight'] = W(a.inter, a.hidden); t[P + 'mlp.up_proj.weight'] = W(a.inter, a.hidden)
        t[P + 'mlp.down_proj.weight'] = W(a.hidden, a.inter)
    elif q35:  # Qwen3_5Attention: q_proj twice as wide (query, gate per head), (1 + w) q/k norms
        t[P + 'self_attn.q_proj.weight'] = W(2 * a.heads * hd, a.hidden); t[P + 'self_attn.k_proj.weight'] = W(a.kv * hd, a.hidden)
        t[P + 'self_attn.v_proj.weight'] = W(a.kv * hd, a.hidden); t[P + 'self_attn.o_proj.weight'] = W(a.hidden, a.heads * hd)
        t[P + 'self_attn.q_norm.weight'] = norm(hd, a.qk_norm_spread); t[P + 'self_attn.k_norm.weight'] = norm(hd, a.qk_norm_spread)
        t[P + 'mlp.gate_proj.weight'] = W(a.inter, a.hidden); t[P + 'mlp.up_proj.weight'] = W(a.inter, a.hidden)
        t[P + 'mlp.down_proj.weight'] = W(a.hidden, a.inter)
    elif a.arch == 'phi3':  # Phi3Attention / Phi3MLP: fused qkv_proj and gate_up_proj
        t[P + 'self_attn.qkv_proj.weight'] = W((a.heads + 2 * a.kv) * hd, a.hidden)
        t[P + 'self_attn.o_proj.weight'] = W(a.hidden, a.heads * hd)
        t[P + 'mlp.gate_up_proj.weight'] = W(2 * a.inter, a.hidden); t[P + 'mlp.down_proj.weight'] = W(a.hidden, a.inter)
    else:
        t[P + 'self_attn.q_proj.weight'] = W(a.heads * hd, a.hidden); t[P + 'self_attn.k_proj.weight'] = W(a.kv * hd, a.hidden)
        t[P + 'self_attn.v_proj.weight'] = W(a.kv * hd, a.hidden); t[P + 'self_attn.o_proj.weight'] = W(a.hidden, a.heads * hd)
        t[P + 'mlp.gate_proj.weight'] = W(a.inter, a.hidden); t[P + 'mlp.up_proj.weight'] = W(a.inter, a.hidden)
        t[P + 'mlp.down_proj.weight'] = W(a.hidden, a.inter)
    biases = (('q', a.heads * hd), ('k', a.kv * hd), ('v', a.kv * hd)) if a.arch == 'qwen2' else ()
    if a.attention_bias: biases = (('q', a.heads * hd), ('k', a.kv * hd), ('v', a.kv * hd), ('o', a.hidden))
    for n, d in biases:
        t[P + f'self_attn.{n}_proj.bias'] = (0.1 * r.standard_normal(d)).astype(np.float32)
    if a.arch in ('qwen3', 'gemma3_text'):  # Gemma 2 has no q/k norms
        t[P + 'self_attn.q_norm.weight'] = norm(hd, a.qk_norm_spread); t[P + 'self_attn.k_norm.weight'] = norm(hd, a.qk_norm_spread)
if not a.tied: t['lm_head.weight'] = W(a.vocab, a.hidden)
if a.wrapper and a.arch not in ('gemma3_text', 'ministral3', 'qwen3_5_text'): sys.exit('--wrapper: gemma3_text, ministral3 or qwen3_5_text')
if a.wrapper and q35:  # Qwen3_5ForConditionalGeneration: model.language_model., a vision tower, an MTP head
    t = {('model.language_model.' + k[6:] if k.startswith('model.') else k): v for k, v in t.items()}
    def B(*s): return ('BF16', (0.1 * r.standard_normal(s)).astype(np.float32))
    t.update({'model.visual.patch_embed.proj.weight': B(16, 3, 2, 4, 4), 'model.visual.blocks.0.attn.qkv.weight': B(48, 16),
              'model.visual.blocks.0.attn.proj.weight': B(16, 16), 'model.visual.merger.linear_fc1.weight': B(64, 64),
              'mtp.fc.weight': B(a.hidden, 2 * a.hidden), 'mtp.layers.0.self_attn.q_proj.weight': B(2 * a.heads * hd, a.hidden),
              'mtp.layers.0.mlp.gate_proj.weight': B(a.inter, a.hidden), 'mtp.norm.weight': B(a.hidden)})
elif a.wrapper:  # the decoder's tensors under the wrapper's prefix, then a tiny vision tower and projector
    lm, head = ('language_model.model.', 'language_model.lm_head.weight') if a.legacy_layout else ('model.language_model.', 'lm_head.weight')
    t = {(lm + k[6:] if k.startswith('model.') else head): v for k, v in t.items()}
    vh, top = 16, 'vision_tower.' if a.legacy_layout else 'model.vision_tower.'
    P = 'multi_modal_projector.' if a.legacy_layout else 'model.multi_modal_projector.'
    def B(*s): return ('BF16', (0.1 * r.standard_normal(s)).astype(np.float32))  # bfloat16, as the checkpoints
if a.wrapper and a.arch == 'ministral3':  # PixtralVisionModel (one layer) and Mistral3MultiModalProjector
    E = top + 'transformer.layers.0.'
    t.update({top + 'patch_conv.weight': B(vh, 3, 4, 4), top + 'ln_pre.weight': B(vh),
              E + 'attention_norm.weight': B(vh), E + 'ffn_norm.weight': B(vh),
              E + 'feed_forward.gate_proj.weight': B(2 * vh, vh), E + 'feed_forward.up_proj.weight': B(2 * vh, vh),
              E + 'feed_forward.down_proj.weight': B(vh, 2 * vh)})
    for n in ('q_proj', 'k_proj', 'v_proj', 'o_proj'):
        t[E + f'attention.{n}.weight'] = B(vh, vh)
    t.update({P + 'norm.weight': B(vh), P + 'patch_merger.merging_layer.weight': B(vh, 4 * vh),  # spatial_merge_size 2
              P + 'linear_1.weight': B(a.hidden, vh), P + 'linear_2.weight': B(a.hidden, a.hidden)})
if a.wrapper and a.arch == 'gemma3_text':  # SiglipVisionModel (one layer) and Gemma3MultiModalProjector
    V = top + 'vision_model.'; E = V + 'encoder.layers.0.'
    t.update({V + 'embeddings.patch_embedding.weight': B(vh, 3, 4, 4), V + 'embeddings.patch_embedding.bias': B(vh),
              V + 'embeddings.position_embedding.weight': B(16, vh), V + 'post_layernorm.weight': B(vh), V + 'post_layernorm.bias': B(vh),
              E + 'layer_norm1.weight': B(vh), E + 'layer_norm1.bias': B(vh), E + 'layer_norm2.weight': B(vh), E + 'layer_norm2.bias': B(vh),
              E + 'mlp.fc1.weight': B(2 * vh, vh), E + 'mlp.fc1.bias': B(2 * vh), E + 'mlp.fc2.weight': B(vh, 2 * vh), E + 'mlp.fc2.bias': B(vh)})
    for n in ('q_proj', 'k_proj', 'v_proj', 'out_proj'):  # the names a plain target_modules list would also reach
        t[E + f'self_attn.{n}.weight'] = B(vh, vh); t[E + f'self_attn.{n}.bias'] = B(vh)
    t[P + 'mm_input_projection_weight'] = B(vh, a.hidden); t[P + 'mm_soft_emb_norm.weight'] = B(vh)
os.makedirs(a.out, exist_ok=True); st.save(os.path.join(a.out, 'model.safetensors'), t, {'format': 'pt'})
arch = {'qwen2': 'Qwen2ForCausalLM', 'llama': 'LlamaForCausalLM', 'mistral': 'MistralForCausalLM',
        'qwen3': 'Qwen3ForCausalLM', 'gemma3_text': 'Gemma3ForCausalLM', 'smollm3': 'SmolLM3ForCausalLM',
        'olmo2': 'Olmo2ForCausalLM', 'granite': 'GraniteForCausalLM',
        'gemma2': 'Gemma2ForCausalLM', 'phi3': 'Phi3ForCausalLM', 'ministral3': 'Ministral3ForCausalLM', 'qwen3_5_text': 'Qwen3_5ForCausalLM'}[a.arch]
cfg = {'architectures': [arch], 'model_type': a.arch, 'hidden_size': a.hidden, 'intermediate_size': a.inter,
       'num_hidden_layers': a.layers, 'num_attention_heads': a.heads, 'num_key_value_heads': a.kv, 'vocab_size': a.vocab,
       'max_position_embeddings': a.max_pos, 'rms_norm_eps': a.eps, 'rope_theta': a.theta, 'hidden_act': 'silu',
       'tie_word_embeddings': a.tied, 'torch_dtype': 'bfloat16' if a.bf16 else 'float32', 'bos_token_id': 1, 'eos_token_id': 2}
if a.head_dim or a.arch in ('qwen3', 'gemma3_text', 'gemma2', 'qwen3_5_text'): cfg['head_dim'] = hd
if a.attention_bias or a.arch == 'qwen3': cfg['attention_bias'] = a.attention_bias
if a.arch == 'mistral': cfg.update(sliding_window=a.window)
if a.arch in ('qwen2', 'qwen3'): cfg.update(use_sliding_window=False, sliding_window=4096 if a.arch == 'qwen2' else None, max_window_layers=a.layers)
if gemma:
    del cfg['hidden_act']
    cfg.update(hidden_activation='gelu_pytorch_tanh', query_pre_attn_scalar=a.query_pre_attn_scalar or hd,
               sliding_window=a.window, sliding_window_pattern=a.pattern, rope_local_base_freq=a.local_theta,
               layer_types=['sliding_attention' if (i + 1) % a.pattern else 'full_attention' for i in range(a.layers)],
               rope_scaling={'rope_type': 'linear', 'factor': a.scaling_factor} if a.scaling_factor else None,
               attn_logit_softcapping=None, final_logit_softcapping=None, attention_bias=a.attention_bias)
    if a.arch == 'gemma2':  # one RoPE for all layers, both soft-caps
        for k in ('sliding_window_pattern', 'rope_local_base_freq', 'rope_scaling'): del cfg[k]
        cfg.update(attn_logit_softcapping=a.attn_softcap, final_logit_softcapping=a.final_softcap)
if a.arch == 'smollm3':
    if a.no_rope_layers: cfg['no_rope_layers'] = [int(x) for x in a.no_rope_layers.split(',')]
    if a.rope_parameters: cfg['rope_parameters'] = {'rope_type': 'default', 'rope_theta': cfg.pop('rope_theta')}
    if a.tied: del cfg['tie_word_embeddings']
if a.arch == 'granite':
    cfg.update(embedding_multiplier=a.embedding_multiplier, attention_multiplier=a.attention_multiplier,
               residual_multiplier=a.residual_multiplier, logits_scaling=a.logits_scaling)
if a.arch == 'phi3':  # Phi3Config's keys; longrope factors drawn per frequency
    rot = int(hd * a.partial_rotary)
    cfg.update(sliding_window=a.sliding_window or None, partial_rotary_factor=a.partial_rotary,
               original_max_position_embeddings=a.longrope_original or a.max_pos, resid_pdrop=0.0,
               embd_pdrop=0.0, attention_dropout=0.0, rope_scaling=None)
    if a.longrope_original:
        cfg['rope_scaling'] = {'type': 'longrope', 'short_factor': [round(float(x), 4) for x in 1 + 0.5 * r.random(rot // 2)],
                               'long_factor': [round(float(x), 4) for x in 1 + 7 * r.random(rot // 2)]}
if a.arch == 'ministral3':  # transformers 5's rope_parameters, as Ministral 3's config.json holds them
    cfg.update(sliding_window=a.sliding_window or None, rope_parameters={
        'rope_type': 'yarn', 'rope_theta': cfg.pop('rope_theta'), 'factor': a.yarn_factor,
        'original_max_position_embeddings': a.yarn_original, 'beta_fast': 32.0, 'beta_slow': 1.0,
        'mscale': a.mscale, 'mscale_all_dim': a.mscale_all_dim, 'llama_4_scaling_beta': a.llama4_beta})
if q35:  # as the checkpoints write it: rope_parameters with the (text-inert) mrope keys
    cfg['rope_parameters'] = {'rope_type': 'default', 'rope_theta': cfg.pop('rope_theta'), 'partial_rotary_factor': 0.25,
                              'mrope_interleaved': True, 'mrope_section': [1, 1, 0] if hd * 0.25 < 64 else [11, 11, 10]}
    cfg.update(linear_num_key_heads=nk, linear_num_value_heads=nv, linear_key_head_dim=dk, linear_value_head_dim=dv,
               linear_conv_kernel_dim=a.conv_kernel, attention_bias=False)
    if a.layer_types: cfg['layer_types'] = ['linear_attention' if k == 'L' else 'full_attention' for k in kinds]
    else: cfg['full_attention_interval'] = a.interval
if a.wrapper and q35:  # Qwen3_5Config: the decoder's config under text_config, as the published ones
    text = {k: v for k, v in cfg.items() if k not in ('architectures', 'torch_dtype', 'bos_token_id', 'eos_token_id')}
    text['model_type'] = 'qwen3_5_text'
    cfg = {'architectures': ['Qwen3_5ForConditionalGeneration'], 'model_type': 'qwen3_5', 'text_config': text,
           'vision_config': {'model_type': 'qwen3_5', 'depth': 1, 'hidden_size': 16, 'num_heads': 2,
                             'out_hidden_size': a.hidden, 'patch_size': 4, 'temporal_patch_size': 2},
           'image_token_id': 96, 'video_token_id': 95, 'tie_word_embeddings': a.tied,
           'torch_dtype': cfg['torch_dtype'], 'bos_token_id': 1, 'eos_token_id': 2}
elif a.wrapper and a.arch == 'gemma3_text':  # Gemma3Config: text_config names what differs from Gemma3TextConfig's defaults, as gemma-3-4b-it's
    text = {k: v for k, v in cfg.items() if k not in ('architectures', 'torch_dtype', 'bos_token_id', 'eos_token_id',
            'layer_types', 'hidden_activation', 'attn_logit_softcapping', 'max_position_embeddings')}
    for k, d in (('rope_theta', 1e6), ('rms_norm_eps', 1e-6), ('rope_local_base_freq', 10000.0), ('tie_word_embeddings', True),
                 ('attention_bias', False), ('rope_scaling', None)):
        if text.get(k) == d: del text[k]
    text['final_logit_softcapping'] = 30.0  # Gemma3ForConditionalGeneration never applies it
    cfg = {'architectures': ['Gemma3ForConditionalGeneration'], 'model_type': 'gemma3', 'text_config': text,
           'vision_config': {'model_type': 'siglip_vision_model', 'hidden_size': 16, 'intermediate_size': 32,
                             'num_hidden_layers': 1, 'num_attention_heads': 2, 'image_size': 16, 'patch_size': 4,
                             'vision_use_head': False},
           'boi_token_index': 255999, 'eoi_token_index': 256000, 'image_token_index': 262144, 'mm_tokens_per_image': 4,
           'initializer_range': 0.02, 'torch_dtype': cfg['torch_dtype'], 'bos_token_id': 1, 'eos_token_id': 2}
if a.wrapper and a.arch == 'ministral3':  # Mistral3Config: text_config names what differs from Ministral3Config's defaults
    text = {k: v for k, v in cfg.items() if k not in ('architectures', 'torch_dtype', 'bos_token_id', 'eos_token_id')}
    for k, d in (('rms_norm_eps', 1e-5), ('tie_word_embeddings', False), ('sliding_window', None), ('hidden_act', 'silu')):
        if text.get(k) == d: del text[k]
    cfg = {'architectures': ['Mistral3ForConditionalGeneration'], 'model_type': 'mistral3', 'text_config': text,
           'vision_config': {'model_type': 'pixtral', 'hidden_size': vh, 'intermediate_size': 2 * vh, 'num_hidden_layers': 1,
                             'num_attention_heads': 2, 'head_dim': vh // 2, 'image_size': 16, 'patch_size': 4,
                             'num_channels': 3, 'rope_theta': 10000.0, 'hidden_act': 'silu'},
           'image_token_index': 10, 'spatial_merge_size': 2, 'multimodal_projector_bias': False,
           'projector_hidden_act': 'gelu', 'vision_feature_layer': -1, 'torch_dtype': cfg['torch_dtype'],
           'bos_token_id': 1, 'eos_token_id': 2}
json.dump(cfg, open(os.path.join(a.out, 'config.json'), 'w'), indent=2); print(cfg)
