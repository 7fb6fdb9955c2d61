/* tensor/ops_attention_bf16.c — the blocks of causal attention in BF16 precision.
 *
 * The same steps as the F32 blocks in ops_attention.c, with every product on bf16-rounded
 * operands (tensor/matmul.h): q, k and v are rounded once in the forward pass and kept for
 * backward (in place under the emulation, so op_attention leaves them rounded there), the output
 * gradient once per backward, and each block's P or dS rows once per product, into the calling
 * thread's block buffer. The softmax, its backward and every output stay f32. Products whose left
 * operand is a transposed P or dS block (dV += P^T dO, dK += scale dS^T Q) get the block written
 * transposed by the rounding, so every product is A (m, k) times B or B^T with A untransposed. Each
 * thread uses only its own buffer (omp_get_thread_num()), and a buffer is consumed by one product
 * before the next rounding, so one (ATT_BLOCK, T) block per thread is enough. */
#include "tensor/attention_internal.h"

#include <math.h>
#include <omp.h>

int attention_bf16_prepare(Graph *g, AttentionCtx *c) {
    c->bf16 = true;
    c->g = g;
    /* only attention reads q, k and v (RoPE's and the projections' backward do not) */
    c->qb = mm_input_in_place(g, c->q->data, c->q->size);
    c->kb = mm_input_in_place(g, c->k->data, c->k->size);
    c->vb = mm_input_in_place(g, c->v->data, c->v->size);
    c->blockbuf_threads = omp_get_max_threads();
    c->blockbuf_bytes = ((size_t)ATT_BLOCK * c->seq_len * mm_elem_bytes(g) + 63) / 64 * 64;
    c->blockbuf = graph_alloc(g, c->blockbuf_bytes * (size_t)c->blockbuf_threads);
    return graph_failed(g) ? -1 : 0;
}

static void *thread_block(const AttentionCtx *c) {
    int t = omp_get_thread_num();
    if (t >= c->blockbuf_threads) { /* more threads than at forward time: refuse */
        graph_fail(c->g, "op_attention: thread %d of %d, more threads than the forward pass had", t,
                   c->blockbuf_threads);
        return NULL;
    }
    return c->blockbuf + (size_t)t * c->blockbuf_bytes;
}

void attention_forward_block_bf16(const AttentionCtx *c, int b, int h, int t0, int t1) {
    int T = c->seq_len, NH = c->n_heads, D = c->head_dim;
    int kvh = h / (NH / c->n_kv_heads), ldq = NH * D, ldk = c->n_kv_heads * D, m = t1 - t0;
    int64_t row0 = (int64_t)b * T;
    float scale = 1.0f / sqrtf((float)D);
    void *buf = thread_block(c);
    if (!buf) return;
    MmIn Q = mm_at(c->qb, (row0 + t0) * ldq + (int64_t)h * D);
    MmIn K = mm_at(c->kb, row0 * ldk + (int64_t)kvh * D);
    MmIn V = mm_at(c->vb, row0 * ldk + (int64_t)kvh * D);
    float *P = c->probs + ((int64_t)b * NH + h) * T * T;
    float *Pb = P + (int64_t)t0 * T;
    float *O = c->y->data + (row0 + t0) * ldq + (int64_t)h * D;
    /* S rows [t0, t1) x keys [0, t1) = scale Q K^T; P = softmax; O = P V */
    if (mm_gemm(c->g, m, t1, D, scale, Q, ldq, K, ldk, true, 0.0f, Pb, T) != 0) return;
    masked_softmax(P, T, t0, t1, c->segment ? c->segment + row0 : NULL);
    MmIn Pr = mm_block(c->g, buf, Pb, m, t1, T, false); /* (m, t1) */
    mm_gemm(c->g, m, D, t1, 1.0f, Pr, t1, V, ldk, false, 0.0f, O, ldq);
}

void attention_backward_block_bf16(const AttentionCtx *c, float *dq, float *ds, int b, int h,
                                   int t0, int t1) {
    int T = c->seq_len, NH = c->n_heads, D = c->head_dim;
    int kvh = h / (NH / c->n_kv_heads), ldq = NH * D, ldk = c->n_kv_heads * D, m = t1 - t0;
    int64_t row0 = (int64_t)b * T;
    float scale = 1.0f / sqrtf((float)D);
    void *buf = thread_block(c);
    if (!buf) return;
    MmIn K = mm_at(c->kb, row0 * ldk + (int64_t)kvh * D);
    MmIn V = mm_at(c->vb, row0 * ldk + (int64_t)kvh * D);
    MmIn dO = mm_at(c->dyb, (row0 + t0) * ldq + (int64_t)h * D);
    const float *P = c->probs + ((int64_t)b * NH + h) * T * T;
    float *dsb = ds + (int64_t)t0 * T;
    /* in the forward pass this was: O = P V; so dP = dO V^T (keys [0, t1)) */
    if (mm_gemm(c->g, m, t1, D, 1.0f, dO, ldq, V, ldk, true, 0.0f, dsb, T) != 0) return;
    softmax_backward_rows(P, ds, T, t0, t1);
    if (!dq) return;
    /* S = scale Q K^T: dQ += scale dS K */
    MmIn dS = mm_block(c->g, buf, dsb, m, t1, T, false); /* (m, t1) */
    mm_gemm(c->g, m, D, t1, scale, dS, t1, K, ldk, false, 1.0f,
            dq + (row0 + t0) * ldq + (int64_t)h * D, ldq);
}

void attention_backward_kv_block_bf16(const AttentionCtx *c, float *acc, const float *p,
                                      bool dk_side, int b, int h, int t0, int t1) {
    int T = c->seq_len, NH = c->n_heads, D = c->head_dim;
    int kvh = h / (NH / c->n_kv_heads), ldq = NH * D, ldk = c->n_kv_heads * D, m = t1 - t0;
    int64_t row0 = (int64_t)b * T;
    void *buf = thread_block(c);
    if (!buf) return;
    /* dV += P^T dO, or dK += scale dS^T Q: the (m, t1) block of p transposed to (t1, m) */
    MmIn X = mm_at(dk_side ? c->qb : c->dyb, (row0 + t0) * ldq + (int64_t)h * D);
    MmIn pt = mm_block(c->g, buf, p + (int64_t)t0 * T, m, t1, T, true);
    float alpha = dk_side ? 1.0f / sqrtf((float)D) : 1.0f;
    mm_gemm(c->g, t1, D, m, alpha, pt, m, X, ldq, false, 1.0f, acc + row0 * ldk + (int64_t)kvh * D,
            ldk);
}
