/* tests/test_deltanet_ref.c — float64 references for tests/test_tensor_deltanet.c (see the
 * header). The delta rule is the definition, one position at a time, as transformers'
 * torch_recurrent_gated_delta_rule: decay the state, read it with k, write beta (v - read)
 * along k, read the result with q. Its backward keeps every state of the forward and runs the
 * same steps in reverse. */
#include "tests/test_deltanet_ref.h"

#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

static bool row_start(const RefDelta *r, int b, int t) {
    return t == 0 || (r->seg && r->seg[(int64_t)b * r->T + t] != r->seg[(int64_t)b * r->T + t - 1]);
}

/* One head's states: S[t + 1] after position t, S[0] = 0; with decayed[t] = exp(g_t) S[t]
 * (zero at a row start) and delta[t] the written vector. */
typedef struct {
    double *S, *decayed, *delta;
} Trace;

static void head_forward(const RefDelta *r, int b, int h, const double *q, const double *k,
                         const double *v, const double *g, const double *beta, double *o,
                         Trace *tr) {
    int T = r->T, DK = r->DK, DV = r->DV, kh = h / (r->NV / r->NK);
    int64_t st = (int64_t)DK * DV;
    memset(tr->S, 0, (size_t)st * sizeof(double));
    for (int t = 0; t < T; t++) {
        int64_t row = (int64_t)b * T + t;
        const double *qt = q + row * r->NK * DK + kh * DK, *kt = k + row * r->NK * DK + kh * DK;
        const double *vt = v + row * r->NV * DV + h * DV;
        double e = exp(g[row * r->NV + h]), bt = beta[row * r->NV + h];
        double *prev = tr->S + t * st, *dec = tr->decayed + t * st, *next = tr->S + (t + 1) * st;
        double *delta = tr->delta + (int64_t)t * DV;
        for (int64_t i = 0; i < st; i++) dec[i] = row_start(r, b, t) ? 0.0 : e * prev[i];
        for (int j = 0; j < DV; j++) {
            double read = 0.0;
            for (int i = 0; i < DK; i++) read += dec[i * DV + j] * kt[i];
            delta[j] = bt * (vt[j] - read);
        }
        for (int i = 0; i < DK; i++)
            for (int j = 0; j < DV; j++) next[i * DV + j] = dec[i * DV + j] + kt[i] * delta[j];
        for (int j = 0; j < DV; j++) {
            double s = 0.0;
            for (int i = 0; i < DK; i++) s += next[i * DV + j] * qt[i];
            o[row * r->NV * DV + h * DV + j] = s;
        }
    }
}

static Trace trace_new(const RefDelta *r) {
    int64_t st = (int64_t)r->DK * r->DV;
    Trace tr = {malloc((size_t)((r->T + 1) * st) * sizeof(double)),
                malloc((size_t)(r->T * st) * sizeof(double)),
                malloc((size_t)r->T * r->DV * sizeof(double))};
    return tr;
}

static void trace_free(Trace *tr) {
    free(tr->S);
    free(tr->decayed);
    free(tr->delta);
}

void ref_delta_forward(const RefDelta *r, const double *q, const double *k, const double *v,
                       const double *g, const double *beta, double *o, double *final) {
    Trace tr = trace_new(r);
    int64_t st = (int64_t)r->DK * r->DV;
    for (int b = 0; b < r->B; b++)
        for (int h = 0; h < r->NV; h++) {
            head_forward(r, b, h, q, k, v, g, beta, o, &tr);
            if (final)
                memcpy(final + ((int64_t)b * r->NV + h) * st, tr.S + r->T * st,
                       (size_t)st * sizeof(double));
        }
    trace_free(&tr);
}

