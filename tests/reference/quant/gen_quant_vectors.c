/* tests/reference/quant/gen_quant_vectors.c — ggml's own quantized bytes and dequantized
 * floats, for tests/test_tensor_quant.c (tests/data/quant/ggml_vectors.bin).
 *
 * Not built by make: it links against ggml from llama.cpp's source (the bundle in
 * node-llama-cpp, cloned at /tmp/llama.cpp):
 *   cmake -S /tmp/llama.cpp -B /tmp/qlora-ggml -DGGML_NATIVE=OFF -DLLAMA_CURL=OFF \
 *         -DCMAKE_BUILD_TYPE=Release && cmake --build /tmp/qlora-ggml --target ggml-base
 *   cc -O2 -o /tmp/gen_quant_vectors tests/reference/quant/gen_quant_vectors.c \
 *      -I/tmp/llama.cpp/ggml/include -L/tmp/qlora-ggml/bin -lggml-base \
 *      -Wl,-rpath,/tmp/qlora-ggml/bin
 *   /tmp/gen_quant_vectors tests/data/quant/ggml_vectors.bin
 *   /tmp/gen_quant_vectors --raw tests/data/quant/ggml_raw_blocks.bin
 * GGML_NATIVE=OFF builds ggml-base for baseline x86-64: no FMA, no F16C, so its scalar
 * float operations are the IEEE ones lorafit's -std=c11 build performs.
 *
 * The file, little-endian: "LFQV", u32 rows, u32 cols, u32 types; rows * cols f32 inputs;
 * then per type: u32 ggml type, u32 byte count, the bytes ggml_quantize_chunk wrote (no
 * importance matrix: quantize_row_*_ref, what llama-quantize writes without one), and rows
 * * cols f32 that ggml's to_float (dequantize_row_*) made of those bytes.
 * With --raw the bytes are random instead (the inputs zero): halves that are NaN, infinite
 * or subnormal, scales and levels no quantizer writes, as a damaged or hostile file holds. */
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ggml.h"

enum { ROWS = 5, COLS = 256 };

static uint64_t state = 0x9E3779B97F4A7C15ull;
static double uniform(void) { /* splitmix64 -> [0, 1) */
    uint64_t z = (state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    z ^= z >> 31;
    return (double)(z >> 11) * 0x1.0p-53;
}
static float normal(void) {
    double u = uniform(), v = uniform();
    return (float)(sqrt(-2.0 * log(u + 1e-300)) * cos(6.283185307179586 * v));
}

/* Rows that reach the quantizers' corner cases: 0 standard normal; 1 weights of scale
 * 0.02 with outliers 50x; 2 a zero block of 32, a constant block, exact halves (ties),
 * all-positive and all-negative sub-blocks; 3 a zero super-block; 4 tiny values (f16
 * subnormal scales) and a mix of magnitudes. */
static void make_inputs(float *x) {
    for (int j = 0; j < COLS; j++) x[j] = normal();
    float *r = x + COLS;
    for (int j = 0; j < COLS; j++) r[j] = 0.02f * normal();
    for (int j = 5; j < COLS; j += 37) r[j] *= 50.0f;
    r = x + 2 * COLS;
    for (int j = 0; j < COLS; j++) r[j] = (float)(2.0 * uniform() - 1.0);
    for (int j = 0; j < 32; j++) r[j] = 0.0f;
    for (int j = 32; j < 64; j++) r[j] = 0.375f;
    for (int j = 64; j < 96; j++) r[j] = (float)(j - 80) * 0.5f;
    for (int j = 96; j < 128; j++) r[j] = (float)(0.1 + uniform());
    for (int j = 128; j < 160; j++) r[j] = (float)(-0.1 - uniform());
    r[200] = 100.0f;
    r = x + 3 * COLS;
    memset(r, 0, COLS * sizeof *r);
    r = x + 4 * COLS;
    for (int j = 0; j < COLS; j++) r[j] = 1e-7f * normal();
    for (int j = 128; j < COLS; j++) r[j] = (float)(normal() * pow(10.0, (double)(j % 7) - 3.0));
}

int main(int argc, char **argv) {
    bool raw = argc == 3 && strcmp(argv[1], "--raw") == 0;
    if (argc != 2 && !raw) {
        fprintf(stderr, "usage: %s [--raw] OUT.bin\n", argv[0]);
        return 2;
    }
    const char *out = argv[argc - 1];
    static const enum ggml_type types[] = {GGML_TYPE_F16,  GGML_TYPE_BF16, GGML_TYPE_Q8_0,
                                           GGML_TYPE_Q4_0, GGML_TYPE_Q4_1, GGML_TYPE_Q5_0,
                                           GGML_TYPE_Q5_1, GGML_TYPE_Q2_K, GGML_TYPE_Q3_K,
                                           GGML_TYPE_Q4_K, GGML_TYPE_Q5_K, GGML_TYPE_Q6_K};
    const uint32_t ntypes = sizeof types / sizeof types[0], rows = raw ? 1 : ROWS, cols = COLS;
    static float x[ROWS * COLS], y[ROWS * COLS];
    if (!raw) make_inputs(x);
    FILE *f = fopen(out, "wb");
    if (!f) {
        perror(out);
        return 1;
    }
    fwrite("LFQV", 1, 4, f);
    fwrite(&rows, 4, 1, f);
    fwrite(&cols, 4, 1, f);
    fwrite(&ntypes, 4, 1, f);
    fwrite(x, sizeof(float), rows * cols, f);
    for (uint32_t t = 0; t < ntypes; t++) {
        size_t bytes = ggml_row_size(types[t], COLS) * rows;
        uint8_t *q = calloc(1, bytes);
        size_t wrote = bytes;
        if (raw)
            for (size_t b = 0; b < bytes; b++) q[b] = (uint8_t)(uniform() * 256);
        else
            wrote = ggml_quantize_chunk(types[t], x, q, 0, ROWS, COLS, NULL);
        if (wrote != bytes) {
            fprintf(stderr, "%s: wrote %zu bytes, expected %zu\n", ggml_type_name(types[t]), wrote,
                    bytes);
            return 1;
        }
        ggml_get_type_traits(types[t])->to_float(q, y, rows * cols);
        uint32_t type = (uint32_t)types[t], n = (uint32_t)bytes;
        fwrite(&type, 4, 1, f);
        fwrite(&n, 4, 1, f);
        fwrite(q, bytes, 1, f);
        fwrite(y, sizeof(float), rows * cols, f);
        free(q);
    }
    if (fclose(f) != 0) {
        perror(out);
        return 1;
    }
    return 0;
}
