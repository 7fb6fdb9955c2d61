/* trainer/model/family_llama.c — Llama (LlamaForCausalLM) and Mistral (MistralForCausalLM),
 * as transformers' modeling_llama.py / modeling_mistral.py compute them.
 *
 * The decoder layer (LlamaDecoderLayer), which Qwen2 shares (family_qwen2.c):
 *   h = rmsnorm(x); q, k, v = h Wq^T, h Wk^T, h Wv^T (+ biases, + LoRA); rope(q), rope(k)
 *   x = x + attention(q, k, v) Wo^T;  h = rmsnorm(x)
 *   x = x + (silu(h Wgate^T) * (h Wup^T)) Wdown^T
 * Mistral is the same layer with a sliding window on every layer when its config has one.
 * In GGUF both are llama.cpp's arch "llama", q/k rows permuted (LlamaModel.permute). */
#include "trainer/model/family.h"
#include "trainer/model/internal.h"
#include "trainer/model/lora.h"

Tensor *llama_layer_forward(const LayerPass *p, Tensor *x, int i) {
    const ModelConfig *c = &p->m->cfg;
    Graph *g = p->g;
    float eps = (float)c->rms_norm_eps;
    int nh = c->num_attention_heads, nkv = c->num_key_value_heads;
    Tensor *h = op_rmsnorm(g, x, layer_norm_weight(p, i, NORM_ATTN), eps);
    Tensor *q = layer_linear(p, h, i, MODULE_Q); /* (N, NH*D) */
    Tensor *k = layer_linear(p, h, i, MODULE_K); /* (N, NKV*D) */
    Tensor *v = layer_linear(p, h, i, MODULE_V); /* (N, NKV*D) */
    q = layer_rope(p, q, nh);
    k = layer_rope(p, k, nkv);
    Tensor *att = layer_attention(p, q, k, v, i);
    x = op_add(g, x, layer_linear(p, att, i, MODULE_O));
    h = op_rmsnorm(g, x, layer_norm_weight(p, i, NORM_MLP), eps);
    Tensor *gate = layer_linear(p, h, i, MODULE_GATE); /* (N, FF) */
    Tensor *up = layer_linear(p, h, i, MODULE_UP);     /* (N, FF) */
    Tensor *ff = op_swiglu(g, gate, up);
    return op_add(g, x, layer_linear(p, ff, i, MODULE_DOWN));
}

const FamilyNorm llama_norms[2] = {
    {NORM_ATTN, "input_layernorm.weight", "attn_norm.weight", false, MODULE_Q},
    {NORM_MLP, "post_attention_layernorm.weight", "ffn_norm.weight", false, MODULE_GATE},
};

/* attention_bias: biases on all four attention projections (LlamaAttention). Llama has no
 * sliding window. */
static int read_llama(const ConfigReader *r, ModelConfig *cfg) {
    bool bias = false;
    if (config_read_bool(r, "attention_bias", false, &bias)) return -1;
    cfg->qkv_bias = cfg->o_bias = bias;
    return 0;
}

/* Mistral's window applies to every layer whenever the config names one. */
static int read_mistral(const ConfigReader *r, ModelConfig *cfg) {
    bool bias = false;
    if (config_read_bool(r, "attention_bias", false, &bias)) return -1;
    cfg->qkv_bias = cfg->o_bias = bias;
    return config_read_sliding_window(r, true, cfg);
}

const ModelFamily family_llama = {
    .model_type = "llama",
    .architecture = "LlamaForCausalLM",
    .default_max_positions = 2048,
    .read_config = read_llama,
    .norms = llama_norms,
    .n_norms = 2,
    .layer_forward = llama_layer_forward,
    .gguf_arch = "llama",
    .gguf_permute_qk = true,
    .gguf_llama_hparams = true,
    .gguf_o_bias = true,
    .default_targets = LORA_ALL,
    .gguf_load = true,
};

const ModelFamily family_mistral = {
    .model_type = "mistral",
    .architecture = "MistralForCausalLM",
    .default_max_positions = 4096 * 32,
    .read_config = read_mistral,
    .norms = llama_norms,
    .n_norms = 2,
    .layer_forward = llama_layer_forward,
    .gguf_arch = "llama",
    .gguf_permute_qk = true,
    .gguf_llama_hparams = true,
    .gguf_o_bias = true,
    .default_targets = LORA_ALL,
};
