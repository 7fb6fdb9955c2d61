/* trainer/model/family_ministral3.c — Ministral 3's text decoder (Ministral3ForCausalLM,
 * model_type ministral3; the language model of Mistral3ForConditionalGeneration), as
 * transformers 5's modeling_ministral3.py computes it.
 *
 * The decoder layer (Ministral3DecoderLayer) is Mistral's, with one more step on the queries:
 *   h = rmsnorm(x); q, k, v = h Wq^T, h Wk^T, h Wv^T; rope(q), rope(k)
 *   q = q * (1 + beta ln(1 + floor(pos / original_max_position_embeddings)))
 *   x = x + attention(q, k, v) Wo^T (within sliding_window when the config has one)
 *   h = rmsnorm(x); x = x + (silu(h Wgate^T) * (h Wup^T)) Wdown^T
 * beta is rope_parameters' llama_4_scaling_beta, the original length its
 * original_max_position_embeddings (_get_llama_4_attn_scale). transformers takes pos from
 * cache_position, the index in the row; lorafit from the token's position, the same except
 * in a packed row, where each sequence starts again at 0 (as it does for RoPE). The scale
 * is folded into the queries' RoPE tables (layer_rope_query): RoPE is linear per position,
 * so rope(q) * s = q (cos s) + rotate_half(q) (sin s), and op_rope's backward is the scaled
 * one. RoPE is yarn-scaled (hf_config.c); with no rope_parameters (nor rope_scaling)
 * Ministral3Config's default applies. No biases (Ministral3Attention has none), head_dim 128
 * and rms_norm_eps 1e-5 by default, untied by default.
 *
 * GGUF: llama.cpp's arch "mistral3" (Mistral3Model.Ministral3Model, a LlamaModel in
 * convert_hf_to_gguf.py: q/k rows permuted, vocab_size and rope.dimension_count), the yarn
 * keys of TextModel (rope.scaling.type / factor / original_context_length / yarn_beta_fast /
 * yarn_beta_slow, each with transformers' value where the config leaves it to a default),
 * rope.scaling.yarn_log_multiplier = mscale_all_dim and attention.temperature_scale = beta.
 * llama.cpp reads neither mscale nor yarn_attn_factor (which the converter writes from an
 * attention_factor; lorafit does not): its attention factor is
 * get_mscale(factor, 1) / get_mscale(factor, yarn_log_multiplier) (get_mscale(factor, 1)
 * when that is 0), times rope.scaling.attn_factor; where that differs from transformers'
 * attention factor, lorafit writes rope.scaling.attn_factor = the ratio, so that llama.cpp
 * computes transformers' one. llama.cpp always rounds the correction dims out: a config with
 * truncate false is refused. Its mistral3 ignores the sliding window (merge warns).
 * Default LoRA targets: every linear (PEFT has no default for ministral3). */
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "trainer/model/family.h"
#include "trainer/model/internal.h"
#include "trainer/model/lora.h"

static Tensor *ministral3_layer_forward(const LayerPass *p, Tensor *x, int i) {
    const ModelConfig *c = &p->m->cfg;
    Graph *g = p->g;
    float eps = (float)c->rms_norm_eps;
    int nh = c->num_attention_heads, nkv = c->num_key_value_heads;
    Tensor *h = op_rmsnorm(g, x, layer_norm_weight(p, i, NORM_ATTN), eps);
    Tensor *q = layer_linear(p, h, i, MODULE_Q); /* (N, NH*D) */
    Tensor *k = layer_linear(p, h, i, MODULE_K); /* (N, NKV*D) */
    Tensor *v = layer_linear(p, h, i, MODULE_V); /* (N, NKV*D) */
    q = layer_rope_query(p, q, nh);              /* rope, then the llama 4 query scale */
    k = layer_rope(p, k, nkv);
    Tensor *att = layer_attention(p, q, k, v, i);
    x = op_add(g, x, layer_linear(p, att, i, MODULE_O));
    h = op_rmsnorm(g, x, layer_norm_weight(p, i, NORM_MLP), eps);
    Tensor *gate = layer_linear(p, h, i, MODULE_GATE); /* (N, FF) */
    Tensor *up = layer_linear(p, h, i, MODULE_UP);     /* (N, FF) */
    Tensor *ff = op_swiglu(g, gate, up);
    return op_add(g, x, layer_linear(p, ff, i, MODULE_DOWN));
}

/* Ministral3Config.__post_init__'s rope_parameters when the config has none. */
static const char default_rope[] =
    "{\"type\": \"yarn\", \"rope_theta\": 1000000.0, \"factor\": 16.0, "
    "\"original_max_position_embeddings\": 16384, \"beta_fast\": 32.0, \"beta_slow\": 1.0, "
    "\"mscale_all_dim\": 1.0, \"mscale\": 1.0, \"llama_4_scaling_beta\": 0.1}";

