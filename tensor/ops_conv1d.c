/* tensor/ops_conv1d.c — the depthwise causal convolution + SiLU of Qwen3.5's DeltaNet layers
 * (transformers' causal_conv1d_fn with activation "silu", no bias), and its one-position step.
 *
 * Each channel c is filtered on its own: y[t, c] = silu(sum_j w[c, j] x[t - KW + 1 + j, c]),
 * the taps summed in j order in float32. The window is cut at the packed row's start (the
 * positions before it read as zero, as they would unpacked), found once per row as `first`,
 * the row's first position. The loops run along a position's channels (the taps transposed
 * to (KW, CH) once per op), vectorised (simd.h), the exps by simd_expf (also in the
 * generation step, so the two give the same bits).
 * Backward: dpre = dy silu'(pre), pre recomputed, once per position into a ring of the last
 * KW positions' rows, then dx[s, c] = sum over the outputs t in s's row that read s, in t
 * order. Each thread takes a contiguous block of positions; every element's sum has a fixed
 * order, so the bits do not depend on the thread count.
 * op_deltanet_qkv runs the same loops and, on each position's row while it is in cache, the
 * L2 norms of the q and k heads (op_head_l2norm's formulas; the norms' 1/sqrt kept for
 * backward, the SiLU's output recomputed): the delta rule's inputs in one pass over memory,
 * where conv, three column copies and two norms took six, and as many again in backward. */
#include "tensor/graph_internal.h"
#include "tensor/profile.h"
#include "tensor/simd.h"

#include <math.h>
#include <omp.h>
#include <string.h>

typedef struct {
    Tensor *x, *y;
    const float *wt; /* (KW, CH) the same taps, transposed */
    int batch, seq_len, kernel;
    int32_t *first; /* (B*T) the first position (within its batch row) of t's packed row */
    int norm_heads, head_dim; /* the L2-normalised heads (q's, then k's) at the row's start */
    float q_scale, eps;       /* q's heads times q_scale, k's times 1 */
    float *r;                 /* (B*T, norm_heads) 1 / sqrt(sum u^2 + eps) */
} Conv1dCtx;

/* Position r's row y (CH) from u = silu(pre) to the L2-normalised heads: y = scale u r. */
SIMD_INLINE void norm_row(const Conv1dCtx *c, float *restrict y, int64_t r) {
    int64_t D = c->head_dim;
    for (int h = 0; h < c->norm_heads; h++) {
        float *restrict u = y + h * D, scale = h < c->norm_heads / 2 ? c->q_scale : 1.0f;
        float rn = c->r[r * c->norm_heads + h] =
            1.0f / sqrtf((float)simd_dot_double(u, u, D) + c->eps);
        for (int64_t j = 0; j < D; j++) u[j] = u[j] * rn * scale;
    }
}

/* pre (CH) = the convolution at global position r (before the SiLU). */
SIMD_INLINE void conv_row(const Conv1dCtx *c, float *restrict pre, const float *restrict x,
                          int64_t r, int64_t CH) {
    int T = c->seq_len, K = c->kernel, t = (int)(r % T);
    int lo = t - K + 1 < c->first[r] ? c->first[r] : t - K + 1;
    for (int64_t ch = 0; ch < CH; ch++) pre[ch] = 0.0f;
    for (int p = lo; p <= t; p++) {
        const float *restrict xp = x + (r - t + p) * CH, *restrict wp =
                                                             c->wt + (p - t + K - 1) * CH;
        for (int64_t ch = 0; ch < CH; ch++) pre[ch] += wp[ch] * xp[ch];
    }
}

/* y (CH) = silu(pre) = pre / (1 + exp(-pre)) */
SIMD_INLINE void silu_row(float *restrict y, int64_t CH) {
    for (int64_t ch = 0; ch < CH; ch++) y[ch] = y[ch] / (1.0f + simd_expf(-y[ch]));
}

/* d (CH) = du silu'(pre) at position r: du sg (1 + pre (1 - sg)), sg = 1 / (1 + exp(-pre));
 * du = dy, or through a normalised head's L2 norm: scale r dy - scale r^3 u (u.dy), with
 * u = silu(pre) = pre / (1 + exp(-pre)). e, u (CH) scratch. */
