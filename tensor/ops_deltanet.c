/* tensor/ops_deltanet.c — the gated delta rule of Qwen3.5's DeltaNet layers, chunked (the
 * algebra is in deltanet_internal.h), and its one-position step for generation.
 *
 * Why chunks: run token by token, the recurrence is a rank-1 update of a (DK, DV) state per
 * position, memory-bound vector work. Within a chunk of 64 positions it becomes products of
 * (64, 128) blocks and one triangular solve, on OpenBLAS in the calling thread; the state
 * crosses the chunk boundary once. Chunks start at every packed row's start (and are shorter
 * at a row's end), so the state never carries from one row into the next and no padding
 * to a multiple of 64 is needed.
 *
 * Threads: one task per (batch row, key head); inside it the key head's value heads run in
 * order, each over its chunks in order. A task's arithmetic does not depend on the thread
 * that runs it, so the results are the same for any thread count. For backward the forward
 * saves the state entering each chunk (n_chunks x NV x DK x DV floats: 64 MB per layer at
 * T 4096, 16 heads of 128). */
#include "tensor/deltanet_internal.h"
#include "tensor/matmul.h"
#include "tensor/profile.h"
#include "tensor/vexp.h"

#include <math.h>
#include <omp.h>
#include <string.h>

static size_t floats_rounded(size_t n) {
    return (n + 15) / 16 * 16;
}

size_t delta_work_bytes(int dk, int dv) {
    size_t C = DN_CHUNK, cc = floats_rounded(C * C);
    size_t n = 2 * floats_rounded(2 * C) + 2 * floats_rounded(C) + 9 * cc +
               2 * floats_rounded(C * (size_t)(dv + dk)) + 2 * floats_rounded(C * (size_t)dv) +
               4 * floats_rounded(C * (size_t)dk) + 3 * floats_rounded((size_t)dk * dv);
    return n * sizeof(float);
}

DeltaWork delta_work_carve(void *mem, int dk, int dv) {
    size_t C = DN_CHUNK, cc = floats_rounded(C * C);
    float *p = mem;
#define TAKE(n) (p += floats_rounded(n), p - floats_rounded(n))
    DeltaWork w;
    w.gam = (double *)TAKE(2 * C);
    w.dgam = (double *)TAKE(2 * C);
    w.eg = TAKE(C);
    w.ekd = TAKE(C);
    float **ccs[] = {&w.E, &w.KK, &w.QK, &w.P, &w.A, &w.dP, &w.dA, &w.dQK, &w.dKK};
    for (size_t i = 0; i < sizeof ccs / sizeof *ccs; i++) *ccs[i] = TAKE(cc);
    w.X = TAKE(C * (size_t)(dv + dk));
    w.dX = TAKE(C * (size_t)(dv + dk));
    w.delta = TAKE(C * (size_t)dv);
    w.ddelta = TAKE(C * (size_t)dv);
    w.qg = TAKE(C * (size_t)dk);
    w.kd = TAKE(C * (size_t)dk);
    w.dqg = TAKE(C * (size_t)dk);
    w.dkd = TAKE(C * (size_t)dk);
    w.S = TAKE((size_t)dk * dv);
    w.dS = TAKE((size_t)dk * dv);
    w.dS_prev = TAKE((size_t)dk * dv);
#undef TAKE
    return w;
}

void delta_solve(const float *A, float *X, int n, int cols, int ldx, bool transpose) {
    PROFILE_OP(TENSOR_OP_PRODUCTS); /* as mm_sgemm: its time leaves the op's class */
    double start = profile_product_start();
    cblas_strsm(CblasRowMajor, CblasLeft, CblasLower, transpose ? CblasTrans : CblasNoTrans,
                CblasUnit, n, cols, 1.0f, A, DN_CHUNK, X, ldx);
    profile_product_done(start, n, cols, (n + 1) / 2); /* n^2 cols multiply-adds, halved */
}

