/* trainer/model/internal.h — the Model struct, shared by the files of trainer/model/ only
 * (weights.c loads it, forward.c, the family files, checkpointed.c and generate.c run it,
 * merge.c and gguf_model.c write it). Everyone else goes through trainer/model/model.h. */
#ifndef LORAFIT_MODEL_INTERNAL_H
#define LORAFIT_MODEL_INTERNAL_H

#include <stdbool.h>
#include <string.h>

#include "trainer/model/decoder.h"
#include "trainer/model/family.h"
#include "trainer/store/store.h"

/* Whether a file of NAMED_TEMPLATES_DIR is a template: NAME.jinja, not hidden. */
static inline bool is_named_template(const char *file_name) {
    size_t n = strlen(file_name);
    return file_name[0] != '.' && n > 6 && strcmp(file_name + n - 6, ".jinja") == 0;
}

typedef struct ModelLayer {
    Tensor norm[NORM_SLOTS]; /* (C) or per head (D); data NULL where the family has none */
    Tensor w[MODULE_COUNT];  /* q (NH*D, C), k v (NKV*D, C), o (C, NH*D),
                                gate up (FF, C), down (C, FF) */
    Tensor b[MODULE_COUNT];  /* biases (out); data NULL when absent */
} ModelLayer;

struct Model {
    ModelConfig cfg;
    StCheckpoint *ckpt;       /* owns the mappings the F32 weights point into */
    ModelDtype dtype;         /* in-memory dtype of the weight matrices (embed, W, lm_head) */
    float *converted;         /* one allocation for weights converted to F32 */
    uint16_t *converted_bf16; /* one allocation for matrices converted to BF16 (dtype BF16) */
    uint16_t *lora_room;      /* the adapted BF16 matrices with room (model_make_lora_room) */
    size_t converted_bytes;   /* both allocations and quantized */
    size_t weight_bytes;      /* every frozen weight, mapped or converted */
    Tensor embed;             /* (V, C) */
    ModelLayer *layers;       /* (L) */
    Tensor final_norm;        /* (C) */
    Tensor lm_head;           /* (V, C); shares embed's data when tied */
    float *rope_cos;          /* (max_pos, rotary_dim/2) */
    float *rope_sin;          /* (max_pos, rotary_dim/2) */
    float *rope_local_cos;    /* (max_pos, D/2): the sliding layers' (rope_local_theta), or NULL */
    float *rope_local_sin;
    /* longrope's tables with the long factors, for a pass whose largest position + 1 exceeds
     * original_max_position_embeddings (layer_rope); NULL without longrope */
    float *rope_long_cos, *rope_long_sin;
    /* The decoder's tensor names in the checkpoint: its "model." as this prefix ("model.", or
     * a wrapper's in the layout the checkpoint has) and its untied lm_head's name. */
    const char *prefix, *lm_head_name;
    /* the queries' tables, times hf_query_scale per position (Ministral 3's
     * llama_4_scaling_beta: (q rope) * s = q (cos s) + rotate(q) (sin s)); NULL without one */
    float *rope_query_cos, *rope_query_sin;
    float embed_scale; /* the embeddings' factor (family embed_scale), else 0 */
    /* Gemma 4's per-layer inputs (cfg.ple_dim > 0): the table (PV, L*P) in its stored dtype,
     * never widened as a whole; the context projection (L*P, C) and its norm (P); the table
     * rows' factor sqrt(P) rounded to its dtype */
    Tensor ple_embed, ple_proj, ple_norm;
    float ple_scale;
    GgmlType quant;  /* model.quantize of the linear weights; GGML_TYPE_F32: none */
    void *quantized; /* one allocation holding every quantized linear weight */
    int max_pos;
    size_t param_count;
    /* A GGUF base (gguf_base.c): the open file the weights point into, one allocation for
     * the tensors not usable in place, and the file's identity (model_base_identity). */
    struct GgufFile *gguf;
    void *gguf_owned;
    char gguf_identity[96];
    /* An untied embedding used in place is read from its file a row at a time (embed_rows.c),
     * when embed_from_file: embed_fd open on the file, row 0 of the table at embed_offset. */
    bool embed_from_file;
    int embed_fd;
    uint64_t embed_offset;
};

/* Decoder layer `layer` (forward.c): x (N, C) -> the layer's output (N, C), built in g by
 * the family's layer_forward. The one definition of a layer, used by the plain pass and by
 * gradient checkpointing, which is why both give the same bits. pos (N) must be set
 * (model_default_positions). */
Tensor *model_layer_forward(const Model *m, const Lora *lora, Graph *g, Tensor *x, int layer,
                            const int32_t *pos, const int32_t *segment, int batch, int seq_len,
                            float dropout, uint64_t dropout_seed, PassShared *shared);
/* The pass's shared inputs of the layers (family.h's PassShared) from its ids and
 * embeddings x (N, C), built in g: 0, or -1 on failure (graph_failed). */
int model_pass_shared(const Model *m, Graph *g, const int32_t *ids, Tensor *x, PassShared *shared);
/* The embedding rows of ids (N, C), times the family's scale (Gemma's sqrt(hidden)). */
Tensor *model_embed(const Model *m, Graph *g, const int32_t *ids, int64_t n);
/* embed_rows.c: reads the (untied, used in place) embedding from `path`, where its row 0 is
 * at `offset`, rather than through the mapping (see there); 0, or -1 with err set. */
int model_embed_from_file(Model *m, const char *path, uint64_t offset, char *err, size_t errlen);
/* The rows of ids (N, C) as op_embedding gives them from m->embed, read from the file. */
Tensor *model_embed_rows_read(const Model *m, Graph *g, const int32_t *ids, int64_t n);
void model_embed_file_close(Model *m);
/* The final norm of the family: x (N, C) -> the lm_head's input (N, C); divided by
 * logits_scaling when the config has one (Granite: logits / s = (h / s) lm_head^T, which
 * keeps the fused lm_head + loss unchanged). */
Tensor *model_final_norm(const Model *m, Graph *g, Tensor *x);
/* The checkpoint's name of the decoder's tensor `name` ("model.layers.0...", "lm_head.weight")
 * into out (n bytes). */
void model_tensor_name(const Model *m, const char *name, char *out, size_t n);
/* Whether a checkpoint tensor is the language model's (a wrapper's other tensors: not). */
bool model_is_language_tensor(const Model *m, const char *checkpoint_name);
/* model.quantize (quantize.c): the bytes of W (OUT, IN) quantized for `type`, rounded up to
 * 64; W's rows from src (F32, F16 or BF16, (OUT, IN)) into blocks, dst set to them. */
size_t model_quant_bytes(GgmlType type, int64_t out, int64_t in);
int model_quantize_weight(Tensor *dst, const StTensor *src, GgmlType type, void *blocks, char *err,
                          size_t errlen);
/* GGUF bases: the metadata as a config (gguf_config.c); the file's tensors into m, whose
 * config is set (gguf_base.c); llama.cpp's name of a linear ("attn_q", gguf_model.c). */
int gguf_base_config(const struct GgufFile *f, ModelConfig *cfg, char *err, size_t errlen);
int gguf_base_load(Model *m, const char *path, char *err, size_t errlen);
const char *gguf_module_name(ModelModule mod);
/* 0..T-1 in every row, in g's arena (N ints); NULL when the arena cannot grow. */
const int32_t *model_default_positions(Graph *g, int batch, int seq_len);

#endif
