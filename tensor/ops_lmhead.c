/* tensor/ops_lmhead.c — the lm_head and cross-entropy fused, without the (N, V) logits.
 *
 * The logits are the biggest activation of a small-model step (V = 49152: 200 MB at
 * N = 1024, the same again for their gradient). This op computes loss = sum over counted
 * rows of lse(x W^T) - (x W^T)[target] a chunk of R rows at a time:
 *   - only the M rows whose target counts are gathered (masked prompts cost nothing);
 *   - per chunk, L (R, V) = xa_chunk W^T over blocks of VB vocabulary rows (mm_f32, or
 *     mm_gemm in BF16 precision), then
 *     each row's log-sum-exp (max, then one exp per logit, summed in double in a fixed order);
 *   - when x requires a gradient, the same pass turns L into softmax - onehot and
 *     accumulates dxa (R, C) = L W, so backward only scales dxa by the upstream gradient:
 *     one pass over W per chunk for the logits and one for dx, no recomputation.
 * The loss is a sum of rows, so its gradient with respect to x is up * (softmax - onehot) W
 * for any upstream scalar up; computing it before up is known changes only fp32 rounding.
 * Blocks of W (converted from BF16 or dequantized when the weight is BF16 or quantized) have
 * a fixed size, so F32, BF16 and quantized weights holding the same values make the same
 * product calls and give bit-identical results. Per-row losses are summed in double in row order,
 * as op_cross_entropy does. In BF16 precision both products take bf16-rounded operands
 * (tensor/matmul.h): the gathered rows once per op, each row's softmax - onehot as the row is
 * finished (mm_input_d_target, while it is in cache: a separate pass over the chunk cost 19 ms
 * a step at the SmolLM-135M shape), and W's blocks (in place when W is BF16 and the kernel is
 * oneDNN's); the softmax and the loss stay f32. The row's maximum and its scaling by 1 / sum
 * run sixteen lanes at a time with AVX-512 (the same values; softmax + loss 58 -> 31 ms a
 * step there).
 *
 * With a soft-cap s > 0 (Gemma 2's final_logit_softcapping) the logits the loss sees are
 * z = s tanh(l / s); the chunk's rows are capped in place before their log-sum-exp, and the
 * gradient with respect to l is (softmax(z) - onehot) (1 - tanh^2), tanh kept per logit in a
 * second chunk-sized buffer until the row is turned into its gradient. */
#include "tensor/graph_internal.h"
#include "tensor/profile.h"
#include "tensor/matmul.h"
#include "tensor/simd.h"
#include "tensor/vexp.h"

#include <math.h>
#include <string.h>

/* The chunk of logits holds about this many floats (128 MB; in BF16 precision 64 MB more for
 * their bf16 gradient), but at least LMHEAD_MIN_ROWS rows, split into chunks of one size.
 * The products pack each block of W once per chunk: at the SmolLM-135M shape (V 49152, 1024
 * rows, AMD EPYC Zen 4) two chunks of 512 rows took 280-297 ms a step in BF16 against
 * 300-360 in four of 256, and 542 in F32 against 574-581 (682 + 342 rows ran as fast as
 * 512 + 512 but brought some 40 page faults a step). At Llama-3's V = 128256 a chunk is 261
 * rows, about what it was before (8M floats, at least 256 rows). */
#define LMHEAD_CHUNK_FLOATS ((int64_t)1 << 25)
#define LMHEAD_MIN_ROWS     256
/* Vocabulary rows per weight block (the BF16 conversion unit). */
#define LMHEAD_VOCAB_BLOCK 4096

typedef struct {
    Tensor *x, *y;
    int64_t m;           /* counted rows */
    const int64_t *rows; /* (M) their row in x, ascending */
    float *dxa;          /* (M, C) d(loss)/d(x row) for an upstream gradient of 1 */
    bool per_row;        /* y holds each row's loss (N) instead of their sum (1) */
} LmHeadCtx;

