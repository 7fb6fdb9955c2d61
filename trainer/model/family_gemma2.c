/* trainer/model/family_gemma2.c — Gemma 2 (Gemma2ForCausalLM, gemma2), as transformers'
 * modeling_gemma2.py computes it: Gemma 3's layer (family_gemma3.c) without the q/k norms,
 * with one RoPE (rope_theta) for every layer, and attention scores soft-capped:
 *   h = norm_in(x); q, k, v = h Wq^T, h Wk^T, h Wv^T; rope(q), rope(k)
 *   x = x + norm_post_attn(attention(q, k, v) Wo^T)
 *       scores s = query_pre_attn_scalar^-1/2 q.k, then cap tanh(s / cap) with cap
 *       attn_logit_softcapping (before the mask); sliding layers (layer_types, else the even
 *       ones) see t - sliding_window < s <= t
 *   h = norm_pre_ff(x);  x = x + norm_post_ff((gelu_tanh(h Wgate^T) * (h Wup^T)) Wdown^T)
 * Every norm (1 + w); embeddings times sqrt(hidden) rounded to the table's dtype; the final
 * logits soft-capped by final_logit_softcapping (inside the fused lm_head + loss). Both caps
 * default to Gemma2Config's (50, 30) when absent; null turns one off.
 *
 * GGUF: llama.cpp's arch "gemma2" as convert_hf_to_gguf.py's Gemma2Model writes it (norms
 * + 1, attn_logit_softcapping, final_logit_softcapping, attention.sliding_window). llama.cpp
 * always applies both caps, always ties the head, slides the even layers unless told a
 * period (written when the model's is another) and scales scores by 1/sqrt(head_dim)
 * (1/sqrt(hidden / heads) for its 46-layer 27B): a model outside that (no cap, untied, a
 * query_pre_attn_scalar it does not assume) is refused with the reason; every published
 * Gemma 2 fits. Default LoRA targets: q_proj and v_proj (PEFT's for gemma2). */
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "trainer/model/family.h"
#include "trainer/model/internal.h"
#include "trainer/model/lora.h"
#include "trainer/store/store.h"

static Tensor *gemma2_layer_forward(const LayerPass *p, Tensor *x, int i) {
    const ModelConfig *c = &p->m->cfg;
    Graph *g = p->g;
    float eps = (float)c->rms_norm_eps;
    int nh = c->num_attention_heads, nkv = c->num_key_value_heads;
    Tensor *h = op_rmsnorm_unit_offset(g, x, layer_norm_weight(p, i, NORM_ATTN), eps);
    Tensor *q = layer_rope(p, layer_linear(p, h, i, MODULE_Q), nh);             /* (N, NH*D) */
    Tensor *k = layer_rope(p, layer_linear(p, h, i, MODULE_K), nkv);            /* (N, NKV*D) */
    Tensor *v = layer_linear(p, h, i, MODULE_V);                                /* (N, NKV*D) */
    Tensor *att = layer_linear(p, layer_attention(p, q, k, v, i), i, MODULE_O); /* (N, C) */
    x = op_add(g, x, op_rmsnorm_unit_offset(g, att, layer_norm_weight(p, i, NORM_POST_ATTN), eps));
    h = op_rmsnorm_unit_offset(g, x, layer_norm_weight(p, i, NORM_MLP), eps);
    Tensor *gate = layer_linear(p, h, i, MODULE_GATE);                   /* (N, FF) */
    Tensor *up = layer_linear(p, h, i, MODULE_UP);                       /* (N, FF) */
    Tensor *ff = layer_linear(p, op_geglu(g, gate, up), i, MODULE_DOWN); /* (N, C) */
    return op_add(g, x, op_rmsnorm_unit_offset(g, ff, layer_norm_weight(p, i, NORM_POST_MLP), eps));
}

static const FamilyNorm gemma2_norms[4] = {
    {NORM_ATTN, "input_layernorm.weight", "attn_norm.weight", false, MODULE_Q},
    {NORM_POST_ATTN, "post_attention_layernorm.weight", "post_attention_norm.weight", false,
     MODULE_GATE},
    {NORM_MLP, "pre_feedforward_layernorm.weight", "ffn_norm.weight", false, MODULE_GATE},
    {NORM_POST_MLP, "post_feedforward_layernorm.weight", "post_ffw_norm.weight", false,
     MODULE_COUNT},
};

