/* tensor/ops_deltanet_backward.c — the gated delta rule's backward, chunk by chunk in reverse.
 *
 * Each chunk is recomputed from the state saved at its start (delta_chunk_prepare), then
 * the forward's equations (deltanet_internal.h) are differentiated in reverse order, with
 * dS the gradient of the state leaving the chunk (0 at a packed row's last chunk):
 *   dDelta = P^T dO + Kd dS,  dP = dO Delta^T,  dQg = dO S0^T,  dKd = Delta dS^T
 *   dS0 = exp(gam_last) dS + Qg^T dO - W^T dDelta            (dS of the chunk before)
 *   [dVb | dKb] = (I + A)^-T [dDelta | -dDelta S0^T]          (the solve's backward)
 *   dA = -[dVb | dKb] [U | W]^T                               (the inverse's backward)
 * then the element-wise steps to dK K^T, dQ K^T, the decays E and the gates, and the
 * products back to dq and dk. Decays enter only as exp(gam_i - gam_j) and exp(gam_i), so the
 * gradient of g is dgam summed from the chunk's end (gam_i = sum_{j <= i} g_j).
 * Tasks as in the forward: one per (batch row, key head), so each gradient element has one
 * writer, and dq, dk collect the key head's value heads in order. */
#include "tensor/deltanet_internal.h"
#include "tensor/matmul.h"

#include <omp.h>
#include <string.h>

typedef struct {
    float *dq, *dk, *dv, *dg, *dbeta;
} DeltaGrads;

/* a.b in eight float32 lanes (j mod 8), then the lanes in order: a fixed order that the
 * compiler vectorises (with double sums the backward's own loops took 8.9% of
 * bench_deltanet's cycles at T 4096, 3.5% with these). */
static float dot(const float *a, const float *b, int n) {
    float lane[8] = {0};
    int j = 0;
    for (; j + 8 <= n; j += 8)
        for (int l = 0; l < 8; l++) lane[l] += a[j + l] * b[j + l];
    for (; j < n; j++) lane[j % 8] += a[j] * b[j];
    float s = 0.0f;
    for (int l = 0; l < 8; l++) s += lane[l];
    return s;
}

/* One chunk at rows [r0, r0 + n); dS is the gradient of its final state (has_dS false: 0).
 * Leaves the gradient of its entering state in w->dS_prev. */
