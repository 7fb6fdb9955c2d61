/* trainer/model/internal.h — the Model struct, shared by model_load.c, model_forward.c and
 * model_generate.c only. Everyone else goes through trainer/model.h. */
#ifndef LORAFIT_MODEL_INTERNAL_H
#define LORAFIT_MODEL_INTERNAL_H

#include "trainer/model/decoder.h"
#include "trainer/store/store.h"

typedef struct ModelLayer {
    Tensor attn_norm;       /* (C) */
    Tensor w[MODULE_COUNT]; /* q (NH*D, C), k v (NKV*D, C), o (C, NH*D),
                               gate up (FF, C), down (C, FF) */
    Tensor b[MODULE_COUNT]; /* biases (out); data NULL when absent */
    Tensor ffn_norm;        /* (C) */
} ModelLayer;

struct Model {
    ModelConfig cfg;
    StCheckpoint *ckpt;       /* owns the mappings the F32 weights point into */
    ModelDtype dtype;         /* in-memory dtype of the weight matrices (embed, W, lm_head) */
    float *converted;         /* one allocation for weights converted to F32 */
    uint16_t *converted_bf16; /* one allocation for matrices converted to BF16 (dtype BF16) */
    size_t converted_bytes;   /* both allocations */
    size_t weight_bytes;      /* every frozen weight, mapped or converted */
    Tensor embed;             /* (V, C) */
    ModelLayer *layers;       /* (L) */
    Tensor final_norm;        /* (C) */
    Tensor lm_head;           /* (V, C); shares embed's data when tied */
    float *rope_cos;          /* (max_pos, D/2) */
    float *rope_sin;          /* (max_pos, D/2) */
    int max_pos;
    size_t param_count;
};

#endif
