/* tensor/ops_deltanet_norms.c — the per-token pieces of a DeltaNet layer around the delta
 * rule: the L2 norm of q and k, the gated RMSNorm of its output, and the gates beta and g.
 * Formulas as transformers' modeling_qwen3_5.py computes them in float32 (l2norm,
 * Qwen3_5RMSNormGated, b.sigmoid(), -A_log.exp() * softplus(a + dt_bias)); each sum of
 * squares in double, in simd_dot_double's eight lanes and order. OpenMP over rows, no cross-row
 * reduction: the bits do not depend on the thread count. */
#include "tensor/graph_internal.h"
#include "tensor/profile.h"
#include "tensor/simd.h"

#include <math.h>
#include <omp.h>

static double sum_squares(const float *x, int64_t n) {
    return simd_dot_double(x, x, n);
}

/* ---- L2 norm per head: y = scale x r, r = 1 / sqrt(sum x^2 + eps);
 * dx = scale r dy - scale r^3 x (x.dy) ---- */

typedef struct {
    Tensor *x, *y;
    int64_t rows, d; /* (N*H) vectors of D */
    float scale;
    float *r; /* (rows) */
} L2normCtx;

static void l2norm_backward(Graph *g, void *p) {
    L2normCtx *c = p;
    if (!c->y->grad) return;
    float *dx = graph_grad(g, c->x);
    if (!dx) return;
    int64_t D = c->d;
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < c->rows; i++) {
        const float *xi = c->x->data + i * D, *dyi = c->y->grad + i * D;
        float r = c->r[i];
        double dot = simd_dot_double(dyi, xi, D);
        float a = c->scale * r, b = (float)(c->scale * dot * r * r * r);
        for (int64_t j = 0; j < D; j++) dx[i * D + j] += a * dyi[j] - b * xi[j];
    }
}

Tensor *op_head_l2norm(Graph *g, Tensor *x, int n_heads, float eps, float scale) {
    PROFILE_OP(TENSOR_OP_DELTANET);
    if (!g || !x) return NULL;
    if (n_heads < 1 || !x->data || tensor_cols(x) % n_heads) {
        graph_fail(g, "op_head_l2norm: x %s does not hold %d equal heads (F32)", SHAPE(x), n_heads);
        return NULL;
    }
    int64_t D = tensor_cols(x) / n_heads, rows = tensor_rows(x) * n_heads;
    Tensor *y = graph_new_tensor(g, x->ndim, x->shape);
    float *r = graph_alloc(g, (size_t)rows * sizeof(float));
    if (!y || !r) return NULL;
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < rows; i++) {
        const float *xi = x->data + i * D;
        r[i] = 1.0f / sqrtf((float)sum_squares(xi, D) + eps);
        for (int64_t j = 0; j < D; j++) y->data[i * D + j] = xi[j] * r[i] * scale;
    }
    if (x->requires_grad) {
        L2normCtx *c = graph_record(g, l2norm_backward, sizeof *c);
        if (!c) return NULL;
        *c = (L2normCtx){x, y, rows, D, scale, r};
        y->requires_grad = true;
    }
    return y;
}

/* ---- gated RMSNorm: n = w (x r), r = 1 / sqrt(mean x^2 + eps), y = n silu(z);
 * dz = dy n silu'(z); dn = dy silu(z) goes through the RMSNorm's backward. One token (H heads
 * of D) at a time: sigmoid(z) for its row (simd_expf) into a scratch row, then the heads;
 * vectorised (simd.h). ---- */

typedef struct {
    Tensor *x, *z, *y;
    const float *w;
    int64_t tokens, heads, d;
    float eps;
    float *r; /* (tokens * heads) */
} GatedNormCtx;

static float sigmoidf(float a) {
    return 1.0f / (1.0f + expf(-a));
}

/* sg (n) = sigmoid(z) = 1 / (1 + exp(-z)) */
SIMD_INLINE void sigmoid_row(float *restrict sg, const float *restrict z, int64_t n) {
    for (int64_t j = 0; j < n; j++) sg[j] = 1.0f / (1.0f + simd_expf(-z[j]));
}

