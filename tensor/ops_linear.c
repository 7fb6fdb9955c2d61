/* tensor/ops_linear.c — linear and LoRA-linear layers: mm_f32 (or mm_gemm) for W,
 * and tensor/thin.c for LoRA's six rank-r products.
 *
 * The frozen weight W never gets a gradient, so backward of y = x W^T only needs
 * dx = dy W. LoRA adds y += s * (drop(x) A^T) B^T; its backward, with h = drop(x) A^T (N, R)
 * saved from the forward and dh = s * dy B (N, R):
 *   dB += s * dy^T h      (OUT, R)
 *   dA += dh^T drop(x)    (R, IN)
 *   dx += dy W + drop'(dh A), drop' applying the forward's mask and 1/(1-p).
 * The forward pass keeps the dropout mask as bits (1/32 of x's bytes) for backward, which
 * would otherwise hash every element again.
 *
 * In F32 precision the two products with W run in oneDNN's f32 matmul (mm_f32). A BF16 W
 * is converted whole into the graph's weight scratch before each product (forward and again
 * in backward), and the calls are the F32 ones. Converting in row blocks and running one
 * product per block would save scratch, but neither OpenBLAS nor oneDNN gives bit-identical
 * results when the output is computed in column blocks, and the contract is bit-identity
 * with an F32 W holding the same values. The biggest W of a layer is a few
 * MB; the lm_head goes through op_lm_head_cross_entropy, which blocks for both dtypes.
 *
 * A quantized W (Tensor.quant, a ggml block type) goes to quant_product.c both ways: tiles
 * of W dequantized into per-thread scratch, never the whole matrix.
 *
 * In BF16 precision the two products with W (x W^T, dy W) go through mm_gemm on
 * bf16-rounded x / dy and W (tensor/matmul.h). LoRA's six run in thin.c's loops, which read
 * the wide activation in place where OpenBLAS copies it first (the four that sum over its wide
 * side into R columns) or runs K = R slowly (the two that spread R columns back, y += s h B^T
 * and dx += dh A; the same bits as OpenBLAS's sgemm). In f32, except in BF16 precision on
 * CPUs with VDPBF16PS (lora_dot): there the four that sum over the wide side multiply bf16
 * operands as PyTorch's autocast does, reading x's or dy's bf16 copy where the products
 * with W made one: h = x A^T (without dropout: the dropped x has no copy), dh = s dy B,
 * dB = s dy^T h and dA = dh^T drop(x) (from x's copy when the LoRA is in W's room, which
 * keeps it for backward, mm_keep_input: 10-12 ms of the bf16 SmolLM-135M step on an AMD
 * EPYC Zen 5; otherwise thin_reduce_bf16 rounds x in registers), with A, B, h and dh rounded; the
 * two spreads stay f32 (they read and write the wide output either way). Measured at the
 * SmolLM-135M shape (1024 rows, r 8, AMD EPYC Zen 4, 2 threads): project 54 -> 27 us at 576 wide,
 * 149 -> 65 at 1536; reduce from bf16 43 -> 22 and 115 -> 64, from f32 rounded 43 -> 27 and 116 ->
 * 88; the bf16 step's linear and LoRA products 25-85 ms less.
 *
 * With room in W (Tensor.room = R, trainer/model/lora_room.c; dropout 0, lora_dot) the two
 * spreads go into the products with W instead: forward, h = x A^T from x's operand, whose
 * rows end in R more columns (mm_set_room) that take s h rounded, and
 * y = [x | s h] [W | B]^T with B rounded into the columns right of W; backward, dy's operand
 * with R more columns that take dh rounded, and dx = [dy | dh] [W ; A] with A rounded into
 * the rows below W. Each op writes B or A into the room just before its product (the DPO
 * reference's LoRA shares W). The spreads' passes over y and dx (read and write, f32) were
 * ~45 ms of the bf16 SmolLM-135M step; K grows by R (+1.4% of the products at IN 576). */
#include "tensor/graph_internal.h"
#include "tensor/bf16.h"
#include "tensor/profile.h"
#include "tensor/matmul.h"
#include "tensor/quant_internal.h"

