/* trainer/model/family.h — what makes a model family, for the code that is the same for all.
 *
 * A family is one file, family_<name>.c, as llama.cpp's src/models/<arch>.cpp: its
 * config.json names and the keys only it reads, the norm weights of its decoder layer and
 * their names, the layer itself built from tensor/ ops, its GGUF architecture, and its
 * default LoRA targets. The code around it is shared: loading (weights.c), the pass over
 * the layers (forward.c), gradient checkpointing (checkpointed.c, which rebuilds a layer
 * with the same function), generation, merge and the GGUF writers, which ask the family
 * what differs. Adding a family: its file, its line in hf_config.c's table, and the GGUF
 * names or keys it needs that none has yet (gguf_model.c). Its multimodal checkpoint
 * (...ForConditionalGeneration), if it has one: a ModelWrapper (below) in the same file and
 * its line in hf_config.c's wrapper table.
 *
 * A family's layer has the linears of decoder.h it names (ModelFamily.modules: the seven
 * q k v o gate up down unless it says otherwise) under Hugging Face's names
 * model.layers.N.self_attn.* / mlp.*, with biases where the config says
 * (ModelConfig.qkv_bias, o_bias). */
#ifndef LORAFIT_MODEL_FAMILY_H
#define LORAFIT_MODEL_FAMILY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "trainer/model/decoder.h"

struct GgufWriter;       /* trainer/store/store.h */
struct GgufConfigReader; /* below */

/* ---- the config.json reader a family's hook reads its own keys with (hf_config.c) ---- */

typedef struct ConfigReader {
    const struct json_t *root; /* the config object */
    const char *src;           /* names it in messages */
    char *err;
    size_t errlen;
} ConfigReader;

/* Each fills *out (the default when the key is absent or null) and returns 0, or -1 with
 * an error naming the file and the key. */
int config_read_bool(const ConfigReader *r, const char *key, bool dflt, bool *out);
int config_read_int(const ConfigReader *r, const char *key, int lo, int hi, int dflt, int *out);
/* A positive finite number. */
int config_read_number(const ConfigReader *r, const char *key, double dflt, double *out);
/* cfg->sliding_layers from "layer_types" (a list of "full_attention" / "sliding_attention"
 * of num_hidden_layers); *present false (and no layer sliding) when the config has none. */
int config_read_layer_types(const ConfigReader *r, ModelConfig *cfg, bool *present);
/* cfg->sliding_window and the sliding layers: "sliding_window" when the window applies, else
 * 0. It applies always (Mistral: to every layer), or (Qwen2, Qwen3) when "use_sliding_window"
 * is true or "layer_types" names a sliding layer. Without layer_types the sliding layers are
 * transformers' derivation: Qwen's layers from "max_window_layers" (default 28) on. */
int config_read_sliding_window(const ConfigReader *r, bool always, ModelConfig *cfg);

/* ---- a decoder layer's norm weights ---------------------------------------------- */

/* Where a layer keeps a norm weight (or another small frozen tensor); each family uses the
 * slots it has. */
typedef enum {
    NORM_ATTN,      /* before attention (C) */
    NORM_MLP,       /* before the MLP (C) */
    NORM_Q,         /* per query head, before RoPE (D) */
    NORM_K,         /* per key head, before RoPE (D) */
    NORM_POST_ATTN, /* on attention's output, before the residual add (C; Gemma, OLMo 2) */
    NORM_POST_MLP,  /* on the MLP's output, before the residual add (C; Gemma, OLMo 2) */
    NORM_Q_PROJ,    /* over the whole q projection, before RoPE (NH*D; OLMo 2) */
    NORM_K_PROJ,    /* over the whole k projection, before RoPE (NKV*D; OLMo 2) */
    /* A Gated DeltaNet layer's other frozen tensors (Qwen3.5, family_qwen3_5.c): */
    NORM_LINEAR_OUT, /* the gated RMSNorm of its output, per value head (DV) */
    LINEAR_A_LOG,    /* A_log (NV) */
    LINEAR_DT_BIAS,  /* dt_bias (NV) */
    LINEAR_CONV,     /* conv1d.weight: (CH, 1, KW) in the checkpoint, (CH, KW) F32 in memory */
    LAYER_SCALAR,    /* the layer's output factor (1): Gemma 4's layer_scalar */
    /* Gemma 4's per-layer input (E models): its gate (P, C) and projection (C, P), frozen
     * matrices (BF16 with the model's dtype BF16), and the norm after them (C) */
    PLE_GATE,
    PLE_PROJ,
    NORM_PLE,
    NORM_SLOTS
} LayerNormSlot;

