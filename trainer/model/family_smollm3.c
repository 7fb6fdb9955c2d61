/* trainer/model/family_smollm3.c — SmolLM3 (SmolLM3ForCausalLM), as transformers'
 * modeling_smollm3.py computes it.
 *
 * The decoder layer (SmolLM3DecoderLayer) is Llama's, except that some layers apply no RoPE
 * to q and k (NoPE layers: SmolLM3Attention.use_rope = config.no_rope_layers[layer]):
 *   h = rmsnorm(x); q, k, v = h Wq^T, h Wk^T, h Wv^T; rope(q), rope(k) unless layer is NoPE
 *   x = x + attention(q, k, v) Wo^T;  h = rmsnorm(x)
 *   x = x + (silu(h Wgate^T) * (h Wup^T)) Wdown^T
 * no_rope_layers holds 1 (RoPE) or 0 (NoPE) per layer, at least num_hidden_layers of them;
 * when the config has none, SmolLM3Config derives it: layer l is NoPE when
 * (l + 1) % no_rope_layer_interval == 0 (the interval 4 by default: every fourth layer).
 * rope_theta defaults to 2,000,000 (SmolLM3Config's default_theta) and tie_word_embeddings
 * to true; attention_bias puts
 * biases on q, k, v and o_proj, and the window applies with use_sliding_window as Qwen2's.
 *
 * GGUF: llama.cpp's arch "smollm3" (SmolLM3Model, a LlamaModel in convert_hf_to_gguf.py:
 * q/k rows permuted, vocab_size and rope.dimension_count written). llama.cpp does not read
 * no_rope_layers: it hard-codes a NoPE layer every fourth (n_no_rope_layer_step 4), so the
 * GGUF exports refuse a config whose NoPE layers are others; and it loads no attn_output
 * bias. Default LoRA targets: every linear (PEFT has no default for smollm3). */
#include <jansson.h>
#include <stdio.h>

#include "trainer/model/family.h"
#include "trainer/model/internal.h"
#include "trainer/model/lora.h"

static Tensor *smollm3_layer_forward(const LayerPass *p, Tensor *x, int i) {
    const ModelConfig *c = &p->m->cfg;
    Graph *g = p->g;
    float eps = (float)c->rms_norm_eps;
    int nh = c->num_attention_heads, nkv = c->num_key_value_heads;
    Tensor *h = op_rmsnorm(g, x, layer_norm_weight(p, i, NORM_ATTN), eps);
    Tensor *q = layer_linear(p, h, i, MODULE_Q); /* (N, NH*D) */
    Tensor *k = layer_linear(p, h, i, MODULE_K); /* (N, NKV*D) */
    Tensor *v = layer_linear(p, h, i, MODULE_V); /* (N, NKV*D) */
    if (hf_layer_has_rope(c, i)) {
        q = layer_rope(p, q, nh);
        k = layer_rope(p, k, nkv);
    }
    Tensor *att = layer_attention(p, q, k, v, i); /* (N, NH*D), its window if it slides */
    x = op_add(g, x, layer_linear(p, att, i, MODULE_O));
    h = op_rmsnorm(g, x, layer_norm_weight(p, i, NORM_MLP), eps);
    Tensor *gate = layer_linear(p, h, i, MODULE_GATE); /* (N, FF) */
    Tensor *up = layer_linear(p, h, i, MODULE_UP);     /* (N, FF) */
    Tensor *ff = op_swiglu(g, gate, up);
    return op_add(g, x, layer_linear(p, ff, i, MODULE_DOWN));
}

/* cfg->nope_layers from no_rope_layers, or derived from no_rope_layer_interval. */
static int read_nope_layers(const ConfigReader *r, ModelConfig *cfg) {
    int n = cfg->num_hidden_layers;
    memset(cfg->nope_layers, 0, sizeof cfg->nope_layers);
    json_t *list = json_object_get(r->root, "no_rope_layers");
    if (!list || json_is_null(list)) {
        int interval;
        if (config_read_int(r, "no_rope_layer_interval", 1, 1 << 30, 4, &interval)) return -1;
        for (int l = 0; l < n; l++)
            if ((l + 1) % interval == 0) cfg->nope_layers[l / 64] |= 1ull << (l % 64);
        return 0;
    }
    if (!json_is_array(list) || json_array_size(list) < (size_t)n) {
        snprintf(r->err, r->errlen,
                 "%s: \"no_rope_layers\" must be a list of at least num_hidden_layers (%d) "
                 "entries, 1 for a layer with RoPE and 0 for one without",
                 r->src, n);
        return -1;
    }
    for (int l = 0; l < n; l++) {
        json_t *v = json_array_get(list, (size_t)l);
        if (!json_is_integer(v) || (json_integer_value(v) != 0 && json_integer_value(v) != 1)) {
            snprintf(r->err, r->errlen, "%s: no_rope_layers[%d] must be 0 or 1", r->src, l);
            return -1;
        }
        if (json_integer_value(v) == 0) cfg->nope_layers[l / 64] |= 1ull << (l % 64);
    }
    return 0;
}

static int read_smollm3(const ConfigReader *r, ModelConfig *cfg) {
    bool bias = false;
    if (config_read_bool(r, "attention_bias", false, &bias)) return -1;
    cfg->qkv_bias = cfg->o_bias = bias;
    if (read_nope_layers(r, cfg)) return -1;
    return config_read_sliding_window(r, false, cfg);
}

/* llama.cpp's smollm3 skips RoPE in the layers l with (l + 1) % 4 == 0, whatever the
 * config says. */
static int smollm3_gguf_check(const ModelConfig *c, char *err, size_t errlen) {
    for (int l = 0; l < c->num_hidden_layers; l++)
        if (hf_layer_has_rope(c, l) != ((l + 1) % 4 != 0)) {
            snprintf(err, errlen,
                     "gguf: layer %d %s RoPE (no_rope_layers), but llama.cpp's smollm3 skips "
                     "RoPE in every fourth layer (3, 7, 11, ...) and in no other, whatever the "
                     "config says: it would compute another model. Use the Hugging Face "
                     "format (--format hf)",
                     l, hf_layer_has_rope(c, l) ? "applies" : "applies no");
            return -1;
        }
    return 0;
}

const ModelFamily family_smollm3 = {
    .model_type = "smollm3",
    .architecture = "SmolLM3ForCausalLM",
    .default_max_positions = 32768,
    .default_rope_theta = 2000000.0,
    .default_tied = true,
    .read_config = read_smollm3,
    .norms = llama_norms,
    .n_norms = 2,
    .layer_forward = smollm3_layer_forward,
    .gguf_arch = "smollm3",
    .gguf_permute_qk = true,
    .gguf_llama_hparams = true,
    .default_targets = LORA_ALL,
    .gguf_check = smollm3_gguf_check,
    .gguf_load = true, /* no no_rope_layers key: SmolLM3Config's every fourth, llama.cpp's */
};
