/* tensor/ops_norm.c — per-row ops of a decoder block: embedding lookup, RMSNorm (per row and
 * per head), RoPE.
 * Each row is one token; rows are independent, so the loops are OpenMP-parallel over rows
 * and every per-row reduction runs sequentially in a fixed order. */
#include "tensor/graph_internal.h"
#include "tensor/matmul.h"
#include "tensor/profile.h"
#include "tensor/simd.h"
#include "tensor/quant.h"

#include <math.h>
#include <string.h>

Tensor *op_embedding(Graph *g, const Tensor *table, const int32_t *ids, int64_t n) {
    PROFILE_OP(TENSOR_OP_EMBEDDING);
    if (!g || !table || !ids) return NULL;
    if (table->ndim != 2 || n < 1 || (!table->data && !table->bf16 && !table->quant)) {
        graph_fail(g, "op_embedding: table %s with %lld ids (need a (V, C) table, ids >= 1)",
                   SHAPE(table), (long long)n);
        return NULL;
    }
    int64_t v = table->shape[0], c = table->shape[1];
    for (int64_t i = 0; i < n; i++) {
        if (ids[i] < 0 || ids[i] >= v) { /* the caller validates; never read out of bounds */
            graph_fail(g, "op_embedding: id %d at %lld is outside [0, %lld)", ids[i], (long long)i,
                       (long long)v);
            return NULL;
        }
    }
    Tensor *y = graph_new_tensor(g, 2, (int64_t[]){n, c});
    if (!y) return NULL;
    if (table->bf16) { /* rows converted exactly, as the loader would have converted them */
#pragma omp parallel for schedule(static)
        for (int64_t i = 0; i < n; i++) {
            const uint16_t *src = table->bf16 + (int64_t)ids[i] * c;
            float *dst = y->data + i * c;
            for (int64_t j = 0; j < c; j++) {
                uint32_t u = (uint32_t)src[j] << 16;
                memcpy(&dst[j], &u, sizeof u);
            }
        }
        return y;
    }
    if (table->quant) { /* each row dequantized: the values an F32 table would hold */
#pragma omp parallel for schedule(static)
        for (int64_t i = 0; i < n; i++) tensor_dequantize_rows(y->data + i * c, table, ids[i], 1);
        return y;
    }
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; i++)
        memcpy(y->data + i * c, table->data + (int64_t)ids[i] * c, (size_t)c * sizeof(float));
    return y;
}

Tensor *op_embedding_read(Graph *g, const Tensor *table, const int32_t *ids, int64_t n,
                          EmbeddingRowRead read, void *ctx) {
    PROFILE_OP(TENSOR_OP_EMBEDDING);
    if (!g || !table || !ids || !read) return NULL;
    if (table->ndim != 2 || n < 1) {
        graph_fail(g, "op_embedding_read: table %s with %lld ids (need a (V, C) table, ids >= 1)",
                   SHAPE(table), (long long)n);
        return NULL;
    }
    int64_t v = table->shape[0], c = table->shape[1];
    size_t bytes = table->quant ? ggml_row_bytes(table->quant_type, c)
                                : (size_t)c * (table->bf16 ? sizeof(uint16_t) : sizeof(float));
    uint8_t *rows = graph_alloc(g, (size_t)n * bytes); /* (N) rows as stored */
    int32_t *at = graph_alloc(g, (size_t)n * sizeof *at);
    if (!rows || !at) return NULL;
    for (int64_t i = 0; i < n; i++) {
        char why[512] = "";
        if (ids[i] < 0 || ids[i] >= v) { /* the caller validates; never read past the table */
            graph_fail(g, "op_embedding_read: id %d at %lld is outside [0, %lld)", ids[i],
                       (long long)i, (long long)v);
            return NULL;
        }
        if (read(ctx, ids[i], rows + (size_t)i * bytes, bytes, why, sizeof why) != 0) {
            graph_fail(g, "embedding row %d: %s", ids[i], why);
            return NULL;
        }
        at[i] = (int32_t)i;
    }
    Tensor part; /* (N, C): the rows read, in the table's type; gathered in order */
    memset(&part, 0, sizeof part);
    const int64_t shape[2] = {n, c};
    if (table->quant)
        tensor_init_quant(&part, rows, table->quant_type, n, c);
    else if (table->bf16)
        tensor_init_bf16(&part, (const uint16_t *)rows, 2, shape);
    else
        tensor_init(&part, (float *)rows, 2, shape);
    return op_embedding(g, &part, at, n);
}

