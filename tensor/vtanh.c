/* tensor/vtanh.c — tanh over arrays, for the soft-caps (y = cap tanh(x / cap) on every logit
 * of Gemma's lm_head: 262,144 a token, where glibc's scalar tanhf took a quarter of the
 * step).
 *
 * |u| >= 0.4: tanh|u| = (1 - e) / (1 + e) with e = exp(-2|u|) <= 0.45 from vexp_floats, so
 * 1 - e >= 0.55 cancels at most one bit. |u| < 0.4: the odd Taylor series to u^13, whose next
 * term is under 4e-9 of u there (|u| / (pi/2) < 0.26). Either way within a few ulp of tanh.
 * vexp_floats has glibc expf's bits on every CPU and the rest is element-wise IEEE
 * arithmetic, so the bits do not depend on the CPU or the vector width. Single-threaded. */
#include "tensor/vexp.h"

#include <math.h>

#define VTANH_BLOCK        256
#define VTANH_SERIES_BELOW 0.4f

void vtanh_floats(float *y, const float *x, int64_t n) {
    /* tanh's Maclaurin coefficients of u^3 .. u^13 */
    const float c3 = -1.0f / 3, c5 = 2.0f / 15, c7 = -17.0f / 315, c9 = 62.0f / 2835,
                c11 = -1382.0f / 155925, c13 = 21844.0f / 6081075;
    float e[VTANH_BLOCK];
    for (int64_t i0 = 0; i0 < n; i0 += VTANH_BLOCK) {
        int64_t b = n - i0 < VTANH_BLOCK ? n - i0 : VTANH_BLOCK;
        for (int64_t k = 0; k < b; k++) e[k] = -2.0f * fabsf(x[i0 + k]);
        vexp_floats(e, e, b);
#pragma omp simd
        for (int64_t k = 0; k < b; k++) {
            float u = x[i0 + k], u2 = u * u;
            float series =
                u + u * u2 * (c3 + u2 * (c5 + u2 * (c7 + u2 * (c9 + u2 * (c11 + u2 * c13)))));
            float t = (1.0f - e[k]) / (1.0f + e[k]);
            y[i0 + k] = fabsf(u) < VTANH_SERIES_BELOW ? series : u < 0 ? -t : t;
        }
    }
}

void vsoftcap_floats(float *y, float *th, const float *x, float cap, int64_t n) {
    for (int64_t j = 0; j < n; j++) th[j] = x[j] / cap;
    vtanh_floats(th, th, n);
    for (int64_t j = 0; j < n; j++) y[j] = cap * th[j];
}
