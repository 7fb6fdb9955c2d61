/* tensor/ops_pointwise.c — element-wise ops: SwiGLU, GeGLU (tanh), residual add, dropout.
 * SwiGLU and GeGLU take their exps a block at a time from vexp_floats (glibc expf's bits,
 * vectorised); SwiGLU in BF16 precision from vexp_floats_single (tensor/vexp.h).
 * Every loop is OpenMP-parallel over rows (or blocks) with a static schedule and has no reduction,
 * so results do not depend on the thread count at all. */
#include "tensor/graph_internal.h"
#include "tensor/matmul.h"
#include "tensor/vexp.h"
#include "tensor/profile.h"
#include "tensor/simd.h"

#include <math.h>
#include <string.h>

static bool same_shape(const Tensor *a, const Tensor *b) {
    if (a->ndim != b->ndim || a->size != b->size) return false;
    for (int i = 0; i < a->ndim; i++)
        if (a->shape[i] != b->shape[i]) return false;
    return true;
}

static Tensor *like(Graph *g, const Tensor *x) {
    return graph_new_tensor(g, x->ndim, x->shape);
}

void dropout_apply(float *dst, const float *src, uint8_t *keep_bits, DropoutRows numbering,
                   int64_t rows, int64_t cols, float p, uint64_t seed) {
    float scale = 1.0f / (1.0f - p);
    uint64_t key = dropout_key(seed);
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < rows; i++) {
        int64_t n =
            i < numbering.split ? numbering.row0 + i : numbering.split_row0 + (i - numbering.split);
        uint64_t at = (uint64_t)n * (uint64_t)cols;
        uint8_t *bits = keep_bits ? keep_bits + i * DROPOUT_ROW_BYTES(cols) : NULL;
        for (int64_t j0 = 0; j0 < cols; j0 += 8) {
            unsigned byte = 0;
            for (int64_t j = j0; j < j0 + 8 && j < cols; j++) {
                int64_t k = i * cols + j;
                bool keep = !(dropout_uniform(key, at + (uint64_t)j) < p);
                dst[k] = keep ? src[k] * scale : 0.0f;
                byte |= (unsigned)keep << (j - j0);
            }
            if (bits) bits[j0 / 8] = (uint8_t)byte;
        }
    }
}

/* ---- SwiGLU: y = silu(gate) * up, silu(g) = g * sigmoid(g) ---- */

/* Elements per exp call: SwiGLU runs over blocks of this many (on the thread's stack). */
#define SWIGLU_BLOCK 256

/* e[k] = expf(-g[k]) for k < n <= SWIGLU_BLOCK; single: vexp_floats_single's exp. */
static void exp_neg(float *e, const float *g, int64_t n, bool single) {
    for (int64_t k = 0; k < n; k++) e[k] = -g[k];
    if (single)
        vexp_floats_single(e, e, n);
    else
        vexp_floats(e, e, n);
}

/* Whether g's SwiGLU takes its exps in single precision: BF16 precision. */
static bool exp_single_for(const Graph *g) {
    return graph_precision(g) == TENSOR_PRECISION_BF16;
}

typedef struct {
    Tensor *gate, *up, *y;
} SwigluCtx;

/* The element-wise steps of SwiGLU's backward and forward over a block, given e = exp(-g):
 * written once, compiled for AVX-512 and for the baseline (simd.h: the same bits). */
/* add_g / add_u: add into dgate / dup, else store 0 + the value (graph_grad_for_write). */
SIMD_INLINE void swiglu_grads(float *restrict dgate, float *restrict dup, const float *restrict dy,
                              const float *restrict gt, const float *restrict u,
                              const float *restrict e, int64_t n, bool add_g, bool add_u) {
    for (int64_t k = 0; k < n; k++) {
        float sig = 1.0f / (1.0f + e[k]);
        /* d silu / d g = sig * (1 + g * (1 - sig)) */
        if (dgate)
            dgate[k] =
                (add_g ? dgate[k] : 0.0f) + dy[k] * u[k] * sig * (1.0f + gt[k] * (1.0f - sig));
        if (dup) dup[k] = (add_u ? dup[k] : 0.0f) + dy[k] * gt[k] * sig;
    }
}
SIMD_AVX512 static void swiglu_grads_avx512(float *restrict dgate, float *restrict dup,
                                            const float *restrict dy, const float *restrict gt,
                                            const float *restrict u, const float *restrict e,
                                            int64_t n, bool add_g, bool add_u) {
    swiglu_grads(dgate, dup, dy, gt, u, e, n, add_g, add_u);
}

