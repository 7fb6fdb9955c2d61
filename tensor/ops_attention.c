/* tensor/ops_attention.c — causal grouped-query attention with optional packed segments.
 *
 * Every product works on query rows [t0, t1) of one (batch, head) — a causal block — and
 * is a single-threaded sgemm on strided head views (OpenBLAS runs one thread when called
 * inside an OpenMP parallel region). When the (batch, kv head) pairs divide evenly among
 * the threads, one task owns the query heads sharing a kv head and runs their blocks in
 * order, as a serial loop would, the block's P and dS staying in cache. Otherwise (B = 1
 * with 3 kv heads on 2 threads left one thread idle a third of the time) the forward pass
 * and the dS / dQ part of backward run one task per (batch, head, block), and dK and dV
 * are summed afterwards, one task per (batch, kv head, dK or dV), in the same fixed order
 * (head, block). Either way every value comes from the same sequence of operations, so
 * the results do not depend on the split and are bit-identical for a given thread count.
 * The softmax probabilities P (B, NH, T, T) are saved for backward; masked entries are
 * exactly 0 there, which also zeroes their dS. Of the rows of a block, only key columns
 * [0, t1) are ever written or read: the rest of P stays as the arena left it.
 *
 * Causality: query rows are processed in blocks of ATT_BLOCK; rows [t0, t1) only attend to
 * keys [0, t1), so every product skips the key columns above the block's diagonal (about
 * half the work at long T).
 *
 * In BF16 precision the blocks run the same steps on bf16-rounded operands
 * (tensor/ops_attention_bf16.c); the task loops and the order of every sum are these. */
#include "tensor/attention_internal.h"
#include "tensor/profile.h"
#include "tensor/vexp.h"

#include <math.h>
#include <string.h>

static inline bool attend(const int32_t *seg, int t, int s) {
    return s <= t && (!seg || seg[s] == seg[t]);
}

void masked_softmax(float *p, int T, int t0, int t1, const int32_t *seg) {
    for (int t = t0; t < t1; t++) {
        float *row = p + (int64_t)t * T;
        float mx = row[t]; /* s = t is always allowed */
        for (int s = 0; s < t; s++)
            if (attend(seg, t, s) && row[s] > mx) mx = row[s];
        for (int s = 0; s <= t; s++) row[s] -= mx;
        vexp_floats(row, row, t + 1); /* masked entries' exps are computed and dropped */
        if (seg)
            for (int s = 0; s < t; s++)
                if (seg[s] != seg[t]) row[s] = 0.0f;
        float sum = 0.0f;
        for (int s = 0; s <= t; s++) sum += row[s];
        float inv = 1.0f / sum;
        for (int s = 0; s <= t; s++) row[s] *= inv;
        memset(row + t + 1, 0, (size_t)(t1 - t - 1) * sizeof(float));
    }
}

/* Whether the (batch, kv head) tasks alone would leave a thread idle. */
static bool split_blocks(int B, int NKV) {
    int threads = tensor_threads();
    return threads > 1 && (B * NKV) % threads != 0;
}

void block_rows(int blk, int T, int *t0, int *t1) {
    *t0 = blk * ATT_BLOCK;
    *t1 = *t0 + ATT_BLOCK < T ? *t0 + ATT_BLOCK : T;
}

/* Forward of rows [t0, t1) of head h of sequence b: P rows and O rows. */
static void forward_block(const AttentionCtx *c, int b, int h, int t0, int t1) {
    if (c->bf16) {
        attention_forward_block_bf16(c, b, h, t0, t1);
        return;
    }
    int T = c->seq_len, NH = c->n_heads, D = c->head_dim;
    int kvh = h / (NH / c->n_kv_heads), ldq = NH * D, ldk = c->n_kv_heads * D, m = t1 - t0;
    int64_t row0 = (int64_t)b * T;
    float scale = 1.0f / sqrtf((float)D);
    const float *K = c->k->data + row0 * ldk + (int64_t)kvh * D;
    const float *V = c->v->data + row0 * ldk + (int64_t)kvh * D;
    float *P = c->probs + ((int64_t)b * NH + h) * T * T;
    const float *Q = c->q->data + row0 * ldq + (int64_t)h * D;
    float *O = c->y->data + row0 * ldq + (int64_t)h * D;
    float *Pb = P + (int64_t)t0 * T;
    /* S rows [t0, t1) x keys [0, t1) = scale Q K^T; P = softmax over allowed s;
     * O rows [t0, t1) = P V */
    mm_sgemm(CblasNoTrans, CblasTrans, m, t1, D, scale, Q + (int64_t)t0 * ldq, ldq, K, ldk, 0.0f,
             Pb, T);
    masked_softmax(P, T, t0, t1, c->segment ? c->segment + row0 : NULL);
    mm_sgemm(CblasNoTrans, CblasNoTrans, m, D, t1, 1.0f, Pb, T, V, ldk, 0.0f, O + (int64_t)t0 * ldq,
             ldq);
}

