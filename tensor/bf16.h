/* tensor/bf16.h — bf16 rounding and widening, the one definition in tensor/; private.
 *
 * BF16 is the top half of an F32. Rounding is to nearest, ties to even, on the bit pattern;
 * a NaN stays a quiet NaN (rounding could otherwise carry it into an infinity). These are
 * inline so that the conversion loops over activations (tensor/matmul.c) vectorise;
 * tensor_float_to_bf16() in tensor.h is this function. */
#ifndef LORAFIT_BF16_H
#define LORAFIT_BF16_H

#include <immintrin.h>
#include <stdint.h>
#include <string.h>

static inline uint16_t bf16_round(float f) {
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    uint32_t rounded = (u + 0x7fffu + (u >> 16 & 1u)) >> 16;
    uint32_t nan = u >> 16 | 0x40u;
    return (uint16_t)((u & 0x7fffffffu) > 0x7f800000u ? nan : rounded);
}

static inline float bf16_widen(uint16_t h) {
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

/* The float nearest to f that bf16 holds exactly: bf16_widen(bf16_round(f)). */
static inline float bf16_round_float(float f) {
    return bf16_widen(bf16_round(f));
}

/* On AVX512-BF16: two rows' 16 values each rounded to bf16 and interleaved, word l of the
 * result = (lo[l], hi[l]) (lo's in the low half): the "pairs along rows" VDPBF16PS multiplies.
 * VCVTNE2PS2BF16 rounds as bf16_round does, except that it reads a denormal as 0, as
 * VDPBF16PS would anyway. */
__attribute__((target("avx512f,avx512bw,avx512bf16"))) static inline __m512i
bf16_interleave16(__m512 lo, __m512 hi) {
    /* word 2l from word l of the conversion (lo's value l), 2l + 1 from word 16 + l (hi's) */
    const __m512i weave =
        _mm512_set_epi16(31, 15, 30, 14, 29, 13, 28, 12, 27, 11, 26, 10, 25, 9, 24, 8, 23, 7, 22, 6,
                         21, 5, 20, 4, 19, 3, 18, 2, 17, 1, 16, 0);
    return _mm512_permutexvar_epi16(weave, (__m512i)_mm512_cvtne2ps_pbh(hi, lo));
}

#endif
