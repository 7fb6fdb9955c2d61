/* trainer/model/family_gemma3.c — Gemma 3's text decoder (Gemma3ForCausalLM, gemma3_text), as
 * transformers' modeling_gemma3.py computes it.
 *
 * Every RMSNorm scales by (1 + w), in float32 (Gemma3RMSNorm), and a layer has four of them
 * besides the per-head q/k norms (Gemma3DecoderLayer, Gemma3Attention):
 *   h = norm_in(x); q = headnorm_q(h Wq^T), k = headnorm_k(h Wk^T), v = h Wv^T
 *   rope(q), rope(k): a sliding layer's with rope_local_base_freq and no scaling, a full
 *     layer's with rope_theta and rope_scaling
 *   x = x + norm_post_attn(attention(q, k, v) Wo^T)
 *       scores scaled by query_pre_attn_scalar^-1/2; a sliding layer's query t sees keys
 *       t - sliding_window < s <= t
 *   h = norm_pre_ff(x);  x = x + norm_post_ff((gelu_tanh(h Wgate^T) * (h Wup^T)) Wdown^T)
 * Around the layers (forward.c, from the family's flags): the embeddings times
 * sqrt(hidden_size) rounded to the table's dtype, the final norm as (1 + w), tied lm_head by
 * default, final_logit_softcapping on the logits when set. Sliding layers: layer_types, or
 * without it every sliding_window_pattern-th layer full (default 6: 5 local : 1 global).
 * transformers' Gemma 3 ignores attn_logit_softcapping (it never passes it to attention);
 * so does lorafit.
 *
 * GGUF: llama.cpp's arch "gemma3" as convert_hf_to_gguf.py's Gemma3Model writes it: every
 * norm weight + 1; rope.freq_base (global), rope.freq_base_swa (local), linear scaling as
 * rope.scaling.type / factor, attention.sliding_window, final_logit_softcapping when set.
 * llama.cpp derives what the converter does not write: the sliding layers as every 6th
 * full (lorafit writes attention.sliding_window_pattern when the model's period is another,
 * and refuses layer types no period gives), and the attention scale as 1/sqrt(head_dim)
 * (1/sqrt(hidden / heads) for its 27B, 62 layers) instead of query_pre_attn_scalar^-1/2:
 * where they differ lorafit folds the ratio into q_norm (scores are linear in q).
 * Default LoRA targets: q_proj and v_proj (PEFT's for gemma3_text).
 *
 * The 4B, 12B and 27B checkpoints are Gemma3ForConditionalGeneration (gemma3): this decoder
 * under text_config (Gemma3TextConfig's defaults for what it omits), its tensors under
 * model.language_model. (language_model.model. before transformers 4.52), beside a SigLIP
 * vision tower and a projector (wrapper_gemma3). Its lm_head never soft-caps the logits
 * (Gemma3ForConditionalGeneration.forward ignores final_logit_softcapping, which
 * Gemma3ForCausalLM applies). */
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "trainer/model/family.h"
#include "trainer/model/internal.h"
#include "trainer/model/lora.h"
#include "trainer/store/store.h"

static Tensor *gemma3_layer_forward(const LayerPass *p, Tensor *x, int i) {
    const ModelConfig *c = &p->m->cfg;
    Graph *g = p->g;
    float eps = (float)c->rms_norm_eps;
    int nh = c->num_attention_heads, nkv = c->num_key_value_heads;
    Tensor *h = op_rmsnorm_unit_offset(g, x, layer_norm_weight(p, i, NORM_ATTN), eps);
    Tensor *q = layer_linear(p, h, i, MODULE_Q); /* (N, NH*D) */
    Tensor *k = layer_linear(p, h, i, MODULE_K); /* (N, NKV*D) */
    Tensor *v = layer_linear(p, h, i, MODULE_V); /* (N, NKV*D) */
    q = op_head_rmsnorm_unit_offset(g, q, nh, layer_norm_weight(p, i, NORM_Q), eps);
    k = op_head_rmsnorm_unit_offset(g, k, nkv, layer_norm_weight(p, i, NORM_K), eps);
    q = layer_rope_at(p, q, nh, i);
    k = layer_rope_at(p, k, nkv, i);
    Tensor *att = layer_linear(p, layer_attention(p, q, k, v, i), i, MODULE_O); /* (N, C) */
    x = op_add(g, x, op_rmsnorm_unit_offset(g, att, layer_norm_weight(p, i, NORM_POST_ATTN), eps));
    h = op_rmsnorm_unit_offset(g, x, layer_norm_weight(p, i, NORM_MLP), eps);
    Tensor *gate = layer_linear(p, h, i, MODULE_GATE);                   /* (N, FF) */
    Tensor *up = layer_linear(p, h, i, MODULE_UP);                       /* (N, FF) */
    Tensor *ff = layer_linear(p, op_geglu(g, gate, up), i, MODULE_DOWN); /* (N, C) */
    return op_add(g, x, op_rmsnorm_unit_offset(g, ff, layer_norm_weight(p, i, NORM_POST_MLP), eps));
}