static void chunk_backward(const DeltaCtx *c, DeltaWork *w, const DeltaGrads *d, int64_t r0, int kh,
                           int h, int n, const float *S0, bool has_dS) {
    const int C = DN_CHUNK, dk = c->dk, dv = c->dv, nv = c->nv, ldx = dv + dk;
    const int64_t ldk = c->ldqk, ldv = c->ldv, ldo = (int64_t)nv * dv, state = (int64_t)dk * dv;
    const float *q = c->q->data + c->q0 + r0 * ldk + (int64_t)kh * dk;
    const float *k = c->k->data + c->k0 + r0 * ldk + (int64_t)kh * dk;
    const float *v = c->v->data + c->v0 + r0 * ldv + (int64_t)h * dv;
    const float *beta = c->beta->data + r0 * nv + h;
    const float *dO = c->o->grad + r0 * ldo + (int64_t)h * dv;
    float *dq = d->dq + r0 * ldk + (int64_t)kh * dk, *dk_ = d->dk + r0 * ldk + (int64_t)kh * dk;
    float *dvv = d->dv + r0 * ldv + (int64_t)h * dv;
    float *dg = d->dg + r0 * nv + h, *dbeta = d->dbeta + r0 * nv + h;

    delta_chunk_prepare(c, w, r0, kh, h, n, S0);
    float *U = w->X, *W = w->X + dv, *dVb = w->dX, *dKb = w->dX + dv;
    /* the state's paths: S_end = eg_L S0 + Kd^T Delta */
    mm_sgemm(CblasTrans, CblasNoTrans, n, dv, n, 1.0f, w->P, C, dO, (int)ldo, 0.0f, w->ddelta, dv);
    double dgam_last = 0.0;
    float eg_last = w->eg[n - 1];
    if (has_dS) {
        mm_sgemm(CblasNoTrans, CblasNoTrans, n, dv, dk, 1.0f, w->kd, dk, w->dS, dv, 1.0f, w->ddelta,
                 dv);
        mm_sgemm(CblasNoTrans, CblasTrans, n, dk, dv, 1.0f, w->delta, dv, w->dS, dv, 0.0f, w->dkd,
                 dk);
        dgam_last = eg_last * (double)dot(S0, w->dS, (int)state);
        for (int64_t i = 0; i < state; i++) w->dS_prev[i] = eg_last * w->dS[i];
    } else {
        memset(w->dkd, 0, (size_t)n * dk * sizeof(float));
        memset(w->dS_prev, 0, (size_t)state * sizeof(float));
    }
    mm_sgemm(CblasNoTrans, CblasTrans, n, n, dv, 1.0f, dO, (int)ldo, w->delta, dv, 0.0f, w->dP, C);
    mm_sgemm(CblasNoTrans, CblasTrans, n, dk, dv, 1.0f, dO, (int)ldo, S0, dv, 0.0f, w->dqg, dk);
    mm_sgemm(CblasTrans, CblasNoTrans, dk, dv, n, 1.0f, w->qg, dk, dO, (int)ldo, 1.0f, w->dS_prev,
             dv);
    mm_sgemm(CblasTrans, CblasNoTrans, dk, dv, n, -1.0f, W, ldx, w->ddelta, dv, 1.0f, w->dS_prev,
             dv);
    /* Delta = U - W S0, [U | W] = (I + A)^-1 [Vb | Kb] */
    for (int i = 0; i < n; i++)
        memcpy(dVb + (int64_t)i * ldx, w->ddelta + (int64_t)i * dv, (size_t)dv * sizeof(float));
    mm_sgemm(CblasNoTrans, CblasTrans, n, dk, dv, -1.0f, w->ddelta, dv, S0, dv, 0.0f, dKb, ldx);
    delta_solve(w->A, w->dX, n, ldx, ldx, true);
    mm_sgemm(CblasNoTrans, CblasTrans, n, n, ldx, -1.0f, w->dX, ldx, U, ldx, 0.0f, w->dA, C);

    /* A_ij = beta_i E_ij KK_ij (j < i), P_ij = E_ij QK_ij (j <= i) */
    double *dgam = w->dgam;
    memset(dgam, 0, (size_t)n * sizeof(double));
    for (int i = 0; i < n; i++) {
        float b = beta[(int64_t)i * nv];
        const float *e = w->E + i * C, *kk = w->KK + i * C, *qk = w->QK + i * C;
        const float *da = w->dA + i * C, *dp = w->dP + i * C;
        float *dkk = w->dKK + i * C, *dqk = w->dQK + i * C;
        float db = 0.0f, fsum = 0.0f;
        for (int j = 0; j < i; j++) {
            float m = da[j], f = (m * b * kk[j] + dp[j] * qk[j]) * e[j];
            dkk[j] = m * b * e[j];
            db += m * e[j] * kk[j];
            fsum += f;
            dgam[j] -= f;
            dqk[j] = dp[j] * e[j];
        }
        dgam[i] += fsum;
        dqk[i] = dp[i];
        dkk[i] = 0.0f;
        for (int j = i + 1; j < n; j++) dqk[j] = dkk[j] = 0.0f;
        dbeta[(int64_t)i * nv] += db;
    }
    float *dks = w->dA; /* dA is spent: dK K^T's gradient made symmetric */
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++) dks[i * C + j] = w->dKK[i * C + j] + w->dKK[j * C + i];
    mm_sgemm(CblasNoTrans, CblasNoTrans, n, dk, n, 1.0f, w->dQK, C, k, (int)ldk, 1.0f, dq,
             (int)ldk);
    mm_sgemm(CblasNoTrans, CblasNoTrans, n, dk, n, 1.0f, dks, C, k, (int)ldk, 1.0f, dk_, (int)ldk);
    mm_sgemm(CblasTrans, CblasNoTrans, n, dk, n, 1.0f, w->dQK, C, q, (int)ldk, 1.0f, dk_, (int)ldk);

    /* the row scalings: Qg = diag(eg) Q, Kd = diag(ekd) K, Vb = diag(beta) V,
     * Kb = diag(beta eg) K */
    for (int i = 0; i < n; i++) {
        float b = beta[(int64_t)i * nv], eg = w->eg[i], ekd = w->ekd[i];
        const float *qi = q + i * ldk, *ki = k + i * ldk, *vi = v + i * ldv;
        const float *dqg = w->dqg + (int64_t)i * dk, *dkd = w->dkd + (int64_t)i * dk;
        const float *dvb = dVb + (int64_t)i * ldx, *dkb = dKb + (int64_t)i * ldx;
        float *dqi = dq + i * ldk, *dki = dk_ + i * ldk, *dvi = dvv + i * ldv;
        float qdot = dot(dqg, qi, dk), kddot = dot(dkd, ki, dk), kbdot = dot(dkb, ki, dk);
        for (int j = 0; j < dk; j++) {
            dqi[j] += eg * dqg[j];
            dki[j] += ekd * dkd[j] + b * eg * dkb[j];
        }
        for (int j = 0; j < dv; j++) dvi[j] += b * dvb[j];
        dgam[i] += (double)(eg * qdot) - ekd * kddot + b * eg * kbdot;
        dgam_last += ekd * kddot;
        dbeta[(int64_t)i * nv] += dot(dvb, vi, dv) + eg * kbdot;
    }
    dgam[n - 1] += dgam_last;
    double acc = 0.0;
    for (int i = n - 1; i >= 0; i--) dg[(int64_t)i * nv] += (float)(acc += dgam[i]);
}

