/* trainer/model/hf_config.h — a Hugging Face config.json of a supported family, parsed and checked.
 *
 * Supported: the families of trainer/model/family_*.c (LlamaForCausalLM / llama,
 * MistralForCausalLM / mistral, Qwen2ForCausalLM / qwen2), with hidden_act silu and RoPE
 * plain, linear, llama3, longrope (Phi-3) or yarn (Ministral 3) scaled (rope_theta +
 * rope_scaling, or transformers 5's rope_parameters).
 * A multimodal checkpoint around a family's decoder (Gemma3ForConditionalGeneration:
 * family.h's ModelWrapper) is read as that decoder, with wrapper set.
 * Another family is refused by name with the list of supported ones; anything else is an
 * error naming the field. Sliding-window attention is computed as transformers does, per
 * layer: a sliding layer's position t attends s when t - sliding_window < s <= t. */
#ifndef LORAFIT_HF_CONFIG_H
#define LORAFIT_HF_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* num_hidden_layers at most this */
#define HF_MAX_LAYERS 4096

/* A model family (trainer/model/family.h): what differs from one to the next. */
typedef struct ModelFamily ModelFamily;
/* A multimodal checkpoint around a family's decoder (trainer/model/family.h). */
typedef struct ModelWrapper ModelWrapper;

/* longrope's per-frequency factors: rotary_dim / 2 of them, at most this many. */
#define HF_MAX_ROPE_FACTORS 256

typedef struct RopeScaling {
    bool llama3; /* false: plain RoPE */
    bool linear; /* "linear": every inv_freq divided by factor */
    double factor, low_freq_factor, high_freq_factor;
    int original_max_position_embeddings;
    /* longrope (Phi-3 / Phi-4-mini): inv_freq[i] / short_factor[i], or / long_factor[i] in a
     * pass whose largest position + 1 exceeds original_max_position_embeddings; cos and sin
     * times attention_factor. */
    bool longrope;
    /* A GGUF base's rope_freqs tensor (llama.cpp's llama3 RoPE, gguf_config.c): inv_freq[i] /
     * short_factor[i] at every position, as llama.cpp's freq_factors. */
    bool gguf_factors;
    double attention_factor;
    double short_factor[HF_MAX_ROPE_FACTORS], long_factor[HF_MAX_ROPE_FACTORS];
    /* yarn (families with ModelFamily.yarn: Ministral 3), as _compute_yarn_parameters: the
     * inv_freq of base^(2i/dim) blended between extrapolated (1 / that) and interpolated
     * (divided by factor) by a linear ramp over the dimensions between the correction dims
     * of beta_fast and beta_slow (rounded out unless yarn_no_truncate); cos and sin times
     * attention_factor (the object's, else from mscale and mscale_all_dim: finish_yarn).
     * mscale and mscale_all_dim are 0 when absent; factor and original_max_position_embeddings
     * are completed as transformers does. */
    bool yarn, yarn_no_truncate;
    double beta_fast, beta_slow, mscale, mscale_all_dim;
    /* "proportional" (Gemma 4's full layers, _compute_proportional_rope_parameters): the
     * first floor(proportion * rotary_dim / 2) frequencies base^(-2i / rotary_dim) / factor,
     * the others 0 (those pairs i, i + rotary_dim / 2 pass through unrotated) */
    bool proportional;
    double proportion;
} RopeScaling;

