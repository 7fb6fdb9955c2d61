/* tensor/ops_loss.c — scalar heads of a graph: summed cross-entropy and a weighted sum.
 *
 * Cross-entropy is the log-sum-exp form, loss = lse(logits) - logits[target], with the max
 * subtracted first so exp never overflows. Per-row losses are computed in parallel and then
 * summed in double in row order, so the total does not depend on the thread count. */
#include "tensor/graph_internal.h"
#include "tensor/profile.h"

#include <math.h>

typedef struct {
    Tensor *logits, *y;
    const int32_t *targets; /* (N) arena copy */
    float *lse;             /* (N) log-sum-exp of each row */
} CrossEntropyCtx;

static void cross_entropy_backward(Graph *g, void *p) {
    CrossEntropyCtx *c = p;
    if (!c->y->grad) return;
    float *dl = graph_grad(g, c->logits);
    if (!dl) return;
    float up = c->y->grad[0];
    int64_t n = tensor_rows(c->logits), V = tensor_cols(c->logits);
    /* in the forward pass this was: loss += lse - l[target]; so dl = up * (softmax - onehot) */
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; i++) {
        int32_t t = c->targets[i];
        if (t == TENSOR_IGNORE_INDEX) continue;
        const float *li = c->logits->data + i * V;
        float *di = dl + i * V;
        float lse = c->lse[i];
        for (int64_t j = 0; j < V; j++) di[j] += up * expf(li[j] - lse);
        di[t] -= up;
    }
}

Tensor *op_cross_entropy(Graph *g, Tensor *logits, const int32_t *targets, int64_t *n_targets) {
    PROFILE_OP(TENSOR_OP_LOSS);
    if (n_targets) *n_targets = 0;
    if (!g || !logits || !targets) return NULL;
    int64_t n = tensor_rows(logits), V = tensor_cols(logits);
    if (V < 1) {
        graph_fail(g, "op_cross_entropy: logits %s have no vocabulary", SHAPE(logits));
        return NULL;
    }
    int64_t counted = 0;
    for (int64_t i = 0; i < n; i++) {
        if (targets[i] == TENSOR_IGNORE_INDEX) continue;
        if (targets[i] < 0 || targets[i] >= V) { /* never index outside the row */
            graph_fail(g, "op_cross_entropy: target %d at row %lld is outside [0, %lld)",
                       targets[i], (long long)i, (long long)V);
            return NULL;
        }
        counted++;
    }
    Tensor *y = graph_new_tensor(g, 1, (int64_t[]){1});
    float *lse = graph_alloc(g, (size_t)(n > 0 ? n : 1) * sizeof(float));
    double *row_loss = graph_alloc(g, (size_t)(n > 0 ? n : 1) * sizeof(double));
    const int32_t *saved = graph_copy_ids(g, targets, n);
    if (!y || !lse || !row_loss || !saved) return NULL;
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; i++) {
        row_loss[i] = 0.0;
        if (targets[i] == TENSOR_IGNORE_INDEX) continue;
        const float *li = logits->data + i * V;
        float mx = li[0];
        for (int64_t j = 1; j < V; j++) mx = li[j] > mx ? li[j] : mx;
        double se = 0.0;
        for (int64_t j = 0; j < V; j++) se += exp((double)li[j] - mx);
        double l = mx + log(se);
        lse[i] = (float)l;
        row_loss[i] = l - li[targets[i]];
    }
    double sum = 0.0;
    for (int64_t i = 0; i < n; i++) sum += row_loss[i];
    y->data[0] = (float)sum;
    if (n_targets) *n_targets = counted;
    if (logits->requires_grad) {
        CrossEntropyCtx *c = graph_record(g, cross_entropy_backward, sizeof *c);
        if (!c) return NULL;
        *c = (CrossEntropyCtx){logits, y, saved, lse};
        y->requires_grad = true;
    }
    return y;
}

/* ---- weighted sum: y = sum_i x_i w_i, a scalar to seed gradients with a chosen dy = w ---- */

typedef struct {
    Tensor *x, *y;
    const Tensor *w;
} WeightedSumCtx;

static void weighted_sum_backward(Graph *g, void *p) {
    WeightedSumCtx *c = p;
    if (!c->y->grad) return;
    float *dx = graph_grad(g, c->x);
    if (!dx) return;
    float up = c->y->grad[0];
    for (int64_t i = 0; i < c->x->size; i++) dx[i] += up * c->w->data[i];
}

Tensor *op_weighted_sum(Graph *g, Tensor *x, const Tensor *w) {
    PROFILE_OP(TENSOR_OP_LOSS);
    if (!g || !x || !w) return NULL;
    if (w->size != x->size || !w->data) {
        graph_fail(g, "op_weighted_sum: x %s and w %s differ in size (or w is not F32)", SHAPE(x),
                   SHAPE(w));
        return NULL;
    }
    Tensor *y = graph_new_tensor(g, 1, (int64_t[]){1});
    if (!y) return NULL;
    double s = 0.0;
    for (int64_t i = 0; i < x->size; i++) s += (double)x->data[i] * w->data[i];
    y->data[0] = (float)s;
    if (x->requires_grad) {
        WeightedSumCtx *c = graph_record(g, weighted_sum_backward, sizeof *c);
        if (!c) return NULL;
        *c = (WeightedSumCtx){x, y, w};
        y->requires_grad = true;
    }
    return y;
}
