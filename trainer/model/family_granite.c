/* trainer/model/family_granite.c — Granite 3 (GraniteForCausalLM), as transformers'
 * modeling_granite.py computes it.
 *
 * Llama's decoder with four multipliers from the config (GraniteConfig, each 1.0 when
 * absent): the embeddings times embedding_multiplier; attention scores scaled by
 * attention_multiplier instead of 1/sqrt(head_dim) (GraniteAttention.scaling); each
 * sublayer's output times residual_multiplier before its residual add; the logits divided
 * by logits_scaling (GraniteForCausalLM). The decoder layer (GraniteDecoderLayer):
 *   h = rmsnorm(x); q, k, v = h Wq^T, h Wk^T, h Wv^T; rope(q), rope(k)
 *   x = x + residual_multiplier * attention_{scale attention_multiplier}(q, k, v) Wo^T
 *   h = rmsnorm(x);  x = x + residual_multiplier * (silu(h Wgate^T) * (h Wup^T)) Wdown^T
 * Layer 0 applies embedding_multiplier to its input first (the same as scaling the
 * embeddings: nothing else reads them), and model_final_norm divides the final norm's
 * output by logits_scaling (logits / s = (h / s) lm_head^T: the fused lm_head + loss stays
 * as it is, and its backward carries the 1/s). attention_bias puts biases on q, k, v, o.
 *
 * GGUF: llama.cpp's arch "granite" (GraniteModel, a LlamaModel: q/k rows permuted, vocab_size
 * and rope.dimension_count), with granite.attention.scale, embedding_scale, residual_scale
 * and logit_scale. The converter writes each only when config.json has it, but llama.cpp
 * requires logit_scale and takes a missing attention.scale as 1/sqrt(head_dim): lorafit
 * writes all four, the transformers defaults included. The converter drops head_dim (llama.cpp
 * assumes hidden / heads): the GGUF exports refuse a head_dim that differs. Default LoRA
 * targets: every linear (PEFT has no default for granite). */
#include <stdio.h>

#include "trainer/model/family.h"
#include "trainer/model/internal.h"
#include "trainer/model/lora.h"

static Tensor *granite_layer_forward(const LayerPass *p, Tensor *x, int i) {
    const ModelConfig *c = &p->m->cfg;
    Graph *g = p->g;
    float eps = (float)c->rms_norm_eps, res = (float)c->residual_multiplier;
    int nh = c->num_attention_heads, nkv = c->num_key_value_heads, d = c->head_dim;
    if (i == 0) x = op_scale(g, x, (float)c->embedding_multiplier); /* the embeddings */
    Tensor *h = op_rmsnorm(g, x, layer_norm_weight(p, i, NORM_ATTN), eps);
    Tensor *q = layer_linear(p, h, i, MODULE_Q); /* (N, NH*D) */
    Tensor *k = layer_linear(p, h, i, MODULE_K); /* (N, NKV*D) */
    Tensor *v = layer_linear(p, h, i, MODULE_V); /* (N, NKV*D) */
    q = layer_rope(p, q, nh);
    k = layer_rope(p, k, nkv);
    AttentionSpec spec = {.batch = p->batch,
                          .seq_len = p->seq_len,
                          .n_heads = nh,
                          .n_kv_heads = nkv,
                          .head_dim = d,
                          .scale = (float)c->attention_multiplier,
                          .segment = p->segment};
    Tensor *att = op_attention_ex(g, q, k, v, &spec);
    x = op_add(g, x, op_scale(g, layer_linear(p, att, i, MODULE_O), res));
    h = op_rmsnorm(g, x, layer_norm_weight(p, i, NORM_MLP), eps);
    Tensor *gate = layer_linear(p, h, i, MODULE_GATE); /* (N, FF) */
    Tensor *up = layer_linear(p, h, i, MODULE_UP);     /* (N, FF) */
    Tensor *ff = layer_linear(p, op_swiglu(g, gate, up), i, MODULE_DOWN);
    return op_add(g, x, op_scale(g, ff, res));
}

static int read_granite(const ConfigReader *r, ModelConfig *cfg) {
    bool bias = false;
    if (config_read_bool(r, "attention_bias", false, &bias)) return -1;
    cfg->qkv_bias = cfg->o_bias = bias;
    return config_read_number(r, "embedding_multiplier", 1.0, &cfg->embedding_multiplier) ||
                   config_read_number(r, "attention_multiplier", 1.0, &cfg->attention_multiplier) ||
                   config_read_number(r, "residual_multiplier", 1.0, &cfg->residual_multiplier) ||
                   config_read_number(r, "logits_scaling", 1.0, &cfg->logits_scaling)
               ? -1
               : 0;
}

static int granite_gguf_check(const ModelConfig *c, char *err, size_t errlen) {
    if (c->head_dim * c->num_attention_heads == c->hidden_size) return 0;
    snprintf(err, errlen,
             "gguf: head_dim %d is not hidden_size / num_attention_heads, which llama.cpp's "
             "granite assumes (its converter drops head_dim). Use the Hugging Face format "
             "(--format hf)",
             c->head_dim);
    return -1;
}

static int granite_gguf_metadata(struct GgufWriter *w, const ModelConfig *c, char *err,
                                 size_t errlen) {
    const struct {
        const char *key;
        double value;
    } keys[4] = {{"granite.attention.scale", c->attention_multiplier},
                 {"granite.embedding_scale", c->embedding_multiplier},
                 {"granite.residual_scale", c->residual_multiplier},
                 {"granite.logit_scale", c->logits_scaling}};
    for (int i = 0; i < 4; i++)
        if (gguf_set_f32(w, keys[i].key, (float)keys[i].value, err, errlen) != 0) return -1;
    return 0;
}

/* granite_gguf_metadata inverted (llama.cpp's granite takes 1 for an absent key, as
 * GraniteConfig does). */
static int granite_gguf_config(const GgufConfigReader *r) {
    return gguf_config_copy(r, "attention.scale", "attention_multiplier", true) < 0 ||
                   gguf_config_copy(r, "embedding_scale", "embedding_multiplier", true) < 0 ||
                   gguf_config_copy(r, "residual_scale", "residual_multiplier", true) < 0 ||
                   gguf_config_copy(r, "logit_scale", "logits_scaling", true) < 0
               ? -1
               : 0;
}

const ModelFamily family_granite = {
    .model_type = "granite",
    .architecture = "GraniteForCausalLM",
    .default_max_positions = 2048,
    .read_config = read_granite,
    .norms = llama_norms,
    .n_norms = 2,
    .layer_forward = granite_layer_forward,
    .gguf_arch = "granite",
    .gguf_permute_qk = true,
    .gguf_llama_hparams = true,
    .gguf_o_bias = true,
    .default_targets = LORA_ALL,
    .gguf_check = granite_gguf_check,
    .gguf_metadata = granite_gguf_metadata,
    .gguf_load = true,
    .gguf_config = granite_gguf_config,
};
