/* tensor/ops_lmhead.c — the lm_head and cross-entropy fused, without the (N, V) logits.
 *
 * The logits are the biggest activation of a small-model step (V = 49152: 200 MB at
 * N = 1024, the same again for their gradient). This op computes loss = sum over counted
 * rows of lse(x W^T) - (x W^T)[target] in blocks of VB vocabulary rows:
 *   - only the M rows whose target counts are gathered (masked prompts cost nothing);
 *   - forward: per block, L (M, VB) = xa W_blk^T by sgemm, then each row updates its
 *     running max and sum of exp (online log-sum-exp, in double) and picks its target logit;
 *   - backward recomputes each block's L with the same sgemm, turns it into
 *     dL = up * (softmax - onehot) in place, and accumulates dxa (M, C) += dL W_blk.
 * Blocking over V (not over rows) means each block of W (converted from BF16 when the
 * weight is BF16) is read once per pass while the sgemm keeps all M rows. The sgemm calls
 * depend only on M, V and C, never on the weight's dtype, so F32 and BF16 weights holding
 * the same values give bit-identical results. Per-row losses are summed in double in row
 * order (as op_cross_entropy); the online lse differs from its two-pass one only by double
 * rounding, so the two ops agree within fp32 rounding. */
#include "tensor/graph_internal.h"

#include <cblas.h>
#include <math.h>
#include <string.h>

/* L blocks hold about this many floats (8 MB), whatever M is. */
#define LMHEAD_BLOCK_FLOATS ((int64_t)1 << 21)

/* Vocabulary rows per block: a multiple of 64, at least 64, at most V. Depends on M and V
 * only, so both passes (and both weight dtypes) block identically. */
static int64_t block_rows(int64_t m, int64_t V) {
    int64_t vb = LMHEAD_BLOCK_FLOATS / (m > 0 ? m : 1) / 64 * 64;
    if (vb < 64) vb = 64;
    return vb < V ? vb : V;
}

typedef struct {
    Tensor *x, *y;
    const Tensor *w;
    int64_t m;           /* counted rows */
    const int64_t *rows; /* (M) their row in x, ascending */
    const int32_t *tgt;  /* (M) their target */
    float *xa;           /* (M, C) gathered x rows */
    float *lse;          /* (M) log-sum-exp of each counted row */
} LmHeadCtx;

/* L (M, vb) = xa (M, C) W[v0 : v0 + vb]^T; NULL when the weight block cannot be had. */
static const float *block_logits(Graph *g, const LmHeadCtx *c, float *L, int64_t v0, int64_t vb) {
    int64_t C = c->w->shape[1];
    const float *wb = graph_weight_rows(g, c->w, v0, vb);
    if (!wb) return NULL;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)c->m, (int)vb, (int)C, 1.0f, c->xa,
                (int)C, wb, (int)C, 0.0f, L, (int)vb);
    return wb;
}

static void lm_head_backward(Graph *g, void *p) {
    LmHeadCtx *c = p;
    if (!c->y->grad || c->m == 0) return;
    float *dx = graph_grad(g, c->x);
    int64_t m = c->m, V = c->w->shape[0], C = c->w->shape[1], vb_max = block_rows(m, V);
    float *dxa = graph_alloc(g, (size_t)(m * C) * sizeof(float));
    float *L = graph_scratch(g, (size_t)(m * vb_max) * sizeof(float));
    if (!dx || !dxa || !L) return;
    memset(dxa, 0, (size_t)(m * C) * sizeof(float));
    float up = c->y->grad[0];
    for (int64_t v0 = 0; v0 < V; v0 += vb_max) {
        int64_t vb = V - v0 < vb_max ? V - v0 : vb_max;
        const float *wb = block_logits(g, c, L, v0, vb);
        if (!wb) return;
            /* in the forward pass this was: loss += lse - l[target]; so dl = up * (softmax -
             * onehot) */
#pragma omp parallel for schedule(static)
        for (int64_t i = 0; i < m; i++) {
            float *li = L + i * vb, lse = c->lse[i];
            for (int64_t j = 0; j < vb; j++) li[j] = up * expf(li[j] - lse);
            int64_t t = (int64_t)c->tgt[i] - v0;
            if (t >= 0 && t < vb) li[t] -= up;
        }
        /* dxa (M, C) += dL (M, vb) W_blk (vb, C) */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)m, (int)C, (int)vb, 1.0f, L,
                    (int)vb, wb, (int)C, 1.0f, dxa, (int)C);
    }
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < m; i++) {
        float *d = dx + c->rows[i] * C;
        const float *s = dxa + i * C;
        for (int64_t j = 0; j < C; j++) d[j] += s[j];
    }
}

