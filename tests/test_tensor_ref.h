/* tests/test_tensor_ref.h — naive double-precision references of tensor ops, shared by the
 * known-value and gradient tests. */
#ifndef LORAFIT_TEST_TENSOR_REF_H
#define LORAFIT_TEST_TENSOR_REF_H

#include <stdint.h>

/* Causal GQA attention with softmax scale 1/sqrt(D), as op_attention: out (B*T, NH*D) from
 * q (B*T, NH*D), k and v (B*T, NKV*D); seg (B*T) restricts attention to equal ids, or NULL. */
void ref_attention_f64(const double *q, const double *k, const double *v, const int32_t *seg, int B,
                       int T, int NH, int NKV, int D, double *out);

#endif