typedef struct ModelConfig {
    const ModelFamily *family;   /* the decoder's family (a wrapper's text_config's) */
    const ModelWrapper *wrapper; /* NULL, or the multimodal checkpoint around the decoder */
    char model_type[16];         /* config.json's (a wrapper's: "gemma3") */
    int hidden_size;             /* C */
    int intermediate_size;       /* FF */
    int num_hidden_layers;       /* L */
    int num_attention_heads;
    int num_key_value_heads;
    int head_dim;   /* D */
    int rotary_dim; /* the first rotary_dim of a head's D values rotate (partial) */
    /* partial_rotary_factor as the family read it (Phi-3); 0: only 1 is accepted */
    double partial_rotary_factor;
    bool head_dim_in_config; /* config.json names it (the GGUF then does too) */
    int vocab_size;          /* V */
    int max_position_embeddings;
    double rms_norm_eps;
    double rope_theta;
    bool tie_word_embeddings;
    bool qkv_bias; /* q/k/v projections have biases (Qwen2, or attention_bias) */
    bool o_bias;   /* o_proj has a bias (Llama/Mistral attention_bias) */
    bool mlp_bias; /* Llama mlp_bias */
    RopeScaling rope_scaling;
    int sliding_window; /* positions an attention window spans; 0 = no window */
    unsigned char sliding_layers[HF_MAX_LAYERS / 8]; /* bit l: layer l attends in the window */
    float attn_scale;        /* scores' scale; 0: 1/sqrt(head_dim) (Gemma: query_pre_attn_scalar) */
    float attn_softcap;      /* attention scores soft-capped at this; 0: none (Gemma 2) */
    float final_softcap;     /* logits soft-capped at this; 0: none (Gemma 2) */
    double rope_local_theta; /* > 0: the sliding layers' RoPE base, unscaled (Gemma 3) */
    int bos_token_id, eos_token_id; /* -1 when absent */
    uint64_t nope_layers[HF_MAX_LAYERS /
                         64]; /* bit l of word l / 64: layer l applies no RoPE (SmolLM3) */
    /* Granite's multipliers (embeddings, attention scores, sublayer outputs) and the logits'
     * divisor; 0 in the other families (no multiplier, scores scaled by 1/sqrt(D)). */
    double embedding_multiplier, attention_multiplier, residual_multiplier, logits_scaling;
    /* Ministral 3's query scale (llama_4_scaling_beta): q after RoPE times
     * 1 + beta ln(1 + floor(pos / rope_scaling.original_max_position_embeddings)); 0: none */
    double llama4_scaling_beta;
    /* Qwen3.5: bit l of linear_layers set where layer l is a Gated DeltaNet layer
     * (layer_types "linear_attention"), its dimensions; attn_output_gate: q_proj is twice as
     * wide, each head's D query values followed by D gate values (Qwen3.5's full layers). */
    unsigned char linear_layers[HF_MAX_LAYERS / 8];
    struct {
        int n_k_heads, n_v_heads, k_dim, v_dim, conv_kernel; /* NK, NV, DK, DV, KW */
        int mrope_section[4]; /* rope_parameters' mrope_section (GGUF only; text: plain RoPE) */
    } linear;
    bool attn_output_gate;
    /* Gemma 4's full-attention layers: their own head_dim and KV heads (0: as the sliding
     * layers', head_dim and num_key_value_heads), and k_eq_v (attention_k_eq_v): no v_proj,
     * V is k_proj's output. rotary_dim is then the full layers' (proportional RoPE). */
    struct {
        int head_dim, kv_heads;
        bool k_eq_v;
    } full;
    /* Gemma 4's E models: per-layer inputs of ple_dim values (hidden_size_per_layer_input;
     * 0: none) from a table of ple_vocab rows (vocab_size_per_layer_input); the last kv_shared
     * layers (num_kv_shared_layers) reuse the K and V of the last earlier layer of their type
     * and have an MLP twice as wide with double_wide_mlp (use_double_wide_mlp). */
    int ple_dim, ple_vocab, kv_shared;
    bool double_wide_mlp;
} ModelConfig;

/* Whether layer l of cfg rotates q and k (all do but SmolLM3's NoPE layers). */
static inline bool hf_layer_has_rope(const ModelConfig *cfg, int l) {
    return !(cfg->nope_layers[l / 64] >> (l % 64) & 1);
}

/* Whether layer l of cfg attends in a sliding window. */
static inline bool hf_layer_sliding(const ModelConfig *cfg, int l) {
    return cfg->sliding_layers[l / 8] >> (l % 8) & 1;
}