static void delta_backward_task(const DeltaCtx *c, DeltaWork *w, const DeltaGrads *d, int b,
                                int kh) {
    const int group = c->nv / c->nk;
    const int64_t state = (int64_t)c->dk * c->dv;
    for (int h = kh * group; h < (kh + 1) * group; h++) {
        bool has_dS = false;
        for (int ch = c->row_chunk[b + 1] - 1; ch >= c->row_chunk[b]; ch--) {
            int64_t r0 = (int64_t)b * c->seq_len + c->chunk_t0[ch];
            const float *S0 = c->states + ((int64_t)ch * c->nv + h) * state;
            if (ch > c->row_chunk[b])
                delta_prefetch_chunk(c, (int64_t)b * c->seq_len + c->chunk_t0[ch - 1], kh, h,
                                     c->chunk_len[ch - 1], c->o->grad);
            chunk_backward(c, w, d, r0, kh, h, c->chunk_len[ch], S0, has_dS);
            has_dS = !c->chunk_reset[ch];
            float *t = w->dS;
            w->dS = w->dS_prev;
            w->dS_prev = t;
        }
    }
}

/* A gradient buffer for t, or (t frozen) a scratch one from the arena that nobody reads. */
static float *grad_or_sink(Graph *g, Tensor *t) {
    float *d = graph_grad(g, t);
    if (d || graph_failed(g)) return d;
    d = graph_alloc(g, (size_t)t->size * sizeof(float));
    if (d) memset(d, 0, (size_t)t->size * sizeof(float));
    return d;
}

void delta_backward(Graph *g, void *ctx) {
    DeltaCtx *c = ctx;
    if (!c->o->grad) return;
    DeltaGrads d = {grad_or_sink(g, c->q), grad_or_sink(g, c->k), grad_or_sink(g, c->v),
                    grad_or_sink(g, c->g), grad_or_sink(g, c->beta)};
    if (!d.dq || !d.dk || !d.dv || !d.dg || !d.dbeta) return;
    d.dq += c->q0;
    d.dk += c->k0;
    d.dv += c->v0;
    int threads = omp_get_max_threads();
    size_t per = delta_work_bytes(c->dk, c->dv);
    char *work = (char *)graph_scratch(g, per * (size_t)threads);
    if (!work) return;
    int tasks = c->batch * c->nk;
#pragma omp parallel for schedule(dynamic, 1)
    for (int t = 0; t < tasks; t++) {
        DeltaWork w = delta_work_carve(work + per * (size_t)omp_get_thread_num(), c->dk, c->dv);
        delta_backward_task(c, &w, &d, t / c->nk, t % c->nk);
    }
}
