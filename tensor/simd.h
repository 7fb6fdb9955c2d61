/* tensor/simd.h — element-wise loops compiled twice, for AVX-512 and for the baseline x86-64
 * (or any other CPU); private to tensor/.
 *
 * A loop written once as a static inline function is wrapped by a SIMD_AVX512 function and
 * a plain one, and the caller picks with simd_avx512(). -std=c11 keeps FMA contraction off,
 * so both run the same IEEE operations lane by lane: the same bits on every CPU. */
#ifndef LORAFIT_SIMD_H
#define LORAFIT_SIMD_H

#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <string.h>

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
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

/* The CPU's vector features, decided once (every thread gets the same answer). */
enum { SIMD_HAS_AVX2 = 1, SIMD_HAS_AVX512 = 2, SIMD_HAS_AVX512_BF16 = 4 };
static inline int simd_features(void) {
#if defined(__x86_64__) && defined(__GNUC__)
    static int features = -1;
    int v = __atomic_load_n(&features, __ATOMIC_RELAXED);
    if (v < 0) {
        __builtin_cpu_init();
        bool avx512 = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl");
        v = (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") ? SIMD_HAS_AVX2 : 0) |
            (avx512 ? SIMD_HAS_AVX512 : 0) |
            (avx512 && __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512bf16")
                 ? SIMD_HAS_AVX512_BF16
                 : 0);
        __atomic_store_n(&features, v, __ATOMIC_RELAXED);
    }
    return v;
#else
    return 0;
#endif
}

/* The hand-written vector kernels this CPU runs (attention's, the exps', LoRA's): 2 AVX-512
 * (F and VL), 1 AVX2 and FMA, 0 neither. Each caller keeps its own knob for tests that run a
 * lower level. */
static inline int simd_level(void) {
    int f = simd_features();
    return f & SIMD_HAS_AVX512 ? 2 : f & SIMD_HAS_AVX2 ? 1 : 0;
}

/* AVX512-BF16's VDPBF16PS with AVX-512 F, VL and BW: the bf16 products of BF16 precision's
 * attention and LoRA factors. */
static inline bool simd_avx512_bf16(void) {
    return simd_features() & SIMD_HAS_AVX512_BF16;
}

#define SIMD_INLINE static inline __attribute__((always_inline))

/* The largest of init and x[0..n), as `m = x[i] > m ? x[i] : m` over i finds it: a NaN is
 * skipped unless it is init (or all is NaN), and only a zero's sign may differ (the loop
 * above does not vectorise, since its order decides that sign; no caller sees it: the
 * softmaxes subtract the maximum and add it to a log). Sixteen lanes with AVX-512. */
SIMD_INLINE float simd_max_plain(const float *x, int64_t n, float init) {
    float m = init;
    for (int64_t i = 0; i < n; i++) m = x[i] > m ? x[i] : m;
    return m;
}
#if defined(__x86_64__) && defined(__GNUC__)
__attribute__((target("avx512f"))) static inline float simd_max_avx512(const float *x, int64_t n,
                                                                       float init) {
    __m512 mx = _mm512_set1_ps(init);
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) mx = _mm512_max_ps(_mm512_loadu_ps(x + i), mx);
    float lanes[16], m = init;
    _mm512_storeu_ps(lanes, mx);
    for (int k = 0; k < 16; k++) m = lanes[k] > m ? lanes[k] : m;
    return simd_max_plain(x + i, n - i, m);
}
#endif
static inline float simd_max(const float *x, int64_t n, float init) {
#if defined(__x86_64__) && defined(__GNUC__)
    if (simd_avx512()) return simd_max_avx512(x, n, init);
#endif
    return simd_max_plain(x, n, init);
}

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

/* exp(x) in float32 for the SiLU and sigmoid gates of the DeltaNet layers: Cody-Waite
 * reduction x = n ln2 + r (n rounded to nearest by the 1.5 * 2^23 shift), Cephes' degree-5
 * polynomial for exp(r), 2^n written into the exponent bits. Within 2 ulp of exp for x in
 * [-87.33, 88.37] (tests/test_tensor_deltanet_fused.c); 0 below, +inf above. Only adds,
 * multiplies and bit moves, so the same bits in a vectorised loop or alone, with AVX-512 or
 * without; about a fifth of vexp_floats' cost (whose glibc-exact double steps were half of
 * the conv's time). */
SIMD_INLINE float simd_expf(float x) {
    const float hi = 88.37f, lo = -87.33f, shift = 12582912.0f; /* 1.5 * 2^23 */
    float xc = x > hi ? hi : x < lo ? lo : x;
    float t = xc * 1.44269504088896341f + shift, n = t - shift; /* n = round(x / ln 2) */
    float r = (xc - n * 0.693359375f) - n * -2.12194440e-4f;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * (r * r) + r + 1.0f;
    uint32_t tb, sb, bits;
    memcpy(&tb, &t, sizeof tb);
    memcpy(&sb, &shift, sizeof sb);
    bits = (tb - sb + 127u) << 23; /* 2^n, n in [-126, 127] */
    float scale;
    memcpy(&scale, &bits, sizeof scale);
    float y = p * scale;
    return x > hi ? INFINITY : x < lo ? 0.0f : y;
}

#endif
