/* trainer/model/decoder.h — a frozen decoder model: loading, the forward pass, generation.
 *
 * Dimension letters (as in tensor/tensor.h): B batch, T sequence length, N = B*T rows,
 * C hidden size, FF intermediate size, NH / NKV query / key-value heads, D head_dim,
 * V vocabulary, L layers, R LoRA rank.
 *
 * Loading maps the Hugging Face tensor names onto Tensors. F32 weights are used in place
 * from the read-only safetensors mapping (no copy: peak RSS stays near the file size);
 * F16/BF16 weights (or F32 ones at an unaligned offset) are converted once into a single
 * allocation. With dtype BF16 the weight matrices (embeddings, the linears, lm_head) stay
 * BF16 in memory: BF16 file tensors are used in place from the mapping, F32/F16 ones are
 * rounded once (nearest even) into one allocation; norm weights and biases stay F32.
 * tensor/ ops convert BF16 weights on the fly with results bit-identical to F32 weights
 * holding the same values. The forward pass is built from tensor/ ops so backward reaches the LoRA
 * tensors; the frozen weights never require gradients. */
#ifndef LORAFIT_DECODER_H
#define LORAFIT_DECODER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tensor/tensor.h"
#include "trainer/model/hf_config.h"

/* RoPE cos/sin tables cover min(max_position_embeddings, this) positions. */
#define MODEL_MAX_ROPE_POSITIONS 32768

/* The linear modules a layer may have, in PEFT target order. A family has a subset of them
 * (model_modules): the seven q k v o gate up down, or Phi-3's fused qkv_proj (q rows, then
 * k, then v) and gate_up_proj (gate rows, then up) with o and down. Qwen3.5's Gated DeltaNet
 * layers (linear_attn.*) have in_proj_qkv, in_proj_z, in_proj_b, in_proj_a and out_proj
 * instead of q k v o; a layer's own subset is model_layer_modules. Gemma 4's E models'
 * per-layer input gate and projection (layers.N.per_layer_input_gate, per_layer_projection,
 * no parent module) are LoRA targets only: their weights are family norm slots (PLE_GATE,
 * PLE_PROJ), loaded and written as those; model_layer_targets adds them. */
typedef enum {
    MODULE_Q,
    MODULE_K,
    MODULE_V,
    MODULE_O,
    MODULE_GATE,
    MODULE_UP,
    MODULE_DOWN,
    MODULE_QKV,
    MODULE_GATE_UP,
    MODULE_IN_QKV,   /* (2 NK*DK + NV*DV, C): the DeltaNet's q, k, v before the conv */
    MODULE_IN_Z,     /* (NV*DV, C): the output gate */
    MODULE_IN_B,     /* (NV, C): beta before the sigmoid */
    MODULE_IN_A,     /* (NV, C): the decay's input */
    MODULE_OUT,      /* out_proj (C, NV*DV) */
    MODULE_PLE_GATE, /* per_layer_input_gate (P, C) */
    MODULE_PLE_PROJ, /* per_layer_projection (C, P) */
    MODULE_COUNT
} ModelModule;

typedef struct Model Model;
typedef struct Lora Lora;

typedef enum { MODEL_F32, MODEL_BF16 } ModelDtype;

/* DIR holds config.json and model.safetensors (or model.safetensors.index.json + shards).
 * model_load keeps every weight F32 (model_load_dtype with MODEL_F32). */
Model *model_load(const char *dir, char *err, size_t errlen);
Model *model_load_dtype(const char *dir, ModelDtype dtype, char *err, size_t errlen);
/* A path that names a file, not a directory, is a GGUF base (model_path_is_gguf): the config
 * from its metadata, the weights read in place from the mapped file in their stored types
 * (F32, F16 and BF16 as a directory's; the ggml block types kept quantized, llama.cpp's Q/K
 * row permutation and norm offsets undone), the file open for the model's life. */
bool model_path_is_gguf(const char *path);
/* The config of the model at path (a directory's config.json, a GGUF base's metadata)
 * without loading its weights. 0, or -1 with err. */
int model_config_load(const char *path, ModelConfig *cfg, char *err, size_t errlen);
/* The base file's identity for the resume fingerprint: "gguf SIZE bytes, sample hash H" for a
 * GGUF base (gguf_base.c says what is hashed); "" for a Hugging Face directory. */
const char *model_base_identity(const Model *m);
/* model_load_dtype with the decoder's linear weights (model_weight: q k v o gate up down, or
 * a family's fused qkv / gate_up) quantized at load to ggml type quant (Q8_0, Q4_0, Q4_K,
 * Q5_K, Q6_K; GGML_TYPE_F32: none), row by row from the checkpoint, by llama.cpp's reference
 * quantizer (quant_quantize_row): only the blocks stay in memory, never a float copy of W.
 * Embeddings, lm_head, norms and biases stay as dtype says. A matrix whose rows (IN) the
 * type cannot hold takes model_quant_type_for's type. */