/* Token i's forward (dy NULL) or backward: sg a scratch row of H*D. */
SIMD_INLINE void gated_norm_token(const GatedNormCtx *c, int64_t i, float *restrict sg,
                                  const float *restrict dy, float *restrict dx,
                                  float *restrict dz) {
    const int64_t D = c->d, HD = c->heads * D;
    const float *restrict w = c->w;
    sigmoid_row(sg, c->z->data + i * HD, HD);
    for (int64_t h = 0; h < c->heads; h++) {
        int64_t o = i * HD + h * D;
        const float *restrict xi = c->x->data + o, *restrict zi = c->z->data + o;
        const float *restrict s = sg + h * D;
        if (!dy) {
            float r = c->r[i * c->heads + h] =
                1.0f / sqrtf((float)(sum_squares(xi, D) / (double)D) + c->eps);
            float *restrict y = c->y->data + o;
            for (int64_t j = 0; j < D; j++) y[j] = w[j] * (xi[j] * r) * (zi[j] * s[j]);
            continue;
        }
        const float *restrict dyi = dy + o;
        float r = c->r[i * c->heads + h];
        double lane[8] = {0}; /* sum_k dn_k w_k x_k in simd_dot_double's lanes and order */
        int64_t j = 0;
        for (; j + 8 <= D; j += 8)
            for (int l = 0; l < 8; l++)
                lane[l] += (double)(dyi[j + l] * (zi[j + l] * s[j + l])) * w[j + l] * xi[j + l];
        for (; j < D; j++) lane[j % 8] += (double)(dyi[j] * (zi[j] * s[j])) * w[j] * xi[j];
        double dot = ((lane[0] + lane[4]) + (lane[2] + lane[6])) +
                     ((lane[1] + lane[5]) + (lane[3] + lane[7]));
        if (dz)
            for (int64_t j = 0; j < D; j++)
                dz[o + j] += dyi[j] * (w[j] * (xi[j] * r)) * s[j] * (1.0f + zi[j] * (1.0f - s[j]));
        if (!dx) continue;
        float k = (float)(dot * r * r * r / (double)D);
        for (int64_t j = 0; j < D; j++)
            dx[o + j] += r * w[j] * (dyi[j] * (zi[j] * s[j])) - xi[j] * k;
    }
}

SIMD_AVX512 static void gated_norm_tokens_avx512(const GatedNormCtx *c, int64_t a, int64_t b,
                                                 float *sg, const float *dy, float *dx, float *dz) {
    for (int64_t i = a; i < b; i++) gated_norm_token(c, i, sg, dy, dx, dz);
}

static void gated_norm_tokens_plain(const GatedNormCtx *c, int64_t a, int64_t b, float *sg,
                                    const float *dy, float *dx, float *dz) {
    for (int64_t i = a; i < b; i++) gated_norm_token(c, i, sg, dy, dx, dz);
}

/* Every token, each thread a contiguous block (dy NULL: the forward). */
static int gated_norm_all(Graph *g, const GatedNormCtx *c, const float *dy, float *dx, float *dz) {
    int64_t HD = c->heads * c->d;
    int threads = omp_get_max_threads();
    float *rows = graph_scratch(g, (size_t)(HD * threads) * sizeof(float));
    if (!rows) return -1;
    bool wide = simd_avx512();
#pragma omp parallel
    {
        int nt = omp_get_num_threads(), id = omp_get_thread_num();
        int64_t a = c->tokens * id / nt, b = c->tokens * (id + 1) / nt;
        if (wide)
            gated_norm_tokens_avx512(c, a, b, rows + HD * id, dy, dx, dz);
        else
            gated_norm_tokens_plain(c, a, b, rows + HD * id, dy, dx, dz);
    }
    return 0;
}

static void gated_norm_backward(Graph *g, void *p) {
    GatedNormCtx *c = p;
    if (!c->y->grad) return;
    float *dx = graph_grad(g, c->x), *dz = graph_grad(g, c->z);
    if (graph_failed(g)) return;
    gated_norm_all(g, c, c->y->grad, dx, dz);
}

Tensor *op_head_rmsnorm_gated(Graph *g, Tensor *x, Tensor *z, int n_heads, const Tensor *w,
                              float eps) {
    PROFILE_OP(TENSOR_OP_DELTANET);
    if (!g || !x || !z || !w) return NULL;
    int64_t D = w->size;
    if (n_heads < 1 || D < 1 || !w->data || !x->data || !z->data || tensor_cols(x) != n_heads * D ||
        z->size != x->size || tensor_cols(z) != tensor_cols(x)) {
        graph_fail(g,
                   "op_head_rmsnorm_gated: x %s and z %s do not both hold %d heads of the "
                   "norm's length (w %s, F32)",
                   SHAPE(x), SHAPE(z), n_heads, SHAPE(w));
        return NULL;
    }
    int64_t tokens = tensor_rows(x);
    Tensor *y = graph_new_tensor(g, x->ndim, x->shape);
    float *r = graph_alloc(g, (size_t)(tokens * n_heads) * sizeof(float));
    if (!y || !r) return NULL;
    GatedNormCtx local = {x, z, y, w->data, tokens, n_heads, D, eps, r};
    if (gated_norm_all(g, &local, NULL, NULL, NULL) != 0) return NULL;
    if (x->requires_grad || z->requires_grad) {
        GatedNormCtx *c = graph_record(g, gated_norm_backward, sizeof *c);
        if (!c) return NULL;
        *c = local;
        y->requires_grad = true;
    }
    return y;
}

/* ---- beta = sigmoid(x): dx = dy y (1 - y) ---- */

typedef struct {
    Tensor *x, *y;
} SigmoidCtx;

static void sigmoid_backward(Graph *g, void *p) {
    SigmoidCtx *c = p;
    if (!c->y->grad) return;
    float *dx = graph_grad(g, c->x);
    if (!dx) return;
    const float *y = c->y->data, *dy = c->y->grad;
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < c->x->size; i++) dx[i] += dy[i] * y[i] * (1.0f - y[i]);
}