void delta_chunk_prepare(const DeltaCtx *c, DeltaWork *w, int64_t r0, int kh, int h, int n,
                         const float *S0) {
    const int C = DN_CHUNK, dk = c->dk, dv = c->dv, nv = c->nv, ldx = dv + dk;
    const int64_t ldk = c->ldqk, ldv = c->ldv;
    const float *q = c->q->data + c->q0 + r0 * ldk + (int64_t)kh * dk;
    const float *k = c->k->data + c->k0 + r0 * ldk + (int64_t)kh * dk;
    const float *v = c->v->data + c->v0 + r0 * ldv + (int64_t)h * dv;
    const float *g = c->g->data + r0 * nv + h, *beta = c->beta->data + r0 * nv + h;
    for (int i = 0; i < n; i++)
        for (int j = 0; j < dv; j += 16) __builtin_prefetch(v + i * ldv + j);
    double acc = 0.0;
    for (int i = 0; i < n; i++) w->gam[i] = acc += g[(int64_t)i * nv];
    for (int i = 0; i < n; i++) {
        w->eg[i] = (float)w->gam[i];
        w->ekd[i] = (float)(w->gam[n - 1] - w->gam[i]);
        float *e = w->E + i * C;
        for (int j = 0; j <= i; j++) e[j] = (float)(w->gam[i] - w->gam[j]);
        vexp_floats(e, e, i + 1);
    }
    vexp_floats(w->eg, w->eg, n);
    vexp_floats(w->ekd, w->ekd, n);
    mm_sgemm(CblasNoTrans, CblasTrans, n, n, dk, 1.0f, k, (int)ldk, k, (int)ldk, 0.0f, w->KK, C);
    mm_sgemm(CblasNoTrans, CblasTrans, n, n, dk, 1.0f, q, (int)ldk, k, (int)ldk, 0.0f, w->QK, C);
    for (int i = 0; i < n; i++) {
        float b = beta[(int64_t)i * nv];
        const float *e = w->E + i * C, *kk = w->KK + i * C, *qk = w->QK + i * C;
        float *a = w->A + i * C, *p = w->P + i * C;
        for (int j = 0; j < i; j++) a[j] = b * e[j] * kk[j];
        for (int j = 0; j <= i; j++) p[j] = e[j] * qk[j];
        for (int j = i + 1; j < n; j++) p[j] = 0.0f;
        float *x = w->X + (int64_t)i * ldx;
        const float *vi = v + i * ldv, *ki = k + i * ldk;
        float bk = b * w->eg[i];
        for (int j = 0; j < dv; j++) x[j] = b * vi[j];
        for (int j = 0; j < dk; j++) x[dv + j] = bk * ki[j];
    }
    delta_solve(w->A, w->X, n, ldx, ldx, false);
    for (int i = 0; i < n; i++) {
        memcpy(w->delta + (int64_t)i * dv, w->X + (int64_t)i * ldx, (size_t)dv * sizeof(float));
        const float *qi = q + i * ldk, *ki = k + i * ldk;
        float *qg = w->qg + (int64_t)i * dk, *kd = w->kd + (int64_t)i * dk;
        for (int j = 0; j < dk; j++) {
            qg[j] = w->eg[i] * qi[j];
            kd[j] = w->ekd[i] * ki[j];
        }
    }
    mm_sgemm(CblasNoTrans, CblasNoTrans, n, dv, dk, -1.0f, w->X + dv, ldx, S0, dv, 1.0f, w->delta,
             dv);
}

static void prefetch_rows(const float *p, int64_t ld, int rows, int cols) {
    for (int i = 0; i < rows; i++)
        for (int j = 0; j < cols; j += 16) __builtin_prefetch(p + i * ld + j);
}

