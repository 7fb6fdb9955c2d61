/* tensor/ops_conv1d.c — the depthwise causal convolution + SiLU of Qwen3.5's DeltaNet layers
 * (transformers' causal_conv1d_fn with activation "silu", no bias), and its one-position step.
 *
 * Each channel c is filtered on its own: y[t, c] = silu(sum_j w[c, j] x[t - KW + 1 + j, c]),
 * the taps summed in j order in float32. The window is cut at the packed row's start (the
 * positions before it read as zero, as they would unpacked), found once per row as `first`,
 * the row's first position. Backward: dpre = dy silu'(pre), with pre recomputed, and
 * dx[s, c] += sum over the outputs t in s's row that read s, in t order. OpenMP over
 * positions; every element's sum has a fixed order, so the bits do not depend on threads. */
#include "tensor/graph_internal.h"
#include "tensor/profile.h"

#include <math.h>
#include <string.h>

typedef struct {
    Tensor *x, *y;
    const float *w; /* (CH, KW) */
    int batch, seq_len, kernel;
    int32_t *first; /* (B*T) the first position (within its batch row) of t's packed row */
} Conv1dCtx;

static float conv_at(const Conv1dCtx *c, const float *x, int64_t row0, int t, int64_t ch,
                     int64_t channels) {
    int K = c->kernel, lo = t - K + 1 < c->first[row0 + t] ? c->first[row0 + t] : t - K + 1;
    const float *w = c->w + ch * K;
    float s = 0.0f;
    for (int p = lo; p <= t; p++) s += w[p - t + K - 1] * x[(row0 + p) * channels + ch];
    return s;
}

static float silu(float a) {
    return a / (1.0f + expf(-a));
}

static void conv1d_backward(Graph *g, void *p) {
    Conv1dCtx *c = p;
    const float *dy = c->y->grad;
    if (!dy) return;
    float *dx = graph_grad(g, c->x);
    if (!dx) return;
    int T = c->seq_len, K = c->kernel;
    int64_t CH = tensor_cols(c->x), n = (int64_t)c->batch * T;
    const float *x = c->x->data;
#pragma omp parallel for schedule(static)
    for (int64_t r = 0; r < n; r++) {
        int64_t row0 = r / T * T;
        int s = (int)(r - row0);
        for (int64_t ch = 0; ch < CH; ch++) {
            const float *w = c->w + ch * K;
            float acc = 0.0f;
            /* the outputs t = s .. s + KW - 1 of the same packed row read x[s] with tap
             * s - t + KW - 1 */
            for (int t = s; t < s + K && t < T && c->first[row0 + t] <= s; t++) {
                float pre = conv_at(c, x, row0, t, ch, CH), sg = 1.0f / (1.0f + expf(-pre));
                float dpre = dy[(row0 + t) * CH + ch] * sg * (1.0f + pre * (1.0f - sg));
                acc += dpre * w[s - t + K - 1];
            }
            dx[r * CH + ch] += acc;
        }
    }
}

Tensor *op_causal_conv1d_silu(Graph *g, Tensor *x, const Tensor *w, int batch, int seq_len,
                              const int32_t *segment) {
    PROFILE_OP(TENSOR_OP_DELTANET);
    if (!g || !x || !w) return NULL;
    int64_t CH = tensor_cols(x), n = (int64_t)batch * seq_len;
    if (batch < 1 || seq_len < 1 || !x->data || tensor_rows(x) != n || !w->data || w->ndim != 2 ||
        w->shape[0] != CH || w->shape[1] < 1) {
        graph_fail(g,
                   "op_causal_conv1d_silu: x %s and w %s for batch %d, seq_len %d (need x "
                   "(B*T, CH) and w (CH, KW), F32)",
                   SHAPE(x), SHAPE(w), batch, seq_len);
        return NULL;
    }
    Tensor *y = graph_new_tensor(g, x->ndim, x->shape);
    int32_t *first = graph_alloc(g, (size_t)n * sizeof(int32_t));
    if (!y || !first) return NULL;
    for (int64_t r = 0; r < n; r++) {
        int t = (int)(r % seq_len);
        first[r] = t == 0 ? 0 : segment && segment[r] != segment[r - 1] ? t : first[r - 1];
    }
    Conv1dCtx local = {x, y, w->data, batch, seq_len, (int)w->shape[1], first};
#pragma omp parallel for schedule(static)
    for (int64_t r = 0; r < n; r++) {
        int64_t row0 = r / seq_len * seq_len;
        for (int64_t ch = 0; ch < CH; ch++)
            y->data[r * CH + ch] = silu(conv_at(&local, x->data, row0, (int)(r - row0), ch, CH));
    }
    if (x->requires_grad) {
        Conv1dCtx *c = graph_record(g, conv1d_backward, sizeof *c);
        if (!c) return NULL;
        *c = local;
        y->requires_grad = true;
    }
    return y;
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
