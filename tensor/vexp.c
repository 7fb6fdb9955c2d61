/* tensor/vexp.c — exp over arrays, four lanes at a time, with the bits of glibc's expf.
 *
 * SwiGLU, attention's softmax and the lm_head's softmax spend most of their time in expf,
 * one call per element. On CPUs with AVX2 and FMA glibc's expf is its __expf_fma: x is
 * widened to double, x N/ln2 = k + r (N = 32) by one FMA with the 1.5 * 2^52 shift,
 * 2^(k/N) from a 32-entry table, 2^(r/N) by a cubic, the product rounded to float (the
 * algorithm of ARM's optimized-routines). vexp_floats runs exactly those operations — the
 * same FMAs, the same table, the same constants — on four lanes of AVX2 doubles, so its
 * results are bit for bit glibc's (tests/test_tensor_vexp.c compares them) and f32 training
 * keeps its bits. Lanes whose |x| needs glibc's special cases (overflow, underflow, inf,
 * NaN: |x| >= 2^6 * 1.375 by the exponent test) are recomputed by expf itself. CPUs without
 * AVX2 or FMA get glibc's other variant, so there the loops simply call expf.
 * With AVX-512 the same operations run on eight lanes, the table looked up by two
 * two-register permutes instead of a gather (SwiGLU's exps about 1.5x faster on a Zen 4),
 * and the shifted sum adds each group of eight as two groups of four, in the AVX2 order.
 *
 * BF16 precision does not keep f32's bits and takes its exps in single precision instead
 * (vexp_floats_single: attention_exp.h's polynomial on sixteen float lanes where the loops
 * above run eight doubles): SwiGLU's and the lm_head softmax's exps took 19-21 ms less of
 * the bf16 SmolLM-135M step (AMD EPYC Zen 5, 2 threads, steps alternating in one process). */
#include "tensor/vexp.h"
#include "tensor/simd.h"

#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define VEXP_AVX2 1
#include "tensor/attention_exp.h"
#endif

#ifdef VEXP_AVX2
/* __exp2f_data of glibc 2.36 (sysdeps/ieee754/flt-32/math_config.h, e_exp2f_data.c):
 * tab[i] = bits of 2^(i/32) minus i << 47, and the scaled constants. */
static const uint64_t EXP2F_TAB[32] = {
    0x3ff0000000000000, 0x3fefd9b0d3158574, 0x3fefb5586cf9890f, 0x3fef9301d0125b51,
    0x3fef72b83c7d517b, 0x3fef54873168b9aa, 0x3fef387a6e756238, 0x3fef1e9df51fdee1,
    0x3fef06fe0a31b715, 0x3feef1a7373aa9cb, 0x3feedea64c123422, 0x3feece086061892d,
    0x3feebfdad5362a27, 0x3feeb42b569d4f82, 0x3feeab07dd485429, 0x3feea47eb03a5585,
    0x3feea09e667f3bcd, 0x3fee9f75e8ec5f74, 0x3feea11473eb0187, 0x3feea589994cce13,
    0x3feeace5422aa0db, 0x3feeb737b0cdc5e5, 0x3feec49182a3f090, 0x3feed503b23e255d,
    0x3feee89f995ad3ad, 0x3feeff76f2fb5e47, 0x3fef199bdd85529c, 0x3fef3720dcef9069,
    0x3fef5818dcfba487, 0x3fef7c97337b9b5f, 0x3fefa4afa2a490da, 0x3fefd0765b6e4540,
};
#define INV_LN2_N 0x40471547652b82feull /* N / ln 2 */
#define POLY0     0x3ebc6af84b912394ull
#define POLY1     0x3f2ebfce50fac4f3ull
#define POLY2     0x3f962e42ff0c52d6ull
#define SHIFT     0x4338000000000000ull /* 1.5 * 2^52 */
/* expf's special cases start at this top-12-bits value of |x| (88.0f and up). */
#define TOP12_SPECIAL 0x42au