Model *model_load_quantized(const char *dir, ModelDtype dtype, GgmlType quant, char *err,
                            size_t errlen);
/* The type rows of IN weights are quantized to for model.quantize `type`: type itself, or
 * llama-quantize's fallback (Q4_K -> Q5_0, Q5_K -> Q5_1, Q6_K -> Q8_0, F16 when 32-weight
 * blocks do not divide IN either). */
GgmlType model_quant_type_for(GgmlType type, int64_t in);
/* "model.quantize Q4_K: 35 linear weights, 1.2 MB (30 as Q5_0, 5 as F16: ...)" into out; ""
 * when m is not quantized. */
void model_quant_note(const Model *m, char *out, size_t len);
ModelDtype model_dtype(const Model *m);
void model_free(Model *m);
const ModelConfig *model_config(const Model *m);
/* Positions the model computes: the RoPE tables' rows. */
int model_max_positions(const Model *m);
size_t model_param_count(const Model *m);
size_t model_converted_bytes(const Model *m); /* heap bytes holding converted weights */
size_t model_weight_bytes(const Model *m);    /* bytes of all frozen weights, mapped or heap */

/* Where the decoder's layers are among the model's named modules (PEFT's module names,
 * "<prefix>layers.N.self_attn.q_proj"): "model.", or a wrapper's "model.language_model.". */
const char *model_module_prefix(const ModelConfig *cfg);
/* "q_proj" ... "per_layer_projection": the last part of model_module_path. */
const char *model_module_name(ModelModule mod);
/* "q_proj, k_proj, ..." into out (for messages): the modules of mask (1 << ModelModule). */
void model_module_list_of(unsigned mask, char *out, size_t len);
/* Every module kind (model_module_list_of all of them). */
void model_module_list(char *out, size_t len);
/* The modules LoRA can target in cfg, as a mask of 1 << ModelModule (in any of its layers):
 * the family's linears and, in Gemma 4's E models, the per-layer gate and projection. */
unsigned model_modules(const ModelConfig *cfg);
/* The linear weights layer `layer` has (Qwen3.5: a DeltaNet layer's or an attention
 * layer's), loaded and written as modules (w[]). */
unsigned model_layer_modules(const ModelConfig *cfg, int layer);
/* The modules LoRA can target in layer `layer`: model_layer_modules and the per-layer gate
 * and projection of Gemma 4's E models. */
unsigned model_layer_targets(const ModelConfig *cfg, int layer);
/* The module's name under its layer: "self_attn.q_proj", "per_layer_input_gate". */
const char *model_module_path(ModelModule mod);
/* Shape of a layer's linear: W (out, in), in a model whose layers all have one shape. */
void model_module_dims(const ModelConfig *cfg, ModelModule mod, int *out, int *in);
/* The same in layer `layer` (Gemma 4's full layers have their own head_dim and KV heads). */
void model_layer_module_dims(const ModelConfig *cfg, int layer, ModelModule mod, int *out, int *in);
/* The frozen weight (out, in) and bias (out) or NULL of a layer's linear (of
 * model_layer_targets: the per-layer gate and projection are their norm slots). */
const Tensor *model_weight(const Model *m, int layer, ModelModule mod);
const Tensor *model_bias(const Model *m, int layer, ModelModule mod);

/* ids, pos, segment (B*T) -> logits (B*T, V). ids must be in [0, V) and pos in
 * [0, model_max_positions) (the caller validates). segment NULL = one segment per row.
 * pos NULL = 0..T-1 in every row. lora NULL = the base model. dropout_seed is mixed with
 * the layer and module index so every LoRA module gets its own mask. NULL on arena
 * failure (graph_failed). */
Tensor *model_forward(const Model *m, const Lora *lora, Graph *g, const int32_t *ids,
                      const int32_t *pos, const int32_t *segment, int batch, int seq_len,
                      uint64_t dropout_seed);

/* The same without LoRA dropout (evaluation and generation). */
Tensor *model_forward_eval(const Model *m, const Lora *lora, Graph *g, const int32_t *ids,
                           const int32_t *pos, const int32_t *segment, int batch, int seq_len);

/* The same two without the lm_head: the final-norm output (B*T, C), for the fused
 * op_lm_head_cross_entropy(g, hidden, model_lm_head(m), targets, &n). */
Tensor *model_forward_hidden(const Model *m, const Lora *lora, Graph *g, const int32_t *ids,
                             const int32_t *pos, const int32_t *segment, int batch, int seq_len,
                             uint64_t dropout_seed);
Tensor *model_forward_hidden_eval(const Model *m, const Lora *lora, Graph *g, const int32_t *ids,
                                  const int32_t *pos, const int32_t *segment, int batch,
                                  int seq_len);