SIMD_INLINE void dpre_row(const Conv1dCtx *c, float *restrict d, float *restrict e,
                          float *restrict u, const float *restrict dy, int64_t r, int64_t CH) {
    conv_row(c, d, c->x->data, r, CH);
    for (int64_t ch = 0; ch < CH; ch++) e[ch] = simd_expf(-d[ch]);
    const float *restrict dyr = dy + r * CH;
    int64_t normed = (int64_t)c->norm_heads * c->head_dim, D = c->head_dim;
    for (int64_t ch = 0; ch < normed; ch++) u[ch] = d[ch] / (1.0f + e[ch]);
    for (int h = 0; h < c->norm_heads; h++) {
        const float *restrict uh = u + h * D, *restrict dyh = dyr + h * D;
        float rn = c->r[r * c->norm_heads + h], scale = h < c->norm_heads / 2 ? c->q_scale : 1.0f;
        double dot = simd_dot_double(dyh, uh, D);
        float a = scale * rn, b = (float)(scale * dot * rn * rn * rn);
        for (int64_t j = 0; j < D; j++) u[h * D + j] = a * dyh[j] - b * uh[j];
    }
    for (int64_t ch = normed; ch < CH; ch++) u[ch] = dyr[ch];
    for (int64_t ch = 0; ch < CH; ch++) {
        float pre = d[ch], sg = 1.0f / (1.0f + e[ch]);
        d[ch] = u[ch] * sg * (1.0f + pre * (1.0f - sg));
    }
}

/* dx row s += sum over the valid outputs t = s .. s + KW - 1 of dpre[t] w[:, s - t + KW - 1];
 * ring (KW, CH) holds dpre of position t in row t % KW. */
SIMD_INLINE void dx_row(const Conv1dCtx *c, float *restrict dx, float *restrict acc,
                        const float *restrict ring, int64_t s, int64_t n, int64_t CH) {
    int T = c->seq_len, K = c->kernel;
    int64_t row_end = (s / T + 1) * T;
    int pos = (int)(s % T);
    for (int64_t ch = 0; ch < CH; ch++) acc[ch] = 0.0f;
    for (int64_t t = s; t < s + K && t < row_end && t < n && c->first[t] <= pos; t++) {
        const float *restrict d = ring + (t % K) * CH, *restrict w = c->wt + (s - t + K - 1) * CH;
        for (int64_t ch = 0; ch < CH; ch++) acc[ch] += d[ch] * w[ch];
    }
    for (int64_t ch = 0; ch < CH; ch++) dx[s * CH + ch] += acc[ch];
}

/* Positions [a, b): forward rows of y, or backward rows of dx (bufs: ring (KW, CH), then
 * three (CH) rows). */
SIMD_INLINE void conv_block(const Conv1dCtx *c, float *dx, float *bufs, int64_t a, int64_t b,
                            bool backward) {
    int64_t CH = tensor_cols(c->x), n = tensor_rows(c->x), K = c->kernel;
    float *ring = bufs, *e = bufs + K * CH, *acc = e + CH, *u = acc + CH;
    if (!backward) {
        for (int64_t r = a; r < b; r++) {
            conv_row(c, c->y->data + r * CH, c->x->data, r, CH);
            silu_row(c->y->data + r * CH, CH);
            norm_row(c, c->y->data + r * CH, r);
        }
        return;
    }
    const float *dy = c->y->grad;
    for (int64_t t = a; t < a + K - 1 && t < n; t++)
        dpre_row(c, ring + (t % K) * CH, e, u, dy, t, CH);
    for (int64_t s = a; s < b; s++) {
        int64_t t = s + K - 1;
        if (t < n) dpre_row(c, ring + (t % K) * CH, e, u, dy, t, CH);
        dx_row(c, dx, acc, ring, s, n, CH);
    }
}

SIMD_AVX512 static void conv_block_avx512(const Conv1dCtx *c, float *dx, float *bufs, int64_t a,
                                          int64_t b, bool backward) {
    conv_block(c, dx, bufs, a, b, backward);
}

static void conv_block_plain(const Conv1dCtx *c, float *dx, float *bufs, int64_t a, int64_t b,
                             bool backward) {
    conv_block(c, dx, bufs, a, b, backward);
}

/* Every position, each thread a contiguous block; dx NULL runs the forward. */
static int conv_all(Graph *g, const Conv1dCtx *c, float *dx) {
    int64_t CH = tensor_cols(c->x), n = tensor_rows(c->x), per = (c->kernel + 3) * CH;
    int threads = omp_get_max_threads();
    float *bufs = graph_scratch(g, (size_t)(per * threads) * sizeof(float));
    if (!bufs) return -1;
    bool wide = simd_avx512();
#pragma omp parallel
    {
        int nt = omp_get_num_threads(), id = omp_get_thread_num();
        int64_t a = n * id / nt, b = n * (id + 1) / nt;
        float *mine = bufs + per * id;
        if (wide)
            conv_block_avx512(c, dx, mine, a, b, dx != NULL);
        else
            conv_block_plain(c, dx, mine, a, b, dx != NULL);
    }
    return 0;
}