static const FamilyNorm gemma3_norms[6] = {
    {NORM_ATTN, "input_layernorm.weight", "attn_norm.weight", false, MODULE_Q},
    {NORM_Q, "self_attn.q_norm.weight", "attn_q_norm.weight", true, MODULE_O},
    {NORM_K, "self_attn.k_norm.weight", "attn_k_norm.weight", true, MODULE_O},
    {NORM_POST_ATTN, "post_attention_layernorm.weight", "post_attention_norm.weight", false,
     MODULE_GATE},
    {NORM_MLP, "pre_feedforward_layernorm.weight", "ffn_norm.weight", false, MODULE_GATE},
    {NORM_POST_MLP, "post_feedforward_layernorm.weight", "post_ffw_norm.weight", false,
     MODULE_COUNT},
};

int gemma_read_common(const ConfigReader *r, ModelConfig *cfg) {
    bool bias = false, bidirectional = false;
    if (config_read_bool(r, "attention_bias", false, &bias) ||
        config_read_bool(r, "use_bidirectional_attention", false, &bidirectional))
        return -1;
    cfg->qkv_bias = cfg->o_bias = bias;
    if (bidirectional) {
        snprintf(r->err, r->errlen,
                 "%s: \"use_bidirectional_attention\": true (an embedding model) is not "
                 "supported: lorafit trains causal language models",
                 r->src);
        return -1;
    }
    json_t *act = json_object_get((json_t *)r->root, "hidden_activation");
    if (act && !json_is_null(act) &&
        (!json_is_string(act) || strcmp(json_string_value(act), "gelu_pytorch_tanh") != 0)) {
        snprintf(r->err, r->errlen,
                 "%s: \"hidden_activation\" must be \"gelu_pytorch_tanh\" (Gemma's)", r->src);
        return -1;
    }
    double scalar, cap;
    if (config_read_number(r, "query_pre_attn_scalar", 256, &scalar) ||
        config_read_number(r, "final_logit_softcapping", 0, &cap))
        return -1;
    cfg->attn_scale = (float)(1.0 / sqrt(scalar));
    cfg->final_softcap = (float)cap;
    return config_read_int(r, "sliding_window", 1, 1 << 30, 4096, &cfg->sliding_window);
}

static int read_gemma3(const ConfigReader *r, ModelConfig *cfg) {
    bool typed;
    int pattern;
    if (gemma_read_common(r, cfg) || config_read_layer_types(r, cfg, &typed) ||
        config_read_int(r, "sliding_window_pattern", 1, 1 << 30, 6, &pattern) ||
        config_read_number(r, "rope_local_base_freq", 10000.0, &cfg->rope_local_theta))
        return -1;
    if (!typed) /* Gemma3TextConfig: layer i slides unless (i + 1) % pattern == 0 */
        for (int l = 0; l < cfg->num_hidden_layers; l++)
            if ((l + 1) % pattern) cfg->sliding_layers[l / 8] |= (unsigned char)(1u << (l % 8));
    return 0;
}

/* The q_norm factor that makes llama.cpp's attention scale transformers' (see the top). */
static double q_scale_fold(const ModelConfig *c) {
    double llama_scale = c->num_hidden_layers == 62
                             ? 1.0 / sqrt((double)(c->hidden_size / c->num_attention_heads))
                             : 1.0 / sqrt((double)c->head_dim);
    return (double)c->attn_scale / llama_scale;
}

void gemma_gguf_norm(const ModelConfig *c, LayerNormSlot slot, float *w, int64_t n) {
    double fold = slot == NORM_Q && c->family->norms == gemma3_norms ? q_scale_fold(c) : 1.0;
    for (int64_t i = 0; i < n; i++)
        w[i] = fold == 1.0 ? w[i] + 1.0f : (float)((1.0 + (double)w[i]) * fold);
}

void gemma_gguf_unnorm(const ModelConfig *c, LayerNormSlot slot, float *w, int64_t n) {
    (void)c, (void)slot; /* the scale is llama.cpp's (gemma_gguf_config): no fold to undo */
    for (int64_t i = 0; i < n; i++) w[i] -= 1.0f;
}

/* Gemma 2 and 3's keys (their gguf_metadata, inverted), with llama.cpp's defaults where the
 * file has none: the sliding window (Gemma 2: always 4096 unless said, every 2nd layer full;
 * Gemma 3: none without attention.sliding_window, else every 6th full), the soft-caps (Gemma
 * 2: 50 and 30), Gemma 3's local RoPE base, and the attention scale llama.cpp uses:
 * 1/sqrt(head_dim), 1/sqrt(hidden / heads) for the 27B models (q_norm holds any fold). */