static double from_bits(uint64_t u) {
    double d;
    memcpy(&d, &u, sizeof d);
    return d;
}

/* exp(xd) for four doubles in expf's normal range, before the rounding to float: xd N/ln2 =
 * k + r by one FMA with the shift, 2^(k/N) from the table, 2^(r/N) by the cubic. */
__attribute__((target("avx2,fma"))) static inline __m256d exp_steps(__m256d xd) {
    const __m256d inv_ln2_n = _mm256_set1_pd(from_bits(INV_LN2_N));
    const __m256d shift = _mm256_set1_pd(from_bits(SHIFT));
    const __m256d c0 = _mm256_set1_pd(from_bits(POLY0)), c1 = _mm256_set1_pd(from_bits(POLY1));
    const __m256d c2 = _mm256_set1_pd(from_bits(POLY2)), one = _mm256_set1_pd(1.0);
    __m256d kd = _mm256_fmadd_pd(inv_ln2_n, xd, shift); /* z + shift, z = x N/ln2 */
    __m256i ki = _mm256_castpd_si256(kd);
    kd = _mm256_sub_pd(kd, shift);
    __m256d r = _mm256_fmsub_pd(inv_ln2_n, xd, kd); /* z - k */
    __m256i idx = _mm256_and_si256(ki, _mm256_set1_epi64x(31));
    __m256i t = _mm256_i64gather_epi64((const long long *)EXP2F_TAB, idx, 8);
    t = _mm256_add_epi64(t, _mm256_slli_epi64(ki, 47));
    __m256d z = _mm256_fmadd_pd(r, c0, c1);
    __m256d r2 = _mm256_mul_pd(r, r);
    __m256d p = _mm256_fmadd_pd(r, c2, one);
    p = _mm256_fmadd_pd(z, r2, p);
    return _mm256_mul_pd(p, _mm256_castsi256_pd(t));
}

/* y[0..3] = expf(x[0..3]) for lanes in the normal range; returns a 4-bit mask of lanes
 * that need expf's special cases (their y is garbage). */
__attribute__((target("avx2,fma"))) static int exp4(const float *x, float *y) {
    __m128 xf = _mm_loadu_ps(x);
    __m128i top = _mm_and_si128(_mm_srli_epi32(_mm_castps_si128(xf), 20), _mm_set1_epi32(0x7ff));
    int special =
        _mm_movemask_ps(_mm_castsi128_ps(_mm_cmpgt_epi32(top, _mm_set1_epi32((int)TOP12_SPECIAL))));
    _mm_storeu_ps(y, _mm256_cvtpd_ps(exp_steps(_mm256_cvtps_pd(xf))));
    return special;
}

__attribute__((target("avx2,fma"))) static void exp_avx2(float *y, const float *x, int64_t n) {
    int64_t i = 0;
    for (; i + 4 <= n; i += 4) {
        float in[4];
        memcpy(in, x + i, sizeof in); /* y may be x */
        int special = exp4(in, y + i);
        for (int l = 0; special; l++, special >>= 1)
            if (special & 1) y[i + l] = expf(in[l]);
    }
    for (; i < n; i++) y[i] = expf(x[i]);
}

/* e[0..3] = exp(x - shift) (x widened to double, minus shift exactly in double), by the
 * same steps; the special mask flags lanes outside [-87, 87] or NaN. */
__attribute__((target("avx2,fma"))) static int exp4_shifted(const float *x, __m256d shiftd,
                                                            float *e) {
    __m256d xd = _mm256_sub_pd(_mm256_cvtps_pd(_mm_loadu_ps(x)), shiftd);
    __m256d ok = _mm256_and_pd(_mm256_cmp_pd(xd, _mm256_set1_pd(-87.0), _CMP_GE_OQ),
                               _mm256_cmp_pd(xd, _mm256_set1_pd(87.0), _CMP_LE_OQ));
    _mm_storeu_ps(e, _mm256_cvtpd_ps(exp_steps(xd)));
    return ~_mm256_movemask_pd(ok) & 0xf;
}