static void conv1d_backward(Graph *g, void *p) {
    Conv1dCtx *c = p;
    if (!c->y->grad) return;
    float *dx = graph_grad(g, c->x);
    if (dx) conv_all(g, c, dx);
}

/* The conv (and with norm_heads > 0 the L2 norms); `name` for errors. */
static Tensor *conv_op(Graph *g, Tensor *x, const Tensor *w, int batch, int seq_len,
                       const int32_t *segment, int norm_heads, int head_dim, float q_scale,
                       float eps, const char *name) {
    PROFILE_OP(TENSOR_OP_DELTANET);
    if (!g || !x || !w) return NULL;
    int64_t CH = tensor_cols(x), n = (int64_t)batch * seq_len;
    if (batch < 1 || seq_len < 1 || !x->data || tensor_rows(x) != n || !w->data || w->ndim != 2 ||
        w->shape[0] != CH || w->shape[1] < 1 || (int64_t)norm_heads * head_dim > CH) {
        graph_fail(g,
                   "%s: x %s and w %s for batch %d, seq_len %d (need x (B*T, CH) and w (CH, KW), "
                   "F32, with %d normalised heads of %d in CH)",
                   name, SHAPE(x), SHAPE(w), batch, seq_len, norm_heads, head_dim);
        return NULL;
    }
    int K = (int)w->shape[1];
    Tensor *y = graph_new_tensor(g, x->ndim, x->shape);
    int32_t *first = graph_alloc(g, (size_t)n * sizeof(int32_t));
    float *wt = graph_alloc(g, (size_t)(K * CH) * sizeof(float));
    float *r = norm_heads ? graph_alloc(g, (size_t)(n * norm_heads) * sizeof(float)) : NULL;
    if (!y || !first || !wt || (norm_heads && !r)) return NULL;
    for (int64_t i = 0; i < n; i++) {
        int t = (int)(i % seq_len);
        first[i] = t == 0 ? 0 : segment && segment[i] != segment[i - 1] ? t : first[i - 1];
    }
    for (int j = 0; j < K; j++)
        for (int64_t ch = 0; ch < CH; ch++) wt[j * CH + ch] = w->data[ch * K + j];
    Conv1dCtx local = {x, y, wt, batch, seq_len, K, first, norm_heads, head_dim, q_scale, eps, r};
    if (conv_all(g, &local, NULL) != 0) return NULL;
    if (x->requires_grad) {
        Conv1dCtx *c = graph_record(g, conv1d_backward, sizeof *c);
        if (!c) return NULL;
        *c = local;
        y->requires_grad = true;
    }
    return y;
}

Tensor *op_causal_conv1d_silu(Graph *g, Tensor *x, const Tensor *w, int batch, int seq_len,
                              const int32_t *segment) {
    return conv_op(g, x, w, batch, seq_len, segment, 0, 0, 1.0f, 0.0f, "op_causal_conv1d_silu");
}

Tensor *op_deltanet_qkv(Graph *g, Tensor *x, const Tensor *w, const DeltaRuleSpec *s, float q_scale,
                        float eps) {
    if (!g || !s) return NULL;
    if (s->n_k_heads < 1 || s->k_dim < 1) {
        graph_fail(g, "op_deltanet_qkv: %d key heads of %d (need positive sizes)", s->n_k_heads,
                   s->k_dim);
        return NULL;
    }
    return conv_op(g, x, w, s->batch, s->seq_len, s->segment, 2 * s->n_k_heads, s->k_dim, q_scale,
                   eps, "op_deltanet_qkv");
}

static float silu(float a) {
    return a / (1.0f + simd_expf(-a));
}

void tensor_conv1d_silu_step(float *window, float *y, const float *x, const float *w, int channels,
                             int kernel) {
    int K = kernel;
    for (int64_t ch = 0; ch < channels; ch++) {
        float *win = window + ch * (K - 1);
        const float *wc = w + ch * K;
        float s = 0.0f;
        for (int j = 0; j < K - 1; j++) s += wc[j] * win[j];
        s += wc[K - 1] * x[ch];
        y[ch] = silu(s);
        if (K > 1) {
            memmove(win, win + 1, (size_t)(K - 2) * sizeof(float));
            win[K - 2] = x[ch];
        }
    }
}