#include <string.h>

/* y (n, out) = b broadcast over rows, or 0 when b is NULL; returns the product's beta. */
static float fill_bias(float *y, const Tensor *b, int64_t n, int64_t out) {
    if (!b) return 0.0f;
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; i++) memcpy(y + i * out, b->data, (size_t)out * sizeof(float));
    return 1.0f;
}

static bool linear_shapes_ok(const Tensor *x, const Tensor *w, const Tensor *b) {
    if (!x || !w || w->ndim != 2 || tensor_cols(x) != w->shape[1]) return false;
    if ((!w->data && !w->bf16 && !w->quant) || !x->data) return false;
    if (b && (b->size != w->shape[0] || !b->data)) return false;
    return x->shape[x->ndim - 1] <= INT32_MAX && w->shape[0] <= INT32_MAX &&
           tensor_rows(x) <= INT32_MAX;
}

static Tensor *linear_output(Graph *g, const Tensor *x, int64_t out) {
    int64_t shape[TENSOR_MAX_DIMS];
    memcpy(shape, x->shape, sizeof shape);
    shape[x->ndim - 1] = out;
    return graph_new_tensor(g, x->ndim, shape);
}

/* y (N, OUT) = x (N, IN) W^T + beta y. 0, or -1 with the graph failed. */
static int product_xwt(Graph *g, const Tensor *x, const Tensor *w, float beta, float *y) {
    int n = (int)tensor_rows(x), in = (int)w->shape[1], out = (int)w->shape[0];
    if (w->quant) return quant_product_xwt(g, x->data, n, w, beta, y);
    if (graph_precision(g) == TENSOR_PRECISION_BF16) {
        MmIn xb = mm_input(g, x->data, n, in), wb = mm_weight(g, w, 0, out);
        return mm_gemm(g, n, out, in, 1.0f, xb, mm_ld(xb, in), wb, mm_weight_ld(g, w), true, beta,
                       y, out);
    }
    const float *wf = graph_weight_rows(g, w, 0, out);
    if (!wf) return -1;
    return mm_f32(g, true, n, out, in, 1.0f, x->data, in, wf, in, beta, y, out);
}

/* dx (N, IN) += dy (N, OUT) W (OUT, IN), or = without add (dx's first write: beta 0, so
 * dx is neither zeroed nor read); in BF16 precision from dyb, dy's operand, when the caller
 * has converted it (mm_input_d), else converting it here. 0, or -1 with the graph failed. */
static int product_dyw(Graph *g, const float *dy, MmIn dyb, const Tensor *w, int n, float *dx,
                       bool add) {
    int in = (int)w->shape[1], out = (int)w->shape[0];
    float beta = add ? 1.0f : 0.0f;
    if (w->quant) {
        if (!add) memset(dx, 0, (size_t)n * in * sizeof(float)); /* its tiles accumulate */
        return quant_product_dyw(g, dy, n, w, dx);
    }
    if (graph_precision(g) == TENSOR_PRECISION_BF16) {
        if (!dyb.bits && !dyb.vals) dyb = mm_input_d(g, dy, (int64_t)n * out);
        MmIn wb = mm_weight(g, w, 0, out);
        return mm_gemm(g, n, in, out, 1.0f, dyb, mm_ld(dyb, out), wb, mm_weight_ld(g, w), false,
                       beta, dx, in);
    }
    const float *wf = graph_weight_rows(g, w, 0, out);
    if (!wf) return -1;
    return mm_f32(g, false, n, in, out, 1.0f, dy, out, wf, in, beta, dx, in);
}

typedef struct {
    Tensor *x, *y;
    const Tensor *w;
} LinearCtx;

static void linear_backward(Graph *g, void *p) {
    LinearCtx *c = p;
    if (!c->y->grad) return;
    bool add;
    float *dx = graph_grad_for_write(g, c->x, &add);
    if (dx) product_dyw(g, c->y->grad, (MmIn){0}, c->w, (int)tensor_rows(c->x), dx, add);
}