static void lm_head_backward(Graph *g, void *p) {
    LmHeadCtx *c = p;
    if (!c->y->grad || c->m == 0) return;
    float *dx = graph_grad(g, c->x);
    if (!dx) return;
    int64_t C = tensor_cols(c->x);
    const float *ups = c->y->grad;
    /* in the forward pass this was: loss += lse - l[target]; dxa = (softmax - onehot) W */
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < c->m; i++) {
        float up = ups[c->per_row ? c->rows[i] : 0];
        float *d = dx + c->rows[i] * C;
        const float *s = c->dxa + i * C;
        for (int64_t j = 0; j < C; j++) d[j] += up * s[j];
    }
}

/* L (r, V) = xa (r, C) W^T, block by block of vocabulary rows. 0, or -1 (graph failed).
 * xab: the same rows as a BF16-precision operand (used instead of xa in that precision). */
static int chunk_logits(Graph *g, const Tensor *w, const float *xa, MmIn xab, int64_t r, float *L) {
    int64_t V = w->shape[0], C = w->shape[1];
    bool bf16 = graph_precision(g) == TENSOR_PRECISION_BF16;
    for (int64_t v0 = 0; v0 < V; v0 += LMHEAD_VOCAB_BLOCK) {
        int64_t vb = V - v0 < LMHEAD_VOCAB_BLOCK ? V - v0 : LMHEAD_VOCAB_BLOCK;
        if (bf16) {
            if (mm_gemm(g, (int)r, (int)vb, (int)C, 1.0f, xab, C, mm_weight(g, w, v0, vb), C, true,
                        0.0f, L + v0, V) != 0)
                return -1;
            continue;
        }
        const float *wb = graph_weight_rows(g, w, v0, vb);
        if (!wb) return -1;
        if (mm_f32(g, true, (int)r, (int)vb, (int)C, 1.0f, xa, (int)C, wb, (int)C, 0.0f, L + v0,
                   (int)V) != 0)
            return -1;
    }
    return 0;
}

/* dxa (r, C) = dL (r, V) W, block by block of vocabulary rows, in block order. dLb: dL as a
 * BF16-precision operand (used instead of dL in that precision). */
static int chunk_input_grad(Graph *g, const Tensor *w, const float *dL, MmIn dLb, int64_t r,
                            float *dxa) {
    int64_t V = w->shape[0], C = w->shape[1];
    bool bf16 = graph_precision(g) == TENSOR_PRECISION_BF16;
    for (int64_t v0 = 0; v0 < V; v0 += LMHEAD_VOCAB_BLOCK) {
        int64_t vb = V - v0 < LMHEAD_VOCAB_BLOCK ? V - v0 : LMHEAD_VOCAB_BLOCK;
        if (bf16) {
            if (mm_gemm(g, (int)r, (int)C, (int)vb, 1.0f, mm_at(dLb, v0), V,
                        mm_weight(g, w, v0, vb), C, false, v0 ? 1.0f : 0.0f, dxa, C) != 0)
                return -1;
            continue;
        }
        const float *wb = graph_weight_rows(g, w, v0, vb);
        if (!wb) return -1;
        if (mm_f32(g, false, (int)r, (int)C, (int)vb, 1.0f, dL + v0, (int)V, wb, (int)C,
                   v0 ? 1.0f : 0.0f, dxa, (int)C) != 0)
            return -1;
    }
    return 0;
}

/* l[j] = l[j] / sum as row_loss scales them, sixteen lanes at a time with AVX-512. */
SIMD_INLINE void scale_by(float *l, int64_t V, double inv) {
    for (int64_t j = 0; j < V; j++) l[j] = (float)(l[j] * inv);
}
SIMD_AVX512 static void scale_by_avx512(float *l, int64_t V, double inv) {
    scale_by(l, V, inv);
}