typedef struct FamilyNorm {
    LayerNormSlot slot;
    const char *hf_name;     /* after "model.layers.N.": "input_layernorm.weight" */
    const char *gguf_name;   /* after "blk.N.": "attn_norm.weight" */
    bool per_head;           /* length head_dim, else hidden_size */
    ModelModule gguf_before; /* the GGUF lists it before this linear of the layer */
} FamilyNorm;

/* Whether layer l has norm n: the DeltaNet slots only a DeltaNet layer (hf_layer_is_linear),
 * the q/k norms only an attention layer, the others every layer. */
bool family_layer_has_norm(const ModelConfig *c, int l, const FamilyNorm *n);

/* The length of norm weight n of layer l (weights.c). */
int family_norm_length(const ModelConfig *c, int l, const FamilyNorm *n);

/* ---- building a layer ------------------------------------------------------------- */

/* What a pass computes before the layers or in one layer for later ones, kept by the pass's
 * owner (forward.c, checkpointed.c) for every layer: Gemma 4's per-layer inputs (N, L*P), and
 * the K and V (N, NKV*D) of its KV-sharing source layers, kv[2 * full + {0: K, 1: V}], set
 * by the source layer, read by the sharing ones. NULL / unset in the other families. */
typedef struct PassShared {
    Tensor *layer_inputs;
    Tensor *kv[4];
} PassShared;

/* One pass's arguments, the same for every layer. */
typedef struct LayerPass {
    const Model *m;
    const Lora *lora; /* NULL: the base model */
    Graph *g;
    const int32_t *pos;     /* (N) positions, set */
    const int32_t *segment; /* (N) or NULL: one segment per row */
    int batch, seq_len;
    float dropout;
    uint64_t dropout_seed;
    PassShared *shared; /* never NULL */
} LayerPass;

/* The shared pieces of a layer (forward.c). A linear of the layer with its bias and its LoRA
 * (when targeted: dropout and the module's own dropout seed): x (N, IN) -> (N, OUT). */
Tensor *layer_linear(const LayerPass *p, Tensor *x, int layer, ModelModule mod);
/* The layer's norm weight in slot s. */
const Tensor *layer_norm_weight(const LayerPass *p, int layer, LayerNormSlot s);
/* RoPE of x (N, H*D) with the model's tables and the pass's positions. */
Tensor *layer_rope(const LayerPass *p, Tensor *x, int n_heads);
/* RoPE of the queries x (N, NH*D): layer_rope, times the config's per-position query scale
 * (llama4_scaling_beta, hf_query_scale), which is folded into tables of its own. */
Tensor *layer_rope_query(const LayerPass *p, Tensor *x, int n_heads);
/* RoPE of layer `layer`: layer_rope, or on a sliding layer of a model with a local base
 * (rope_local_theta, Gemma 3) the local tables. */
Tensor *layer_rope_at(const LayerPass *p, Tensor *x, int n_heads, int layer);
/* Causal GQA of layer `layer` (op_attention_ex): q (N, NH*D), k v (N, NKV*D) -> (N, NH*D),
 * with the layer's window (hf_layer_window) and the config's score scale and soft-cap. */
Tensor *layer_attention(const LayerPass *p, Tensor *q, Tensor *k, Tensor *v, int layer);

/* ---- the family ------------------------------------------------------------------- */

struct GgufWriter; /* trainer/store/gguf.h */

