/* tensor/simd.h — element-wise loops compiled twice, for AVX-512 and for the baseline x86-64
 * (or any other CPU); private to tensor/.
 *
 * A loop written once as a static inline function is wrapped by a SIMD_AVX512 function and
 * a plain one, and the caller picks with simd_avx512(). -std=c11 keeps FMA contraction off,
 * so both run the same IEEE operations lane by lane: the same bits on every CPU. */
#ifndef LORAFIT_SIMD_H
#define LORAFIT_SIMD_H

#include <stdbool.h>

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

#endif