/* ---- RMSNorm: y = x * r * w, r = 1 / sqrt(mean(x^2) + eps) (Hugging Face order) ----
 * One kernel for every form: op_rmsnorm normalises each row of C features, op_head_rmsnorm
 * each head's D values of a (N, H*D) row, which is the same loop over (N*H) rows of D; the
 * _unit_offset forms (Gemma) scale by 1 + w, computed once per call into the arena, so the
 * loop itself is the same. */

typedef struct {
    Tensor *x, *y;
    const float *w;     /* (cols): the weight, or 1 + the weight */
    int64_t rows, cols; /* the normalised vectors: (N, C) or (N*H, D) */
    float *rstd;        /* (rows) */
} RmsnormCtx;

/* Rows go in groups of ROWS: each row's sum runs in double in column order, a chain of
 * additions each waiting for the last, so one row alone runs at the adder's latency; the
 * group's chains interleave (the same additions, so the same bits), four times faster. */
enum { ROWS = 8 };

static inline int64_t row_groups(int64_t n) {
    return (n + ROWS - 1) / ROWS;
}

#if defined(__x86_64__) && defined(__GNUC__)
/* The eight rows' chains of a full group with AVX-512, one row per double lane: each block of
 * eight columns gives eight row vectors of products, p[r] lane j = a[r][j] (times b[r][j] and
 * w[j] when given) in double, transposed so that vector j holds column j of every row, then
 * added to the chains in column order: the same products and the same additions in the same
 * order as the scalar loop below, so the same bits, with the eight chains in one register.
 * The columns after the last whole block continue the chains in the scalar loop. Returns the
 * first column not done. */
__attribute__((target("avx512f"))) static int64_t
group_sums_avx512(const float *a, const float *b, const float *w, int64_t C, double *sums) {
    __m512d acc = _mm512_setzero_pd();
    int64_t j = 0;
    for (; j + 8 <= C; j += 8) {
        __m512d p[8];
        __m512d wj = w ? _mm512_cvtps_pd(_mm256_loadu_ps(w + j)) : _mm512_setzero_pd();
        for (int r = 0; r < ROWS; r++) {
            __m512d ar = _mm512_cvtps_pd(_mm256_loadu_ps(a + r * C + j));
            p[r] = b ? _mm512_mul_pd(_mm512_mul_pd(ar, wj),
                                     _mm512_cvtps_pd(_mm256_loadu_ps(b + r * C + j)))
                     : _mm512_mul_pd(ar, ar);
        }
        /* 8 x 8 transpose: t[k] lane r = p[r] lane k */
        __m512d u[8], v[8];
        for (int r = 0; r < 8; r += 2) {
            u[r] = _mm512_unpacklo_pd(p[r], p[r + 1]);
            u[r + 1] = _mm512_unpackhi_pd(p[r], p[r + 1]);
        }
        for (int q = 0; q < 8; q += 4)
            for (int h = 0; h < 2; h++) {
                v[q + h] = _mm512_shuffle_f64x2(u[q + h], u[q + h + 2], 0x88);
                v[q + h + 2] = _mm512_shuffle_f64x2(u[q + h], u[q + h + 2], 0xdd);
            }
        __m512d t[8];
        for (int h = 0; h < 4; h++) {
            t[h] = _mm512_shuffle_f64x2(v[h], v[h + 4], 0x88);
            t[h + 4] = _mm512_shuffle_f64x2(v[h], v[h + 4], 0xdd);
        }
        for (int k = 0; k < 8; k++) acc = _mm512_add_pd(acc, t[k]); /* t[k]: column j + k */
    }
    _mm512_storeu_pd(sums, acc);
    return j;
}
#endif

/* Rows [0, rows) of x (C apart), rows <= ROWS: y = w x r, rstd = r = 1 / sqrt(mean(x^2) +
 * eps). */