struct ModelFamily {
    const char *model_type;    /* config.json "model_type" */
    const char *architecture;  /* config.json "architectures": the ...ForCausalLM class */
    int default_max_positions; /* max_position_embeddings when the config has none */
    int default_head_dim;      /* head_dim when absent; 0: hidden_size / heads */
    double default_rope_theta; /* rope_theta when absent; 0: 10000 */
    bool default_tied;         /* tie_word_embeddings when absent */
    /* The keys only this family reads, after the shared ones are in cfg: the biases
     * (cfg->qkv_bias, o_bias) and the sliding window. 0, or -1 with r->err set. */
    int (*read_config)(const ConfigReader *r, ModelConfig *cfg);
    const FamilyNorm *norms; /* the layer's norm weights (n_norms), in GGUF order */
    int n_norms;
    /* Decoder layer `layer`: x (N, C) -> its output (N, C), built in p->g. The one
     * definition of the layer: the plain pass and gradient checkpointing both call it. */
    Tensor *(*layer_forward)(const LayerPass *p, Tensor *x, int layer);
    /* NULL, or the per-layer inputs (N, L*P) of a pass from its ids and embeddings (N, C),
     * built in g without gradients, for a config with ple_dim > 0 (Gemma 4's E models);
     * NULL on failure. */
    Tensor *(*layer_inputs)(const Model *m, Graph *g, const int32_t *ids, Tensor *embedded);
    const char *gguf_arch;    /* llama.cpp's architecture name */
    bool gguf_permute_qk;     /* convert_hf_to_gguf.py's LlamaModel.permute of q/k rows */
    bool gguf_llama_hparams;  /* LlamaModel's extra keys: vocab_size, rope.dimension_count */
    bool gguf_o_bias;         /* llama.cpp's arch loads an attn_output bias */
    bool gguf_sliding_window; /* llama.cpp's arch applies the sliding window (else warned) */
    bool gguf_rope_freqs;     /* llama.cpp's arch reads the full layers' RoPE from rope_freqs */
    unsigned default_targets; /* LORA_* mask: lora.target_modules when not given */
    /* LORA_* mask of the layer's linears; 0: the seven q k v o gate up down (decoder.h) */
    unsigned modules;
    /* LORA_* mask of a Gated DeltaNet layer's linears (hf_layer_is_linear); 0: none */
    unsigned linear_modules;
    /* NULL, or why llama.cpp would compute something else than transformers for this
     * config: -1 with the reason in err (the GGUF exports refuse it), else 0. */
    int (*gguf_check)(const ModelConfig *c, char *err, size_t errlen);
    /* Gemma's differences outside the layer (all false / 0 elsewhere): */
    bool unit_offset_norm; /* the final norm scales by (1 + w) */
    bool embed_scale;      /* embeddings times sqrt(hidden), rounded to the table's dtype */
    bool own_activation;   /* read_config checks the activation (not "hidden_act": silu) */
    /* GGUF: a norm weight as llama.cpp's arch wants it (n values of slot `slot`, or the final
     * norm for NORM_SLOTS), changed in place; NULL: as Hugging Face has it. */
    void (*gguf_norm)(const ModelConfig *c, LayerNormSlot slot, float *w, int64_t n);
    /* GGUF: a matrix of linear `mod` reordered as llama.cpp's arch wants it, in place:
     * out_side, its rows are the module's outputs (the weight, or an adapter's B); else its
     * columns are the module's inputs (the weight, or an adapter's A). scratch holds rows *
     * cols floats. NULL: as Hugging Face has it (Qwen3.5's value heads, family_qwen3_5.c). */
    void (*gguf_reorder)(const ModelConfig *c, ModelModule mod, float *w, int64_t rows,
                         int64_t cols, bool out_side, float *scratch);
    /* GGUF: the arch's own metadata keys; 0, or -1 with err set. NULL: none. */
    int (*gguf_metadata)(struct GgufWriter *w, const ModelConfig *c, char *err, size_t errlen);
    /* GGUF bases (gguf_config.c, gguf_base.c): the inverse of the hooks above. gguf_load: a
     * .gguf of gguf_arch loads as this family (the first in hf_config.c's table with the
     * arch). gguf_config: the arch's own keys into config.json keys (NULL: none);
     * gguf_unnorm: a norm weight back from llama.cpp's form (NULL: as stored). */
    bool gguf_load;
    int (*gguf_config)(const struct GgufConfigReader *r);
    void (*gguf_unnorm)(const ModelConfig *c, LayerNormSlot slot, float *w, int64_t n);
    /* Ministral 3's RoPE (false / NULL elsewhere): */
    bool yarn; /* rope_type "yarn" accepted (the others refuse it: their GGUF lacks its keys) */
    bool proportional_rope; /* rope_type "proportional" accepted for the full layers (Gemma 4) */
    /* rope_parameters (JSON) when config.json has neither it nor rope_scaling */
    const char *default_rope_parameters;
    /* Generation with a cache (NULL: generate.c recomputes the prefix for every token): a
     * decoder for up to max_len positions (NULL when out of memory), and the logits (V) after
     * one more token, id at position pos (0, 1, ... in order), built in g (reset first, with
     * the generation's precision); NULL on failure (graph_error). */
    void *(*decoder_new)(const Model *m, int max_len);
    const float *(*decoder_next)(void *d, const Model *m, const Lora *lora, Graph *g, int32_t id,
                                 int pos);
    void (*decoder_free)(void *d);
};

/* ---- a GGUF base's metadata as config.json keys (gguf_config.c) --------------------- */

