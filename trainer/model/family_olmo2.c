/* trainer/model/family_olmo2.c — OLMo 2 (Olmo2ForCausalLM), as transformers' modeling_olmo2.py
 * computes it.
 *
 * The decoder layer (Olmo2DecoderLayer) has no input norms: each sublayer reads the residual
 * stream as it is, and its output is normed before the residual add. q_norm and k_norm are
 * RMSNorms over the whole q and k projections (weights NH*D and NKV*D: all heads' values
 * together, not each head's), before RoPE:
 *   q = rmsnorm_qproj(x Wq^T), k = rmsnorm_kproj(x Wk^T), v = x Wv^T; rope(q), rope(k)
 *   x = x + rmsnorm(attention(q, k, v) Wo^T)           (post_attention_layernorm)
 *   x = x + rmsnorm((silu(x Wgate^T) * (x Wup^T)) Wdown^T)   (post_feedforward_layernorm)
 * Olmo2Config's defaults: rms_norm_eps 1e-5, max_position_embeddings 2048, untied;
 * attention_bias puts biases on q, k, v and o_proj (OlmoAttention). OLMo 2 has no sliding
 * window (OLMo 3's layer_types are refused: another model_type).
 *
 * GGUF: llama.cpp's arch "olmo2" (Olmo2Model, a TextModel: q/k rows as Hugging Face has
 * them), post_attention_layernorm as blk.N.post_attention_norm, post_feedforward_layernorm as
 * post_ffw_norm, q_norm / k_norm as attn_q_norm / attn_k_norm. llama.cpp's olmo2 requires an
 * output tensor (no tied head), takes head_dim as hidden / heads and loads no attn_output
 * bias: the GGUF exports refuse the configs it would not load or would compute otherwise.
 * Default LoRA targets: every linear (PEFT has no default for olmo2). */
#include <jansson.h>
#include <stdio.h>

#include "trainer/model/family.h"
#include "trainer/model/internal.h"
#include "trainer/model/lora.h"

static Tensor *olmo2_layer_forward(const LayerPass *p, Tensor *x, int i) {
    const ModelConfig *c = &p->m->cfg;
    Graph *g = p->g;
    float eps = (float)c->rms_norm_eps;
    int nh = c->num_attention_heads, nkv = c->num_key_value_heads;
    Tensor *q = layer_linear(p, x, i, MODULE_Q); /* (N, NH*D) */
    Tensor *k = layer_linear(p, x, i, MODULE_K); /* (N, NKV*D) */
    Tensor *v = layer_linear(p, x, i, MODULE_V); /* (N, NKV*D) */
    q = op_rmsnorm(g, q, layer_norm_weight(p, i, NORM_Q_PROJ), eps);
    k = op_rmsnorm(g, k, layer_norm_weight(p, i, NORM_K_PROJ), eps);
    q = layer_rope(p, q, nh);
    k = layer_rope(p, k, nkv);
    Tensor *att = layer_attention(p, q, k, v, i);  /* (N, NH*D), its window if it slides */
    Tensor *o = layer_linear(p, att, i, MODULE_O); /* (N, C) */
    x = op_add(g, x, op_rmsnorm(g, o, layer_norm_weight(p, i, NORM_POST_ATTN), eps));
    Tensor *gate = layer_linear(p, x, i, MODULE_GATE); /* (N, FF) */
    Tensor *up = layer_linear(p, x, i, MODULE_UP);     /* (N, FF) */
    Tensor *ff = layer_linear(p, op_swiglu(g, gate, up), i, MODULE_DOWN);
    return op_add(g, x, op_rmsnorm(g, ff, layer_norm_weight(p, i, NORM_POST_MLP), eps));
}

static const FamilyNorm olmo2_norms[4] = {
    {NORM_POST_ATTN, "post_attention_layernorm.weight", "post_attention_norm.weight", false,
     MODULE_GATE},
    {NORM_Q_PROJ, "self_attn.q_norm.weight", "attn_q_norm.weight", false, MODULE_GATE},
    {NORM_K_PROJ, "self_attn.k_norm.weight", "attn_k_norm.weight", false, MODULE_GATE},
    {NORM_POST_MLP, "post_feedforward_layernorm.weight", "post_ffw_norm.weight", false,
     MODULE_COUNT},
};

static int read_olmo2(const ConfigReader *r, ModelConfig *cfg) {
    bool bias = false;
    if (config_read_bool(r, "attention_bias", false, &bias)) return -1;
    cfg->qkv_bias = cfg->o_bias = bias;
    json_t *eps = json_object_get(r->root, "rms_norm_eps"); /* Olmo2Config's default */
    if (!eps || json_is_null(eps)) cfg->rms_norm_eps = 1e-5;
    return 0;
}

static int olmo2_gguf_check(const ModelConfig *c, char *err, size_t errlen) {
    const char *why = c->tie_word_embeddings ? "tie_word_embeddings is true, but llama.cpp's "
                                               "olmo2 needs an output tensor of its own"
                      : c->head_dim * c->num_attention_heads != c->hidden_size
                          ? "head_dim is not hidden_size / num_attention_heads, which "
                            "llama.cpp's olmo2 assumes"
                          : NULL;
    if (!why) return 0;
    snprintf(err, errlen, "gguf: %s. Use the Hugging Face format (--format hf)", why);
    return -1;
}

const ModelFamily family_olmo2 = {
    .model_type = "olmo2",
    .architecture = "Olmo2ForCausalLM",
    .default_max_positions = 2048,
    .read_config = read_olmo2,
    .norms = olmo2_norms,
    .n_norms = 4,
    .layer_forward = olmo2_layer_forward,
    .gguf_arch = "olmo2",
    .default_targets = LORA_ALL,
    .gguf_check = olmo2_gguf_check,
    .gguf_load = true,
};