Tensor *op_linear(Graph *g, Tensor *x, const Tensor *w, const Tensor *b) {
    PROFILE_OP(TENSOR_OP_LINEAR);
    if (!g || !x || !w) return NULL;
    if (!linear_shapes_ok(x, w, b)) {
        graph_fail(g, "op_linear: x %s, W %s and b %s do not match (need x (N, IN), W (OUT, IN))",
                   SHAPE(x), SHAPE(w), b ? SHAPE(b) : "none");
        return NULL;
    }
    Tensor *y = linear_output(g, x, w->shape[0]);
    if (!y) return NULL;
    float beta = fill_bias(y->data, b, tensor_rows(x), w->shape[0]);
    if (product_xwt(g, x, w, beta, y->data) != 0) return NULL;
    if (x->requires_grad) {
        LinearCtx *c = graph_record(g, linear_backward, sizeof *c);
        if (!c) return NULL;
        *c = (LinearCtx){x, y, w};
        y->requires_grad = true;
    }
    return y;
}

typedef struct {
    Tensor *x, *y, *A, *B;
    const Tensor *w;
    float *h; /* (N, RP) drop(x) A^T, RP = thin_padded(R) (columns beyond R zero) */
    float scaling, dropout;
    const uint8_t *keep; /* with dropout: the forward's mask, dropout_apply's bits */
    MmIn xb;             /* in W's room: x's operand, kept for dA (mm_keep_input) */
} LoraCtx;

/* drop(x) for the LoRA path: x itself without dropout, else a masked copy in scratch; with
 * keep_bits, the mask stored there for backward (one bit per element of x). */
static const float *lora_dropped_input(Graph *g, const Tensor *x, float p, uint64_t seed,
                                       uint8_t *keep_bits) {
    if (p <= 0.0f) return x->data;
    float *xd = graph_scratch(g, (size_t)x->size * sizeof(float));
    if (xd)
        dropout_apply(xd, x->data, keep_bits, graph_dropout_rows(g), tensor_rows(x), tensor_cols(x),
                      p, seed);
    return xd;
}

static inline bool kept(const uint8_t *bits, int64_t in, int64_t i, int64_t j) {
    return bits[i * DROPOUT_ROW_BYTES(in) + j / 8] >> (j % 8) & 1;
}

/* Whether LoRA's products read the bf16 operands of the base products (thin_project_bf16,
 * thin_reduce_bf16): BF16 precision on oneDNN's bf16 kernels and a CPU with VDPBF16PS. */
static bool lora_dot(const Graph *g) {
    return graph_mm_kernel(g) == MM_KERNEL_ONEDNN_BF16 && thin_bf16();
}

bool graph_lora_uses_room(const Graph *g) {
    return lora_dot(g);
}

/* Whether this LoRA goes into W's room: dropout 0 and W a BF16 weight with room for R. */
static bool lora_in_room(const Graph *g, const Tensor *w, const Tensor *A, float dropout) {
    return dropout <= 0.0f && w->bf16 && !w->quant && w->room == A->shape[0] && lora_dot(g);
}

/* W's room (Tensor.room), written by the op just before its product reads it. */
static uint16_t *room_of(const Tensor *w) {
    return (uint16_t *)w->bf16;
}

/* The columns right of W: (OUT, R) = B rounded (forward). */
static void room_put_b(const Tensor *w, const Tensor *B) {
    int64_t out = w->shape[0], in = w->shape[1], ld = tensor_bf16_ld(w), r = B->shape[1];
    uint16_t *room = room_of(w);
#pragma omp parallel for schedule(static) if (out >= THIN_TEAM_ROWS)
    for (int64_t o = 0; o < out; o++)
        for (int64_t j = 0; j < r; j++) room[o * ld + in + j] = bf16_round(B->data[o * r + j]);
}

/* The rows below W: (R, IN) = A rounded (backward). */
static void room_put_a(const Tensor *w, const Tensor *A) {
    int64_t out = w->shape[0], in = w->shape[1], ld = tensor_bf16_ld(w), r = A->shape[0];
    uint16_t *room = room_of(w);
    for (int64_t j = 0; j < r; j++)
        for (int64_t t = 0; t < in; t++) room[(out + j) * ld + t] = bf16_round(A->data[j * in + t]);
}