/* Layer l's head_dim and key-value heads (Gemma 4's full layers have their own). */
static inline int hf_layer_head_dim(const ModelConfig *cfg, int l) {
    return cfg->full.head_dim && !hf_layer_sliding(cfg, l) ? cfg->full.head_dim : cfg->head_dim;
}
static inline int hf_layer_kv_heads(const ModelConfig *cfg, int l) {
    return cfg->full.kv_heads && !hf_layer_sliding(cfg, l) ? cfg->full.kv_heads
                                                           : cfg->num_key_value_heads;
}

/* Whether layer l reuses an earlier layer's K and V (Gemma 4's KV sharing). */
static inline bool hf_layer_shares_kv(const ModelConfig *cfg, int l) {
    return cfg->kv_shared > 0 && l >= cfg->num_hidden_layers - cfg->kv_shared;
}
/* The layer whose K and V a sharing layer l reads (Gemma4TextAttention.store_full_length_kv):
 * the last layer of l's type before the sharing ones; -1 when there is none. */
static inline int hf_layer_kv_source(const ModelConfig *cfg, int l) {
    for (int s = cfg->num_hidden_layers - cfg->kv_shared - 1; s >= 0; s--)
        if (hf_layer_sliding(cfg, s) == hf_layer_sliding(cfg, l)) return s;
    return -1;
}
/* Layer l's intermediate size: doubled on the sharing layers with double_wide_mlp. */
static inline int hf_layer_ff(const ModelConfig *cfg, int l) {
    return cfg->intermediate_size * (cfg->double_wide_mlp && hf_layer_shares_kv(cfg, l) ? 2 : 1);
}

/* Whether layer l of cfg is a Gated DeltaNet layer (Qwen3.5), not attention. */
static inline bool hf_layer_is_linear(const ModelConfig *cfg, int l) {
    return cfg->linear_layers[l / 8] >> (l % 8) & 1;
}

/* A wrapper checkpoint's config.json (ModelWrapper): its decoder's config is text_config
 * over the wrapper's text defaults (tie_word_embeddings and the token ids from the top level
 * when text_config has none); ModelConfig describes the decoder, with wrapper set. */
/* Parses a config.json file. Errors name the file and the key. */
int hf_config_load(const char *path, ModelConfig *cfg, char *err, size_t errlen);
/* Same, from a JSON text (what_for names it in messages). */
int hf_config_parse(const char *json, size_t len, const char *what_for, ModelConfig *cfg, char *err,
                    size_t errlen);
/* The checkpoint's class, "LlamaForCausalLM" ... "Gemma3ForConditionalGeneration" */
const char *hf_architecture(const ModelConfig *cfg);
/* The attention window of layer `layer`: sliding_window on a sliding layer, else 0 (full). */
int hf_layer_window(const ModelConfig *cfg, int layer);
/* inv_freq[i] for i < rotary_dim/2, computed in double; with llama3 scaling applied exactly as
 * transformers' _compute_llama3_parameters does, linear as _compute_linear_scaling_rope_parameters
 * (inv_freq / factor), longrope's as _compute_longrope_parameters (short factors; long: those
 * of a pass past original_max_position_embeddings), yarn's as _compute_yarn_parameters. */
void hf_rope_inv_freq(const ModelConfig *cfg, double *inv_freq);
void hf_rope_inv_freq_long(const ModelConfig *cfg, double *inv_freq);
/* What cos and sin are multiplied by: longrope's or yarn's attention_factor, else 1. */
double hf_rope_attention_factor(const ModelConfig *cfg);
/* The factor q is multiplied by at position pos after RoPE: 1 without llama4_scaling_beta. */
double hf_query_scale(const ModelConfig *cfg, int pos);
/* The same for the sliding layers of a model with rope_local_theta: plain RoPE of that base. */
void hf_rope_local_inv_freq(const ModelConfig *cfg, double *inv_freq);

#endif