Tensor *op_sigmoid(Graph *g, Tensor *x) {
    PROFILE_OP(TENSOR_OP_DELTANET);
    if (!g || !x) return NULL;
    if (!x->data) {
        graph_fail(g, "op_sigmoid: x %s is not F32", SHAPE(x));
        return NULL;
    }
    Tensor *y = graph_new_tensor(g, x->ndim, x->shape);
    if (!y) return NULL;
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < x->size; i++) y->data[i] = sigmoidf(x->data[i]);
    if (x->requires_grad) {
        SigmoidCtx *c = graph_record(g, sigmoid_backward, sizeof *c);
        if (!c) return NULL;
        *c = (SigmoidCtx){x, y};
        y->requires_grad = true;
    }
    return y;
}

/* ---- y = x * sigmoid(gate): dx = dy s, dgate = dy x s (1 - s) ---- */

typedef struct {
    Tensor *x, *gate, *y;
} GateCtx;

static void sigmoid_gate_backward(Graph *g, void *p) {
    GateCtx *c = p;
    if (!c->y->grad) return;
    float *dx = c->x->requires_grad ? graph_grad(g, c->x) : NULL;
    float *dgate = c->gate->requires_grad ? graph_grad(g, c->gate) : NULL;
    if (graph_failed(g)) return;
    const float *dy = c->y->grad, *x = c->x->data, *gt = c->gate->data;
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < c->y->size; i++) {
        float s = sigmoidf(gt[i]);
        if (dx) dx[i] += dy[i] * s;
        if (dgate) dgate[i] += dy[i] * x[i] * s * (1.0f - s);
    }
}

Tensor *op_sigmoid_gate(Graph *g, Tensor *x, Tensor *gate) {
    PROFILE_OP(TENSOR_OP_SWIGLU);
    if (!g || !x || !gate) return NULL;
    bool same = x->data && gate->data && x->ndim == gate->ndim;
    for (int d = 0; same && d < x->ndim; d++) same = x->shape[d] == gate->shape[d];
    if (!same) {
        graph_fail(g, "op_sigmoid_gate: x %s and gate %s differ in shape (or are not F32)",
                   SHAPE(x), SHAPE(gate));
        return NULL;
    }
    Tensor *y = graph_new_tensor(g, x->ndim, x->shape);
    if (!y) return NULL;
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < x->size; i++) y->data[i] = x->data[i] * sigmoidf(gate->data[i]);
    if (tensor_any_grad(x, gate, NULL)) {
        GateCtx *c = graph_record(g, sigmoid_gate_backward, sizeof *c);
        if (!c) return NULL;
        *c = (GateCtx){x, gate, y};
        y->requires_grad = true;
    }
    return y;
}

/* ---- g = -exp(A_log) softplus(a + dt_bias): da = -exp(A_log) sigmoid(a + dt_bias) dg
 * (PyTorch's softplus is u itself above 20, and its slope 1 there) ---- */

typedef struct {
    Tensor *a, *y;
    const float *a_log, *dt_bias;
} DecayCtx;

static void decay_backward(Graph *g, void *p) {
    DecayCtx *c = p;
    if (!c->y->grad) return;
    float *da = graph_grad(g, c->a);
    if (!da) return;
    int64_t H = tensor_cols(c->a), rows = tensor_rows(c->a);
    const float *dy = c->y->grad;
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < rows; i++)
        for (int64_t h = 0; h < H; h++) {
            float u = c->a->data[i * H + h] + c->dt_bias[h];
            float slope = u > 20.0f ? 1.0f : sigmoidf(u);
            da[i * H + h] += dy[i * H + h] * (-expf(c->a_log[h]) * slope);
        }
}

Tensor *op_deltanet_log_decay(Graph *g, Tensor *a, const Tensor *a_log, const Tensor *dt_bias) {
    PROFILE_OP(TENSOR_OP_DELTANET);
    if (!g || !a || !a_log || !dt_bias) return NULL;
    int64_t H = tensor_cols(a), rows = tensor_rows(a);
    if (!a->data || !a_log->data || !dt_bias->data || a_log->size != H || dt_bias->size != H) {
        graph_fail(
            g, "op_deltanet_log_decay: a %s, A_log %s, dt_bias %s (need a (N, H), both (H), F32)",
            SHAPE(a), SHAPE(a_log), SHAPE(dt_bias));
        return NULL;
    }
    Tensor *y = graph_new_tensor(g, a->ndim, a->shape);
    if (!y) return NULL;
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < rows; i++)
        for (int64_t h = 0; h < H; h++) {
            float u = a->data[i * H + h] + dt_bias->data[h];
            float sp = u > 20.0f ? u : log1pf(expf(u));
            y->data[i * H + h] = -expf(a_log->data[h]) * sp;
        }
    if (a->requires_grad) {
        DecayCtx *c = graph_record(g, decay_backward, sizeof *c);
        if (!c) return NULL;
        *c = (DecayCtx){a, y, a_log->data, dt_bias->data};
        y->requires_grad = true;
    }
    return y;
}
