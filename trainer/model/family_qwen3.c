/* trainer/model/family_qwen3.c — Qwen3 (Qwen3ForCausalLM), as transformers' modeling_qwen3.py
 * computes it.
 *
 * The decoder layer (Qwen3DecoderLayer): Llama's, with an RMSNorm over each head's head_dim
 * values of q and of k (q_norm, k_norm: weights (D), the model's rms_norm_eps) between the
 * projection and RoPE:
 *   h = rmsnorm(x); q = headnorm(h Wq^T), k = headnorm(h Wk^T), v = h Wv^T; rope(q), rope(k)
 *   x = x + attention(q, k, v) Wo^T;  h = rmsnorm(x)
 *   x = x + (silu(h Wgate^T) * (h Wup^T)) Wdown^T
 * head_dim is a key of its own (Qwen3Config's default 128, not hidden / heads), and
 * attention_bias puts biases on q, k, v and o_proj (Qwen3Attention). The sliding window is
 * Qwen2's: only with use_sliding_window or sliding layers in layer_types.
 *
 * GGUF: llama.cpp's arch "qwen3" (Qwen3Model in convert_hf_to_gguf.py, a Qwen2Model): q/k
 * rows as Hugging Face has them (no permutation), q_norm / k_norm as blk.N.attn_q_norm /
 * attn_k_norm, head_dim as attention.key_length / value_length. llama.cpp's qwen3 loads
 * q/k/v biases but no attn_output bias (gguf_export_model refuses an o_proj bias).
 * Default LoRA targets: PEFT's for qwen3, q_proj and v_proj
 * (TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING). */
#include "trainer/model/family.h"
#include "trainer/model/internal.h"
#include "trainer/model/lora.h"

static Tensor *qwen3_layer_forward(const LayerPass *p, Tensor *x, int i) {
    const ModelConfig *c = &p->m->cfg;
    Graph *g = p->g;
    float eps = (float)c->rms_norm_eps;
    int nh = c->num_attention_heads, nkv = c->num_key_value_heads;
    Tensor *h = op_rmsnorm(g, x, layer_norm_weight(p, i, NORM_ATTN), eps);
    Tensor *q = layer_linear(p, h, i, MODULE_Q); /* (N, NH*D) */
    Tensor *k = layer_linear(p, h, i, MODULE_K); /* (N, NKV*D) */
    Tensor *v = layer_linear(p, h, i, MODULE_V); /* (N, NKV*D) */
    q = op_head_rmsnorm(g, q, nh, layer_norm_weight(p, i, NORM_Q), eps);
    k = op_head_rmsnorm(g, k, nkv, layer_norm_weight(p, i, NORM_K), eps);
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

static const FamilyNorm qwen3_norms[4] = {
    {NORM_ATTN, "input_layernorm.weight", "attn_norm.weight", false, MODULE_Q},
    {NORM_Q, "self_attn.q_norm.weight", "attn_q_norm.weight", true, MODULE_GATE},
    {NORM_K, "self_attn.k_norm.weight", "attn_k_norm.weight", true, MODULE_GATE},
    {NORM_MLP, "post_attention_layernorm.weight", "ffn_norm.weight", false, MODULE_GATE},
};

static int read_qwen3(const ConfigReader *r, ModelConfig *cfg) {
    bool bias = false;
    if (config_read_bool(r, "attention_bias", false, &bias)) return -1;
    cfg->qkv_bias = cfg->o_bias = bias;
    return config_read_sliding_window(r, false, cfg);
}

const ModelFamily family_qwen3 = {
    .model_type = "qwen3",
    .architecture = "Qwen3ForCausalLM",
    .default_max_positions = 32768,
    .default_head_dim = 128,
    .read_config = read_qwen3,
    .norms = qwen3_norms,
    .n_norms = 4,
    .layer_forward = qwen3_layer_forward,
    .gguf_arch = "qwen3",
    .gguf_load = true,
    .default_targets = LORA_Q | LORA_V,
};