struct GgufFile;
typedef struct GgufConfigReader {
    const struct GgufFile *f;
    const char *arch;          /* general.architecture */
    struct json_t *cfg;        /* the config.json object being built */
    int layers, heads, hidden; /* block_count, attention.head_count, embedding_length */
    char *err;
    size_t errlen;
} GgufConfigReader;

/* "<arch>.<key>" of the file into cfg[hf_key] (as a number: an integer, or a float when
 * real): 1 when copied, 0 when the file has no such key, -1 (err set) when it is not a
 * number. */
int gguf_config_copy(const GgufConfigReader *r, const char *key, const char *hf_key, bool real);
/* cfg["layer_types"] from "<arch>.attention.sliding_window_pattern": a period P (layer l
 * slides when l % P < P - 1; dflt when the key is absent) or a list of per-layer flags
 * (true: sliding). 0, or -1 with err set. */
int gguf_config_sliding_layers(const GgufConfigReader *r, int dflt);

/* ---- a multimodal wrapper checkpoint ----------------------------------------------
 *
 * A ...ForConditionalGeneration checkpoint (Gemma 3 4B+, Mistral 3) whose language model is
 * one of the families: config.json holds the decoder's config under "text_config", the
 * safetensors hold the decoder's tensors under a prefix beside a vision tower and a projector.
 * lorafit reads the decoder only (the other tensors are never read into memory), trains it
 * (LoRA on the language model's linears only: PEFT module names under the prefix, a regex
 * target_modules), and writes the other tensors back byte-identical in a merge. Adding one:
 * this description in the family's file and its line in hf_config.c's wrapper table. */
typedef struct ModelWrapper {
    const char *model_type;   /* config.json "model_type": "gemma3" */
    const char *architecture; /* "Gemma3ForConditionalGeneration" */
    const ModelFamily *text;  /* the decoder family of text_config */
    /* The model_type the wrapper's config class gives a text_config without one: a
     * text_config without model_type is accepted only when it is text->model_type. */
    const char *text_type_default;
    /* A JSON object: the text config class's defaults for what text_config may omit (the
     * checkpoints' text_config often names only what differs from them). */
    const char *text_defaults;
    /* Where the decoder's "model." tensors are, and its lm_head (when untied), in the
     * checkpoint of transformers >= 4.52 (and in PEFT's module names: the model's named
     * modules), and in the older layout transformers still loads (its
     * _checkpoint_conversion_mapping); the legacy ones NULL when there is none. */
    const char *prefix, *lm_head;
    const char *legacy_prefix, *legacy_lm_head;
    bool final_softcap; /* the wrapper applies final_logit_softcapping (Gemma 3's does not) */
} ModelWrapper;

/* Gemma 2 and 3's shared config keys (family_gemma3.c): attention_bias, the activation,
 * query_pre_attn_scalar, final_logit_softcapping, sliding_window; and their GGUF norms
 * (+ 1, Gemma 3's q_norm times the attention scale fold). */
int gemma_read_common(const ConfigReader *r, ModelConfig *cfg);
void gemma_gguf_norm(const ModelConfig *c, LayerNormSlot slot, float *w, int64_t n);
/* Their GGUF bases: the norms back (w - 1), and the keys of both archs. */
void gemma_gguf_unnorm(const ModelConfig *c, LayerNormSlot slot, float *w, int64_t n);
int gemma_gguf_config(const GgufConfigReader *r);
/* llama.cpp's sliding-layer period P (layer l slides when l % P < P - 1) that gives the
 * model's sliding layers; 0 when none does. */
int gemma_swa_period(const ModelConfig *c);

/* Qwen3.5's decoder (decode_qwen3_5.c), the family's decoder_new / _next / _free. */
void *qwen3_5_decoder_new(const Model *m, int max_len);
const float *qwen3_5_decoder_next(void *d, const Model *m, const Lora *lora, Graph *g, int32_t id,
                                  int pos);
void qwen3_5_decoder_free(void *d);

/* The family a GGUF of general.architecture `arch` loads as (ModelFamily.gguf_load), or NULL;
 * supported gets the archs that load ("llama, qwen2, ..."). hf_config.c's table. */
const ModelFamily *hf_family_of_gguf_arch(const char *arch, char *supported, size_t len);

/* Llama's decoder layer and its two norms (family_llama.c), which Qwen2 reuses as they are. */
Tensor *llama_layer_forward(const LayerPass *p, Tensor *x, int layer);
extern const FamilyNorm llama_norms[2];

#endif
