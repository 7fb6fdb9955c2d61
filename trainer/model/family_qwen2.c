/* trainer/model/family_qwen2.c — Qwen2 (Qwen2ForCausalLM), as transformers'
 * modeling_qwen2.py computes it: Llama's decoder layer (family_llama.c) with biases on the
 * q, k and v projections, always, and none on o_proj; a sliding window only when the config
 * turns it on. In GGUF llama.cpp's arch "qwen2", q/k rows as Hugging Face has them. */
#include "trainer/model/family.h"
#include "trainer/model/lora.h"

static int read_qwen2(const ConfigReader *r, ModelConfig *cfg) {
    cfg->qkv_bias = true;
    cfg->o_bias = false;
    return config_read_sliding_window(r, false, cfg);
}

const ModelFamily family_qwen2 = {
    .model_type = "qwen2",
    .architecture = "Qwen2ForCausalLM",
    .default_max_positions = 32768,
    .read_config = read_qwen2,
    .norms = llama_norms,
    .n_norms = 2,
    .layer_forward = llama_layer_forward,
    .gguf_arch = "qwen2",
    .gguf_load = true,
    .default_targets = LORA_ALL,
};