/* One row's loss lse - l[t], and, with grad, the row turned into softmax - onehot. One exp
 * per logit (vexp_shifted_sum: e = exp(l - max) as float, summed in double; with single,
 * BF16 precision's vexp_shifted_sum_single), and the softmax is e / sum: within 2 ulp of the
 * float nearest exp(l - lse) (with single e itself is within 2 ulp of exp, and the
 * division rounds once more). cap > 0: the row is first capped, l = cap tanh(l / cap) with
 * tanh kept in th (V), and the gradient times 1 - tanh^2. */
static double row_loss(float *l, int64_t V, int32_t t, bool grad, float cap, float *th,
                       bool single) {
    if (cap > 0.0f) vsoftcap_floats(l, th, l, cap, V);
    bool wide = simd_avx512();
    float mx = simd_max(l + 1, V - 1, l[0]);
    float lt = l[t];
    double se = single ? vexp_shifted_sum_single(l, l, mx, V) : vexp_shifted_sum(l, l, mx, V);
    double loss = mx + log(se) - lt;
    if (grad) {
        double inv = 1.0 / se;
        if (wide)
            scale_by_avx512(l, V, inv);
        else
            scale_by(l, V, inv);
        l[t] -= 1.0f;
        if (cap > 0.0f)
            for (int64_t j = 0; j < V; j++) l[j] *= 1.0f - th[j] * th[j];
    }
    return loss;
}

static bool lm_head_shapes_ok(const Tensor *x, const Tensor *w) {
    if (w->ndim != 2 || tensor_cols(x) != w->shape[1] || w->shape[0] < 1 || !x->data) return false;
    if (!w->data && !w->bf16 && !w->quant) return false;
    return w->shape[0] <= INT32_MAX && w->shape[1] <= INT32_MAX && tensor_rows(x) <= INT32_MAX;
}

Tensor *op_lm_head_cross_entropy(Graph *g, Tensor *x, const Tensor *w, const int32_t *targets,
                                 int64_t *n_targets) {
    return op_lm_head_cross_entropy_softcap(g, x, w, targets, 0.0f, n_targets);
}

static Tensor *lm_head_loss(Graph *g, Tensor *x, const Tensor *w, const int32_t *targets,
                            float softcap, bool per_row, int64_t *n_targets);

Tensor *op_lm_head_cross_entropy_softcap(Graph *g, Tensor *x, const Tensor *w,
                                         const int32_t *targets, float softcap,
                                         int64_t *n_targets) {
    return lm_head_loss(g, x, w, targets, softcap, false, n_targets);
}

Tensor *op_lm_head_token_losses(Graph *g, Tensor *x, const Tensor *w, const int32_t *targets,
                                float softcap, int64_t *n_targets) {
    return lm_head_loss(g, x, w, targets, softcap, true, n_targets);
}

