/* trainer/model/family_phi3.c — Phi-3 and Phi-4-mini (Phi3ForCausalLM), as transformers'
 * modeling_phi3.py computes them.
 *
 * The decoder layer (Phi3DecoderLayer): Llama's, with the projections fused as the
 * checkpoints store them, and the outputs split as transformers slices them:
 *   h = rmsnorm(x); qkv = h Wqkv^T, q k v = its first NH*D, next NKV*D, last NKV*D columns
 *   rope(q), rope(k) on the first rotary_dim = int(head_dim * partial_rotary_factor) values
 *   of each head (Phi-4-mini: 0.75), the rest passing through
 *   x = x + attention(q, k, v) Wo^T, within sliding_window when the config has one
 *   h = rmsnorm(x); gu = h Wgate_up^T, gate up = its first and second FF columns
 *   x = x + (silu(gate) * up) Wdown^T
 * LoRA wraps the fused linears as PEFT does (one A and B for qkv_proj, one for gate_up_proj).
 * RoPE may be longrope-scaled (hf_config.c, layer_rope). The window is a real band
 * (op_attention_ex: t attends s when t - s < window, transformers' sliding_window_overlay).
 * resid_pdrop / attention_dropout / embd_pdrop are training-time dropout of the base
 * model, which lorafit does not apply (the published configs set them 0).
 *
 * GGUF: llama.cpp's arch "phi3" (Phi3MiniModel in convert_hf_to_gguf.py): blk.N.attn_qkv
 * and blk.N.ffn_up hold the fused weights as they are (no permutation), rope.dimension_count
 * is the rotary dimensions, the longrope factors are the tensors rope_factors_long /
 * rope_factors_short with rope.scaling.attn_factor and original_context_length, and
 * attention.sliding_window is written (llama.cpp ignores it: gguf_check warns).
 * Default LoRA targets: every linear (PEFT has no default for phi3). */
#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "trainer/model/family.h"
#include "trainer/model/internal.h"
#include "trainer/model/lora.h"

static Tensor *phi3_layer_forward(const LayerPass *p, Tensor *x, int i) {
    const ModelConfig *c = &p->m->cfg;
    Graph *g = p->g;
    float eps = (float)c->rms_norm_eps;
    int nh = c->num_attention_heads, nkv = c->num_key_value_heads, d = c->head_dim;
    int64_t nq = (int64_t)nh * d, nk = (int64_t)nkv * d, ff = c->intermediate_size;
    Tensor *h = op_rmsnorm(g, x, layer_norm_weight(p, i, NORM_ATTN), eps);
    Tensor *qkv = layer_linear(p, h, i, MODULE_QKV); /* (N, NH*D + 2 NKV*D) */
    Tensor *q = op_columns(g, qkv, 0, nq);           /* (N, NH*D) */
    Tensor *k = op_columns(g, qkv, nq, nk);          /* (N, NKV*D) */
    Tensor *v = op_columns(g, qkv, nq + nk, nk);     /* (N, NKV*D) */
    q = layer_rope(p, q, nh);
    k = layer_rope(p, k, nkv);
    Tensor *att = layer_attention(p, q, k, v, i); /* (N, NH*D), within its window */
    x = op_add(g, x, layer_linear(p, att, i, MODULE_O));
    h = op_rmsnorm(g, x, layer_norm_weight(p, i, NORM_MLP), eps);
    Tensor *gate_up = layer_linear(p, h, i, MODULE_GATE_UP); /* (N, 2 FF) */
    Tensor *ff_out = op_swiglu(g, op_columns(g, gate_up, 0, ff), op_columns(g, gate_up, ff, ff));
    return op_add(g, x, layer_linear(p, ff_out, i, MODULE_DOWN));
}

static const FamilyNorm phi3_norms[2] = {
    {NORM_ATTN, "input_layernorm.weight", "attn_norm.weight", false, MODULE_QKV},
    {NORM_MLP, "post_attention_layernorm.weight", "ffn_norm.weight", false, MODULE_GATE_UP},
};

/* Phi3Config: no biases; sliding_window (null in Phi-4-mini) applies to every layer;
 * partial_rotary_factor (1 by default) at the top level (transformers 5: in
 * rope_parameters, read by hf_config.c). */
static int read_phi3(const ConfigReader *r, ModelConfig *cfg) {
    if (config_read_number(r, "partial_rotary_factor", 1.0, &cfg->partial_rotary_factor)) return -1;
    return config_read_sliding_window(r, true, cfg);
}