/* Backward of rows [t0, t1) of head h of sequence b, except dK and dV: dS rows into
 * ds (T, T) of this (batch, head) and dQ += scale dS K. */
static void backward_block(const AttentionCtx *c, const float *dy, float *dq, float *ds, int b,
                           int h, int t0, int t1) {
    if (c->bf16) {
        attention_backward_block_bf16(c, dq, ds, b, h, t0, t1);
        return;
    }
    int T = c->seq_len, NH = c->n_heads, D = c->head_dim;
    int kvh = h / (NH / c->n_kv_heads), ldq = NH * D, ldk = c->n_kv_heads * D, m = t1 - t0;
    int64_t row0 = (int64_t)b * T;
    float scale = 1.0f / sqrtf((float)D);
    const float *K = c->k->data + row0 * ldk + (int64_t)kvh * D;
    const float *V = c->v->data + row0 * ldk + (int64_t)kvh * D;
    const float *P = c->probs + ((int64_t)b * NH + h) * T * T;
    const float *dO = dy + row0 * ldq + (int64_t)h * D;
    /* in the forward pass this was: O = P V; so dP = dO V^T, rows [t0, t1) against keys
     * [0, t1) only (P is 0 beyond) */
    mm_sgemm(CblasNoTrans, CblasTrans, m, t1, D, 1.0f, dO + (int64_t)t0 * ldq, ldq, V, ldk, 0.0f,
             ds + (int64_t)t0 * T, T);
    softmax_backward_rows(P, ds, T, t0, t1);
    /* S = scale Q K^T: dQ += scale dS K */
    if (dq)
        mm_sgemm(CblasNoTrans, CblasNoTrans, m, D, t1, scale, ds + (int64_t)t0 * T, T, K, ldk, 1.0f,
                 dq + (row0 + t0) * ldq + (int64_t)h * D, ldq);
}

/* dV (dk_side false) += P^T dO, or dK += scale dS^T Q, for rows [t0, t1) of head h of
 * sequence b; p is that head's (T, T) P or dS. */
static void backward_kv_block(const AttentionCtx *c, const float *dy, float *acc, const float *p,
                              bool dk_side, int b, int h, int t0, int t1) {
    if (c->bf16) {
        attention_backward_kv_block_bf16(c, acc, p, dk_side, b, h, t0, t1);
        return;
    }
    int T = c->seq_len, NH = c->n_heads, D = c->head_dim;
    int kvh = h / (NH / c->n_kv_heads), ldq = NH * D, ldk = c->n_kv_heads * D;
    int64_t row0 = (int64_t)b * T;
    const float *X = (dk_side ? c->q->data : dy) + row0 * ldq + (int64_t)h * D;
    float alpha = dk_side ? 1.0f / sqrtf((float)D) : 1.0f;
    mm_sgemm(CblasTrans, CblasNoTrans, t1, D, t1 - t0, alpha, p + (int64_t)t0 * T, T,
             X + (int64_t)t0 * ldq, ldq, 1.0f, acc + row0 * ldk + (int64_t)kvh * D, ldk);
}

static void attention_backward(Graph *g, void *p) {
    AttentionCtx *c = p;
    const float *dy = c->y->grad;
    if (!dy) return;
    float *dq = graph_grad(g, c->q), *dk = graph_grad(g, c->k), *dv = graph_grad(g, c->v);
    int B = c->batch, T = c->seq_len, NH = c->n_heads, NKV = c->n_kv_heads;
    int group = NH / NKV, nb = (T + ATT_BLOCK - 1) / ATT_BLOCK;
    bool split = split_blocks(B, NKV);
    /* dS of every (batch, head) when split, else one (T, T) per (batch, kv head) task */
    float *dss = graph_scratch(g, (size_t)B * (split ? NH : NKV) * T * T * sizeof(float));
    if (c->bf16) c->dyb = mm_input_d(g, dy, c->y->size);
    if (graph_failed(g)) return;
    if (!split) {
#pragma omp parallel for schedule(static)
        for (int task = 0; task < B * NKV; task++) {
            int b = task / NKV, kvh = task % NKV;
            float *ds = dss + (int64_t)task * T * T;
            for (int h = kvh * group; h < (kvh + 1) * group; h++) {
                const float *P = c->probs + ((int64_t)b * NH + h) * T * T;
                for (int blk = 0, t0, t1; blk < nb; blk++) {
                    block_rows(blk, T, &t0, &t1);
                    if (dv) backward_kv_block(c, dy, dv, P, false, b, h, t0, t1);
                    backward_block(c, dy, dq, ds, b, h, t0, t1);
                    if (dk) backward_kv_block(c, dy, dk, ds, true, b, h, t0, t1);
                }
            }
        }
        return;
    }
    /* heaviest (last) blocks first so that dynamic scheduling balances */
#pragma omp parallel for schedule(dynamic, 1)
    for (int task = 0; task < B * NH * nb; task++) {
        int bh = task / nb, t0, t1;
        block_rows(nb - 1 - task % nb, T, &t0, &t1);
        backward_block(c, dy, dq, dss + (int64_t)bh * T * T, bh / NH, bh % NH, t0, t1);
    }
#pragma omp parallel for schedule(dynamic, 1)
    for (int task = 0; task < 2 * B * NKV; task++) {
        int b = task / (2 * NKV), kvh = task / 2 % NKV;
        bool dk_side = task % 2;
        float *acc = dk_side ? dk : dv;
        if (!acc) continue;
        for (int h = kvh * group; h < (kvh + 1) * group; h++) {
            int64_t bh = (int64_t)b * NH + h;
            const float *src = (dk_side ? dss : c->probs) + bh * T * T;
            for (int blk = 0, t0, t1; blk < nb; blk++) {
                block_rows(blk, T, &t0, &t1);
                backward_kv_block(c, dy, acc, src, dk_side, b, h, t0, t1);
            }
        }
    }
}