/* From element i on, with acc the four lane sums so far: four at a time, then one by one. */
__attribute__((target("avx2,fma"))) static double
exp_shifted_sum_tail(float *e, const float *x, float shift, int64_t n, int64_t i, __m256d acc) {
    __m256d shiftd = _mm256_set1_pd((double)shift);
    for (; i + 4 <= n; i += 4) {
        float in[4];
        memcpy(in, x + i, sizeof in); /* e may be x */
        int special = exp4_shifted(in, shiftd, e + i);
        for (int l = 0; special; l++, special >>= 1)
            if (special & 1) e[i + l] = (float)exp((double)in[l] - shift);
        acc = _mm256_add_pd(acc, _mm256_cvtps_pd(_mm_loadu_ps(e + i)));
    }
    double lanes[4];
    _mm256_storeu_pd(lanes, acc);
    for (int l = 0; i < n; i++, l++) {
        e[i] = (float)exp((double)x[i] - shift);
        lanes[l] += e[i];
    }
    return (lanes[0] + lanes[1]) + (lanes[2] + lanes[3]);
}

__attribute__((target("avx2,fma"))) static double exp_shifted_sum_avx2(float *e, const float *x,
                                                                       float shift, int64_t n) {
    return exp_shifted_sum_tail(e, x, shift, n, 0, _mm256_setzero_pd());
}

#define AVX512 __attribute__((target("avx512f,avx2,fma")))

/* exp_steps on eight lanes; 2^(k/N) from the table held in four registers. */
AVX512 static inline __m512d exp_steps8(__m512d xd) {
    const __m512d inv_ln2_n = _mm512_set1_pd(from_bits(INV_LN2_N));
    const __m512d shift = _mm512_set1_pd(from_bits(SHIFT));
    const __m512d c0 = _mm512_set1_pd(from_bits(POLY0)), c1 = _mm512_set1_pd(from_bits(POLY1));
    const __m512d c2 = _mm512_set1_pd(from_bits(POLY2)), one = _mm512_set1_pd(1.0);
    const __m512i t0 = _mm512_loadu_si512(EXP2F_TAB), t1 = _mm512_loadu_si512(EXP2F_TAB + 8);
    const __m512i t2 = _mm512_loadu_si512(EXP2F_TAB + 16), t3 = _mm512_loadu_si512(EXP2F_TAB + 24);
    __m512d kd = _mm512_fmadd_pd(inv_ln2_n, xd, shift);
    __m512i ki = _mm512_castpd_si512(kd);
    kd = _mm512_sub_pd(kd, shift);
    __m512d r = _mm512_fmsub_pd(inv_ln2_n, xd, kd);
    /* entries 0-15 and 16-31 by the low four bits of k, then bit 4 picks */
    __m512i lo = _mm512_permutex2var_epi64(t0, ki, t1), hi = _mm512_permutex2var_epi64(t2, ki, t3);
    __mmask8 upper = _mm512_test_epi64_mask(ki, _mm512_set1_epi64(16));
    __m512i t = _mm512_mask_mov_epi64(lo, upper, hi);
    t = _mm512_add_epi64(t, _mm512_slli_epi64(ki, 47));
    __m512d z = _mm512_fmadd_pd(r, c0, c1);
    __m512d r2 = _mm512_mul_pd(r, r);
    __m512d p = _mm512_fmadd_pd(r, c2, one);
    p = _mm512_fmadd_pd(z, r2, p);
    return _mm512_mul_pd(p, _mm512_castsi512_pd(t));
}

AVX512 static void exp_avx512(float *y, const float *x, int64_t n) {
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 xf = _mm256_loadu_ps(x + i); /* y may be x: x read first */
        __m256i top = _mm256_and_si256(_mm256_srli_epi32(_mm256_castps_si256(xf), 20),
                                       _mm256_set1_epi32(0x7ff));
        int special = _mm256_movemask_ps(
            _mm256_castsi256_ps(_mm256_cmpgt_epi32(top, _mm256_set1_epi32((int)TOP12_SPECIAL))));
        float in[8];
        if (special) _mm256_storeu_ps(in, xf);
        _mm256_storeu_ps(y + i, _mm512_cvtpd_ps(exp_steps8(_mm512_cvtps_pd(xf))));
        for (int l = 0; special; l++, special >>= 1)
            if (special & 1) y[i + l] = expf(in[l]);
    }
    exp_avx2(y + i, x + i, n - i);
}

