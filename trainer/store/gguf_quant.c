/* trainer/store/gguf_quant.c — the ggml encodings lorafit writes into GGUF files (see gguf.h).
 *
 * Each one reproduces ggml's reference bit for bit, because llama.cpp's own converter does
 * (gguf-py's quants.py is written to match ggml-quants.c): a GGUF from lorafit then holds
 * the bytes llama.cpp's tools would have written from the same float weights. The block
 * layouts, halves and quantizers are tensor/'s (tensor/quant.h), one implementation for the
 * writer here and for the quantized weights lorafit trains on. */
#include "tensor/tensor.h"
#include "trainer/store/gguf.h"

/* ggml's F16 and BF16 conversions round to nearest even, as tensor/ does: one rounding. */
uint16_t gguf_float_to_f16(float f) {
    return tensor_float_to_f16(f);
}

uint16_t gguf_float_to_bf16(float f) {
    return tensor_float_to_bf16(f);
}

int gguf_encode(GgmlType t, const float *src, int64_t n, int64_t ne0, void *dst) {
    if (ggml_row_bytes(t, ne0) == 0 || n % ne0 != 0) return -1;
    /* rows are whole blocks, so the rows back to back are one row of n */
    return quant_quantize_row(t, src, dst, n);
}