static bool lm_head_shapes_ok(const Tensor *x, const Tensor *w) {
    if (w->ndim != 2 || tensor_cols(x) != w->shape[1] || w->shape[0] < 1 || !x->data) return false;
    if (!w->data && !w->bf16) return false;
    return w->shape[0] <= INT32_MAX && w->shape[1] <= INT32_MAX && tensor_rows(x) <= INT32_MAX;
}

/* Online log-sum-exp of one row over a block: rescale the running sum when the max grows. */
static void lse_update(const float *l, int64_t vb, float *mx, double *se) {
    float bm = l[0];
    for (int64_t j = 1; j < vb; j++) bm = l[j] > bm ? l[j] : bm;
    if (bm > *mx) {
        *se *= exp((double)*mx - bm);
        *mx = bm;
    }
    double s = 0.0;
    for (int64_t j = 0; j < vb; j++) s += exp((double)l[j] - *mx);
    *se += s;
}

Tensor *op_lm_head_cross_entropy(Graph *g, Tensor *x, const Tensor *w, const int32_t *targets,
                                 int64_t *n_targets) {
    if (n_targets) *n_targets = 0;
    if (!g || !x || !w || !targets) return NULL;
    if (!lm_head_shapes_ok(x, w)) {
        graph_fail(g);
        return NULL;
    }
    int64_t n = tensor_rows(x), V = w->shape[0], C = w->shape[1], m = 0;
    for (int64_t i = 0; i < n; i++) {
        if (targets[i] == TENSOR_IGNORE_INDEX) continue;
        if (targets[i] < 0 || targets[i] >= V) { /* never index outside a row */
            graph_fail(g);
            return NULL;
        }
        m++;
    }
    size_t m1 = (size_t)(m > 0 ? m : 1);
    Tensor *y = graph_new_tensor(g, 1, (int64_t[]){1});
    int64_t *rows = graph_alloc(g, m1 * sizeof(int64_t));
    int32_t *tgt = graph_alloc(g, m1 * sizeof(int32_t));
    float *xa = graph_alloc(g, m1 * (size_t)C * sizeof(float));
    float *lse = graph_alloc(g, m1 * sizeof(float));
    float *mx = graph_alloc(g, m1 * sizeof(float)), *tl = graph_alloc(g, m1 * sizeof(float));
    double *se = graph_alloc(g, m1 * sizeof(double));
    if (!y || !rows || !tgt || !xa || !lse || !mx || !tl || !se) return NULL;
    for (int64_t i = 0, k = 0; i < n; i++)
        if (targets[i] != TENSOR_IGNORE_INDEX) rows[k] = i, tgt[k++] = targets[i];
#pragma omp parallel for schedule(static)
    for (int64_t k = 0; k < m; k++) {
        memcpy(xa + k * C, x->data + rows[k] * C, (size_t)C * sizeof(float));
        mx[k] = -INFINITY;
        se[k] = 0.0;
    }
    LmHeadCtx ctx = {x, y, w, m, rows, tgt, xa, lse};
    int64_t vb_max = block_rows(m, V);
    float *L = m ? graph_scratch(g, (size_t)(m * vb_max) * sizeof(float)) : NULL;
    if (m && !L) return NULL;
    for (int64_t v0 = 0; m && v0 < V; v0 += vb_max) {
        int64_t vb = V - v0 < vb_max ? V - v0 : vb_max;
        if (!block_logits(g, &ctx, L, v0, vb)) return NULL;
#pragma omp parallel for schedule(static)
        for (int64_t i = 0; i < m; i++) {
            lse_update(L + i * vb, vb, &mx[i], &se[i]);
            int64_t t = (int64_t)tgt[i] - v0;
            if (t >= 0 && t < vb) tl[i] = L[i * vb + t];
        }
    }
    double sum = 0.0;
    for (int64_t i = 0; i < m; i++) {
        double l = mx[i] + log(se[i]);
        lse[i] = (float)l;
        sum += l - tl[i];
    }
    y->data[0] = (float)sum;
    if (n_targets) *n_targets = m;
    if (x->requires_grad) {
        LmHeadCtx *c = graph_record(g, lm_head_backward, sizeof *c);
        if (!c) return NULL;
        *c = ctx;
        y->requires_grad = true;
    }
    return y;
}
