/* tensor/ops_columns.c — a block of columns: y = x[:, first : first + n] (Phi-3's fused
 * qkv_proj and gate_up_proj outputs, split as transformers slices them), or the same block of
 * each head's columns (Qwen3.5's q_proj: per head D query values, then D gate values). A copy
 * per row; backward adds dy into those columns of dx. OpenMP over rows with a static schedule
 * and no reduction, so the results do not depend on the thread count. */
#include "tensor/graph_internal.h"
#include "tensor/profile.h"

#include <string.h>

typedef struct {
    Tensor *x, *y;
    int64_t first;
    int heads;
} ColumnsCtx;

static void columns_backward(Graph *g, void *p) {
    ColumnsCtx *c = p;
    if (!c->y->grad) return;
    float *dx = graph_grad(g, c->x);
    if (!dx) return;
    int64_t rows = tensor_rows(c->y), cols = tensor_cols(c->x);
    int64_t n = tensor_cols(c->y) / c->heads, stride = cols / c->heads;
    const float *dy = c->y->grad;
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < rows; i++)
        for (int64_t h = 0; h < c->heads; h++)
            for (int64_t j = 0; j < n; j++)
                dx[i * cols + h * stride + c->first + j] += dy[i * n * c->heads + h * n + j];
}

/* op_head_columns; `name` says which op the caller called, in errors. */
static Tensor *head_columns(Graph *g, Tensor *x, int n_heads, int64_t first, int64_t n,
                            const char *name) {
    PROFILE_OP(TENSOR_OP_RESIDUAL);
    if (!g || !x) return NULL;
    int64_t cols = x->ndim == 2 ? x->shape[1] : 0;
    int64_t stride = n_heads > 0 ? cols / n_heads : 0;
    if (!x->data || x->ndim != 2 || n_heads < 1 || stride * n_heads != cols || first < 0 || n < 1 ||
        first + n > stride) {
        graph_fail(g,
                   "%s: columns [%lld, %lld) of each of %d heads of x %s (need an F32 (N, H*S) "
                   "x)",
                   name, (long long)first, (long long)(first + n), n_heads, SHAPE(x));
        return NULL;
    }
    int64_t rows = x->shape[0];
    Tensor *y = graph_new_tensor(g, 2, (int64_t[]){rows, n * n_heads});
    if (!y) return NULL;
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < rows; i++)
        for (int64_t h = 0; h < n_heads; h++)
            memcpy(y->data + (i * n_heads + h) * n, x->data + i * cols + h * stride + first,
                   (size_t)n * sizeof(float));
    if (tensor_any_grad(x, NULL, NULL)) {
        ColumnsCtx *c = graph_record(g, columns_backward, sizeof *c);
        if (!c) return NULL;
        *c = (ColumnsCtx){x, y, first, n_heads};
        y->requires_grad = true;
    }
    return y;
}

Tensor *op_head_columns(Graph *g, Tensor *x, int n_heads, int64_t first, int64_t n) {
    return head_columns(g, x, n_heads, first, n, "op_head_columns");
}

Tensor *op_columns(Graph *g, Tensor *x, int64_t first, int64_t n) {
    return head_columns(g, x, 1, first, n, "op_columns");
}