/* The RoPE object Ministral3Attention reads llama_4_scaling_beta from: rope_parameters, or
 * transformers 4's rope_scaling; NULL when neither (the default above applies). */
static json_t *rope_object(const ConfigReader *r) {
    json_t *o = json_object_get(r->root, "rope_parameters");
    if (!o || json_is_null(o)) o = json_object_get(r->root, "rope_scaling");
    return o && !json_is_null(o) ? o : NULL;
}

/* Ministral3Config: sliding_window on every layer when set (Mistral's), rms_norm_eps 1e-5;
 * llama_4_scaling_beta, which Ministral3Attention needs (it fails without it), and yarn,
 * the only RoPE whose parameters hold the original_max_position_embeddings it also needs. */
static int read_ministral3(const ConfigReader *r, ModelConfig *cfg) {
    if (config_read_number(r, "rms_norm_eps", 1e-5, &cfg->rms_norm_eps) ||
        config_read_sliding_window(r, true, cfg))
        return -1;
    cfg->llama4_scaling_beta = 0.1;
    json_t *o = rope_object(r);
    if (!o) return 0;
    json_t *type = json_object_get(o, "rope_type"),
           *beta = json_object_get(o, "llama_4_scaling_beta");
    if (!type) type = json_object_get(o, "type");
    if (!json_is_string(type) || strcmp(json_string_value(type), "yarn") != 0) {
        snprintf(r->err, r->errlen,
                 "%s: rope_parameters.rope_type must be \"yarn\" for ministral3 (its query scale "
                 "reads yarn's original_max_position_embeddings)",
                 r->src);
        return -1;
    }
    cfg->llama4_scaling_beta = json_number_value(beta);
    if (!json_is_number(beta) || !isfinite(cfg->llama4_scaling_beta) ||
        cfg->llama4_scaling_beta < 0) {
        snprintf(r->err, r->errlen,
                 "%s: rope_parameters.llama_4_scaling_beta must be a number >= 0 (ministral3's "
                 "attention scales its queries by it)",
                 r->src);
        return -1;
    }
    return 0;
}

/* The attention factor llama.cpp's context computes for yarn (llama_context: mscale assumed
 * 1, yarn_log_multiplier as mscale_all_dim), before rope.scaling.attn_factor. */
static double llamacpp_yarn_attention_factor(const RopeScaling *r) {
    double f = r->factor, all = r->mscale_all_dim;
    double one = f <= 1 ? 1.0 : 0.1 * log(f) + 1.0;
    return all ? one / (f <= 1 ? 1.0 : 0.1 * all * log(f) + 1.0) : one;
}

static int ministral3_gguf_check(const ModelConfig *c, char *err, size_t errlen) {
    if (c->rope_scaling.yarn_no_truncate) {
        snprintf(err, errlen,
                 "gguf: rope_parameters.truncate is false, but llama.cpp always rounds yarn's "
                 "correction range out (ggml_rope_yarn_corr_dims): it would compute other "
                 "frequencies. Use the Hugging Face format (--format hf)");
        return -1;
    }
    return 0;
}

static int ministral3_gguf_metadata(struct GgufWriter *w, const ModelConfig *c, char *err,
                                    size_t errlen) {
    const RopeScaling *r = &c->rope_scaling;
    int rc = gguf_set_str(w, "mistral3.rope.scaling.type", "yarn", err, errlen);
    if (rc == 0)
        rc = gguf_set_f32(w, "mistral3.rope.scaling.factor", (float)r->factor, err, errlen);
    if (rc == 0)
        rc = gguf_set_u32(w, "mistral3.rope.scaling.original_context_length",
                          (uint32_t)r->original_max_position_embeddings, err, errlen);
    if (rc == 0)
        rc = gguf_set_f32(w, "mistral3.rope.scaling.yarn_beta_fast", (float)r->beta_fast, err,
                          errlen);
    if (rc == 0)
        rc = gguf_set_f32(w, "mistral3.rope.scaling.yarn_beta_slow", (float)r->beta_slow, err,
                          errlen);
    if (rc == 0)
        rc = gguf_set_f32(w, "mistral3.rope.scaling.yarn_log_multiplier", (float)r->mscale_all_dim,
                          err, errlen);
    if (rc == 0)
        rc = gguf_set_f32(w, "mistral3.attention.temperature_scale", (float)c->llama4_scaling_beta,
                          err, errlen);
    double ours = llamacpp_yarn_attention_factor(r);
    if (rc == 0 && fabs(r->attention_factor / ours - 1.0) > 1e-7)
        rc = gguf_set_f32(w, "mistral3.rope.scaling.attn_factor",
                          (float)(r->attention_factor / ours), err, errlen);
    return rc;
}

