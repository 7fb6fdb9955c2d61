/* tests/reference/quant/check_gguf_dequant.c — every tensor of a GGUF file (a llama-quantize
 * output, say) dequantized by lorafit (gguf_open + quant_dequantize_row) and by ggml
 * (ggml_get_type_traits()->to_float), compared bit for bit. Prints one line per type and
 * exits 1 on the first difference.
 *
 * Not built by make (it links ggml, see gen_quant_vectors.c for building ggml-base); ggml's
 * side is in check_gguf_dequant_ggml.c, as ggml.h and tensor/quant.h name the same types.
 * From the repository root after `make`:
 *   cc -std=c11 -O2 -fopenmp -D_GNU_SOURCE -DLORAFIT_VERSION='"ref"' -I. \
 *      -I/tmp/llama.cpp/ggml/include tests/reference/quant/check_gguf_dequant.c \
 *      tests/reference/quant/check_gguf_dequant_ggml.c build/lib.a \
 *      -L/tmp/qlora-ggml/bin -lggml-base -Wl,-rpath,/tmp/qlora-ggml/bin \
 *      -L/usr/lib/x86_64-linux-gnu/openblas-openmp -lopenblas -ldnnl -ljansson -lz -lm \
 *      -o /tmp/check_gguf_dequant
 *   /tmp/check_gguf_dequant MODEL.gguf */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "trainer/store/store.h"

void ggml_side_to_float(int type, const void *src, float *dst, int64_t n);

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: %s FILE.gguf\n", argv[0]);
        return 2;
    }
    char err[1024];
    GgufFile *f = gguf_open(argv[1], err, sizeof err);
    if (!f) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    long long weights[64] = {0}, tensors[64] = {0};
    for (int i = 0; i < gguf_tensor_total(f); i++) {
        const GgufTensorInfo *t = gguf_tensor_at(f, i);
        int64_t n = 1;
        for (int d = 0; d < t->n_dims; d++) n *= t->ne[d];
        float *a = malloc((size_t)n * sizeof *a), *b = malloc((size_t)n * sizeof *b);
        if (!a || !b) return 1;
        if (quant_dequantize_row(t->type, t->data, a, n) != 0) {
            fprintf(stderr, "%s: lorafit cannot dequantize %s\n", t->name, ggml_type_name(t->type));
            return 1;
        }
        ggml_side_to_float(t->type, t->data, b, n);
        for (int64_t j = 0; j < n; j++)
            if (memcmp(&a[j], &b[j], 4) != 0) {
                fprintf(stderr, "%s (%s): weight %lld is %a, ggml's %a\n", t->name,
                        ggml_type_name(t->type), (long long)j, (double)a[j], (double)b[j]);
                return 1;
            }
        weights[t->type] += n;
        tensors[t->type]++;
        free(a);
        free(b);
    }
    for (int t = 0; t < 64; t++)
        if (tensors[t])
            printf("%-5s %4lld tensors %12lld weights: bit-identical to ggml\n", ggml_type_name(t),
                   tensors[t], weights[t]);
    gguf_close(f);
    return 0;
}