/* ---- gradient checkpointing (train.gradient_checkpointing) -------------------------
 *
 * The training pass of model_forward_hidden + graph_backward with one decoder layer's
 * activations alive at a time. The forward pass runs each layer in a second graph of its
 * own (the layer graph, reset for every layer) and keeps only the layer inputs, and the
 * last layer's output, in g (L + 1 tensors of (N, C)); the head (final norm, lm_head and
 * loss) is built in g as usual. model_backward_checkpointed then replays g's tape (the
 * head), and for l = L-1 .. 0 recomputes layer l from its saved input in the layer graph
 * (the last layer is still there from the forward pass) and runs that layer's backward at
 * once, seeded with d(its output), which yields d(its input) for the layer below; the LoRA
 * gradients accumulate as always.
 * The forward pass is deterministic and a layer is built by the same code either way
 * (same inputs, dropout seeds, precision, thread count), so the loss, every activation
 * and every LoRA gradient are bit-identical to the plain pass. The cost: each layer's
 * forward but the last runs twice. The layer graph takes g's precision (graph_set_precision). */
typedef struct Checkpointing Checkpointing;

/* NULL when out of memory. */
Checkpointing *checkpointing_create(void);
void checkpointing_free(Checkpointing *ck);
/* The layer graph (for its arena size: graph_arena_bytes). */
const Graph *checkpointing_graph(const Checkpointing *ck);
/* Why the last pass on g with ck failed: "decoder layer 7 (backward): out of memory: ..."
 * when a layer failed in the layer graph, else graph_error(g). "" when nothing failed. */
const char *checkpointing_error(const Checkpointing *ck, const Graph *g);

/* model_forward_hidden (or _eval: no dropout) with checkpointing: the final-norm output
 * (B*T, C) in g, the layers run in ck's graph. NULL on failure (checkpointing_error).
 * Arguments as model_forward_hidden's; ids, pos and segment may be reused at once.
 * One pass at a time per ck: it is valid until the next call or graph_reset(g). */
Tensor *model_forward_hidden_checkpointed(const Model *m, const Lora *lora, Graph *g,
                                          Checkpointing *ck, const int32_t *ids, const int32_t *pos,
                                          const int32_t *segment, int batch, int seq_len,
                                          uint64_t dropout_seed);
Tensor *model_forward_hidden_checkpointed_eval(const Model *m, const Lora *lora, Graph *g,
                                               Checkpointing *ck, const int32_t *ids,
                                               const int32_t *pos, const int32_t *segment,
                                               int batch, int seq_len);
/* graph_backward(g, root, seed) of a pass whose hidden state came from
 * model_forward_hidden_checkpointed(m, lora, g, ck, ...): root a scalar built on it in g
 * (the loss), at most once per forward pass. 0, or -1 (checkpointing_error). */
int model_backward_checkpointed(Graph *g, Checkpointing *ck, Tensor *root, float seed);

/* The summed next-token loss of a pass's hidden state (N, C), as op_lm_head_cross_entropy
 * with the model's lm_head and its final-logit soft-cap (Gemma 2); *n_targets the rows. */
Tensor *model_loss(const Model *m, Graph *g, Tensor *hidden, const int32_t *targets,
                   int64_t *n_targets);

/* The same per row: (N) each counted row's loss -log p(target), 0 elsewhere
 * (op_lm_head_token_losses); sequence log-probabilities are sums of its rows. */
Tensor *model_token_losses(const Model *m, Graph *g, Tensor *hidden, const int32_t *targets,
                           int64_t *n_targets);

/* lm_head (V, C): F32 or BF16 (model dtype); the embedding table when tied. */
const Tensor *model_lm_head(const Model *m);

/* Extends prompt (n_prompt ids) by n_new tokens into out (n_prompt + n_new ids, prompt
 * first). temperature 0 = greedy (first maximum on ties); otherwise samples from
 * softmax(logits / temperature) with the project PRNG seeded by seed. Recomputes the whole
 * prefix per token (fine for the small models this is for). */
int model_generate(const Model *m, const Lora *lora, const int32_t *prompt, int n_prompt, int n_new,
                   float temperature, uint64_t seed, TensorPrecision precision, int32_t *out,
                   char *err, size_t errlen);
/* The same, calling on_token(ctx, id) after each new token: it returns 0 to go on, 1 to stop
 * after this token (an end-of-turn token), -1 to fail. *n_out (may be NULL) gets the number
 * of ids in out (prompt included). */
typedef int (*ModelTokenFn)(void *ctx, int32_t id);
int model_generate_stream(const Model *m, const Lora *lora, const int32_t *prompt, int n_prompt,
                          int n_new, float temperature, uint64_t seed, TensorPrecision precision,
                          int32_t *out, ModelTokenFn on_token, void *ctx, int *n_out, char *err,
                          size_t errlen);

#endif