SIMD_INLINE void swiglu_values(float *restrict y, const float *restrict gt, const float *restrict u,
                               const float *restrict e, int64_t n) {
    for (int64_t k = 0; k < n; k++) y[k] = gt[k] / (1.0f + e[k]) * u[k];
}
SIMD_AVX512 static void swiglu_values_avx512(float *restrict y, const float *restrict gt,
                                             const float *restrict u, const float *restrict e,
                                             int64_t n) {
    swiglu_values(y, gt, u, e, n);
}

static void swiglu_backward(Graph *g, void *p) {
    SwigluCtx *c = p;
    const float *dy = c->y->grad;
    if (!dy) return;
    bool add_g, add_u;
    float *dgate = graph_grad_for_write(g, c->gate, &add_g);
    float *dup = graph_grad_for_write(g, c->up, &add_u);
    if (graph_failed(g)) return;
    int64_t size = c->y->size;
    const float *gt = c->gate->data, *u = c->up->data;
    bool wide = simd_avx512(), single = exp_single_for(g);
#pragma omp parallel for schedule(static)
    for (int64_t j0 = 0; j0 < size; j0 += SWIGLU_BLOCK) {
        int64_t n = size - j0 < SWIGLU_BLOCK ? size - j0 : SWIGLU_BLOCK;
        float e[SWIGLU_BLOCK];
        exp_neg(e, gt + j0, n, single);
        float *dg = dgate ? dgate + j0 : NULL, *du = dup ? dup + j0 : NULL;
        if (wide)
            swiglu_grads_avx512(dg, du, dy + j0, gt + j0, u + j0, e, n, add_g, add_u);
        else
            swiglu_grads(dg, du, dy + j0, gt + j0, u + j0, e, n, add_g, add_u);
    }
}

Tensor *op_swiglu(Graph *g, Tensor *gate, Tensor *up) {
    PROFILE_OP(TENSOR_OP_SWIGLU);
    if (!g || !gate || !up) return NULL;
    if (!same_shape(gate, up)) {
        graph_fail(g, "op_swiglu: gate %s and up %s differ in shape (or are not F32)", SHAPE(gate),
                   SHAPE(up));
        return NULL;
    }
    Tensor *y = like(g, gate);
    if (!y) return NULL;
    const float *gt = gate->data, *u = up->data;
    /* the products' copy of y, block by block */
    MmOut yb = mm_input_target(g, y->data, tensor_rows(y), tensor_cols(y));
    bool wide = simd_avx512(), single = exp_single_for(g);
#pragma omp parallel for schedule(static)
    for (int64_t j0 = 0; j0 < y->size; j0 += SWIGLU_BLOCK) {
        int64_t n = y->size - j0 < SWIGLU_BLOCK ? y->size - j0 : SWIGLU_BLOCK;
        float e[SWIGLU_BLOCK];
        exp_neg(e, gt + j0, n, single);
        if (wide)
            swiglu_values_avx512(y->data + j0, gt + j0, u + j0, e, n);
        else
            swiglu_values(y->data + j0, gt + j0, u + j0, e, n);
        mm_store(yb, j0, y->data + j0, n);
    }
    if (tensor_any_grad(gate, up, NULL)) {
        SwigluCtx *c = graph_record(g, swiglu_backward, sizeof *c);
        if (!c) return NULL;
        *c = (SwigluCtx){gate, up, y};
        y->requires_grad = true;
    }
    return y;
}

