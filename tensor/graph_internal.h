/* tensor/graph_internal.h — what the op files share with graph.c; private to tensor/.
 *
 * The tape is a singly linked list of entries carved from the graph's arena, newest first,
 * so recording an op costs one bump allocation and graph_reset() forgets the whole tape
 * for free. Each entry is followed by its op's saved context (ctx). */
#ifndef LORAFIT_GRAPH_INTERNAL_H
#define LORAFIT_GRAPH_INTERNAL_H

#include "tensor/tensor.h"

typedef void (*BackwardFn)(Graph *g, void *ctx);

/* Arena bytes, zeroed or not; on failure marks the graph failed and returns NULL. */
void *graph_alloc(Graph *g, size_t bytes);
/* A new activation tensor (requires_grad false), data uninitialised; NULL on failure. Its
 * gradient buffer is reused once dead (graph.c, reuse_dead_grads). */
Tensor *graph_new_tensor(Graph *g, int ndim, const int64_t *shape);
/* Pushes a tape entry and returns its zeroed context of ctx_bytes, or NULL on failure. */
void *graph_record(Graph *g, BackwardFn backward, size_t ctx_bytes);
/* t's gradient buffer: NULL if t is frozen; allocated zeroed from the arena on first use.
 * NULL with the graph failed when the arena cannot grow. */
float *graph_grad(Graph *g, Tensor *t);
/* The same for a backward that writes every element of t's gradient: on first use the buffer
 * is not zeroed and *add is false, so the op stores 0 + its value (the sum it would have made
 * into zeros, bit for bit) without the zeroing pass and the read of zeros (or, for a product,
 * beta 0: the same but for the sign of a zero); later, *add is true and the op adds. */
float *graph_grad_for_write(Graph *g, Tensor *t, bool *add);
/* A scratch buffer of at least `bytes` reused by every op (one at a time); it grows on the
 * first step and then stays, so later steps allocate nothing. NULL on OOM. */
float *graph_scratch(Graph *g, size_t bytes);
/* Marks the graph failed; the first failure's message (printf-style: the op, and the shapes
 * or values at fault) is what graph_error() reports. */
__attribute__((format(printf, 2, 3))) void graph_fail(Graph *g, const char *fmt, ...);
/* "(4, 8)" (plus " bf16" for a BF16 weight) into buf; returns buf. SHAPE(t) for messages. */
char *tensor_shape_text(const Tensor *t, char *buf, size_t len);
#define SHAPE(t) tensor_shape_text((t), (char[64]){0}, 64)
/* Rows [row0, row0 + rows) of a frozen weight w (rows, cols) as F32: w->data itself when w
 * is F32, else the BF16 or quantized rows converted into a weight scratch buffer (separate
 * from graph_scratch, reused by every op, valid until the next call). NULL on OOM (graph
 * failed). */
const float *graph_weight_rows(Graph *g, const Tensor *w, int64_t row0, int64_t rows);
/* That weight scratch buffer itself, at least `bytes` (BF16 precision converts into it). */
void *graph_weight_buffer(Graph *g, size_t bytes);

/* Copies n ints into the arena so ops do not depend on caller buffers until backward. */
int32_t *graph_copy_ids(Graph *g, const int32_t *ids, int64_t n);

/* Rows and row length of a tensor read as (rows, cols), cols its last dimension. */
static inline int64_t tensor_cols(const Tensor *t) {
    return t->ndim > 0 ? t->shape[t->ndim - 1] : 1;
}
static inline int64_t tensor_rows(const Tensor *t) {
    int64_t c = tensor_cols(t);
    return c > 0 ? t->size / c : 0;
}

/* The dropout hash (tensor_dropout_uniform), inline so the mask loops need no call per
 * element: counter-based, the mask of element i depends only on (seed, i), never on which
 * thread computes it, so dropout is identical for any thread count and between forward and
 * backward (which recomputes the mask instead of storing it). dropout_key(seed) once per
 * mask, then dropout_uniform(key, i) in [0, 1) per element. */
static inline uint64_t dropout_mix64(uint64_t z) {
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}
static inline uint64_t dropout_key(uint64_t seed) {
    return dropout_mix64(seed + 0x9E3779B97F4A7C15ull);
}
static inline float dropout_uniform(uint64_t key, uint64_t index) {
    return (float)(dropout_mix64(key + index * 0xD1B54A32D192ED03ull) >> 40) * 0x1.0p-24f;
}

/* dst = src * keep / (1 - p), keep = tensor_dropout_uniform(seed, k) >= p, k the element's
 * index n(i) * cols + j in the rows' numbering n (graph_set_dropout_rows); dst may
 * equal src. With keep_bits not NULL the mask is also stored there, one bit per element:
 * row i's bits from byte i * DROPOUT_ROW_BYTES(cols), element j at bit j % 8 of byte j / 8. */
#define DROPOUT_ROW_BYTES(cols) (((cols) + 7) / 8)
void dropout_apply(float *dst, const float *src, uint8_t *keep_bits, DropoutRows numbering,
                   int64_t rows, int64_t cols, float p, uint64_t seed);

static inline bool tensor_any_grad(const Tensor *a, const Tensor *b, const Tensor *c) {
    return (a && a->requires_grad) || (b && b->requires_grad) || (c && c->requires_grad);
}

#endif