/* The r columns after each of n rows of an operand (rows ld apart, `cols` columns each) =
 * alpha c (n, r; rows ldc apart) rounded. */
static void operand_put(MmIn op, int64_t n, int64_t cols, int r, float alpha, const float *c,
                        int ldc) {
    uint16_t *bits = (uint16_t *)op.bits;
#pragma omp parallel for schedule(static) if (n > 256)
    for (int64_t i = 0; i < n; i++)
        for (int j = 0; j < r; j++) bits[i * op.ld + cols + j] = bf16_round(alpha * c[i * ldc + j]);
}

/* dA (R, IN) += dh^T (R, N) xs (N, IN), xs x or its dropped copy: from dh and xs rounded to
 * bf16 when lora_dot (dh into pairs; xs from the operand the forward pass kept, c->xb, or
 * rounded in registers), else in f32. */
static void lora_da(Graph *g, const LoraCtx *c, const float *dh, const float *xs, float *dA) {
    int n = (int)tensor_rows(c->x), in = (int)tensor_cols(c->x);
    int r = (int)c->A->shape[0], rp = thin_padded(r);
    if (!lora_dot(g)) {
        thin_reduce(n, in, r, 1.0f, dh, rp, xs, in, true, dA, in);
        return;
    }
    uint16_t *dhp = graph_alloc(g, thin_pairs_size(n, rp) * sizeof(uint16_t));
    if (!dhp) return;
    thin_pairs(dhp, dh, n, rp, rp);
    if (c->xb.bits && xs == c->x->data)
        thin_reduce_bf16(n, in, r, 1.0f, dhp, rp, c->xb.bits, NULL, c->xb.ld, true, dA, in);
    else
        thin_reduce_bf16(n, in, r, 1.0f, dhp, rp, NULL, xs, in, true, dA, in);
}

/* The dropout parts of LoRA backward, with the mask the forward pass stored:
 *   dx += drop'(dh A): in the forward pass this was xd = x * mask / (1-p), so dx gets
 *   mask * (dh A) / (1-p);  dA += dh^T drop(x).
 * dh is (N, RP). Values are those of dropout_apply followed by an add. */
static void lora_dropout_backward(Graph *g, const LoraCtx *c, const float *dh) {
    int64_t n = tensor_rows(c->x), in = tensor_cols(c->x);
    int r = (int)c->A->shape[0], rp = thin_padded(r);
    float p = c->dropout, scale = 1.0f / (1.0f - p);
    float *tmp = graph_scratch(g, (size_t)c->x->size * sizeof(float)); /* (N, IN) */
    float *dx = c->x->requires_grad ? graph_grad(g, c->x) : NULL;
    float *dA = c->A->requires_grad ? graph_grad(g, c->A) : NULL;
    if (graph_failed(g)) return;
    if (dx) {
        if (mm_f32(g, false, (int)n, (int)in, r, 1.0f, dh, rp, c->A->data, (int)in, 0.0f, tmp,
                   (int)in) != 0)
            return;
#pragma omp parallel for schedule(static)
        for (int64_t i = 0; i < n; i++)
            for (int64_t j = 0; j < in; j++)
                dx[i * in + j] += kept(c->keep, in, i, j) ? tmp[i * in + j] * scale : 0.0f;
    }
    if (dA) {
        const float *x = c->x->data;
#pragma omp parallel for schedule(static)
        for (int64_t i = 0; i < n; i++)
            for (int64_t j = 0; j < in; j++)
                tmp[i * in + j] = kept(c->keep, in, i, j) ? x[i * in + j] * scale : 0.0f;
        lora_da(g, c, dh, tmp, dA);
    }
}

/* B (OUT, R) as the (OUT, RP) operand of thin_project: B itself when R is a multiple of
 * THIN_PAD, else a copy with zero columns after R. */
