/* tests/test_deltanet_ref.h — the float64 definition of Qwen3.5's Gated DeltaNet pieces, for
 * tests/test_tensor_deltanet.c: the delta rule run token by token (not the chunked algorithm
 * of tensor/), its analytic backward token by token in reverse, and the per-token ops. */
#ifndef LORAFIT_TEST_DELTANET_REF_H
#define LORAFIT_TEST_DELTANET_REF_H

#include <stdint.h>

typedef struct {
    int B, T, NK, NV, DK, DV;
    const int32_t *seg; /* (B*T) packed-row ids or NULL: the state resets where the id changes */
} RefDelta;

/* S_t = exp(g_t) (I - beta_t k_t k_t^T) S_{t-1} + beta_t k_t v_t^T, o_t = S_t^T q_t, with
 * value head h reading key head h / (NV/NK). q, k (B*T, NK*DK), v (B*T, NV*DV), g, beta
 * (B*T, NV) -> o (B*T, NV*DV); final (B, NV, DK, DV) the state after each row's end, or NULL. */
void ref_delta_forward(const RefDelta *r, const double *q, const double *k, const double *v,
                       const double *g, const double *beta, double *o, double *final);
/* The gradients of sum(o * G) written (not added) into dq, dk, dv, dg, dbeta. */
void ref_delta_grad(const RefDelta *r, const double *q, const double *k, const double *v,
                    const double *g, const double *beta, const double *G, double *dq, double *dk,
                    double *dv, double *dg, double *dbeta);

/* y[t, c] = silu(sum_j w[c, j] x[t - KW + 1 + j, c]), x before the packed row's start read
 * as 0. x (B*T, CH), w (CH, KW) -> y (B*T, CH). */
void ref_conv1d_silu(const double *x, const double *w, int B, int T, int CH, int KW,
                     const int32_t *seg, double *y);
/* y = scale x / sqrt(sum x^2 + eps) per head of D. x (N, H*D). */
void ref_head_l2norm(const double *x, int64_t n, int H, int D, double eps, double scale, double *y);
/* y = w x / sqrt(mean x^2 + eps) * silu(z) per head of D. x, z (N, H*D), w (D). */
void ref_head_rmsnorm_gated(const double *x, const double *z, const double *w, int64_t n, int H,
                            int D, double eps, double *y);
/* g = -exp(A_log[h]) softplus(a + dt_bias[h]). a (N, H). */
void ref_log_decay(const double *a, const double *a_log, const double *dt_bias, int64_t n, int H,
                   double *g);

#endif