/* ---- GeGLU (tanh): y = gelu_tanh(gate) * up, Gemma's MLP with hidden_act
 * gelu_pytorch_tanh: gelu_tanh(g) = 0.5 g (1 + tanh(u)), u = sqrt(2/pi) (g + 0.044715 g^3).
 * tanh(u) = sign(u) (1 - e) / (1 + e) with e = exp(-2|u|) in (0, 1]: no overflow, and the
 * exps come a block at a time from vexp_floats as SwiGLU's do. ---- */

#define GELU_K 0.7978845608028654f /* sqrt(2 / pi) */
#define GELU_C 0.044715f

/* t[k] = tanh(u(g[k])) for k < n <= SWIGLU_BLOCK. */
static void gelu_tanh_block(float *t, const float *g, int64_t n) {
    float u[SWIGLU_BLOCK];
    for (int64_t k = 0; k < n; k++) {
        u[k] = GELU_K * (g[k] + GELU_C * g[k] * g[k] * g[k]);
        t[k] = -2.0f * fabsf(u[k]);
    }
    vexp_floats(t, t, n);
    for (int64_t k = 0; k < n; k++) {
        float th = (1.0f - t[k]) / (1.0f + t[k]);
        t[k] = u[k] < 0 ? -th : th;
    }
}

typedef struct {
    Tensor *gate, *up, *y;
} GegluCtx;

static void geglu_backward(Graph *g, void *p) {
    GegluCtx *c = p;
    const float *dy = c->y->grad;
    if (!dy) return;
    float *dgate = graph_grad(g, c->gate);
    float *dup = graph_grad(g, c->up);
    if (graph_failed(g)) return;
    int64_t size = c->y->size;
    const float *gt = c->gate->data, *u = c->up->data;
#pragma omp parallel for schedule(static)
    for (int64_t j0 = 0; j0 < size; j0 += SWIGLU_BLOCK) {
        int64_t n = size - j0 < SWIGLU_BLOCK ? size - j0 : SWIGLU_BLOCK;
        float t[SWIGLU_BLOCK];
        gelu_tanh_block(t, gt + j0, n);
        /* d gelu_tanh / d g = 0.5 (1 + t) + 0.5 g (1 - t^2) sqrt(2/pi) (1 + 3 * 0.044715 g^2) */
        for (int64_t k = 0; dgate && k < n; k++) {
            int64_t j = j0 + k;
            float x = gt[j], d = 0.5f * (1.0f + t[k]) + 0.5f * x * (1.0f - t[k] * t[k]) * GELU_K *
                                                            (1.0f + 3.0f * GELU_C * x * x);
            dgate[j] += dy[j] * u[j] * d;
        }
        for (int64_t k = 0; dup && k < n; k++) {
            int64_t j = j0 + k;
            dup[j] += dy[j] * (0.5f * gt[j] * (1.0f + t[k]));
        }
    }
}

Tensor *op_geglu(Graph *g, Tensor *gate, Tensor *up) {
    PROFILE_OP(TENSOR_OP_SWIGLU);
    if (!g || !gate || !up) return NULL;
    if (!same_shape(gate, up)) {
        graph_fail(g, "op_geglu: gate %s and up %s differ in shape (or are not F32)", SHAPE(gate),
                   SHAPE(up));
        return NULL;
    }
    Tensor *y = like(g, gate);
    if (!y) return NULL;
    const float *gt = gate->data, *u = up->data;
#pragma omp parallel for schedule(static)
    for (int64_t j0 = 0; j0 < y->size; j0 += SWIGLU_BLOCK) {
        int64_t n = y->size - j0 < SWIGLU_BLOCK ? y->size - j0 : SWIGLU_BLOCK;
        float t[SWIGLU_BLOCK];
        gelu_tanh_block(t, gt + j0, n);
        for (int64_t k = 0; k < n; k++)
            y->data[j0 + k] = 0.5f * gt[j0 + k] * (1.0f + t[k]) * u[j0 + k];
    }
    if (tensor_any_grad(gate, up, NULL)) {
        GegluCtx *c = graph_record(g, geglu_backward, sizeof *c);
        if (!c) return NULL;
        *c = (GegluCtx){gate, up, y};
        y->requires_grad = true;
    }
    return y;
}