AVX512 static double exp_shifted_sum_avx512(float *e, const float *x, float shift, int64_t n) {
    __m256d acc = _mm256_setzero_pd();
    __m512d shiftd = _mm512_set1_pd((double)shift);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m512d xd = _mm512_sub_pd(_mm512_cvtps_pd(_mm256_loadu_ps(x + i)), shiftd);
        __mmask8 ok = _mm512_cmp_pd_mask(xd, _mm512_set1_pd(-87.0), _CMP_GE_OQ) &
                      _mm512_cmp_pd_mask(xd, _mm512_set1_pd(87.0), _CMP_LE_OQ);
        float in[8];
        if (ok != 0xff) _mm256_storeu_ps(in, _mm256_loadu_ps(x + i)); /* e may be x */
        _mm256_storeu_ps(e + i, _mm512_cvtpd_ps(exp_steps8(xd)));
        for (int l = 0, special = ~ok & 0xff; special; l++, special >>= 1)
            if (special & 1) e[i + l] = (float)exp((double)in[l] - shift);
        /* lanes by i mod 4, as exp_shifted_sum_avx2: the first four, then the next four */
        acc = _mm256_add_pd(acc, _mm256_cvtps_pd(_mm_loadu_ps(e + i)));
        acc = _mm256_add_pd(acc, _mm256_cvtps_pd(_mm_loadu_ps(e + i + 4)));
    }
    return exp_shifted_sum_tail(e, x, shift, n, i, acc);
}

/* attention_exp.h's exp with NaN kept (it reads NaN as below -87) */
__attribute__((target("avx512f"))) static inline __m512 exp16_single(__m512 x) {
    __mmask16 nan = _mm512_cmp_ps_mask(x, x, _CMP_UNORD_Q);
    return _mm512_mask_mov_ps(att_exp_avx512(x), nan, x);
}
__attribute__((target("avx2,fma"))) static inline __m256 exp8_single(__m256 x) {
    __m256 nan = _mm256_cmp_ps(x, x, _CMP_UNORD_Q);
    return _mm256_blendv_ps(att_exp_avx2(x), x, nan);
}

/* y = exp(x) sixteen (AVX-512) or eight (AVX2) at a time; returns where the loop stopped
 * (a multiple of 8: the rest one by one). */
AVX512 static int64_t exp_single_avx512(float *y, const float *x, int64_t n) {
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) _mm512_storeu_ps(y + i, exp16_single(_mm512_loadu_ps(x + i)));
    return i;
}

__attribute__((target("avx2,fma"))) static int64_t exp_single_avx2(float *y, const float *x,
                                                                   int64_t n) {
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, exp8_single(_mm256_loadu_ps(x + i)));
    return i;
}

/* e = exp(x - shift) and lanes[l] += the e[i] with i mod 8 = l, in ascending i; the same
 * stopping point as exp_single_*. */
AVX512 static int64_t shifted_sum_single_avx512(float *e, const float *x, float shift, int64_t n,
                                                double lanes[8]) {
    __m512 sh = _mm512_set1_ps(shift);
    __m512d acc = _mm512_setzero_pd();
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        __m512 v = exp16_single(_mm512_sub_ps(_mm512_loadu_ps(x + i), sh));
        _mm512_storeu_ps(e + i, v);
        acc = _mm512_add_pd(acc, _mm512_cvtps_pd(_mm512_castps512_ps256(v)));
        acc = _mm512_add_pd(
            acc, _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1))));
    }
    _mm512_storeu_pd(lanes, acc);
    return i;
}

