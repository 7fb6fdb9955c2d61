/* tensor/vexp.h — exp over arrays for the softmaxes and SwiGLU, and tanh for the soft-caps
 * (vtanh.c); private to tensor/. */
#ifndef LORAFIT_VEXP_H
#define LORAFIT_VEXP_H

#include <stdbool.h>
#include <stdint.h>

/* y[i] = expf(x[i]) for i < n, bit for bit glibc's expf on this CPU; y may be x.
 * Single-threaded (call it inside the ops' parallel loops). */
void vexp_floats(float *y, const float *x, int64_t n);

/* e[i] = exp(x[i] - shift) rounded to float, the difference taken in double (within an ulp
 * of the exact value: the same polynomial as vexp_floats); e may be x. Returns the sum of
 * the e[i] in double, in a fixed order (four partial sums by i mod 4, then (s0 + s1) +
 * (s2 + s3)), whatever the CPU. */
double vexp_shifted_sum(float *e, const float *x, float shift, int64_t n);

/* BF16 precision's exps (SwiGLU, the lm_head's softmax): the same in single-precision
 * arithmetic, the attention's exp (attention_exp.h: Cephes' polynomial, within 2 ulp; 0
 * below -87, exp(88) above 88; NaN stays NaN), sixteen lanes at a time with AVX-512, eight
 * with AVX2, one by one in the tail: the same bits on every path of an x86 CPU.
 * vexp_shifted_sum_single takes x - shift in float and sums the e[i] in double in a fixed
 * order: eight partial sums by i mod 8, then ((s0 + s1) + (s2 + s3)) + ((s4 + s5) + (s6 + s7)). */
void vexp_floats_single(float *y, const float *x, int64_t n);
double vexp_shifted_sum_single(float *e, const float *x, float shift, int64_t n);

/* y[i] = tanh(x[i]) within a few ulp, the same bits on every CPU; y may be x.
 * Single-threaded. */
void vtanh_floats(float *y, const float *x, int64_t n);
/* The soft-cap y[i] = cap tanh(x[i] / cap), with th[i] = tanh(x[i] / cap) kept (th may be y,
 * and y may be x); vtanh_floats' bits. Single-threaded. */
void vsoftcap_floats(float *y, float *th, const float *x, float cap, int64_t n);

/* Tests: true runs the AVX2 loops even where AVX-512 is there (both give the same bits). */
void vexp_force_avx2(bool on);

#endif