static const float *padded_b(Graph *g, const Tensor *B, int rp) {
    int64_t out = B->shape[0];
    int r = (int)B->shape[1];
    if (r == rp) return B->data;
    float *bp = graph_alloc(g, (size_t)out * rp * sizeof(float));
    if (bp)
        for (int64_t o = 0; o < out; o++)
            for (int j = 0; j < rp; j++) bp[o * rp + j] = j < r ? B->data[o * r + j] : 0.0f;
    return bp;
}

/* dB^T (R, OUT) = s h^T (R, N) dy (N, OUT) into dBt, from dy's bf16 operand dyb when it has
 * one. */
static int lora_db(Graph *g, const LoraCtx *c, const float *dy, MmIn dyb, float *dBt) {
    int n = (int)tensor_rows(c->x), out = (int)c->w->shape[0];
    int r = (int)c->A->shape[0], rp = thin_padded(r);
    if (!dyb.bits) {
        thin_reduce(n, out, r, c->scaling, c->h, rp, dy, out, false, dBt, out);
        return 0;
    }
    uint16_t *hp = graph_alloc(g, thin_pairs_size(n, rp) * sizeof(uint16_t));
    if (!hp) return -1;
    thin_pairs(hp, c->h, n, rp, rp);
    thin_reduce_bf16(n, out, r, c->scaling, hp, rp, dyb.bits, NULL, mm_ld(dyb, out), false, dBt,
                     out);
    return 0;
}

/* dh (N, RP) = s dy (N, OUT) B (OUT, RP), from dyb when it holds bits. */
static int lora_dh(Graph *g, const LoraCtx *c, const float *dy, MmIn dyb, float *dh) {
    int n = (int)tensor_rows(c->x), out = (int)c->w->shape[0];
    int r = (int)c->A->shape[0], rp = thin_padded(r);
    if (!dyb.bits) {
        const float *bp = padded_b(g, c->B, rp);
        if (!bp) return -1;
        thin_project(n, out, rp, c->scaling, dy, out, bp, rp, dh, rp);
        return 0;
    }
    uint16_t *bq = graph_alloc(g, thin_quads_size(out, rp) * sizeof(uint16_t));
    if (!bq) return -1;
    thin_quads(bq, c->B->data, out, r, rp, r, 1); /* B (OUT, R): element (o, j) at o R + j */
    thin_project_bf16(n, out, rp, c->scaling, dyb.bits, mm_ld(dyb, out), bq, dh, rp);
    return 0;
}

static void lora_backward(Graph *g, void *p) {
    LoraCtx *c = p;
    const float *dy = c->y->grad;
    if (!dy) return;
    int n = (int)tensor_rows(c->x), in = (int)c->w->shape[1], out = (int)c->w->shape[0];
    int r = (int)c->A->shape[0], rp = thin_padded(r);
    bool room = lora_in_room(g, c->w, c->A, c->dropout); /* as the forward pass decided */
    /* dy's bf16 operand, for the product with W and LoRA's from dy; in W's room with R
     * columns after each row for dh */
    MmIn dyb = room          ? mm_input_d_rows(g, dy, n, out, out + r)
               : lora_dot(g) ? mm_input_d(g, dy, (int64_t)n * out)
                             : (MmIn){0};
    if (graph_failed(g)) return;
    if (c->B->requires_grad) {
        float *dB = graph_grad(g, c->B);
        float *dBt = graph_alloc(g, (size_t)r * out * sizeof(float));
        /* dB^T (R, OUT) into dBt, then dB (OUT, R) += its transpose */
        if (!dB || !dBt || lora_db(g, c, dy, dyb, dBt) != 0) return;
#pragma omp parallel for schedule(static) if (out >= THIN_TEAM_ROWS)
        for (int64_t o = 0; o < out; o++)
            for (int64_t j = 0; j < r; j++) dB[o * r + j] += dBt[j * out + o];
    }
    if (!c->x->requires_grad && !c->A->requires_grad) return;
    float *dh = graph_alloc(g, (size_t)n * rp * sizeof(float));
    if (!dh || lora_dh(g, c, dy, dyb, dh) != 0) return;
    if (c->x->requires_grad) {
        bool add;
        float *dx = graph_grad_for_write(g, c->x, &add);
        if (!dx) return;
        if (room) { /* dx (N, IN) (+)= [dy | dh] (N, OUT + R) [W ; A] (OUT + R, IN) */
            operand_put(dyb, n, out, r, 1.0f, dh, rp);
            room_put_a(c->w, c->A);
            mm_gemm(g, n, in, out + r, 1.0f, dyb, dyb.ld, (MmIn){.bits = c->w->bf16},
                    tensor_bf16_ld(c->w), false, add ? 1.0f : 0.0f, dx, in);
        } else if (product_dyw(g, dy, dyb, c->w, n, dx, add) != 0) {
            return;
        }
        /* dx (N, IN) += dh (N, R) A (R, IN), through dropout when p > 0 */
        if (c->dropout <= 0.0f && !room)
            thin_spread(n, in, r, 1.0f, dh, rp, c->A->data, in, dx, in);
    }
    if (c->dropout > 0.0f) {
        lora_dropout_backward(g, c, dh);
        return;
    }
    if (c->A->requires_grad) {
        float *dA = graph_grad(g, c->A);
        if (!dA) return;
        lora_da(g, c, dh, c->x->data, dA);
    }
}