void delta_prefetch_chunk(const DeltaCtx *c, int64_t r0, int kh, int h, int n, const float *dO) {
    int64_t ldk = c->ldqk, ldv = c->ldv, ldo = (int64_t)c->nv * c->dv;
    prefetch_rows(c->q->data + c->q0 + r0 * ldk + (int64_t)kh * c->dk, ldk, n, c->dk);
    prefetch_rows(c->k->data + c->k0 + r0 * ldk + (int64_t)kh * c->dk, ldk, n, c->dk);
    prefetch_rows(c->v->data + c->v0 + r0 * ldv + (int64_t)h * c->dv, ldv, n, c->dv);
    if (dO) prefetch_rows(dO + r0 * ldo + (int64_t)h * c->dv, ldo, n, c->dv);
}

/* One (batch row b, key head kh) task: its value heads over the row's chunks. */
static void delta_forward_task(const DeltaCtx *c, DeltaWork *w, int b, int kh, float *final_state) {
    const int dk = c->dk, dv = c->dv, nv = c->nv, group = c->nv / c->nk;
    const int64_t ldv = (int64_t)nv * dv, state = (int64_t)dk * dv;
    for (int h = kh * group; h < (kh + 1) * group; h++) {
        for (int ch = c->row_chunk[b]; ch < c->row_chunk[b + 1]; ch++) {
            int n = c->chunk_len[ch];
            int64_t r0 = (int64_t)b * c->seq_len + c->chunk_t0[ch];
            if (c->chunk_reset[ch]) memset(w->S, 0, (size_t)state * sizeof(float));
            if (c->states)
                memcpy(c->states + ((int64_t)ch * nv + h) * state, w->S,
                       (size_t)state * sizeof(float));
            if (ch + 1 < c->row_chunk[b + 1])
                delta_prefetch_chunk(c, (int64_t)b * c->seq_len + c->chunk_t0[ch + 1], kh, h,
                                     c->chunk_len[ch + 1], NULL);
            delta_chunk_prepare(c, w, r0, kh, h, n, w->S);
            float *o = c->o->data + r0 * ldv + (int64_t)h * dv;
            mm_sgemm(CblasNoTrans, CblasNoTrans, n, dv, dk, 1.0f, w->qg, dk, w->S, dv, 0.0f, o,
                     (int)ldv);
            mm_sgemm(CblasNoTrans, CblasNoTrans, n, dv, n, 1.0f, w->P, DN_CHUNK, w->delta, dv, 1.0f,
                     o, (int)ldv);
            float decay = w->eg[n - 1];
            for (int64_t i = 0; i < state; i++) w->S[i] *= decay;
            mm_sgemm(CblasTrans, CblasNoTrans, dk, dv, n, 1.0f, w->kd, dk, w->delta, dv, 1.0f, w->S,
                     dv);
        }
        if (final_state)
            memcpy(final_state + ((int64_t)b * nv + h) * state, w->S,
                   (size_t)state * sizeof(float));
    }
}

/* Chunks of at most DN_CHUNK positions, a new one at every packed row's start. */
static int delta_plan_chunks(Graph *g, DeltaCtx *c, const int32_t *segment) {
    int B = c->batch, T = c->seq_len, n = 0;
    for (int pass = 0; pass < 2; pass++) {
        n = 0;
        for (int b = 0; b < B; b++) {
            const int32_t *seg = segment ? segment + (int64_t)b * T : NULL;
            if (pass) c->row_chunk[b] = n;
            for (int t = 0; t < T;) {
                int len = 1;
                while (len < DN_CHUNK && t + len < T && (!seg || seg[t + len] == seg[t])) len++;
                if (pass) {
                    c->chunk_t0[n] = t;
                    c->chunk_len[n] = len;
                    c->chunk_reset[n] = t == 0 || (seg && seg[t - 1] != seg[t]);
                }
                n++;
                t += len;
            }
        }
        if (pass) c->row_chunk[B] = n;
        if (!pass) {
            c->chunk_t0 = graph_alloc(g, (size_t)n * sizeof(int32_t));
            c->chunk_len = graph_alloc(g, (size_t)n * sizeof(int32_t));
            c->chunk_reset = graph_alloc(g, (size_t)n);
            c->row_chunk = graph_alloc(g, (size_t)(B + 1) * sizeof(int32_t));
            if (!c->chunk_t0 || !c->chunk_len || !c->chunk_reset || !c->row_chunk) return -1;
        }
    }
    c->n_chunks = n;
    return 0;
}