/* A soft-cap key: dflt when absent, 0 (off) when null, else a positive number. */
static int read_cap(const ConfigReader *r, const char *key, float dflt, float *out) {
    json_t *v = json_object_get((json_t *)r->root, key);
    *out = !v ? dflt : 0.0f;
    if (!v || json_is_null(v)) return 0;
    if (!json_is_number(v) || !(json_number_value(v) > 0) || !isfinite(json_number_value(v))) {
        snprintf(r->err, r->errlen, "%s: \"%s\" must be a positive number or null", r->src, key);
        return -1;
    }
    *out = (float)json_number_value(v);
    return 0;
}

static int read_gemma2(const ConfigReader *r, ModelConfig *cfg) {
    bool typed;
    if (gemma_read_common(r, cfg) || config_read_layer_types(r, cfg, &typed) ||
        read_cap(r, "attn_logit_softcapping", 50.0f, &cfg->attn_softcap) ||
        read_cap(r, "final_logit_softcapping", 30.0f, &cfg->final_softcap))
        return -1;
    if (!typed) /* Gemma2Config: the even layers slide */
        for (int l = 0; l < cfg->num_hidden_layers; l += 2)
            cfg->sliding_layers[l / 8] |= (unsigned char)(1u << (l % 8));
    return 0;
}

static int gemma2_gguf_metadata(GgufWriter *w, const ModelConfig *c, char *err, size_t errlen) {
    double llama_scale = c->num_hidden_layers == 46
                             ? 1.0 / sqrt((double)(c->hidden_size / c->num_attention_heads))
                             : 1.0 / sqrt((double)c->head_dim);
    int period = gemma_swa_period(c);
    const char *why = !(c->attn_softcap > 0) || !(c->final_softcap > 0)
                          ? "llama.cpp's gemma2 always soft-caps scores and logits, and this "
                            "model turns a cap off"
                      : !c->tie_word_embeddings ? "llama.cpp's gemma2 always ties lm_head to the "
                                                  "embeddings, and this model has its own"
                      : fabs((double)c->attn_scale / llama_scale - 1.0) > 1e-6
                          ? "llama.cpp's gemma2 scales scores by 1/sqrt(head_dim) (its 27B: "
                            "1/sqrt(hidden / heads)), and this model's query_pre_attn_scalar "
                            "differs (Gemma 2 has no q_norm to fold the difference into)"
                      : period == 0 ? "the model's sliding layers follow no period, and llama.cpp "
                                      "knows only \"every P-th layer full\""
                                    : NULL;
    if (why) {
        snprintf(err, errlen, "gguf: %s: it would compute another model. Use --format hf", why);
        return -1;
    }
    int rc = gguf_set_f32(w, "gemma2.attn_logit_softcapping", c->attn_softcap, err, errlen);
    if (rc == 0)
        rc = gguf_set_f32(w, "gemma2.final_logit_softcapping", c->final_softcap, err, errlen);
    if (rc == 0)
        rc = gguf_set_u32(w, "gemma2.attention.sliding_window", (uint32_t)c->sliding_window, err,
                          errlen);
    if (rc == 0 && period != 2)
        rc = gguf_set_u32(w, "gemma2.attention.sliding_window_pattern", (uint32_t)period, err,
                          errlen);
    return rc;
}

const ModelFamily family_gemma2 = {
    .model_type = "gemma2",
    .architecture = "Gemma2ForCausalLM",
    .default_max_positions = 8192,
    .default_head_dim = 256,
    .read_config = read_gemma2,
    .norms = gemma2_norms,
    .n_norms = 4,
    .layer_forward = gemma2_layer_forward,
    .gguf_arch = "gemma2",
    .gguf_sliding_window = true,
    .default_targets = LORA_Q | LORA_V,
    .unit_offset_norm = true,
    .embed_scale = true,
    .default_tied = true,
    .own_activation = true,
    .gguf_norm = gemma_gguf_norm,
    .gguf_metadata = gemma2_gguf_metadata,
    .gguf_load = true,
    .gguf_config = gemma_gguf_config,
    .gguf_unnorm = gemma_gguf_unnorm,
};