/* h (N, RP) = drop(x) (N, IN) A^T: without dropout in BF16 precision from x's bf16 operand
 * (the one the product with W read) and A in bf16 when lora_dot, else in f32. 0, or -1 with
 * the graph failed. */
static int lora_project(Graph *g, const Tensor *x, const Tensor *A, float dropout,
                        uint64_t dropout_seed, uint8_t *keep, float *h) {
    int n = (int)tensor_rows(x), in = (int)A->shape[1], r = (int)A->shape[0];
    int rp = thin_padded(r);
    if (dropout <= 0.0f && lora_dot(g)) {
        MmIn xb = mm_input(g, x->data, n, in);
        uint16_t *aq = graph_alloc(g, thin_quads_size(in, rp) * sizeof(uint16_t));
        if (!xb.bits || !aq) return -1;
        thin_quads(aq, A->data, in, r, rp, 1, in); /* A (R, IN): element (t, j) at j IN + t */
        thin_project_bf16(n, in, rp, 1.0f, xb.bits, mm_ld(xb, in), aq, h, rp);
        return 0;
    }
    float *at = graph_alloc(g, (size_t)in * rp * sizeof(float)); /* A^T (IN, RP) */
    if (!at) return -1;
    for (int64_t t = 0; t < in; t++)
        for (int j = 0; j < rp; j++) at[t * rp + j] = j < r ? A->data[(int64_t)j * in + t] : 0.0f;
    const float *xd = lora_dropped_input(g, x, dropout, dropout_seed, keep);
    if (!xd) return -1;
    thin_project(n, in, rp, 1.0f, xd, in, at, rp, h, rp);
    return 0;
}

/* y (N, OUT) = beta y + x W^T + s drop(x) A^T B^T, with h (N, RP) = drop(x) A^T kept: the
 * product with W, then LoRA's rank-R products. 0, or -1 with the graph failed. */
static int lora_forward(Graph *g, const Tensor *x, const Tensor *w, const Tensor *A,
                        const Tensor *B, float s, float dropout, uint64_t dropout_seed,
                        uint8_t *keep, float beta, float *h, float *y) {
    int n = (int)tensor_rows(x), out = (int)w->shape[0];
    int r = (int)A->shape[0], rp = thin_padded(r);
    float *bt = graph_alloc(g, (size_t)r * out * sizeof(float)); /* B^T (R, OUT) */
    if (!bt) return -1;
    for (int64_t o = 0; o < out; o++)
        for (int j = 0; j < r; j++) bt[(int64_t)j * out + o] = B->data[o * r + j];
    if (product_xwt(g, x, w, beta, y) != 0) return -1;
    /* h (N, RP) = drop(x) (N, IN) A^T */
    if (lora_project(g, x, A, dropout, dropout_seed, keep, h) != 0) return -1;
    /* y (N, OUT) += s * h B^T */
    thin_spread(n, out, r, s, h, rp, bt, out, y, out);
    return 0;
}