void softmax_backward_rows(const float *P, float *ds, int T, int t0, int t1) {
    for (int t = t0; t < t1; t++) {
        const float *pr = P + (int64_t)t * T;
        float *dr = ds + (int64_t)t * T;
        float dot = 0.0f;
        for (int s = 0; s <= t; s++) dot += pr[s] * dr[s];
        for (int s = 0; s < t1; s++) dr[s] = pr[s] * (dr[s] - dot);
    }
}

Tensor *op_attention(Graph *g, Tensor *q, Tensor *k, Tensor *v, int batch, int seq_len, int n_heads,
                     int n_kv_heads, int head_dim, const int32_t *segment) {
    PROFILE_OP(TENSOR_OP_ATTENTION);
    if (!g || !q || !k || !v) return NULL;
    int64_t rows = (int64_t)batch * seq_len;
    if (batch < 1 || seq_len < 1 || n_heads < 1 || n_kv_heads < 1 || head_dim < 1 ||
        n_heads % n_kv_heads || tensor_rows(q) != rows || tensor_rows(k) != rows ||
        tensor_rows(v) != rows || tensor_cols(q) != (int64_t)n_heads * head_dim ||
        tensor_cols(k) != (int64_t)n_kv_heads * head_dim ||
        tensor_cols(v) != (int64_t)n_kv_heads * head_dim) {
        graph_fail(g,
                   "op_attention: q %s, k %s, v %s do not fit batch %d x seq_len %d with %d "
                   "heads / %d kv heads of size %d",
                   SHAPE(q), SHAPE(k), SHAPE(v), batch, seq_len, n_heads, n_kv_heads, head_dim);
        return NULL;
    }
    int B = batch, T = seq_len, NH = n_heads, NKV = n_kv_heads, D = head_dim;
    int group = NH / NKV, nb = (T + ATT_BLOCK - 1) / ATT_BLOCK;
    Tensor *y = graph_new_tensor(g, q->ndim, q->shape);
    float *probs = graph_alloc(g, (size_t)B * NH * T * T * sizeof(float));
    const int32_t *seg = segment ? graph_copy_ids(g, segment, rows) : NULL;
    if (!y || !probs || (segment && !seg)) return NULL;
    AttentionCtx ctx = {.q = q,
                        .k = k,
                        .v = v,
                        .y = y,
                        .batch = B,
                        .seq_len = T,
                        .n_heads = NH,
                        .n_kv_heads = NKV,
                        .head_dim = D,
                        .segment = seg,
                        .probs = probs};
    if (graph_precision(g) == TENSOR_PRECISION_BF16 && attention_bf16_prepare(g, &ctx) != 0)
        return NULL;
    if (split_blocks(B, NKV)) {
#pragma omp parallel for schedule(dynamic, 1)
        for (int task = 0; task < B * NH * nb; task++) {
            int bh = task / nb, t0, t1;
            block_rows(nb - 1 - task % nb, T, &t0, &t1);
            forward_block(&ctx, bh / NH, bh % NH, t0, t1);
        }
    } else {
#pragma omp parallel for schedule(static)
        for (int task = 0; task < B * NKV; task++) {
            int b = task / NKV, kvh = task % NKV;
            for (int h = kvh * group; h < (kvh + 1) * group; h++)
                for (int blk = 0, t0, t1; blk < nb; blk++) {
                    block_rows(blk, T, &t0, &t1);
                    forward_block(&ctx, b, h, t0, t1);
                }
        }
    }
    if (graph_failed(g)) return NULL; /* a BF16-precision product failed */
    if (tensor_any_grad(q, k, v)) {
        AttentionCtx *c = graph_record(g, attention_backward, sizeof *c);
        if (!c) return NULL;
        *c = ctx;
        y->requires_grad = true;
    }
    return y;
}