/* ministral3_gguf_metadata inverted: rope_parameters of yarn from the rope.scaling keys
 * (llama.cpp's defaults where absent: factor 1 ... none of which the writer leaves out), with
 * the attention factor llama.cpp computes and llama_4_scaling_beta from
 * attention.temperature_scale (0: none). */
static int ministral3_gguf_config(const GgufConfigReader *r) {
    json_t *rp = json_object(), *saved = r->cfg;
    GgufConfigReader sub = *r;
    sub.cfg = rp;
    json_object_set_new(rp, "rope_type", json_string("yarn"));
    json_object_set(rp, "rope_theta", json_object_get(saved, "rope_theta"));
    json_object_set_new(rp, "llama_4_scaling_beta", json_real(0));
    json_object_set_new(rp, "mscale_all_dim", json_real(0));
    int rc =
        gguf_config_copy(&sub, "rope.scaling.factor", "factor", true) < 0 ||
                gguf_config_copy(&sub, "rope.scaling.original_context_length",
                                 "original_max_position_embeddings", false) < 0 ||
                gguf_config_copy(&sub, "rope.scaling.yarn_beta_fast", "beta_fast", true) < 0 ||
                gguf_config_copy(&sub, "rope.scaling.yarn_beta_slow", "beta_slow", true) < 0 ||
                gguf_config_copy(&sub, "rope.scaling.yarn_log_multiplier", "mscale_all_dim", true) <
                    0 ||
                gguf_config_copy(&sub, "attention.temperature_scale", "llama_4_scaling_beta",
                                 true) < 0 ||
                gguf_config_copy(&sub, "rope.scaling.attn_factor", "attention_factor", true) < 0
            ? -1
            : 0;
    json_t *factor = json_object_get(rp, "factor");
    if (rc == 0 && !json_is_number(factor)) {
        snprintf(r->err, r->errlen, "%s: %s.rope.scaling.factor is missing (yarn needs it)",
                 gguf_file_path(r->f), r->arch);
        rc = -1;
    }
    if (rc == 0) {
        RopeScaling y = {.factor = json_number_value(factor),
                         .mscale_all_dim =
                             json_number_value(json_object_get(rp, "mscale_all_dim"))};
        json_t *extra = json_object_get(rp, "attention_factor");
        double times = json_is_number(extra) ? json_number_value(extra) : 1.0;
        json_object_set_new(rp, "attention_factor",
                            json_real(llamacpp_yarn_attention_factor(&y) * times));
        json_object_set_new(saved, "rope_parameters", rp);
        return 0;
    }
    json_decref(rp);
    return rc;
}

const ModelFamily family_ministral3 = {
    .model_type = "ministral3",
    .architecture = "Ministral3ForCausalLM",
    .default_max_positions = 262144,
    .default_head_dim = 128,
    .read_config = read_ministral3,
    .norms = llama_norms,
    .n_norms = 2,
    .layer_forward = ministral3_layer_forward,
    .gguf_arch = "mistral3",
    .gguf_permute_qk = true,
    .gguf_llama_hparams = true,
    .gguf_o_bias = true,
    .gguf_check = ministral3_gguf_check,
    .gguf_metadata = ministral3_gguf_metadata,
    .default_targets = LORA_ALL,
    .yarn = true,
    .default_rope_parameters = default_rope,
    .gguf_load = true,
    .gguf_config = ministral3_gguf_config,
};

/* Mistral3ForConditionalGeneration (model_type mistral3): the published Ministral 3
 * checkpoints, a Pixtral vision tower and projector beside this decoder. Mistral3Config
 * gives a text_config without model_type Mistral's config ("mistral"), which is not this
 * family: such a config is refused. Its lm_head is untied unless the config ties it, and
 * never soft-caps. The pre-4.52 layout is its _checkpoint_conversion_mapping's. */
const ModelWrapper wrapper_mistral3 = {
    .model_type = "mistral3",
    .architecture = "Mistral3ForConditionalGeneration",
    .text = &family_ministral3,
    .text_type_default = "mistral",
    /* Ministral3Config's defaults (transformers' configuration_ministral3.py); its default
     * rope_parameters are the family's (default_rope) */
    .text_defaults =
        "{\"vocab_size\": 131072, \"hidden_size\": 4096, \"intermediate_size\": 14336, "
        "\"num_hidden_layers\": 34, \"num_attention_heads\": 32, "
        "\"num_key_value_heads\": 8, \"head_dim\": 128, "
        "\"max_position_embeddings\": 262144, \"rms_norm_eps\": 1e-5, "
        "\"hidden_act\": \"silu\", \"tie_word_embeddings\": false, "
        "\"sliding_window\": null}",
    .prefix = "model.language_model.",
    .lm_head = "lm_head.weight",
    .legacy_prefix = "language_model.model.",
    .legacy_lm_head = "language_model.lm_head.weight",
};