__attribute__((target("avx2,fma"))) static int64_t
shifted_sum_single_avx2(float *e, const float *x, float shift, int64_t n, double lanes[8]) {
    __m256 sh = _mm256_set1_ps(shift);
    __m256d lo = _mm256_setzero_pd(), hi = _mm256_setzero_pd();
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 v = exp8_single(_mm256_sub_ps(_mm256_loadu_ps(x + i), sh));
        _mm256_storeu_ps(e + i, v);
        lo = _mm256_add_pd(lo, _mm256_cvtps_pd(_mm256_castps256_ps128(v)));
        hi = _mm256_add_pd(hi, _mm256_cvtps_pd(_mm256_extractf128_ps(v, 1)));
    }
    _mm256_storeu_pd(lanes, lo);
    _mm256_storeu_pd(lanes + 4, hi);
    return i;
}

static int g_force_avx2; /* vexp_force_avx2 */

/* 2 AVX-512, 1 AVX2 and FMA, 0 neither (simd_level), 2 lowered by vexp_force_avx2. */
static int vexp_level(void) {
    int level = simd_level();
    return level == 2 && __atomic_load_n(&g_force_avx2, __ATOMIC_RELAXED) ? 1 : level;
}
#endif

void vexp_force_avx2(bool on) {
#ifdef VEXP_AVX2
    __atomic_store_n(&g_force_avx2, on, __ATOMIC_RELAXED);
#else
    (void)on;
#endif
}

void vexp_floats(float *y, const float *x, int64_t n) {
#ifdef VEXP_AVX2
    int level = vexp_level();
    if (level == 2) {
        exp_avx512(y, x, n);
        return;
    }
    if (level == 1) {
        exp_avx2(y, x, n);
        return;
    }
#endif
    for (int64_t i = 0; i < n; i++) y[i] = expf(x[i]);
}

/* ---- single precision ---- */

static inline float exp_single(float x) {
#ifdef VEXP_AVX2
    return isnan(x) ? x : att_exp_scalar(x);
#else
    return isnan(x) ? x : expf(x);
#endif
}

void vexp_floats_single(float *y, const float *x, int64_t n) {
    int64_t i = 0;
#ifdef VEXP_AVX2
    int level = vexp_level();
    if (level == 2) i = exp_single_avx512(y, x, n);
    if (level == 1) i = exp_single_avx2(y, x, n);
#endif
    for (; i < n; i++) y[i] = exp_single(x[i]);
}

/* The partial sums' last step, and the elements from i on one by one (lane i mod 8). */
static double shifted_sum_finish(float *e, const float *x, float shift, int64_t n, int64_t i,
                                 double lanes[8]) {
    for (; i < n; i++) {
        e[i] = exp_single(x[i] - shift);
        lanes[i % 8] += e[i];
    }
    return ((lanes[0] + lanes[1]) + (lanes[2] + lanes[3])) +
           ((lanes[4] + lanes[5]) + (lanes[6] + lanes[7]));
}

double vexp_shifted_sum_single(float *e, const float *x, float shift, int64_t n) {
    double lanes[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    int64_t i = 0;
#ifdef VEXP_AVX2
    int level = vexp_level();
    if (level == 2) i = shifted_sum_single_avx512(e, x, shift, n, lanes);
    if (level == 1) i = shifted_sum_single_avx2(e, x, shift, n, lanes);
#endif
    return shifted_sum_finish(e, x, shift, n, i, lanes);
}

double vexp_shifted_sum(float *e, const float *x, float shift, int64_t n) {
#ifdef VEXP_AVX2
    int level = vexp_level();
    if (level == 2) return exp_shifted_sum_avx512(e, x, shift, n);
    if (level == 1) return exp_shifted_sum_avx2(e, x, shift, n);
#endif
    double lanes[4] = {0, 0, 0, 0};
    for (int64_t i = 0; i < n; i++) {
        e[i] = (float)exp((double)x[i] - shift);
        lanes[i % 4] += e[i];
    }
    return (lanes[0] + lanes[1]) + (lanes[2] + lanes[3]);
}
