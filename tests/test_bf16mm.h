/* tests/test_bf16mm.h — what the BF16-precision product tests share (test_tensor_bf16mm.c,
 * test_tensor_bf16mm_attention.c): random inputs, a frozen weight held as BF16 bits, a graph
 * in BF16 precision, a norm-relative difference. Header-only, static inline. */
#ifndef LORAFIT_TEST_BF16MM_H
#define LORAFIT_TEST_BF16MM_H

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "tensor/tensor.h"
#include "tests/test_util.h"

static inline Tensor *random_tensor(int64_t rows, int64_t cols, bool grad, uint64_t seed,
                                    float scale) {
    Tensor *t = tensor_new(2, (int64_t[]){rows, cols}, grad);
    ck_assert(t);
    for (int64_t i = 0; i < t->size; i++) t->data[i] = scale * test_rand_uniform(&seed, -1, 1);
    return t;
}

/* A frozen weight held as BF16 bits (as the trainer holds it in BF16 precision). */
typedef struct {
    uint16_t *bits;
    Tensor t;
} Bf16Weight;

static inline Bf16Weight bf16_weight(const Tensor *w) {
    Bf16Weight b = {malloc((size_t)w->size * sizeof(uint16_t)), {0}};
    ck_assert(b.bits);
    tensor_float_to_bf16_array(b.bits, w->data, w->size);
    tensor_init_bf16(&b.t, b.bits, w->ndim, w->shape);
    return b;
}

static inline Graph *bf16_graph(void) {
    Graph *g = graph_create();
    ck_assert(g);
    ck_assert_int_eq(graph_set_precision(g, TENSOR_PRECISION_BF16), 0);
    return g;
}

static inline double norm_rel(const float *a, const float *ref, int64_t n) {
    double d = 0, r = 0;
    for (int64_t i = 0; i < n; i++) {
        d += ((double)a[i] - ref[i]) * ((double)a[i] - ref[i]);
        r += (double)ref[i] * ref[i];
    }
    ck_assert(r > 0);
    return sqrt(d / r);
}

static inline float *copy_of(const float *p, int64_t n) {
    float *c = malloc((size_t)n * sizeof *c);
    ck_assert(c && p);
    memcpy(c, p, (size_t)n * sizeof *c);
    return c;
}

#endif
