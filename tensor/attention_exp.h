/* tensor/attention_exp.h — the exp of the attention's probabilities, portable, on 8 AVX2
 * and on 16 AVX-512 lanes (the same operations, so the same bits), for attention_kernels.c's
 * att_exp_row and attention_bf16.c's loops that write the exps as bf16 pairs, and vexp.c's
 * single-precision array exps (BF16 precision's SwiGLU and lm_head softmax); private to
 * tensor/. */
#ifndef LORAFIT_ATTENTION_EXP_H
#define LORAFIT_ATTENTION_EXP_H

#include <immintrin.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

/* exp(x) for x in [-87, 88] as 2^n e^r, n = rint(x log2 e), r = x - n ln 2 (ln 2 in two
 * parts), e^r by Cephes' expf polynomial (within about an ulp); below -87 it is 0 (such a
 * probability is below 2^-125 of the row's largest). The same operations in every path. */
#define EXP_MIN -87.0f
#define EXP_MAX 88.0f
#define LOG2E   1.44269504088896341f
#define LN2_HI  0.693359375f
#define LN2_LO  -2.12194440e-4f
#define EXP_C0  1.9875691500e-4f
#define EXP_C1  1.3981999507e-3f
#define EXP_C2  8.3334519073e-3f
#define EXP_C3  4.1665795894e-2f
#define EXP_C4  1.6666665459e-1f
#define EXP_C5  5.0000001201e-1f

static inline float att_exp_scalar(float x) {
    if (!(x >= EXP_MIN)) return 0.0f; /* -inf (masked) too */
    x = x < EXP_MAX ? x : EXP_MAX;
    float n = rintf(x * LOG2E);
    float r = fmaf(n, -LN2_HI, x);
    r = fmaf(n, -LN2_LO, r);
    float p = fmaf(EXP_C0, r, EXP_C1);
    p = fmaf(p, r, EXP_C2);
    p = fmaf(p, r, EXP_C3);
    p = fmaf(p, r, EXP_C4);
    p = fmaf(p, r, EXP_C5);
    float y = fmaf(p, r * r, r) + 1.0f;
    uint32_t bits = (uint32_t)((int32_t)n + 127) << 23;
    float two_n;
    memcpy(&two_n, &bits, sizeof two_n);
    return y * two_n;
}

__attribute__((target("avx2,fma"))) static inline __m256 att_exp_avx2(__m256 x) {
    __m256 zero = _mm256_cmp_ps(x, _mm256_set1_ps(EXP_MIN), _CMP_NGE_UQ);
    x = _mm256_min_ps(_mm256_max_ps(x, _mm256_set1_ps(EXP_MIN)), _mm256_set1_ps(EXP_MAX));
    __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(LOG2E)),
                               _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 r = _mm256_fmadd_ps(n, _mm256_set1_ps(-LN2_HI), x);
    r = _mm256_fmadd_ps(n, _mm256_set1_ps(-LN2_LO), r);
    __m256 p = _mm256_fmadd_ps(_mm256_set1_ps(EXP_C0), r, _mm256_set1_ps(EXP_C1));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(EXP_C2));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(EXP_C3));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(EXP_C4));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(EXP_C5));
    __m256 y = _mm256_add_ps(_mm256_fmadd_ps(p, _mm256_mul_ps(r, r), r), _mm256_set1_ps(1.0f));
    __m256i e =
        _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
    return _mm256_andnot_ps(zero, _mm256_mul_ps(y, _mm256_castsi256_ps(e)));
}

__attribute__((target("avx512f"))) static inline __m512 att_exp_avx512(__m512 x) {
    __mmask16 zero = _mm512_cmp_ps_mask(x, _mm512_set1_ps(EXP_MIN), _CMP_NGE_UQ);
    x = _mm512_min_ps(_mm512_max_ps(x, _mm512_set1_ps(EXP_MIN)), _mm512_set1_ps(EXP_MAX));
    __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(LOG2E)),
                                    _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 r = _mm512_fmadd_ps(n, _mm512_set1_ps(-LN2_HI), x);
    r = _mm512_fmadd_ps(n, _mm512_set1_ps(-LN2_LO), r);
    __m512 p = _mm512_fmadd_ps(_mm512_set1_ps(EXP_C0), r, _mm512_set1_ps(EXP_C1));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(EXP_C2));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(EXP_C3));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(EXP_C4));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(EXP_C5));
    __m512 y = _mm512_add_ps(_mm512_fmadd_ps(p, _mm512_mul_ps(r, r), r), _mm512_set1_ps(1.0f));
    __m512i e =
        _mm512_slli_epi32(_mm512_add_epi32(_mm512_cvtps_epi32(n), _mm512_set1_epi32(127)), 23);
    return _mm512_maskz_mul_ps((__mmask16)~zero, y, _mm512_castsi512_ps(e));
}

/* exp(s[x] - shift) in the lanes mk holds, 0 in the others (their scores are not read). */
__attribute__((target("avx512f"))) static inline __m512 att_exp16(const float *s, __mmask16 mk,
                                                                  __m512 shift) {
    if (!mk) return _mm512_setzero_ps();
    return _mm512_maskz_mov_ps(mk,
                               att_exp_avx512(_mm512_sub_ps(_mm512_maskz_loadu_ps(mk, s), shift)));
}

/* The first `left` of 16 lanes (none when left <= 0, all from 16 on): a row's tail. */
static inline __mmask16 att_lanes(int left) {
    return left >= 16 ? 0xffff : left <= 0 ? 0 : (__mmask16)((1u << left) - 1u);
}

/* The 16 lanes' sum: lane l + lane l + 8, then + 4, + 2, + 1 (att_exp_row's order). */
__attribute__((target("avx512f"))) static inline float att_lanes_sum_avx512(__m512 acc) {
    __m256 h8 = _mm256_add_ps(_mm512_castps512_ps256(acc),
                              _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(acc), 1)));
    __m128 h4 = _mm_add_ps(_mm256_castps256_ps128(h8), _mm256_extractf128_ps(h8, 1));
    __m128 h2 = _mm_add_ps(h4, _mm_movehl_ps(h4, h4));
    __m128 h1 = _mm_add_ss(h2, _mm_shuffle_ps(h2, h2, 1));
    return _mm_cvtss_f32(h1);
}

#endif
