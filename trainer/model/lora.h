/* trainer/model/lora.h — LoRA adapters with PEFT semantics (SPEC 5) and the PEFT file format.
 *
 * For each targeted linear y = x W^T (+ b):  y += scaling * (dropout(x) A^T) B^T with
 * A (R, IN), B (OUT, R), scaling = alpha / R (alpha / sqrt(R) with rsLoRA).
 *
 * Every A and B lives in ONE parameter allocation and their gradients in another, carved
 * into Tensors in a fixed order: layer, then module q, k, v, o, gate, up, down (ModelModule
 * order: Gemma 4's per_layer_input_gate and per_layer_projection last; targeted ones only),
 * A before B. The optimizer can treat lora_params()/lora_grads() as flat
 * vectors in that order. */
#ifndef LORAFIT_LORA_H
#define LORAFIT_LORA_H

#include <stdbool.h>
#include <stddef.h>

#include "tensor/tensor.h"
#include "trainer/model/decoder.h"

enum {
    LORA_Q = 1u << MODULE_Q,
    LORA_K = 1u << MODULE_K,
    LORA_V = 1u << MODULE_V,
    LORA_O = 1u << MODULE_O,
    LORA_GATE = 1u << MODULE_GATE,
    LORA_UP = 1u << MODULE_UP,
    LORA_DOWN = 1u << MODULE_DOWN,
    LORA_QKV = 1u << MODULE_QKV,
    LORA_GATE_UP = 1u << MODULE_GATE_UP,
    LORA_IN_QKV = 1u << MODULE_IN_QKV,
    LORA_IN_Z = 1u << MODULE_IN_Z,
    LORA_IN_B = 1u << MODULE_IN_B,
    LORA_IN_A = 1u << MODULE_IN_A,
    LORA_OUT = 1u << MODULE_OUT,
    LORA_PLE_GATE = 1u << MODULE_PLE_GATE,
    LORA_PLE_PROJ = 1u << MODULE_PLE_PROJ,
    /* every module kind: all-linear, the modules the model has (lora_create keeps those) */
    LORA_ALL = (1u << MODULE_COUNT) - 1
};

typedef struct LoraSpec {
    int r;
    float alpha;
    bool rslora;
    float dropout;
    unsigned targets; /* bit mask of LORA_Q..LORA_PLE_PROJ */
} LoraSpec;

typedef enum { LORA_F32, LORA_BF16, LORA_F16 } LoraDtype;

/* What an adapter's module names depend on: the decoder's place among the model's modules
 * (model_module_prefix: "model.", or a wrapper's "model.language_model."), its layers and
 * linears. Tensors are "base_model.model.<prefix>layers.N.self_attn.q_proj.lora_A.weight". */
typedef struct AdapterBase {
    char prefix[48];
    int n_layers;
    unsigned modules; /* model_modules */
} AdapterBase;
AdapterBase lora_adapter_base(const ModelConfig *cfg);

/* All A (R, IN) and B (OUT, R) zero-filled in one allocation, grads (zeroed) in another,
 * requires_grad true. targets LORA_ALL means the modules the model has; otherwise naming a
 * module the model's family lacks (q_proj for Phi-3, qkv_proj for Llama) is an error.
 * Errors: r < 1, no targets, dropout outside [0, 1), alpha <= 0. */
Lora *lora_create(const Model *m, const LoraSpec *spec, char *err, size_t errlen);
void lora_free(Lora *l);
/* The BF16 matrices l adapts copied with room for it (Tensor.room = r; lora_room.c), for a
 * graph where graph_lora_uses_room. 0, or -1 with err (out of memory). */
int model_make_lora_room(Model *m, const Lora *l, char *err, size_t errlen);
/* 0 when cfg's family has every module of targets (LORA_ALL: all-linear, always), else -1
 * with an error naming the missing modules and the family's. */
int lora_check_targets(const ModelConfig *cfg, unsigned targets, char *err, size_t errlen);
/* A ~ U(-1/sqrt(IN), 1/sqrt(IN)) (PEFT's kaiming_uniform(a=sqrt(5))) from rng_seed(seed,
 * tensor index), B = 0. */
void lora_init_fresh(Lora *l, uint64_t seed);
/* Reads DIR/adapter_config.json and DIR/adapter_model.safetensors (F32/F16/BF16). r,
 * lora_alpha, use_rslora, target_modules and every shape must match the spec; names are
 * accepted with or without PEFT's ".default" infix. target_modules is a list of module names
 * or a string: "all-linear", or a regular expression PEFT re.fullmatch-es against the module
 * names (a wrapper's, which lorafit writes): lorafit matches it against the model's
 * linears (POSIX extended, with Python's (?:...) and \d), which must be the same in every
 * layer. A NaN or infinite value is an error naming the tensor. */
int lora_load_peft(Lora *l, const char *dir, char *err, size_t errlen);
/* The spec an adapter for a model of cfg was saved with (r, lora_alpha, use_rslora,
 * target_modules; dropout 0), for loading an adapter without a training config (generate,
 * eval --adapter). */
int lora_read_peft_spec(const char *dir, const ModelConfig *cfg, LoraSpec *spec, char *err,
                        size_t errlen);
/* A saved adapter as it is, without a training config (generate, eval --adapter): its spec
 * read from DIR/adapter_config.json, then its tensors. NULL with err. */
Lora *lora_load_adapter(const Model *m, const char *dir, char *err, size_t errlen);
/* Writes DIR/adapter_model.safetensors and DIR/adapter_config.json (DIR must exist);
 * target_modules the list of names, or for a wrapper checkpoint a regex that reaches its
 * language model only. */
int lora_save_peft(const Lora *l, const char *dir, const char *base_model_name, LoraDtype dtype,
                   char *err, size_t errlen);

int lora_count(const Lora *l);
Tensor *lora_tensor(const Lora *l, int i, const char **peft_name);
float lora_scaling(const Lora *l);
const LoraSpec *lora_spec(const Lora *l);
/* The module's A and B, or false when the module is not targeted. */
bool lora_module(const Lora *l, int layer, ModelModule mod, Tensor **A, Tensor **B);
/* Flat views of every parameter / gradient, in lora_tensor order (n floats each). */
float *lora_params(const Lora *l, size_t *n);
float *lora_grads(const Lora *l, size_t *n);
void lora_zero_grad(Lora *l);
/* The targets of a run that names none: the model family's default (family_*.c): all seven
 * for Llama, Mistral and Qwen2, PEFT's q_proj and v_proj for Qwen3. */
unsigned lora_default_targets(const ModelConfig *cfg);
/* "q_proj" -> LORA_Q; 0 if unknown. */
unsigned lora_parse_target(const char *name);

#endif
