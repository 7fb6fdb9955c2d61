/* tests/test_tensor_ref.h — naive double-precision references of tensor ops, shared by the
 * known-value and gradient tests. */
#ifndef LORAFIT_TEST_TENSOR_REF_H
#define LORAFIT_TEST_TENSOR_REF_H

#include <stdint.h>

/* What op_attention_ex computes (tensor.h's AttentionSpec, in double): position t of head h
 * attends to s <= t, with t - s < window when window > 0, and seg[s] == seg[t] when seg is
 * not NULL; scores scale q.k (scale 0: 1/sqrt(D)), then softcap tanh(score / softcap) when
 * softcap > 0; softmax over the allowed s. */
typedef struct {
    int B, T, NH, NKV, D;
    double scale, softcap;
    int window;
    const int32_t *seg; /* (B*T) or NULL */
} RefAttention;

/* out (B*T, NH*D) from q (B*T, NH*D), k and v (B*T, NKV*D). */
void ref_attention_ex_f64(const RefAttention *a, const double *q, const double *k, const double *v,
                          double *out);
/* The gradients of sum(out * G) (G (B*T, NH*D)) with respect to q, k and v, written (not
 * added) into dq, dk and dv, from the analytic backward of the softmax, the soft-cap's tanh
 * and the scale (the tests check this against finite differences). */
void ref_attention_grad_f64(const RefAttention *a, const double *q, const double *k,
                            const double *v, const double *G, double *dq, double *dk, double *dv);

/* Causal GQA attention with softmax scale 1/sqrt(D), as op_attention: out (B*T, NH*D) from
 * q (B*T, NH*D), k and v (B*T, NKV*D); seg (B*T) restricts attention to equal ids, or NULL. */
void ref_attention_f64(const double *q, const double *k, const double *v, const int32_t *seg, int B,
                       int T, int NH, int NKV, int D, double *out);

/* f rounded to bf16 (tensor_float_to_bf16: nearest even), as the float it holds: the inputs
 * BF16 precision's products take. */
float ref_bf16(float f);

#endif
