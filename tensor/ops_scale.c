/* tensor/ops_scale.c — multiplication by a constant: y = s x (Granite's embedding, residual
 * and logit multipliers). One multiply per element in float32, as PyTorch's tensor * float;
 * backward dx += s dy. OpenMP over rows with a static schedule and no reduction, so the
 * results do not depend on the thread count. */
#include "tensor/graph_internal.h"
#include "tensor/profile.h"

typedef struct {
    Tensor *x, *y;
    float s;
} ScaleCtx;

static void scale_backward(Graph *g, void *p) {
    ScaleCtx *c = p;
    if (!c->y->grad) return;
    float *dx = graph_grad(g, c->x);
    if (!dx) return;
    int64_t rows = tensor_rows(c->y), cols = tensor_cols(c->y);
    const float *dy = c->y->grad;
    float s = c->s;
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < rows; i++)
        for (int64_t j = i * cols; j < (i + 1) * cols; j++) dx[j] += s * dy[j];
}

Tensor *op_scale(Graph *g, Tensor *x, float s) {
    PROFILE_OP(TENSOR_OP_RESIDUAL);
    if (!g || !x) return NULL;
    if (!x->data) {
        graph_fail(g, "op_scale: x %s is not F32", SHAPE(x));
        return NULL;
    }
    Tensor *y = graph_new_tensor(g, x->ndim, x->shape);
    if (!y) return NULL;
    int64_t rows = tensor_rows(y), cols = tensor_cols(y);
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < rows; i++)
        for (int64_t j = i * cols; j < (i + 1) * cols; j++) y->data[j] = s * x->data[j];
    if (tensor_any_grad(x, NULL, NULL)) {
        ScaleCtx *c = graph_record(g, scale_backward, sizeof *c);
        if (!c) return NULL;
        *c = (ScaleCtx){x, y, s};
        y->requires_grad = true;
    }
    return y;
}
