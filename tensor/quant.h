/* tensor/quant.h — ggml's tensor types: the block layouts of GGUF weights, their
 * dequantization and llama.cpp's reference quantizers, bit for bit.
 *
 * A quantized row of ne0 weights is ne0 / block_size blocks laid out exactly as ggml's
 * ggml-common.h (little-endian): Q8_0 = f16 d, 32 int8; Q4_0 = f16 d, 16 bytes of nibbles;
 * the K-quants are super-blocks of 256 with 6- or 8-bit sub-block scales. Dequantization
 * reproduces ggml's dequantize_row_* (the same float operations in the same order, so the
 * same bits); quantization reproduces quantize_row_*_ref, which is what llama-quantize writes
 * without an importance matrix. tests/test_tensor_quant.c checks both against vectors ggml
 * itself produced (tests/reference/quant/).
 *
 * Part of tensor/'s API (tensor.h includes it): store/ writes these types into GGUF files,
 * the model reads them, and op_linear / op_lora_linear multiply by them (Tensor.quant). */
#ifndef LORAFIT_QUANT_H
#define LORAFIT_QUANT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ggml.h's enum ggml_type: the values are the file format's. */
typedef enum {
    GGML_TYPE_F32 = 0,
    GGML_TYPE_F16 = 1,
    GGML_TYPE_Q4_0 = 2,
    GGML_TYPE_Q4_1 = 3,
    GGML_TYPE_Q5_0 = 6,
    GGML_TYPE_Q5_1 = 7,
    GGML_TYPE_Q8_0 = 8,
    GGML_TYPE_Q2_K = 10,
    GGML_TYPE_Q3_K = 11,
    GGML_TYPE_Q4_K = 12,
    GGML_TYPE_Q5_K = 13,
    GGML_TYPE_Q6_K = 14,
    GGML_TYPE_BF16 = 30
} GgmlType;

#define GGML_QK8_0            32  /* weights per Q8_0 block */
#define GGML_Q8_0_BLOCK_BYTES 34  /* f16 scale + 32 int8 */
#define GGML_QK_K             256 /* weights per K-quant super-block */

/* "F32", "Q4_K", ...; NULL for a type lorafit does not know (IQ*, TQ*, MXFP4, ...). The
 * value t may come from a file: anything not in GgmlType is unknown. */
const char *ggml_type_name(int t);
/* Weights per block (1 for F32, F16, BF16) and bytes per block; 0 for an unknown type. */
int64_t ggml_block_size(int t);
size_t ggml_block_bytes(int t);
/* Bytes of a row of ne0 weights: 0 when the type is unknown or ne0 is not a positive
 * multiple of its block size (Q8_0 needs a multiple of 32, the K-quants of 256). */
size_t ggml_row_bytes(int t, int64_t ne0);
/* Whether quant_quantize_row writes type t: every type in GgmlType (what lorafit reads it
 * can write back, as a merge into a GGUF base does). */
bool quant_can_quantize(int t);

/* IEEE half -> float, exact; NaNs as ggml_compute_fp16_to_fp32 makes them (quieted). */
float quant_f16_to_float(uint16_t h);

/* n weights (a multiple of the block size) of type t at src -> n floats, as ggml's
 * dequantize_row_* (and its F16/BF16/F32 conversions). 0, or -1 for an unknown type or
 * an n the blocks do not divide. */
int quant_dequantize_row(int t, const void *src, float *dst, int64_t n);
/* n floats -> ggml_row_bytes(t, n) bytes of type t, as quantize_row_*_ref or ggml's
 * rounding (F16, BF16: nearest even). 0, or -1 when !quant_can_quantize(t) or the blocks do
 * not divide n. */
int quant_quantize_row(int t, const float *src, void *dst, int64_t n);

#endif
