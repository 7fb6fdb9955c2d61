/* tests/reference/quant/check_gguf_dequant_ggml.c — ggml's dequantization for
 * check_gguf_dequant.c (a file of its own: ggml.h and lorafit's tensor/quant.h both define
 * GGML_TYPE_*). */
#include <stdint.h>
#include <string.h>

#include "ggml.h"

void ggml_side_to_float(int type, const void *src, float *dst, int64_t n);

void ggml_side_to_float(int type, const void *src, float *dst, int64_t n) {
    if (type == GGML_TYPE_F32) /* ggml has no to_float for F32: the bytes are the floats */
        memcpy(dst, src, (size_t)n * sizeof(float));
    else
        ggml_get_type_traits((enum ggml_type)type)->to_float(src, dst, n);
}
