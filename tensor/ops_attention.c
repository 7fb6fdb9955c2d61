/* tensor/ops_attention.c — causal grouped-query attention with optional packed segments.
 *
 * Work is split over (batch, kv head): one task owns the query heads that share a kv head,
 * so it alone writes dK and dV of that head and adds its query heads' contributions in a
 * fixed order — results are bit-identical for a given thread count. Inside a task each
 * product is a single-threaded sgemm on strided head views (OpenBLAS runs one thread when
 * called inside an OpenMP parallel region). The softmax probabilities P (B, NH, T, T) are
 * saved for backward; masked entries are exactly 0 there, which also zeroes their dS. */
#include "tensor/graph_internal.h"

#include <cblas.h>
#include <math.h>

typedef struct {
    Tensor *q, *k, *v, *y;
    int batch, seq_len, n_heads, n_kv_heads, head_dim;
    const int32_t *segment; /* (B*T) arena copy, or NULL */
    float *probs;           /* (B, NH, T, T) */
} AttentionCtx;

static inline bool attend(const int32_t *seg, int t, int s) {
    return s <= t && (!seg || seg[s] == seg[t]);
}

/* Masked softmax of each row of p (T, T) in place; seg is the row's (T) segment ids. */
static void masked_softmax(float *p, int T, const int32_t *seg) {
    for (int t = 0; t < T; t++) {
        float *row = p + (int64_t)t * T;
        float mx = row[t]; /* s = t is always allowed */
        for (int s = 0; s < t; s++)
            if (attend(seg, t, s) && row[s] > mx) mx = row[s];
        float sum = 0.0f;
        for (int s = 0; s < T; s++) {
            float e = attend(seg, t, s) ? expf(row[s] - mx) : 0.0f;
            row[s] = e;
            sum += e;
        }
        float inv = 1.0f / sum;
        for (int s = 0; s <= t; s++) row[s] *= inv;
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
            /* in the forward pass this was: O = P V; so dP = dO V^T and dV += P^T dO */
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, T, T, D, 1.0f, dO, ldq, V, ldk,
                        0.0f, dP, T);
            if (dv)
                cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, T, D, T, 1.0f, P, T, dO, ldq,
                            1.0f, dv + row0 * ldk + (int64_t)kvh * D, ldk);
            /* softmax backward: dS = P * (dP - sum_s P dP) */
            for (int t = 0; t < T; t++) {
                const float *pr = P + (int64_t)t * T;
                float *dr = dP + (int64_t)t * T;
                float dot = 0.0f;
                for (int s = 0; s <= t; s++) dot += pr[s] * dr[s];
                for (int s = 0; s < T; s++) dr[s] = pr[s] * (dr[s] - dot);
            }
            /* S = scale Q K^T: dQ += scale dS K, dK += scale dS^T Q */
            if (dq)
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, T, D, T, scale, dP, T, K,
                            ldk, 1.0f, dq + row0 * ldq + (int64_t)h * D, ldq);
            if (dk)
                cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, T, D, T, scale, dP, T, Q, ldq,
                            1.0f, dk + row0 * ldk + (int64_t)kvh * D, ldk);
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
            /* S (T, T) = scale Q_h K^T; P = softmax over allowed s; O_h = P V */
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, T, T, D, scale,
                        q->data + row0 * ldq + (int64_t)h * D, ldq, K, ldk, 0.0f, P, T);
            masked_softmax(P, T, seg ? seg + row0 : NULL);
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, T, D, T, 1.0f, P, T, V, ldk,
                        0.0f, y->data + row0 * ldq + (int64_t)h * D, ldq);
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
