/* tensor/ops_softcap.c — soft-capping, y = cap tanh(x / cap) (Gemma 2's final logits where
 * they are materialised: generation and model_forward; the training loss caps inside the
 * fused lm_head, ops_lmhead.c). Backward: dx += dy (1 - (y / cap)^2). Row-parallel with a
 * static schedule and no reduction: thread-count independent. */
#include "tensor/graph_internal.h"
#include "tensor/profile.h"
#include "tensor/vexp.h"

#include <math.h>

typedef struct {
    Tensor *x, *y;
    float cap;
} SoftcapCtx;

static void softcap_backward(Graph *g, void *p) {
    SoftcapCtx *c = p;
    if (!c->y->grad) return;
    float *dx = graph_grad(g, c->x);
    if (!dx) return;
    int64_t rows = tensor_rows(c->y), cols = tensor_cols(c->y);
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < rows; i++)
        for (int64_t j = i * cols; j < (i + 1) * cols; j++) {
            float t = c->y->data[j] / c->cap;
            dx[j] += c->y->grad[j] * (1.0f - t * t);
        }
}

Tensor *op_softcap(Graph *g, Tensor *x, float cap) {
    PROFILE_OP(TENSOR_OP_LOSS);
    if (!g || !x) return NULL;
    if (!(cap > 0.0f) || !isfinite(cap) || !x->data) {
        graph_fail(g, "op_softcap: cap %g must be positive and finite, x %s F32", cap, SHAPE(x));
        return NULL;
    }
    Tensor *y = graph_new_tensor(g, x->ndim, x->shape);
    if (!y) return NULL;
    int64_t rows = tensor_rows(y), cols = tensor_cols(y);
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < rows; i++)
        vsoftcap_floats(y->data + i * cols, y->data + i * cols, x->data + i * cols, cap, cols);
    if (x->requires_grad) {
        SoftcapCtx *c = graph_record(g, softcap_backward, sizeof *c);
        if (!c) return NULL;
        *c = (SoftcapCtx){x, y, cap};
        y->requires_grad = true;
    }
    return y;
}
