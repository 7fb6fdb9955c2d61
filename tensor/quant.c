/* tensor/quant.c — ggml's types: the table of block sizes, the halves, the 32-weight
 * blocks (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0) and the dispatch by type (see quant.h). Q4_1, Q5_0
 * and Q5_1 are quantized too: llama-quantize's fallbacks for rows the K-quants cannot hold
 * (Q4_K -> Q5_0, Q5_K -> Q5_1 when a row is not whole super-blocks).
 *
 * Each loop is ggml-quants.c's, operation for operation: the same products in the same
 * order, int-to-float conversions where ggml has them, and ggml's MIN/MAX ternaries, so
 * the floats come out bit-identical (lorafit and ggml both compile without FMA contraction:
 * -std=c11 here, no -mfma there with GGML_NATIVE off). The K-quants are in quant_k.c. */
#include <float.h>
#include <math.h>
#include <omp.h>

#include "tensor/bf16.h"
#include "tensor/quant_internal.h"

typedef struct {
    const char *name;
    int64_t block; /* weights per block */
    size_t bytes;  /* bytes per block */
} TypeInfo;

static const TypeInfo *type_info(int t) {
    static const TypeInfo f32 = {"F32", 1, 4}, f16 = {"F16", 1, 2}, bf16 = {"BF16", 1, 2},
                          q4_0 = {"Q4_0", QK4_0, sizeof(BlockQ4_0)},
                          q4_1 = {"Q4_1", QK4_1, sizeof(BlockQ4_1)},
                          q5_0 = {"Q5_0", QK5_0, sizeof(BlockQ5_0)},
                          q5_1 = {"Q5_1", QK5_1, sizeof(BlockQ5_1)},
                          q8_0 = {"Q8_0", GGML_QK8_0, sizeof(BlockQ8_0)},
                          q2_k = {"Q2_K", QK_K, sizeof(BlockQ2_K)},
                          q3_k = {"Q3_K", QK_K, sizeof(BlockQ3_K)},
                          q4_k = {"Q4_K", QK_K, sizeof(BlockQ4_K)},
                          q5_k = {"Q5_K", QK_K, sizeof(BlockQ5_K)},
                          q6_k = {"Q6_K", QK_K, sizeof(BlockQ6_K)};
    switch (t) {
    case GGML_TYPE_F32:
        return &f32;
    case GGML_TYPE_F16:
        return &f16;
    case GGML_TYPE_BF16:
        return &bf16;
    case GGML_TYPE_Q4_0:
        return &q4_0;
    case GGML_TYPE_Q4_1:
        return &q4_1;
    case GGML_TYPE_Q5_0:
        return &q5_0;
    case GGML_TYPE_Q5_1:
        return &q5_1;
    case GGML_TYPE_Q8_0:
        return &q8_0;
    case GGML_TYPE_Q2_K:
        return &q2_k;
    case GGML_TYPE_Q3_K:
        return &q3_k;
    case GGML_TYPE_Q4_K:
        return &q4_k;
    case GGML_TYPE_Q5_K:
        return &q5_k;
    case GGML_TYPE_Q6_K:
        return &q6_k;
    }
    return NULL;
}

const char *ggml_type_name(int t) {
    const TypeInfo *ti = type_info(t);
    return ti ? ti->name : NULL;
}

int64_t ggml_block_size(int t) {
    const TypeInfo *ti = type_info(t);
    return ti ? ti->block : 0;
}

size_t ggml_block_bytes(int t) {
    const TypeInfo *ti = type_info(t);
    return ti ? ti->bytes : 0;
}

size_t ggml_row_bytes(int t, int64_t ne0) {
    const TypeInfo *ti = type_info(t);
    if (!ti || ne0 < 1 || ne0 % ti->block) return 0;
    return (size_t)(ne0 / ti->block) * ti->bytes;
}

bool quant_can_quantize(int t) {
    return type_info(t) != NULL; /* every type lorafit reads, it writes */
}

/* ggml_compute_fp16_to_fp32 (ggml-impl.h), operation for operation: exact for every half,
 * and a signalling NaN comes out quieted, as from ggml (and from F16C's vcvtph2ps). */
