/* tensor/ops_attention.c — causal grouped-query attention with optional packed segments.
 *
 * Work is split over (batch, kv head): one task owns the query heads that share a kv head,
 * so it alone writes dK and dV of that head and adds its query heads' contributions in a
 * fixed order — results are bit-identical for a given thread count. Inside a task each
 * product is a single-threaded sgemm on strided head views (OpenBLAS runs one thread when
 * called inside an OpenMP parallel region). The softmax probabilities P (B, NH, T, T) are
 * saved for backward; masked entries are exactly 0 there, which also zeroes their dS.
 *
 * Causality: query rows are processed in blocks of ATT_BLOCK; rows [t0, t1) only attend to
 * keys [0, t1), so every product skips the key columns above the block's diagonal (about
 * half the work at long T). The blocks run in a fixed order, so dK and dV still sum in a
 * fixed order. */
#include "tensor/graph_internal.h"

#include <cblas.h>
#include <math.h>

#define ATT_BLOCK 64 /* query rows per causal block */

typedef struct {
    Tensor *q, *k, *v, *y;
    int batch, seq_len, n_heads, n_kv_heads, head_dim;
    const int32_t *segment; /* (B*T) arena copy, or NULL */
    float *probs;           /* (B, NH, T, T) */
} AttentionCtx;

static inline bool attend(const int32_t *seg, int t, int s) {
    return s <= t && (!seg || seg[s] == seg[t]);
}

/* Masked softmax of rows [t0, t1) of p (T, T) in place; only s <= t was computed, every
 * s > t becomes 0. seg is the sequence's (T) segment ids or NULL. */
static void masked_softmax(float *p, int T, int t0, int t1, const int32_t *seg) {
    for (int t = t0; t < t1; t++) {
        float *row = p + (int64_t)t * T;
        float mx = row[t]; /* s = t is always allowed */
        for (int s = 0; s < t; s++)
            if (attend(seg, t, s) && row[s] > mx) mx = row[s];
        float sum = 0.0f;
        for (int s = 0; s <= t; s++) {
            float e = attend(seg, t, s) ? expf(row[s] - mx) : 0.0f;
            row[s] = e;
            sum += e;
        }
        float inv = 1.0f / sum;
        for (int s = 0; s <= t; s++) row[s] *= inv;
        for (int s = t + 1; s < T; s++) row[s] = 0.0f;
    }
}

static void attention_backward(Graph *g, void *p) {
    AttentionCtx *c = p;
    const float *dy = c->y->grad;
    if (!dy) return;
    float *dq = graph_grad(g, c->q), *dk = graph_grad(g, c->k), *dv = graph_grad(g, c->v);
    int B = c->batch, T = c->seq_len, NH = c->n_heads, NKV = c->n_kv_heads, D = c->head_dim;
    int group = NH / NKV, ldq = NH * D, ldk = NKV * D;
    float *dps = graph_scratch(g, (size_t)B * NKV * T * T * sizeof(float));
    if (graph_failed(g)) return;
    float scale = 1.0f / sqrtf((float)D);
#pragma omp parallel for schedule(static)
    for (int task = 0; task < B * NKV; task++) {
        int b = task / NKV, kvh = task % NKV;
        int64_t row0 = (int64_t)b * T;
        const float *K = c->k->data + row0 * ldk + (int64_t)kvh * D;
        const float *V = c->v->data + row0 * ldk + (int64_t)kvh * D;
        float *dP = dps + (int64_t)task * T * T; /* (T, T), becomes dS */
        for (int j = 0; j < group; j++) {
            int h = kvh * group + j;
            const float *P = c->probs + ((int64_t)b * NH + h) * T * T;
            const float *Q = c->q->data + row0 * ldq + (int64_t)h * D;
            const float *dO = dy + row0 * ldq + (int64_t)h * D;
            for (int t0 = 0; t0 < T; t0 += ATT_BLOCK) {
                int t1 = t0 + ATT_BLOCK < T ? t0 + ATT_BLOCK : T, m = t1 - t0;
                const float *Pb = P + (int64_t)t0 * T;
                float *dPb = dP + (int64_t)t0 * T;
                /* in the forward pass this was: O = P V; so dP = dO V^T and dV += P^T dO,
                 * rows [t0, t1) against keys [0, t1) only (P is 0 beyond) */
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, m, t1, D, 1.0f,
                            dO + (int64_t)t0 * ldq, ldq, V, ldk, 0.0f, dPb, T);
                if (dv)
                    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, t1, D, m, 1.0f, Pb, T,
                                dO + (int64_t)t0 * ldq, ldq, 1.0f,
                                dv + row0 * ldk + (int64_t)kvh * D, ldk);
                /* softmax backward: dS = P * (dP - sum_s P dP), s <= t (dS is 0 beyond) */
                for (int t = t0; t < t1; t++) {
                    const float *pr = P + (int64_t)t * T;
                    float *dr = dP + (int64_t)t * T;
                    float dot = 0.0f;
                    for (int s = 0; s <= t; s++) dot += pr[s] * dr[s];
                    for (int s = 0; s < t1; s++) dr[s] = pr[s] * (dr[s] - dot);
                }
                /* S = scale Q K^T: dQ += scale dS K, dK += scale dS^T Q */
                if (dq)
                    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, m, D, t1, scale, dPb, T,
                                K, ldk, 1.0f, dq + (row0 + t0) * ldq + (int64_t)h * D, ldq);
                if (dk)
                    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, t1, D, m, scale, dPb, T,
                                Q + (int64_t)t0 * ldq, ldq, 1.0f,
                                dk + row0 * ldk + (int64_t)kvh * D, ldk);
            }
        }
    }
}