static bool tensor_is(const Tensor *t, int64_t rows, int64_t cols) {
    return t->data && tensor_rows(t) == rows && tensor_cols(t) == cols;
}

static bool spec_ok(Graph *g, const DeltaRuleSpec *s, const char *name) {
    if (s->batch < 1 || s->seq_len < 1 || s->n_k_heads < 1 || s->n_v_heads < 1 ||
        s->n_v_heads % s->n_k_heads || s->k_dim < 1 || s->v_dim < 1) {
        graph_fail(g,
                   "%s: batch %d, seq_len %d, %d key heads of %d, %d value heads of %d (need "
                   "positive sizes, value heads a multiple of key heads)",
                   name, s->batch, s->seq_len, s->n_k_heads, s->k_dim, s->n_v_heads, s->v_dim);
        return false;
    }
    return true;
}

/* The op on the context's inputs (q, k, v, their columns and strides set). */
static Tensor *delta_rule(Graph *g, DeltaCtx in, Tensor *gate, Tensor *beta,
                          const DeltaRuleSpec *s) {
    int64_t n = (int64_t)s->batch * s->seq_len, vcols = (int64_t)s->n_v_heads * s->v_dim;
    bool grad = tensor_any_grad(in.q, in.k, in.v) || tensor_any_grad(gate, beta, NULL);
    DeltaCtx *c = grad ? graph_record(g, delta_backward, sizeof *c) : &in;
    Tensor *o = graph_new_tensor(g, 2, (int64_t[]){n, vcols});
    if (!c || !o) return NULL;
    *c = in;
    c->g = gate;
    c->beta = beta;
    c->o = o;
    c->batch = s->batch;
    c->seq_len = s->seq_len;
    c->nk = s->n_k_heads;
    c->nv = s->n_v_heads;
    c->dk = s->k_dim;
    c->dv = s->v_dim;
    if (delta_plan_chunks(g, c, s->segment) != 0) return NULL;
    int64_t state = (int64_t)s->k_dim * s->v_dim;
    if (grad) {
        c->states = graph_alloc(g, (size_t)(c->n_chunks * s->n_v_heads * state) * sizeof(float));
        if (!c->states) return NULL;
    }
    int threads = omp_get_max_threads();
    size_t per = delta_work_bytes(s->k_dim, s->v_dim);
    char *work = (char *)graph_scratch(g, per * (size_t)threads);
    if (!work) return NULL;
    int tasks = s->batch * s->n_k_heads;
#pragma omp parallel for schedule(dynamic, 1)
    for (int t = 0; t < tasks; t++) {
        DeltaWork w =
            delta_work_carve(work + per * (size_t)omp_get_thread_num(), s->k_dim, s->v_dim);
        delta_forward_task(c, &w, t / s->n_k_heads, t % s->n_k_heads, s->final_state);
    }
    if (grad) o->requires_grad = true;
    return o;
}