static inline void rmsnorm_group(const float *x, const float *w, int64_t C, float eps, int rows,
                                 float *y, float *rstd) {
    double ss[ROWS] = {0};
    if (rows == ROWS) {
        int64_t j0 = 0;
#if defined(__x86_64__) && defined(__GNUC__)
        if (simd_avx512()) j0 = group_sums_avx512(x, NULL, NULL, C, ss);
#endif
        for (int64_t j = j0; j < C; j++)
            for (int r = 0; r < ROWS; r++) ss[r] += (double)x[r * C + j] * x[r * C + j];
    } else {
        for (int r = 0; r < rows; r++)
            for (int64_t j = 0; j < C; j++) ss[r] += (double)x[r * C + j] * x[r * C + j];
    }
    for (int r = 0; r < rows; r++) {
        float rr = 1.0f / sqrtf((float)(ss[r] / (double)C) + eps);
        rstd[r] = rr;
        for (int64_t j = 0; j < C; j++) y[r * C + j] = w[j] * (x[r * C + j] * rr);
    }
}

/* Backward of those rows: dx += r w dy - x r^3 / C * sum_k dy_k w_k x_k (without add: dx =
 * 0 + ..., its first write, graph_grad_for_write). */
static inline void rmsnorm_group_grad(const float *x, const float *dy, const float *w,
                                      const float *rstd, int64_t C, int rows, float *dx, bool add) {
    double dot[ROWS] = {0};
    if (rows == ROWS) {
        int64_t j0 = 0;
#if defined(__x86_64__) && defined(__GNUC__)
        if (simd_avx512()) j0 = group_sums_avx512(dy, x, w, C, dot);
#endif
        for (int64_t j = j0; j < C; j++)
            for (int r = 0; r < ROWS; r++) dot[r] += (double)dy[r * C + j] * w[j] * x[r * C + j];
    } else {
        for (int r = 0; r < rows; r++)
            for (int64_t j = 0; j < C; j++) dot[r] += (double)dy[r * C + j] * w[j] * x[r * C + j];
    }
    for (int r = 0; r < rows; r++) {
        float rr = rstd[r], k = (float)(dot[r] * rr * rr * rr / (double)C);
        for (int64_t j = 0; j < C; j++)
            dx[r * C + j] =
                (add ? dx[r * C + j] : 0.0f) + (rr * w[j] * dy[r * C + j] - x[r * C + j] * k);
    }
}

static void rmsnorm_backward(Graph *g, void *p) {
    RmsnormCtx *c = p;
    const float *dy = c->y->grad;
    if (!dy) return;
    bool add;
    float *dx = graph_grad_for_write(g, c->x, &add);
    if (!dx) return;
    int64_t n = c->rows, C = c->cols;
#pragma omp parallel for schedule(static)
    for (int64_t gi = 0; gi < row_groups(n); gi++) {
        int64_t i = gi * ROWS, at = i * C;
        rmsnorm_group_grad(c->x->data + at, dy + at, c->w, c->rstd + i, C,
                           n - i < ROWS ? (int)(n - i) : ROWS, dx + at, add);
    }
}

/* x viewed as (rows, cols), each row normalised and scaled by w (cols), or by 1 + w when
 * unit_offset (float32 1 + w, as Gemma's RMSNorm computes it). for_products: a matrix product
 * reads y next (the per-row norms, not the per-head ones): its operand copy is written too. */
