/* trainer/store/gguf_quant.c — the ggml encodings lorafit writes into GGUF files (see gguf.h).
 *
 * Each one reproduces ggml's reference bit for bit, because llama.cpp's own converter does
 * (gguf-py's quants.py is written to match ggml-quants.c): a GGUF from lorafit then holds
 * the bytes llama.cpp's tools would have written from the same float weights. The half
 * conversions live here rather than in tensor/ because store/ depends on nothing. */
#include <math.h>
#include <string.h>

#include "tensor/tensor.h"
#include "trainer/store/gguf.h"

const char *ggml_type_name(GgmlType t) {
    switch (t) {
    case GGML_TYPE_F32:
        return "F32";
    case GGML_TYPE_F16:
        return "F16";
    case GGML_TYPE_Q8_0:
        return "Q8_0";
    case GGML_TYPE_BF16:
        return "BF16";
    }
    return NULL;
}

size_t ggml_row_bytes(GgmlType t, int64_t ne0) {
    if (ne0 < 1) return 0;
    switch (t) {
    case GGML_TYPE_F32:
        return (size_t)ne0 * 4;
    case GGML_TYPE_F16:
    case GGML_TYPE_BF16:
        return (size_t)ne0 * 2;
    case GGML_TYPE_Q8_0:
        return ne0 % GGUF_QK8_0 ? 0 : (size_t)(ne0 / GGUF_QK8_0) * GGUF_Q8_0_BLOCK_BYTES;
    }
    return 0;
}

/* ggml's F16 and BF16 conversions round to nearest even, as tensor/ does: one rounding. */
uint16_t gguf_float_to_f16(float f) {
    return tensor_float_to_f16(f);
}

uint16_t gguf_float_to_bf16(float f) {
    return tensor_float_to_bf16(f);
}

void gguf_quantize_q8_0(const float *x, int64_t n, uint8_t *out) {
    for (int64_t b = 0; b < n / GGUF_QK8_0; b++, x += GGUF_QK8_0, out += GGUF_Q8_0_BLOCK_BYTES) {
        float amax = 0.0f;
        for (int j = 0; j < GGUF_QK8_0; j++) /* ggml's MAX(amax, fabsf(v)) */
            amax = amax > fabsf(x[j]) ? amax : fabsf(x[j]);
        const float d = amax / 127.0f;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        uint16_t dh = gguf_float_to_f16(d);
        out[0] = (uint8_t)dh;
        out[1] = (uint8_t)(dh >> 8);
        for (int j = 0; j < GGUF_QK8_0; j++) out[2 + j] = (uint8_t)(int8_t)roundf(x[j] * id);
    }
}

int gguf_encode(GgmlType t, const float *src, int64_t n, int64_t ne0, void *dst) {
    if (ggml_row_bytes(t, ne0) == 0 || n % ne0 != 0) return -1;
    uint16_t *h = dst;
    switch (t) {
    case GGML_TYPE_F32:
        memcpy(dst, src, (size_t)n * sizeof(float));
        return 0;
    case GGML_TYPE_F16:
        for (int64_t i = 0; i < n; i++) h[i] = gguf_float_to_f16(src[i]);
        return 0;
    case GGML_TYPE_BF16:
        for (int64_t i = 0; i < n; i++) h[i] = gguf_float_to_bf16(src[i]);
        return 0;
    case GGML_TYPE_Q8_0:
        gguf_quantize_q8_0(src, n, dst);
        return 0;
    }
    return -1;
}