static Tensor *lm_head_loss(Graph *g, Tensor *x, const Tensor *w, const int32_t *targets,
                            float softcap, bool per_row, int64_t *n_targets) {
    PROFILE_OP(TENSOR_OP_LOSS);
    if (n_targets) *n_targets = 0;
    if (!g || !x || !w || !targets) return NULL;
    if (!(softcap >= 0.0f) || !isfinite(softcap)) {
        graph_fail(g, "op_lm_head_cross_entropy: softcap %g must be finite and not negative",
                   softcap);
        return NULL;
    }
    if (!lm_head_shapes_ok(x, w)) {
        graph_fail(g,
                   "op_lm_head_cross_entropy: x %s and W %s do not match (need x (N, C), W (V, C))",
                   SHAPE(x), SHAPE(w));
        return NULL;
    }
    int64_t n = tensor_rows(x), V = w->shape[0], C = w->shape[1], m = 0;
    for (int64_t i = 0; i < n; i++) {
        if (targets[i] == TENSOR_IGNORE_INDEX) continue;
        if (targets[i] < 0 || targets[i] >= V) { /* never index outside a row */
            graph_fail(g, "op_lm_head_cross_entropy: target %d at row %lld is outside [0, %lld)",
                       targets[i], (long long)i, (long long)V);
            return NULL;
        }
        m++;
    }
    size_t m1 = (size_t)(m > 0 ? m : 1);
    bool grad = x->requires_grad;
    Tensor *y = graph_new_tensor(g, 1, (int64_t[]){per_row ? n : 1});
    int64_t *rows = graph_alloc(g, m1 * sizeof(int64_t));
    int32_t *tgt = graph_alloc(g, m1 * sizeof(int32_t));
    float *xa = graph_alloc(g, m1 * (size_t)C * sizeof(float));
    double *loss = graph_alloc(g, m1 * sizeof(double));
    float *dxa = grad ? graph_alloc(g, m1 * (size_t)C * sizeof(float)) : NULL;
    if (!y || !rows || !tgt || !xa || !loss || (grad && !dxa)) return NULL;
    for (int64_t i = 0, k = 0; i < n; i++)
        if (targets[i] != TENSOR_IGNORE_INDEX) rows[k] = i, tgt[k++] = targets[i];
#pragma omp parallel for schedule(static)
    for (int64_t k = 0; k < m; k++)
        memcpy(xa + k * C, x->data + rows[k] * C, (size_t)C * sizeof(float));
    bool bf16 = graph_precision(g) == TENSOR_PRECISION_BF16;
    int64_t R = LMHEAD_CHUNK_FLOATS / V;
    if (R < LMHEAD_MIN_ROWS) R = LMHEAD_MIN_ROWS;
    if (R > m) R = m;
    if (R > 0) R = (m + (m + R - 1) / R - 1) / ((m + R - 1) / R); /* chunks of one size */
    int64_t bufs = softcap > 0.0f ? 2 : 1; /* the logits, and tanh of them when capped */
    float *L = m ? graph_scratch(g, (size_t)(bufs * R * V) * sizeof(float)) : NULL;
    if (m && !L) return NULL;
    float *th = softcap > 0.0f ? L + R * V : NULL;
    MmIn xab = {0};
    MmOut dLb = {0}; /* BF16 precision: each row's softmax - onehot as an operand */
    if (m && bf16) {
        xab = mm_input_arena(g, xa, m * C);
        if (grad) dLb = mm_input_d_target(g, R * V);
        if (graph_failed(g)) return NULL;
    }
    for (int64_t r0 = 0; r0 < m; r0 += R) {
        int64_t r = m - r0 < R ? m - r0 : R;
        if (chunk_logits(g, w, xa + r0 * C, mm_at(xab, r0 * C), r, L) != 0) return NULL;
#pragma omp parallel for schedule(static)
        for (int64_t i = 0; i < r; i++) {
            loss[r0 + i] =
                row_loss(L + i * V, V, tgt[r0 + i], grad, softcap, th ? th + i * V : NULL, bf16);
            if (grad) mm_store(dLb, i * V, L + i * V, V); /* while the row is in cache */
        }
        if (grad && chunk_input_grad(g, w, L, mm_target_operand(dLb), r, dxa + r0 * C) != 0)
            return NULL;
    }
    if (per_row) {
        memset(y->data, 0, (size_t)n * sizeof(float));
        for (int64_t i = 0; i < m; i++) y->data[rows[i]] = (float)loss[i];
    } else {
        double sum = 0.0;
        for (int64_t i = 0; i < m; i++) sum += loss[i];
        y->data[0] = (float)sum;
    }
    if (n_targets) *n_targets = m;
    if (grad) {
        LmHeadCtx *c = graph_record(g, lm_head_backward, sizeof *c);
        if (!c) return NULL;
        *c = (LmHeadCtx){x, y, m, rows, dxa, per_row};
        y->requires_grad = true;
    }
    return y;
}