Tensor *op_attention(Graph *g, Tensor *q, Tensor *k, Tensor *v, int batch, int seq_len, int n_heads,
                     int n_kv_heads, int head_dim, const int32_t *segment) {
    if (!g || !q || !k || !v) return NULL;
    int64_t rows = (int64_t)batch * seq_len;
    if (batch < 1 || seq_len < 1 || n_heads < 1 || n_kv_heads < 1 || head_dim < 1 ||
        n_heads % n_kv_heads || tensor_rows(q) != rows || tensor_rows(k) != rows ||
        tensor_rows(v) != rows || tensor_cols(q) != (int64_t)n_heads * head_dim ||
        tensor_cols(k) != (int64_t)n_kv_heads * head_dim ||
        tensor_cols(v) != (int64_t)n_kv_heads * head_dim) {
        graph_fail(g);
        return NULL;
    }
    int B = batch, T = seq_len, NH = n_heads, NKV = n_kv_heads, D = head_dim;
    int group = NH / NKV, ldq = NH * D, ldk = NKV * D;
    Tensor *y = graph_new_tensor(g, q->ndim, q->shape);
    float *probs = graph_alloc(g, (size_t)B * NH * T * T * sizeof(float));
    const int32_t *seg = segment ? graph_copy_ids(g, segment, rows) : NULL;
    if (!y || !probs || (segment && !seg)) return NULL;
    float scale = 1.0f / sqrtf((float)D);
#pragma omp parallel for schedule(static)
    for (int task = 0; task < B * NKV; task++) {
        int b = task / NKV, kvh = task % NKV;
        int64_t row0 = (int64_t)b * T;
        const float *K = k->data + row0 * ldk + (int64_t)kvh * D;
        const float *V = v->data + row0 * ldk + (int64_t)kvh * D;
        for (int j = 0; j < group; j++) {
            int h = kvh * group + j;
            float *P = probs + ((int64_t)b * NH + h) * T * T;
            const float *Q = q->data + row0 * ldq + (int64_t)h * D;
            float *O = y->data + row0 * ldq + (int64_t)h * D;
            for (int t0 = 0; t0 < T; t0 += ATT_BLOCK) {
                int t1 = t0 + ATT_BLOCK < T ? t0 + ATT_BLOCK : T, m = t1 - t0;
                float *Pb = P + (int64_t)t0 * T;
                /* S rows [t0, t1) x keys [0, t1) = scale Q K^T; P = softmax over allowed s;
                 * O rows [t0, t1) = P V */
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, m, t1, D, scale,
                            Q + (int64_t)t0 * ldq, ldq, K, ldk, 0.0f, Pb, T);
                masked_softmax(P, T, t0, t1, seg ? seg + row0 : NULL);
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, m, D, t1, 1.0f, Pb, T, V,
                            ldk, 0.0f, O + (int64_t)t0 * ldq, ldq);
            }
        }
    }
    if (tensor_any_grad(q, k, v)) {
        AttentionCtx *c = graph_record(g, attention_backward, sizeof *c);
        if (!c) return NULL;
        *c = (AttentionCtx){q, k, v, y, B, T, NH, NKV, D, seg, probs};
        y->requires_grad = true;
    }
    return y;
}
