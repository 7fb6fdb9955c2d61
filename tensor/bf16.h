/* tensor/bf16.h — bf16 rounding and widening, the one definition in tensor/; private.
 *
 * BF16 is the top half of an F32. Rounding is to nearest, ties to even, on the bit pattern;
 * a NaN stays a quiet NaN (rounding could otherwise carry it into an infinity). These are
 * inline so that the conversion loops over activations (tensor/matmul.c) vectorise;
 * tensor_float_to_bf16() in tensor.h is this function. */
#ifndef LORAFIT_BF16_H
#define LORAFIT_BF16_H

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

#endif