/* ---- residual add ---- */

typedef struct {
    Tensor *a, *b, *y;
} AddCtx;

/* d += dy, or d = 0 + dy into a gradient's first write (graph_grad_for_write). */
static void add_into_or_set(float *d, const float *dy, int64_t rows, int64_t cols, bool add) {
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < rows; i++)
        for (int64_t j = i * cols; j < (i + 1) * cols; j++) d[j] = (add ? d[j] : 0.0f) + dy[j];
}

static void add_into(float *d, const float *dy, int64_t rows, int64_t cols) {
    add_into_or_set(d, dy, rows, cols, true);
}

static void add_backward(Graph *g, void *p) {
    AddCtx *c = p;
    if (!c->y->grad) return;
    int64_t rows = tensor_rows(c->y), cols = tensor_cols(c->y);
    bool add;
    float *da = graph_grad_for_write(g, c->a, &add);
    if (da) add_into_or_set(da, c->y->grad, rows, cols, add);
    float *db = graph_grad_for_write(g, c->b, &add); /* after da: op_add(x, x) gets 2 dy */
    if (db) add_into_or_set(db, c->y->grad, rows, cols, add);
}

Tensor *op_add(Graph *g, Tensor *a, Tensor *b) {
    PROFILE_OP(TENSOR_OP_RESIDUAL);
    if (!g || !a || !b) return NULL;
    if (!same_shape(a, b)) {
        graph_fail(g, "op_add: a %s and b %s differ in shape (or are not F32)", SHAPE(a), SHAPE(b));
        return NULL;
    }
    Tensor *y = like(g, a);
    if (!y) return NULL;
    int64_t rows = tensor_rows(y), cols = tensor_cols(y);
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < rows; i++)
        for (int64_t j = i * cols; j < (i + 1) * cols; j++) y->data[j] = a->data[j] + b->data[j];
    if (tensor_any_grad(a, b, NULL)) {
        AddCtx *c = graph_record(g, add_backward, sizeof *c);
        if (!c) return NULL;
        *c = (AddCtx){a, b, y};
        y->requires_grad = true;
    }
    return y;
}

/* ---- dropout ---- */

typedef struct {
    Tensor *x, *y;
    float p;
    uint64_t seed;
    DropoutRows numbering; /* graph_dropout_rows when recorded */
} DropoutCtx;

static void dropout_backward(Graph *g, void *p) {
    DropoutCtx *c = p;
    if (!c->y->grad) return;
    float *dx = graph_grad(g, c->x);
    float *tmp = graph_scratch(g, (size_t)c->x->size * sizeof(float));
    if (!dx || !tmp) return;
    int64_t rows = tensor_rows(c->x), cols = tensor_cols(c->x);
    dropout_apply(tmp, c->y->grad, NULL, c->numbering, rows, cols, c->p, c->seed);
    add_into(dx, tmp, rows, cols);
}

Tensor *op_dropout(Graph *g, Tensor *x, float p, uint64_t seed) {
    PROFILE_OP(TENSOR_OP_DROPOUT);
    if (!g || !x) return NULL;
    if (!(p >= 0.0f && p < 1.0f)) {
        graph_fail(g, "op_dropout: probability %g is outside [0, 1)", p);
        return NULL;
    }
    Tensor *y = like(g, x);
    if (!y) return NULL;
    dropout_apply(y->data, x->data, NULL, graph_dropout_rows(g), tensor_rows(x), tensor_cols(x), p,
                  seed);
    if (x->requires_grad) {
        DropoutCtx *c = graph_record(g, dropout_backward, sizeof *c);
        if (!c) return NULL;
        *c = (DropoutCtx){x, y, p, seed, graph_dropout_rows(g)};
        y->requires_grad = true;
    }
    return y;
}