static Tensor *rmsnorm_rows(Graph *g, Tensor *x, int64_t rows, int64_t cols, const Tensor *w,
                            float eps, bool unit_offset, bool for_products) {
    Tensor *y = graph_new_tensor(g, x->ndim, x->shape);
    float *rstd = graph_alloc(g, (size_t)rows * sizeof(float));
    float *scale = unit_offset ? graph_alloc(g, (size_t)cols * sizeof(float)) : w->data;
    if (!y || !rstd || !scale) return NULL;
    for (int64_t j = 0; unit_offset && j < cols; j++) scale[j] = 1.0f + w->data[j];
    /* the products' copy of y, row by row (empty in F32 precision) */
    MmOut yb =
        for_products ? mm_input_target(g, y->data, tensor_rows(y), tensor_cols(y)) : (MmOut){0};
#pragma omp parallel for schedule(static)
    for (int64_t gi = 0; gi < row_groups(rows); gi++) {
        int64_t i = gi * ROWS, at = i * cols;
        int n = rows - i < ROWS ? (int)(rows - i) : ROWS;
        rmsnorm_group(x->data + at, scale, cols, eps, n, y->data + at, rstd + i);
        mm_store(yb, at, y->data + at, n * cols);
    }
    if (x->requires_grad) {
        RmsnormCtx *c = graph_record(g, rmsnorm_backward, sizeof *c);
        if (!c) return NULL;
        *c = (RmsnormCtx){x, y, scale, rows, cols, rstd};
        y->requires_grad = true;
    }
    return y;
}

static Tensor *rmsnorm(Graph *g, const char *op, Tensor *x, const Tensor *w, float eps,
                       bool unit_offset) {
    if (!g || !x || !w) return NULL;
    int64_t n = tensor_rows(x), C = tensor_cols(x);
    if (w->size != C || C < 1 || !w->data) { /* norm weights stay F32 */
        graph_fail(g, "%s: x %s and w %s do not match (need w (C) in F32)", op, SHAPE(x), SHAPE(w));
        return NULL;
    }
    return rmsnorm_rows(g, x, n, C, w, eps, unit_offset, true);
}

static Tensor *head_rmsnorm(Graph *g, const char *op, Tensor *x, int n_heads, const Tensor *w,
                            float eps, bool unit_offset) {
    if (!g || !x || !w) return NULL;
    int64_t n = tensor_rows(x), d = w->size;
    if (n_heads < 1 || d < 1 || !w->data || tensor_cols(x) != (int64_t)n_heads * d) {
        graph_fail(g, "%s: x %s does not hold %d heads of the norm's length (w %s, F32)", op,
                   SHAPE(x), n_heads, SHAPE(w));
        return NULL;
    }
    return rmsnorm_rows(g, x, n * n_heads, d, w, eps, unit_offset, false);
}

Tensor *op_rmsnorm(Graph *g, Tensor *x, const Tensor *w, float eps) {
    PROFILE_OP(TENSOR_OP_NORM);
    return rmsnorm(g, "op_rmsnorm", x, w, eps, false);
}

Tensor *op_head_rmsnorm(Graph *g, Tensor *x, int n_heads, const Tensor *w, float eps) {
    PROFILE_OP(TENSOR_OP_NORM);
    return head_rmsnorm(g, "op_head_rmsnorm", x, n_heads, w, eps, false);
}

Tensor *op_rmsnorm_unit_offset(Graph *g, Tensor *x, const Tensor *w, float eps) {
    PROFILE_OP(TENSOR_OP_NORM);
    return rmsnorm(g, "op_rmsnorm_unit_offset", x, w, eps, true);
}

Tensor *op_head_rmsnorm_unit_offset(Graph *g, Tensor *x, int n_heads, const Tensor *w, float eps) {
    PROFILE_OP(TENSOR_OP_NORM);
    return head_rmsnorm(g, "op_head_rmsnorm_unit_offset", x, n_heads, w, eps, true);
}

/* ---- RoPE (rotate-half). The rotation by angle a is orthogonal, so backward rotates dy
 * by -a: dx[i] = dy[i] cos + dy[i+R/2] sin, dx[i+R/2] = dy[i+R/2] cos - dy[i] sin. Partial
 * rotary rotates the first R of each head's D values (pairs i and i + R/2, as transformers'
 * partial_rotary_factor) and passes the other D - R through; R = D is plain RoPE. ---- */

typedef struct {
    Tensor *x, *y;
    int n_heads, head_dim, rot_dim;
    const int32_t *pos; /* (N) arena copy */
    const float *cos_table, *sin_table;
} RopeCtx;

