/* trainer/model/quantize.c — model.quantize: the decoder's linear weights quantized at load
 * (see decoder.h, model_load_quantized).
 *
 * Each row of W (OUT, IN) is read from the checkpoint (F32, F16 or BF16: exact in float) and
 * written by quant_quantize_row, llama.cpp's reference quantizer without an importance
 * matrix, so the blocks are the ones llama-quantize writes for the same tensor. Rows a type
 * cannot hold fall back as llama-quantize's tensor_type_fallback does (llama-quant.cpp,
 * 2026-09): Q4_K -> Q5_0, Q5_K -> Q5_1, Q6_K -> Q8_0, and F16 when the 32-weight blocks do not
 * divide IN either. Rows are independent: the bytes do not depend on the thread count. */
#include "trainer/model/internal.h"

#include <stdio.h>
#include <stdlib.h>

GgmlType model_quant_type_for(GgmlType type, int64_t in) {
    if (in % ggml_block_size(type) == 0) return type;
    GgmlType fallback = type == GGML_TYPE_Q4_K   ? GGML_TYPE_Q5_0
                        : type == GGML_TYPE_Q5_K ? GGML_TYPE_Q5_1
                        : type == GGML_TYPE_Q6_K ? GGML_TYPE_Q8_0
                                                 : type;
    return in % ggml_block_size(fallback) == 0 ? fallback : GGML_TYPE_F16;
}

size_t model_quant_bytes(GgmlType type, int64_t out, int64_t in) {
    size_t bytes = (size_t)out * ggml_row_bytes(model_quant_type_for(type, in), in);
    return (bytes + 63) / 64 * 64; /* each matrix starts 64-byte aligned */
}

int model_quantize_weight(Tensor *dst, const StTensor *src, GgmlType type, void *blocks, char *err,
                          size_t errlen) {
    int64_t out = src->shape[0], in = src->shape[1];
    GgmlType t = model_quant_type_for(type, in);
    size_t row_bytes = ggml_row_bytes(t, in), src_row = src->nbytes / (size_t)out;
    int failed = 0;
#pragma omp parallel reduction(| : failed)
    {
        float *row = malloc((size_t)in * sizeof *row);
        failed |= row == NULL;
#pragma omp for schedule(static)
        for (int64_t o = 0; o < out; o++) {
            if (!row) continue;
            StTensor r = *src;
            r.data = (const uint8_t *)src->data + (size_t)o * src_row;
            r.numel = in, r.nbytes = src_row, r.ndim = 1, r.shape[0] = in;
            char e[8];
            failed |=
                st_to_float(&r, row, e, sizeof e) != 0 ||
                quant_quantize_row(t, row, (uint8_t *)blocks + (size_t)o * row_bytes, in) != 0;
        }
        free(row);
    }
    if (failed || tensor_init_quant(dst, blocks, t, out, in) != 0) {
        snprintf(err, errlen, "tensor '%s': quantizing to %s failed (out of memory?)", src->name,
                 ggml_type_name(t));
        return -1;
    }
    return 0;
}

void model_quant_note(const Model *m, char *out, size_t len) {
    int count[GGML_TYPE_BF16 + 1] = {0}, total = 0;
    size_t bytes = 0;
    if (len) out[0] = '\0';
    if ((m->quant == GGML_TYPE_F32 && !m->gguf) || !len) return;
    for (int l = 0; l < m->cfg.num_hidden_layers; l++)
        for (int mod = 0; mod < MODULE_COUNT; mod++) {
            const Tensor *w = &m->layers[l].w[mod];
            GgmlType t = w->quant ? w->quant_type : w->bf16 ? GGML_TYPE_BF16 : GGML_TYPE_F32;
            if (!w->quant && !(m->gguf && (w->data || w->bf16))) continue;
            count[t]++, total++;
            bytes += (size_t)w->shape[0] * ggml_row_bytes(t, w->shape[1]);
        }
    /* a GGUF base lists every type of its linears; model.quantize the fallbacks only */
    GgmlType asked = m->quant;
    size_t at = m->gguf
                    ? (size_t)snprintf(out, len, "GGUF base %s (%s): %d linear weights, %.1f MB",
                                       gguf_file_path(m->gguf), m->cfg.family->gguf_arch, total,
                                       (double)bytes / 1e6)
                    : (size_t)snprintf(out, len, "model.quantize %s: %d linear weights, %.1f MB",
                                       ggml_type_name(asked), total, (double)bytes / 1e6);
    bool first = true;
    for (int t = 0; t <= GGML_TYPE_BF16 && at < len; t++) {
        if (!count[t] || (!m->gguf && t == (int)asked)) continue;
        at += (size_t)snprintf(out + at, len - at, "%s%d as %s", first ? " (" : ", ", count[t],
                               ggml_type_name(t));
        first = false;
    }
    if (!first && at < len)
        snprintf(out + at, len - at,
                 m->gguf ? ")" : ": rows %s cannot hold, the types llama-quantize falls back to)",
                 ggml_type_name(asked));
}
