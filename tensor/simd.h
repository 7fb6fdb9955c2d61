/* tensor/simd.h — element-wise loops compiled twice, for AVX-512 and for the baseline x86-64
 * (or any other CPU); private to tensor/.
 *
 * A loop written once as a static inline function is wrapped by a SIMD_AVX512 function and
 * a plain one, and the caller picks with simd_avx512(). -std=c11 keeps FMA contraction off,
 * so both run the same IEEE operations lane by lane: the same bits on every CPU. */
#ifndef LORAFIT_SIMD_H
#define LORAFIT_SIMD_H

#include <stdbool.h>
#include <stdint.h>

#if defined(__x86_64__) && defined(__GNUC__)
#define SIMD_AVX512 __attribute__((target("avx512f,prefer-vector-width=512")))
static inline bool simd_avx512(void) {
    return __builtin_cpu_supports("avx512f");
}
#else
#define SIMD_AVX512
static inline bool simd_avx512(void) {
    return false;
}
#endif

#define SIMD_INLINE static inline __attribute__((always_inline))

/* sum_j a[j] b[j] in double: eight partial sums by j mod 8, added in a fixed order at the
 * end. Eight independent chains (one chain of n dependent double adds took more time than
 * the rest of an L2 norm), the same bits vectorised or not. */
SIMD_INLINE double simd_dot_double(const float *a, const float *b, int64_t n) {
    double lane[8] = {0};
    int64_t j = 0;
    for (; j + 8 <= n; j += 8)
        for (int l = 0; l < 8; l++) lane[l] += (double)a[j + l] * b[j + l];
    for (; j < n; j++) lane[j % 8] += (double)a[j] * b[j];
    return ((lane[0] + lane[4]) + (lane[2] + lane[6])) +
           ((lane[1] + lane[5]) + (lane[3] + lane[7]));
}

#endif