Tensor *op_gated_delta_rule(Graph *g, Tensor *q, Tensor *k, Tensor *v, Tensor *gate, Tensor *beta,
                            const DeltaRuleSpec *s) {
    PROFILE_OP(TENSOR_OP_DELTANET);
    if (!g || !q || !k || !v || !gate || !beta || !s) return NULL;
    if (!spec_ok(g, s, "op_gated_delta_rule")) return NULL;
    int64_t n = (int64_t)s->batch * s->seq_len;
    int64_t kcols = (int64_t)s->n_k_heads * s->k_dim, vcols = (int64_t)s->n_v_heads * s->v_dim;
    if (!tensor_is(q, n, kcols) || !tensor_is(k, n, kcols) || !tensor_is(v, n, vcols) ||
        !tensor_is(gate, n, s->n_v_heads) || !tensor_is(beta, n, s->n_v_heads)) {
        graph_fail(g,
                   "op_gated_delta_rule: q %s, k %s, v %s, g %s, beta %s do not fit %lld rows "
                   "of %lld key, %lld value columns and %d heads (F32)",
                   SHAPE(q), SHAPE(k), SHAPE(v), SHAPE(gate), SHAPE(beta), (long long)n,
                   (long long)kcols, (long long)vcols, s->n_v_heads);
        return NULL;
    }
    return delta_rule(g, (DeltaCtx){.q = q, .k = k, .v = v, .ldqk = kcols, .ldv = vcols}, gate,
                      beta, s);
}

Tensor *op_gated_delta_rule_qkv(Graph *g, Tensor *qkv, Tensor *gate, Tensor *beta,
                                const DeltaRuleSpec *s) {
    PROFILE_OP(TENSOR_OP_DELTANET);
    if (!g || !qkv || !gate || !beta || !s) return NULL;
    if (!spec_ok(g, s, "op_gated_delta_rule_qkv")) return NULL;
    int64_t n = (int64_t)s->batch * s->seq_len;
    int64_t kcols = (int64_t)s->n_k_heads * s->k_dim, cols = 2 * kcols + s->n_v_heads * s->v_dim;
    if (!tensor_is(qkv, n, cols) || !tensor_is(gate, n, s->n_v_heads) ||
        !tensor_is(beta, n, s->n_v_heads)) {
        graph_fail(g,
                   "op_gated_delta_rule_qkv: qkv %s, g %s, beta %s do not fit %lld rows of "
                   "%lld columns (q, k, v) and %d heads (F32)",
                   SHAPE(qkv), SHAPE(gate), SHAPE(beta), (long long)n, (long long)cols,
                   s->n_v_heads);
        return NULL;
    }
    DeltaCtx in = {.q = qkv, .k = qkv, .v = qkv, .k0 = kcols, .v0 = 2 * kcols};
    in.ldqk = in.ldv = cols;
    return delta_rule(g, in, gate, beta, s);
}

void tensor_gated_delta_step(float *state, float *o, const float *q, const float *k, const float *v,
                             const float *g, const float *beta, int n_k_heads, int n_v_heads,
                             int k_dim, int v_dim) {
    enum { BLOCK = 64 }; /* columns of S evolve independently: a block of them at a time */
    int group = n_v_heads / n_k_heads;
    for (int h = 0; h < n_v_heads; h++) {
        const float *qh = q + (int64_t)(h / group) * k_dim, *kh = k + (int64_t)(h / group) * k_dim;
        float *S = state + (int64_t)h * k_dim * v_dim, decay = expf(g[h]), b = beta[h];
        for (int j0 = 0; j0 < v_dim; j0 += BLOCK) {
            int m = v_dim - j0 < BLOCK ? v_dim - j0 : BLOCK;
            float read[BLOCK] = {0}, out[BLOCK] = {0}; /* S^T k, then the update delta */
            for (int i = 0; i < k_dim; i++) {
                float *row = S + (int64_t)i * v_dim + j0;
                for (int j = 0; j < m; j++) {
                    row[j] *= decay;
                    read[j] += row[j] * kh[i];
                }
            }
            for (int j = 0; j < m; j++) read[j] = b * (v[(int64_t)h * v_dim + j0 + j] - read[j]);
            for (int i = 0; i < k_dim; i++) {
                float *row = S + (int64_t)i * v_dim + j0;
                for (int j = 0; j < m; j++) {
                    row[j] += kh[i] * read[j];
                    out[j] += row[j] * qh[i];
                }
            }
            memcpy(o + (int64_t)h * v_dim + j0, out, (size_t)m * sizeof(float));
        }
    }
}