static inline float bits_float(uint32_t u) {
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}
static inline uint32_t float_bits(float f) {
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

float quant_f16_to_float(uint16_t h) {
    const uint32_t w = (uint32_t)h << 16;
    const uint32_t sign = w & UINT32_C(0x80000000);
    const uint32_t two_w = w + w;
    const uint32_t exp_offset = UINT32_C(0xE0) << 23;
    const float exp_scale = 0x1.0p-112f;
    const float normalized_value = bits_float((two_w >> 4) + exp_offset) * exp_scale;
    const uint32_t magic_mask = UINT32_C(126) << 23;
    const float magic_bias = 0.5f;
    const float denormalized_value = bits_float((two_w >> 17) | magic_mask) - magic_bias;
    const uint32_t denormalized_cutoff = UINT32_C(1) << 27;
    return bits_float(sign | (two_w < denormalized_cutoff ? float_bits(denormalized_value)
                                                          : float_bits(normalized_value)));
}

/* ---- 32-weight blocks: ggml-quants.c's dequantize_row_* and quantize_row_*_ref ---------- */

static void dequantize_q4_0(const BlockQ4_0 *restrict x, float *restrict y, int64_t nb) {
    for (int64_t i = 0; i < nb; i++) {
        const float d = f16_to_float(x[i].d);
        for (int j = 0; j < QK4_0 / 2; ++j) {
            const int x0 = (x[i].qs[j] & 0x0F) - 8;
            const int x1 = (x[i].qs[j] >> 4) - 8;
            y[i * QK4_0 + j + 0] = x0 * d;
            y[i * QK4_0 + j + QK4_0 / 2] = x1 * d;
        }
    }
}

static void dequantize_q4_1(const BlockQ4_1 *restrict x, float *restrict y, int64_t nb) {
    for (int64_t i = 0; i < nb; i++) {
        const float d = f16_to_float(x[i].d);
        const float m = f16_to_float(x[i].m);
        for (int j = 0; j < QK4_1 / 2; ++j) {
            const int x0 = (x[i].qs[j] & 0x0F);
            const int x1 = (x[i].qs[j] >> 4);
            y[i * QK4_1 + j + 0] = x0 * d + m;
            y[i * QK4_1 + j + QK4_1 / 2] = x1 * d + m;
        }
    }
}

static void dequantize_q5_0(const BlockQ5_0 *restrict x, float *restrict y, int64_t nb) {
    for (int64_t i = 0; i < nb; i++) {
        const float d = f16_to_float(x[i].d);
        uint32_t qh;
        memcpy(&qh, x[i].qh, sizeof(qh));
        for (int j = 0; j < QK5_0 / 2; ++j) {
            const uint8_t xh_0 = ((qh >> (j + 0)) << 4) & 0x10;
            const uint8_t xh_1 = ((qh >> (j + 12))) & 0x10;
            const int32_t x0 = ((x[i].qs[j] & 0x0F) | xh_0) - 16;
            const int32_t x1 = ((x[i].qs[j] >> 4) | xh_1) - 16;
            y[i * QK5_0 + j + 0] = x0 * d;
            y[i * QK5_0 + j + QK5_0 / 2] = x1 * d;
        }
    }
}

static void dequantize_q5_1(const BlockQ5_1 *restrict x, float *restrict y, int64_t nb) {
    for (int64_t i = 0; i < nb; i++) {
        const float d = f16_to_float(x[i].d);
        const float m = f16_to_float(x[i].m);
        uint32_t qh;
        memcpy(&qh, x[i].qh, sizeof(qh));
        for (int j = 0; j < QK5_1 / 2; ++j) {
            const uint8_t xh_0 = ((qh >> (j + 0)) << 4) & 0x10;
            const uint8_t xh_1 = ((qh >> (j + 12))) & 0x10;
            const int x0 = (x[i].qs[j] & 0x0F) | xh_0;
            const int x1 = (x[i].qs[j] >> 4) | xh_1;
            y[i * QK5_1 + j + 0] = x0 * d + m;
            y[i * QK5_1 + j + QK5_1 / 2] = x1 * d + m;
        }
    }
}

static void dequantize_q8_0(const BlockQ8_0 *restrict x, float *restrict y, int64_t nb) {
    for (int64_t i = 0; i < nb; i++) {
        const float d = f16_to_float(x[i].d);
        for (int j = 0; j < GGML_QK8_0; ++j) y[i * GGML_QK8_0 + j] = x[i].qs[j] * d;
    }
}

static void quantize_q4_0(const float *x, BlockQ4_0 *y, int64_t nb) {
    const int qk = QK4_0;
    for (int64_t i = 0; i < nb; i++) {
        float amax = 0.0f, max = 0.0f; /* the absolute max, and the signed value that has it */
        for (int j = 0; j < qk; j++) {
            const float v = x[i * qk + j];
            if (amax < fabsf(v)) {
                amax = fabsf(v);
                max = v;
            }
        }
        const float d = max / -8;
        const float id = d ? 1.0f / d : 0.0f;
        y[i].d = tensor_float_to_f16(d);
        for (int j = 0; j < qk / 2; ++j) {
            const float x0 = x[i * qk + 0 + j] * id;
            const float x1 = x[i * qk + qk / 2 + j] * id;
            const uint8_t xi0 = QMIN(15, (int8_t)(x0 + 8.5f));
            const uint8_t xi1 = QMIN(15, (int8_t)(x1 + 8.5f));
            y[i].qs[j] = (uint8_t)(xi0 | xi1 << 4);
        }
    }
}

static void quantize_q4_1(const float *x, BlockQ4_1 *y, int64_t nb) {
    const int qk = QK4_1;
    for (int64_t i = 0; i < nb; i++) {
        float min = FLT_MAX, max = -FLT_MAX;
        for (int j = 0; j < qk; j++) {
            const float v = x[i * qk + j];
            if (v < min) min = v;
            if (v > max) max = v;
        }
        const float d = (max - min) / ((1 << 4) - 1);
        const float id = d ? 1.0f / d : 0.0f;
        y[i].d = tensor_float_to_f16(d);
        y[i].m = tensor_float_to_f16(min);
        for (int j = 0; j < qk / 2; ++j) {
            const float x0 = (x[i * qk + 0 + j] - min) * id;
            const float x1 = (x[i * qk + qk / 2 + j] - min) * id;
            const uint8_t xi0 = QMIN(15, (int8_t)(x0 + 0.5f));
            const uint8_t xi1 = QMIN(15, (int8_t)(x1 + 0.5f));
            y[i].qs[j] = (uint8_t)(xi0 | xi1 << 4);
        }
    }
}

static void quantize_q5_0(const float *x, BlockQ5_0 *y, int64_t nb) {
    const int qk = QK5_0;
    for (int64_t i = 0; i < nb; i++) {
        float amax = 0.0f, max = 0.0f;
        for (int j = 0; j < qk; j++) {
            const float v = x[i * qk + j];
            if (amax < fabsf(v)) {
                amax = fabsf(v);
                max = v;
            }
        }
        const float d = max / -16;
        const float id = d ? 1.0f / d : 0.0f;
        y[i].d = tensor_float_to_f16(d);
        uint32_t qh = 0;
        for (int j = 0; j < qk / 2; ++j) {
            const float x0 = x[i * qk + 0 + j] * id;
            const float x1 = x[i * qk + qk / 2 + j] * id;
            const uint8_t xi0 = QMIN(31, (int8_t)(x0 + 16.5f));
            const uint8_t xi1 = QMIN(31, (int8_t)(x1 + 16.5f));
            y[i].qs[j] = (uint8_t)((xi0 & 0x0F) | ((xi1 & 0x0F) << 4));
            /* the fifth bits, in qh at the weight's position */
            qh |= ((xi0 & 0x10u) >> 4) << (j + 0);
            qh |= ((xi1 & 0x10u) >> 4) << (j + qk / 2);
        }
        memcpy(&y[i].qh, &qh, sizeof(qh));
    }
}

static void quantize_q5_1(const float *x, BlockQ5_1 *y, int64_t nb) {
    const int qk = QK5_1;
    for (int64_t i = 0; i < nb; i++) {
        float min = FLT_MAX, max = -FLT_MAX;
        for (int j = 0; j < qk; j++) {
            const float v = x[i * qk + j];
            if (v < min) min = v;
            if (v > max) max = v;
        }
        const float d = (max - min) / ((1 << 5) - 1);
        const float id = d ? 1.0f / d : 0.0f;
        y[i].d = tensor_float_to_f16(d);
        y[i].m = tensor_float_to_f16(min);
        uint32_t qh = 0;
        for (int j = 0; j < qk / 2; ++j) {
            const float x0 = (x[i * qk + 0 + j] - min) * id;
            const float x1 = (x[i * qk + qk / 2 + j] - min) * id;
            const uint8_t xi0 = (uint8_t)(x0 + 0.5f);
            const uint8_t xi1 = (uint8_t)(x1 + 0.5f);
            y[i].qs[j] = (uint8_t)((xi0 & 0x0F) | ((xi1 & 0x0F) << 4));
            qh |= ((xi0 & 0x10u) >> 4) << (j + 0);
            qh |= ((xi1 & 0x10u) >> 4) << (j + qk / 2);
        }
        memcpy(&y[i].qh, &qh, sizeof(y[i].qh));
    }
}

static void quantize_q8_0(const float *x, BlockQ8_0 *y, int64_t nb) {
    for (int64_t i = 0; i < nb; i++) {
        float amax = 0.0f;
        for (int j = 0; j < GGML_QK8_0; j++) amax = QMAX(amax, fabsf(x[i * GGML_QK8_0 + j]));
        const float d = amax / ((1 << 7) - 1);
        const float id = d ? 1.0f / d : 0.0f;
        y[i].d = tensor_float_to_f16(d);
        for (int j = 0; j < GGML_QK8_0; ++j)
            y[i].qs[j] = (int8_t)roundf(x[i * GGML_QK8_0 + j] * id);
    }
}

/* ---- by type ------------------------------------------------------------------------- */

int quant_dequantize_row(int t, const void *src, float *dst, int64_t n) {
    int64_t bs = ggml_block_size(t);
    if (bs == 0 || n < 0 || n % bs) return -1;
    int64_t nb = n / bs;
    const uint16_t *h = src;
    switch (t) {
    case GGML_TYPE_F32:
        memcpy(dst, src, (size_t)n * sizeof(float));
        return 0;
    case GGML_TYPE_F16:
        for (int64_t i = 0; i < n; i++) dst[i] = f16_to_float(h[i]);
        return 0;
    case GGML_TYPE_BF16:
        for (int64_t i = 0; i < n; i++) dst[i] = bf16_widen(h[i]);
        return 0;
    case GGML_TYPE_Q4_0:
        dequantize_q4_0(src, dst, nb);
        return 0;
    case GGML_TYPE_Q4_1:
        dequantize_q4_1(src, dst, nb);
        return 0;
    case GGML_TYPE_Q5_0:
        dequantize_q5_0(src, dst, nb);
        return 0;
    case GGML_TYPE_Q5_1:
        dequantize_q5_1(src, dst, nb);
        return 0;
    case GGML_TYPE_Q8_0:
        dequantize_q8_0(src, dst, nb);
        return 0;
    case GGML_TYPE_Q2_K:
        dequantize_q2_k(src, dst, nb);
        return 0;
    case GGML_TYPE_Q3_K:
        dequantize_q3_k(src, dst, nb);
        return 0;
    case GGML_TYPE_Q4_K:
        dequantize_q4_k(src, dst, nb);
        return 0;
    case GGML_TYPE_Q5_K:
        dequantize_q5_k(src, dst, nb);
        return 0;
    case GGML_TYPE_Q6_K:
        dequantize_q6_k(src, dst, nb);
        return 0;
    }
    return -1;
}

int quant_quantize_row(int t, const float *src, void *dst, int64_t n) {
    int64_t bs = ggml_block_size(t);
    if (!quant_can_quantize(t) || n < 0 || n % bs) return -1;
    int64_t nb = n / bs;
    uint16_t *h = dst;
    switch (t) {
    case GGML_TYPE_F32:
        memcpy(dst, src, (size_t)n * sizeof(float));
        return 0;
    case GGML_TYPE_F16:
        for (int64_t i = 0; i < n; i++) h[i] = tensor_float_to_f16(src[i]);
        return 0;
    case GGML_TYPE_BF16:
        for (int64_t i = 0; i < n; i++) h[i] = bf16_round(src[i]);
        return 0;
    case GGML_TYPE_Q8_0:
        quantize_q8_0(src, dst, nb);
        return 0;
    case GGML_TYPE_Q4_0:
        quantize_q4_0(src, dst, nb);
        return 0;
    case GGML_TYPE_Q4_1:
        quantize_q4_1(src, dst, nb);
        return 0;
    case GGML_TYPE_Q5_0:
        quantize_q5_0(src, dst, nb);
        return 0;
    case GGML_TYPE_Q5_1:
        quantize_q5_1(src, dst, nb);
        return 0;
    case GGML_TYPE_Q2_K:
        quantize_q2_k(src, dst, nb);
        return 0;
    case GGML_TYPE_Q3_K:
        quantize_q3_k(src, dst, nb);
        return 0;
    case GGML_TYPE_Q4_K:
        quantize_q4_k(src, dst, nb);
        return 0;
    case GGML_TYPE_Q5_K:
        quantize_q5_k(src, dst, nb);
        return 0;
    case GGML_TYPE_Q6_K:
        quantize_q6_k(src, dst, nb);
        return 0;
    }
    return -1;
}

int tensor_init_quant(Tensor *t, const void *blocks, GgmlType type, int64_t out, int64_t in) {
    int64_t shape[2] = {out, in};
    tensor_init(t, NULL, 2, shape);
    if (out < 1 || ggml_row_bytes(type, in) == 0) return -1;
    t->quant = blocks;
    t->quant_type = type;
    return 0;
}

void tensor_dequantize_rows(float *dst, const Tensor *w, int64_t row0, int64_t rows) {
    int64_t in = w->shape[1];
    size_t row_bytes = ggml_row_bytes(w->quant_type, in);
    const uint8_t *base = w->quant;
#pragma omp parallel for schedule(static) if (rows > 64 && !omp_in_parallel())
    for (int64_t r = 0; r < rows; r++)
        quant_dequantize_row(w->quant_type,
                             base + (size_t)quant_stored_row(w, row0 + r) * row_bytes, dst + r * in,
                             in);
}