/* llama.cpp's phi3 ignores the window (llama_model_phi3::load_arch_hparams: merge warns from
 * which length, as for every arch without gguf_sliding_window) and needs NH * D = hidden (its
 * attn_output is created (hidden, hidden)). */
static int phi3_gguf_check(const ModelConfig *c, char *err, size_t errlen) {
    if (c->num_attention_heads * c->head_dim != c->hidden_size) {
        snprintf(err, errlen,
                 "gguf: llama.cpp's phi3 needs heads * head_dim = hidden_size (%d * %d != %d)",
                 c->num_attention_heads, c->head_dim, c->hidden_size);
        return -1;
    }
    return 0;
}

static int phi3_gguf_metadata(struct GgufWriter *w, const ModelConfig *c, char *err,
                              size_t errlen) {
    int rc = gguf_set_u32(w, "phi3.rope.dimension_count", (uint32_t)c->rotary_dim, err, errlen);
    if (rc == 0)
        rc = gguf_set_u32(w, "phi3.attention.sliding_window", (uint32_t)c->sliding_window, err,
                          errlen);
    if (rc == 0 && c->rope_scaling.longrope) {
        rc = gguf_set_u32(w, "phi3.rope.scaling.original_context_length",
                          (uint32_t)c->rope_scaling.original_max_position_embeddings, err, errlen);
        if (rc == 0)
            rc = gguf_set_f32(w, "phi3.rope.scaling.attn_factor",
                              (float)c->rope_scaling.attention_factor, err, errlen);
    }
    return rc;
}

/* A longrope factor tensor of the file as a JSON list; NULL (err set) unless 1-D F32. */
static json_t *factor_list(const GgufConfigReader *r, const GgufTensorInfo *t) {
    if (!t || t->type != GGML_TYPE_F32 || t->n_dims != 1) {
        snprintf(r->err, r->errlen,
                 "%s: rope_factors_long.weight and rope_factors_short.weight must both be there, "
                 "1-D F32",
                 gguf_file_path(r->f));
        return NULL;
    }
    json_t *a = json_array();
    for (int64_t i = 0; a && i < t->ne[0]; i++) {
        float v;
        memcpy(&v, (const uint8_t *)t->data + 4 * i, sizeof v);
        json_array_append_new(a, json_real(v));
    }
    return a;
}

/* phi3_gguf_metadata inverted: the longrope factors and their keys (rope.dimension_count is
 * partial_rotary_factor, gguf_config.c). No sliding window: llama.cpp's phi3 applies none. */
static int phi3_gguf_config(const GgufConfigReader *r) {
    const GgufTensorInfo *lt = gguf_find_tensor(r->f, "rope_factors_long.weight"),
                         *st = gguf_find_tensor(r->f, "rope_factors_short.weight");
    if (!lt && !st) return 0;
    json_t *l = factor_list(r, lt), *s = l ? factor_list(r, st) : NULL;
    if (!s) {
        json_decref(l);
        return -1;
    }
    json_t *rope =
        json_pack("{s:s, s:o, s:o}", "rope_type", "longrope", "long_factor", l, "short_factor", s);
    json_object_set_new(r->cfg, "rope_scaling", rope);
    json_t *keep = json_object();
    json_t *saved = r->cfg;
    GgufConfigReader sub = *r;
    sub.cfg = keep;
    int rc =
        gguf_config_copy(&sub, "rope.scaling.original_context_length",
                         "original_max_position_embeddings", false) < 0 ||
                gguf_config_copy(&sub, "rope.scaling.attn_factor", "attention_factor", true) < 0
            ? -1
            : 0;
    if (rc == 0) json_object_update(json_object_get(saved, "rope_scaling"), keep);
    json_decref(keep);
    return rc;
}

const ModelFamily family_phi3 = {
    .model_type = "phi3",
    .architecture = "Phi3ForCausalLM",
    .default_max_positions = 4096,
    .default_rope_theta = 10000.0,
    .read_config = read_phi3,
    .norms = phi3_norms,
    .n_norms = 2,
    .layer_forward = phi3_layer_forward,
    .gguf_arch = "phi3",
    .gguf_check = phi3_gguf_check,
    .gguf_metadata = phi3_gguf_metadata,
    .default_targets = LORA_QKV | LORA_O | LORA_GATE_UP | LORA_DOWN,
    .modules = LORA_QKV | LORA_O | LORA_GATE_UP | LORA_DOWN,
    .gguf_load = true,
    .gguf_config = phi3_gguf_config,
};