/* The same in W's room (lora_in_room): h (N, RP) = x A^T from x's operand xb, whose R
 * columns after each row then take s h, and y = beta y + [x | s h] (N, IN + R) [W | B]^T. */
static int room_forward(Graph *g, const Tensor *x, const Tensor *w, const Tensor *A,
                        const Tensor *B, float s, float beta, float *h, float *y, MmIn *xb_out) {
    int n = (int)tensor_rows(x), in = (int)w->shape[1], out = (int)w->shape[0];
    int r = (int)A->shape[0], rp = thin_padded(r);
    mm_set_room(g, r);
    MmIn xb = mm_input(g, x->data, n, in);
    *xb_out = xb;
    uint16_t *aq = graph_alloc(g, thin_quads_size(in, rp) * sizeof(uint16_t));
    if (!xb.bits || !aq) return -1;
    thin_quads(aq, A->data, in, r, rp, 1, in); /* A (R, IN): element (t, j) at j IN + t */
    thin_project_bf16(n, in, rp, 1.0f, xb.bits, xb.ld, aq, h, rp);
    operand_put(xb, n, in, r, s, h, rp);
    room_put_b(w, B);
    return mm_gemm(g, n, out, in + r, 1.0f, xb, xb.ld, (MmIn){.bits = w->bf16}, tensor_bf16_ld(w),
                   true, beta, y, out);
}

Tensor *op_lora_linear(Graph *g, Tensor *x, const Tensor *w, const Tensor *b, Tensor *A, Tensor *B,
                       float scaling, float dropout, uint64_t dropout_seed) {
    PROFILE_OP(TENSOR_OP_LINEAR);
    if (!g || !x || !w || !A || !B) return NULL;
    if (!linear_shapes_ok(x, w, b) || A->ndim != 2 || B->ndim != 2 || A->shape[1] != w->shape[1] ||
        B->shape[0] != w->shape[0] || B->shape[1] != A->shape[0] || !A->data || !B->data ||
        !(dropout >= 0.0f && dropout < 1.0f)) {
        graph_fail(g,
                   "op_lora_linear: x %s, W %s, b %s, A %s, B %s, dropout %g do not match (need "
                   "x (N, IN), W (OUT, IN), A (R, IN), B (OUT, R) in F32, dropout in [0, 1))",
                   SHAPE(x), SHAPE(w), b ? SHAPE(b) : "none", SHAPE(A), SHAPE(B), dropout);
        return NULL;
    }
    int n = (int)tensor_rows(x), out = (int)w->shape[0];
    int r = (int)A->shape[0], rp = thin_padded(r);
    Tensor *y = linear_output(g, x, out);
    float *h = graph_alloc(g, (size_t)n * rp * sizeof(float));
    if (!y || !h) return NULL;
    float beta = fill_bias(y->data, b, n, out);
    bool grad = tensor_any_grad(x, A, B), room = lora_in_room(g, w, A, dropout);
    uint8_t *keep = NULL; /* the mask, kept for backward (N * ceil(IN / 8) bytes) */
    if (grad && dropout > 0.0f) {
        keep = graph_alloc(g, (size_t)n * (size_t)DROPOUT_ROW_BYTES(w->shape[1]));
        if (!keep) return NULL;
    }
    MmIn xb = {0};
    if ((room ? room_forward(g, x, w, A, B, scaling, beta, h, y->data, &xb)
              : lora_forward(g, x, w, A, B, scaling, dropout, dropout_seed, keep, beta, h,
                             y->data)) != 0)
        return NULL;
    if (grad) {
        LoraCtx *c = graph_record(g, lora_backward, sizeof *c);
        if (!c) return NULL;
        *c = (LoraCtx){x, y, A, B, w, h, scaling, dropout, keep, {0}};
        if (room && A->requires_grad) { /* dA reads x's bits instead of rounding x again */
            mm_keep_input(g);
            c->xb = xb;
        }
        y->requires_grad = true;
    }
    return y;
}
