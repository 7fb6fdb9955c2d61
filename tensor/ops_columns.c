/* tensor/ops_columns.c — a block of columns: y = x[:, first : first + n] (Phi-3's fused
 * qkv_proj and gate_up_proj outputs, split as transformers slices them). A copy per row;
 * backward adds dy into those columns of dx. OpenMP over rows with a static schedule and no
 * reduction, so the results do not depend on the thread count. */
#include "tensor/graph_internal.h"
#include "tensor/profile.h"

#include <string.h>

typedef struct {
    Tensor *x, *y;
    int64_t first;
} ColumnsCtx;

static void columns_backward(Graph *g, void *p) {
    ColumnsCtx *c = p;
    if (!c->y->grad) return;
    float *dx = graph_grad(g, c->x);
    if (!dx) return;
    int64_t rows = tensor_rows(c->y), n = tensor_cols(c->y), cols = tensor_cols(c->x);
    const float *dy = c->y->grad;
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < rows; i++)
        for (int64_t j = 0; j < n; j++) dx[i * cols + c->first + j] += dy[i * n + j];
}

Tensor *op_columns(Graph *g, Tensor *x, int64_t first, int64_t n) {
    PROFILE_OP(TENSOR_OP_RESIDUAL);
    if (!g || !x) return NULL;
    int64_t cols = x->ndim == 2 ? x->shape[1] : 0;
    if (!x->data || x->ndim != 2 || first < 0 || n < 1 || first + n > cols) {
        graph_fail(g, "op_columns: columns [%lld, %lld) of x %s (need an F32 (N, C) x)",
                   (long long)first, (long long)(first + n), SHAPE(x));
        return NULL;
    }
    int64_t rows = x->shape[0];
    Tensor *y = graph_new_tensor(g, 2, (int64_t[]){rows, n});
    if (!y) return NULL;
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < rows; i++)
        memcpy(y->data + i * n, x->data + i * cols + first, (size_t)n * sizeof(float));
    if (tensor_any_grad(x, NULL, NULL)) {
        ColumnsCtx *c = graph_record(g, columns_backward, sizeof *c);
        if (!c) return NULL;
        *c = (ColumnsCtx){x, y, first};
        y->requires_grad = true;
    }
    return y;
}