void ref_delta_grad(const RefDelta *r, const double *q, const double *k, const double *v,
                    const double *g, const double *beta, const double *G, double *dq, double *dk,
                    double *dv, double *dg, double *dbeta) {
    int T = r->T, DK = r->DK, DV = r->DV, NK = r->NK, NV = r->NV;
    int64_t n = (int64_t)r->B * T, st = (int64_t)DK * DV;
    memset(dq, 0, (size_t)(n * NK * DK) * sizeof(double));
    memset(dk, 0, (size_t)(n * NK * DK) * sizeof(double));
    memset(dv, 0, (size_t)(n * NV * DV) * sizeof(double));
    memset(dg, 0, (size_t)(n * NV) * sizeof(double));
    memset(dbeta, 0, (size_t)(n * NV) * sizeof(double));
    double *o = malloc((size_t)(n * NV * DV) * sizeof(double));
    double *dS = malloc((size_t)st * sizeof(double)), *ddelta = malloc((size_t)DV * sizeof(double));
    Trace tr = trace_new(r);
    for (int b = 0; b < r->B; b++)
        for (int h = 0; h < NV; h++) {
            int kh = h / (NV / NK);
            head_forward(r, b, h, q, k, v, g, beta, o, &tr);
            memset(dS, 0, (size_t)st * sizeof(double));
            for (int t = T - 1; t >= 0; t--) {
                int64_t row = (int64_t)b * T + t, qo = row * NK * DK + kh * DK;
                int64_t vo = row * NV * DV + h * DV;
                const double *qt = q + qo, *kt = k + qo, *vt = v + vo, *Gt = G + vo;
                double e = exp(g[row * NV + h]), bt = beta[row * NV + h];
                const double *prev = tr.S + t * st, *dec = tr.decayed + t * st;
                const double *next = tr.S + (t + 1) * st, *delta = tr.delta + (int64_t)t * DV;
                /* o_t = S_t^T q_t */
                for (int i = 0; i < DK; i++)
                    for (int j = 0; j < DV; j++) {
                        dq[qo + i] += next[i * DV + j] * Gt[j];
                        dS[i * DV + j] += qt[i] * Gt[j];
                    }
                /* S_t = dec + k delta^T */
                for (int j = 0; j < DV; j++) {
                    double s = 0.0;
                    for (int i = 0; i < DK; i++) s += dS[i * DV + j] * kt[i];
                    ddelta[j] = s;
                }
                for (int i = 0; i < DK; i++) {
                    double s = 0.0;
                    for (int j = 0; j < DV; j++) s += dS[i * DV + j] * delta[j];
                    dk[qo + i] += s;
                }
                /* delta = beta (v - dec^T k) */
                for (int j = 0; j < DV; j++) {
                    double read = 0.0;
                    for (int i = 0; i < DK; i++) read += dec[i * DV + j] * kt[i];
                    dbeta[row * NV + h] += ddelta[j] * (vt[j] - read);
                    dv[vo + j] += bt * ddelta[j];
                    ddelta[j] *= -bt; /* now d(read) */
                }
                for (int i = 0; i < DK; i++)
                    for (int j = 0; j < DV; j++) {
                        dS[i * DV + j] += kt[i] * ddelta[j];
                        dk[qo + i] += dec[i * DV + j] * ddelta[j];
                    }
                /* dec = exp(g) S_{t-1}, or 0 at a row start */
                if (row_start(r, b, t)) {
                    memset(dS, 0, (size_t)st * sizeof(double));
                    continue;
                }
                double s = 0.0;
                for (int64_t i = 0; i < st; i++) s += prev[i] * dS[i];
                dg[row * NV + h] += e * s;
                for (int64_t i = 0; i < st; i++) dS[i] *= e;
            }
        }
    trace_free(&tr);
    free(o);
    free(dS);
    free(ddelta);
}

static double silu(double a) {
    return a / (1.0 + exp(-a));
}

void ref_conv1d_silu(const double *x, const double *w, int B, int T, int CH, int KW,
                     const int32_t *seg, double *y) {
    for (int b = 0; b < B; b++) {
        int first = 0;
        for (int t = 0; t < T; t++) {
            int64_t row = (int64_t)b * T + t;
            if (t > 0 && seg && seg[row] != seg[row - 1]) first = t;
            for (int c = 0; c < CH; c++) {
                double s = 0.0;
                for (int j = 0; j < KW; j++) {
                    int p = t - KW + 1 + j;
                    if (p >= first) s += w[(int64_t)c * KW + j] * x[((int64_t)b * T + p) * CH + c];
                }
                y[row * CH + c] = silu(s);
            }
        }
    }
}

void ref_head_l2norm(const double *x, int64_t n, int H, int D, double eps, double scale,
                     double *y) {
    for (int64_t i = 0; i < n * H; i++) {
        double ss = 0.0;
        for (int j = 0; j < D; j++) ss += x[i * D + j] * x[i * D + j];
        for (int j = 0; j < D; j++) y[i * D + j] = scale * x[i * D + j] / sqrt(ss + eps);
    }
}

void ref_head_rmsnorm_gated(const double *x, const double *z, const double *w, int64_t n, int H,
                            int D, double eps, double *y) {
    for (int64_t i = 0; i < n * H; i++) {
        double ss = 0.0;
        for (int j = 0; j < D; j++) ss += x[i * D + j] * x[i * D + j];
        double r = 1.0 / sqrt(ss / D + eps);
        for (int j = 0; j < D; j++) y[i * D + j] = w[j] * x[i * D + j] * r * silu(z[i * D + j]);
    }
}

void ref_log_decay(const double *a, const double *a_log, const double *dt_bias, int64_t n, int H,
                   double *g) {
    for (int64_t i = 0; i < n; i++)
        for (int h = 0; h < H; h++) {
            double u = a[i * H + h] + dt_bias[h];
            g[i * H + h] = -exp(a_log[h]) * (u > 20.0 ? u : log1p(exp(u)));
        }
}
