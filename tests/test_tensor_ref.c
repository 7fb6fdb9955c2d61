/* tests/test_tensor_ref.c — see test_tensor_ref.h. */
#include "tests/test_tensor_ref.h"

#include "tensor/tensor.h"

#include <check.h>
#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

static bool ref_allowed(const RefAttention *a, int b, int t, int s) {
    const int32_t *seg = a->seg;
    return s <= t && (a->window <= 0 || t - s < a->window) &&
           (!seg || seg[b * a->T + s] == seg[b * a->T + t]);
}

/* Row t of head h of sequence b: the probabilities p (T, 0 where not allowed) and the
 * soft-capped scores' tanh th (T) (0 without soft-capping). */
static void ref_row(const RefAttention *a, const double *q, const double *k, int b, int h, int t,
                    double *p, double *th) {
    int T = a->T, NH = a->NH, NKV = a->NKV, D = a->D, kh = h / (NH / NKV);
    double scale = a->scale > 0 ? a->scale : 1.0 / sqrt((double)D), mx = -INFINITY, sum = 0.0;
    for (int s = 0; s < T; s++) {
        th[s] = 0.0;
        if (!ref_allowed(a, b, t, s)) {
            p[s] = -INFINITY;
            continue;
        }
        double d = 0.0;
        for (int i = 0; i < D; i++)
            d += q[((b * T + t) * NH + h) * D + i] * k[((b * T + s) * NKV + kh) * D + i];
        d *= scale;
        if (a->softcap > 0) {
            th[s] = tanh(d / a->softcap);
            d = a->softcap * th[s];
        }
        p[s] = d;
        if (d > mx) mx = d;
    }
    for (int s = 0; s < T; s++) sum += (p[s] = exp(p[s] - mx));
    for (int s = 0; s < T; s++) p[s] /= sum;
}

void ref_attention_ex_f64(const RefAttention *a, const double *q, const double *k, const double *v,
                          double *out) {
    int T = a->T, NH = a->NH, NKV = a->NKV, D = a->D;
    double *p = malloc((size_t)T * sizeof *p), *th = malloc((size_t)T * sizeof *th);
    ck_assert(p && th);
    for (int b = 0; b < a->B; b++)
        for (int h = 0; h < NH; h++) {
            int kh = h / (NH / NKV);
            for (int t = 0; t < T; t++) {
                ref_row(a, q, k, b, h, t, p, th);
                for (int i = 0; i < D; i++) {
                    double acc = 0.0;
                    for (int s = 0; s < T; s++) acc += p[s] * v[((b * T + s) * NKV + kh) * D + i];
                    out[((b * T + t) * NH + h) * D + i] = acc;
                }
            }
        }
    free(p);
    free(th);
}

void ref_attention_grad_f64(const RefAttention *a, const double *q, const double *k,
                            const double *v, const double *G, double *dq, double *dk, double *dv) {
    int B = a->B, T = a->T, NH = a->NH, NKV = a->NKV, D = a->D;
    double scale = a->scale > 0 ? a->scale : 1.0 / sqrt((double)D);
    memset(dq, 0, (size_t)B * T * NH * D * sizeof *dq);
    memset(dk, 0, (size_t)B * T * NKV * D * sizeof *dk);
    memset(dv, 0, (size_t)B * T * NKV * D * sizeof *dv);
    double *p = malloc((size_t)T * sizeof *p), *th = malloc((size_t)T * sizeof *th);
    double *dp = malloc((size_t)T * sizeof *dp);
    ck_assert(p && th && dp);
    for (int b = 0; b < B; b++)
        for (int h = 0; h < NH; h++) {
            int kh = h / (NH / NKV);
            for (int t = 0; t < T; t++) {
                ref_row(a, q, k, b, h, t, p, th);
                const double *g = G + ((b * T + t) * NH + h) * D;
                /* out = sum_s p_s v_s: dv_s += p_s g; dp_s = g . v_s */
                double dot = 0.0;
                for (int s = 0; s < T; s++) {
                    const double *vs = v + ((b * T + s) * NKV + kh) * D;
                    dp[s] = 0.0;
                    for (int i = 0; i < D; i++) {
                        dp[s] += g[i] * vs[i];
                        dv[((b * T + s) * NKV + kh) * D + i] += p[s] * g[i];
                    }
                    dot += p[s] * dp[s];
                }
                for (int s = 0; s < T; s++) {
                    if (p[s] == 0.0) continue;
                    /* softmax, then the cap c tanh(z / c) (dz = 1 - tanh^2), then z = scale q.k */
                    double dz = p[s] * (dp[s] - dot) * (a->softcap > 0 ? 1.0 - th[s] * th[s] : 1.0);
                    for (int i = 0; i < D; i++) {
                        dq[((b * T + t) * NH + h) * D + i] +=
                            scale * dz * k[((b * T + s) * NKV + kh) * D + i];
                        dk[((b * T + s) * NKV + kh) * D + i] +=
                            scale * dz * q[((b * T + t) * NH + h) * D + i];
                    }
                }
            }
        }
    free(p);
    free(th);
    free(dp);
}

void ref_attention_f64(const double *q, const double *k, const double *v, const int32_t *seg, int B,
                       int T, int NH, int NKV, int D, double *out) {
    RefAttention a = {.B = B, .T = T, .NH = NH, .NKV = NKV, .D = D, .seg = seg};
    ref_attention_ex_f64(&a, q, k, v, out);
}

float ref_bf16(float f) {
    uint16_t h = tensor_float_to_bf16(f);
    float out;
    tensor_bf16_to_float(&out, &h, 1);
    return out;
}