static void rope_rotate(float *out, const float *in, int64_t n, int n_heads, int head_dim,
                        int rot_dim, const int32_t *pos, const float *cos_t, const float *sin_t,
                        float dir, bool accumulate) {
    int half = rot_dim / 2;
    int64_t row = (int64_t)n_heads * head_dim;
#pragma omp parallel for schedule(static)
    for (int64_t t = 0; t < n; t++) {
        const float *cs = cos_t + (int64_t)pos[t] * half, *sn = sin_t + (int64_t)pos[t] * half;
        for (int h = 0; h < n_heads; h++) {
            const float *a = in + t * row + (int64_t)h * head_dim;
            float *o = out + t * row + (int64_t)h * head_dim;
            if (accumulate) {
                for (int i = 0; i < half; i++) {
                    float s = dir * sn[i];
                    o[i] += a[i] * cs[i] - a[i + half] * s;
                    o[i + half] += a[i + half] * cs[i] + a[i] * s;
                }
                for (int i = rot_dim; i < head_dim; i++) o[i] += a[i];
            } else {
                for (int i = 0; i < half; i++) {
                    float s = dir * sn[i];
                    o[i] = a[i] * cs[i] - a[i + half] * s;
                    o[i + half] = a[i + half] * cs[i] + a[i] * s;
                }
                for (int i = rot_dim; i < head_dim; i++) o[i] = a[i];
            }
        }
    }
}

static void rope_backward(Graph *g, void *p) {
    RopeCtx *c = p;
    if (!c->y->grad) return;
    bool add; /* a first write stores the rotation (only a zero's sign can differ from 0 + it) */
    float *dx = graph_grad_for_write(g, c->x, &add);
    if (!dx) return;
    rope_rotate(dx, c->y->grad, tensor_rows(c->x), c->n_heads, c->head_dim, c->rot_dim, c->pos,
                c->cos_table, c->sin_table, -1.0f, add);
}

static Tensor *rope(Graph *g, const char *op, Tensor *x, int n_heads, int head_dim, int rot_dim,
                    const int32_t *pos, const float *cos_table, const float *sin_table,
                    int max_pos) {
    if (!g || !x || !pos || !cos_table || !sin_table) return NULL;
    int64_t n = tensor_rows(x);
    if (n_heads < 1 || head_dim < 2 || rot_dim < 2 || rot_dim % 2 || rot_dim > head_dim ||
        tensor_cols(x) != (int64_t)n_heads * head_dim) {
        graph_fail(g,
                   "%s: x %s does not hold %d heads of size %d with an even rotated part %d of "
                   "it",
                   op, SHAPE(x), n_heads, head_dim, rot_dim);
        return NULL;
    }
    for (int64_t t = 0; t < n; t++) {
        if (pos[t] < 0 || pos[t] >= max_pos) {
            graph_fail(g, "%s: position %d at row %lld is outside [0, %d)", op, pos[t],
                       (long long)t, max_pos);
            return NULL;
        }
    }
    Tensor *y = graph_new_tensor(g, x->ndim, x->shape);
    if (!y) return NULL;
    rope_rotate(y->data, x->data, n, n_heads, head_dim, rot_dim, pos, cos_table, sin_table, 1.0f,
                false);
    if (x->requires_grad) {
        const int32_t *saved = graph_copy_ids(g, pos, n);
        RopeCtx *c = graph_record(g, rope_backward, sizeof *c);
        if (!c || !saved) return NULL;
        *c = (RopeCtx){x, y, n_heads, head_dim, rot_dim, saved, cos_table, sin_table};
        y->requires_grad = true;
    }
    return y;
}

Tensor *op_rope(Graph *g, Tensor *x, int n_heads, int head_dim, const int32_t *pos,
                const float *cos_table, const float *sin_table, int max_pos) {
    PROFILE_OP(TENSOR_OP_ROPE);
    return rope(g, "op_rope", x, n_heads, head_dim, head_dim, pos, cos_table, sin_table, max_pos);
}

Tensor *op_rope_partial(Graph *g, Tensor *x, int n_heads, int head_dim, int rot_dim,
                        const int32_t *pos, const float *cos_table, const float *sin_table,
                        int max_pos) {
    PROFILE_OP(TENSOR_OP_ROPE);
    return rope(g, "op_rope_partial", x, n_heads, head_dim, rot_dim, pos, cos_table, sin_table,
                max_pos);
}