int gemma_gguf_config(const GgufConfigReader *r) {
    bool gemma2 = strcmp(r->arch, "gemma2") == 0;
    json_t *c = r->cfg;
    json_t *hd = json_object_get(c, "head_dim");
    int head_dim = hd ? (int)json_integer_value(hd) : r->hidden / r->heads;
    if (!hd) json_object_set_new(c, "head_dim", json_integer(head_dim));
    bool big = r->layers == (gemma2 ? 46 : 62);
    json_object_set_new(c, "query_pre_attn_scalar",
                        json_integer(big ? r->hidden / r->heads : head_dim));
    json_object_set_new(c, "final_logit_softcapping", gemma2 ? json_real(30.0) : json_null());
    if (gemma2) json_object_set_new(c, "attn_logit_softcapping", json_real(50.0));
    json_object_set_new(c, "sliding_window", json_integer(4096));
    int window = gguf_config_copy(r, "attention.sliding_window", "sliding_window", false);
    if (window < 0 ||
        gguf_config_copy(r, "final_logit_softcapping", "final_logit_softcapping", true) < 0)
        return -1;
    if (gemma2)
        return gguf_config_copy(r, "attn_logit_softcapping", "attn_logit_softcapping", true) < 0
                   ? -1
                   : gguf_config_sliding_layers(r, 2);
    if (gguf_config_copy(r, "rope.freq_base_swa", "rope_local_base_freq", true) < 0) return -1;
    json_t *w = json_object_get(c, "sliding_window");
    return gguf_config_sliding_layers(r, window == 1 && json_integer_value(w) > 0 ? 6 : 1);
}

int gemma_swa_period(const ModelConfig *c) {
    for (int p = 1; p <= c->num_hidden_layers + 1; p++) {
        bool same = true;
        for (int l = 0; same && l < c->num_hidden_layers; l++)
            same = (hf_layer_window(c, l) > 0) == (l % p < p - 1);
        if (same) return p;
    }
    return 0;
}

static int gemma3_gguf_metadata(GgufWriter *w, const ModelConfig *c, char *err, size_t errlen) {
    int period = gemma_swa_period(c);
    if (period == 0) {
        snprintf(err, errlen,
                 "gguf: the model's sliding layers (layer_types) follow no period, and "
                 "llama.cpp's gemma3 knows only \"every P-th layer full\": it would compute "
                 "another model. Use the Hugging Face format (--format hf)");
        return -1;
    }
    int rc = gguf_set_f32(w, "gemma3.rope.freq_base_swa", (float)c->rope_local_theta, err, errlen);
    if (rc == 0 && period != 1)
        rc = gguf_set_u32(w, "gemma3.attention.sliding_window", (uint32_t)c->sliding_window, err,
                          errlen);
    if (rc == 0 && period != 6 && period != 1)
        rc = gguf_set_u32(w, "gemma3.attention.sliding_window_pattern", (uint32_t)period, err,
                          errlen);
    if (rc == 0 && c->rope_scaling.linear) {
        rc = gguf_set_str(w, "gemma3.rope.scaling.type", "linear", err, errlen);
        if (rc == 0)
            rc = gguf_set_f32(w, "gemma3.rope.scaling.factor", (float)c->rope_scaling.factor, err,
                              errlen);
    }
    if (rc == 0 && c->final_softcap > 0)
        rc = gguf_set_f32(w, "gemma3.final_logit_softcapping", c->final_softcap, err, errlen);
    return rc;
}

const ModelFamily family_gemma3_text = {
    .model_type = "gemma3_text",
    .architecture = "Gemma3ForCausalLM",
    .default_max_positions = 131072,
    .default_head_dim = 256,
    .read_config = read_gemma3,
    .norms = gemma3_norms,
    .n_norms = 6,
    .layer_forward = gemma3_layer_forward,
    .gguf_arch = "gemma3",
    .gguf_sliding_window = true,
    .default_targets = LORA_Q | LORA_V,
    .unit_offset_norm = true,
    .embed_scale = true,
    .default_tied = true,
    .own_activation = true,
    .default_rope_theta = 1e6,
    .gguf_norm = gemma_gguf_norm,
    .gguf_metadata = gemma3_gguf_metadata,
    .gguf_load = true,
    .gguf_config = gemma_gguf_config,
    .gguf_unnorm = gemma_gguf_unnorm,
};

const ModelWrapper wrapper_gemma3 = {
    .model_type = "gemma3",
    .architecture = "Gemma3ForConditionalGeneration",
    .text = &family_gemma3_text,
    .text_type_default = "gemma3_text", /* Gemma3Config's */
    /* Gemma3TextConfig's defaults (transformers' configuration_gemma3.py) */
    .text_defaults = "{\"vocab_size\": 262208, \"hidden_size\": 2304, \"intermediate_size\": 9216, "
                     "\"num_hidden_layers\": 26, \"num_attention_heads\": 8, "
                     "\"num_key_value_heads\": 4, \"head_dim\": 256, "
                     "\"max_position_embeddings\": 131072, \"rms_norm_eps\": 1e-6, "
                     "\"rope_theta\": 1000000.0, \"query_pre_attn_scalar\": 256, "
                     "\"sliding_window\": 4096, \"rope_local_base_freq\": 10000.0, "
                     "\"sliding_window_pattern\": 6, \"tie_word_embeddings\": true, "
                     "\"hidden_activation\": \"gelu_pytorch_tanh\"}",
    .prefix = "model.language_model.",
    .lm_head = "lm_head.weight",
    .legacy_prefix = "language_model.model.",
    .legacy_lm_head = "language_model.lm_head.weight",
};
