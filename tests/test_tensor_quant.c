/* tests/test_tensor_quant.c — ggml's block types (tensor/quant.h) against ggml itself.
 *
 * tests/data/quant/ggml_vectors.bin holds rows of 256 floats (normal, small weights with
 * outliers, zero and constant blocks, ties, a zero super-block, tiny values), the bytes
 * ggml's reference quantizers made of them for every type, and the floats ggml's
 * dequantize_row_* made of those bytes (tests/reference/quant/gen_quant_vectors.c, linked
 * against llama.cpp's ggml). Dequantization must give ggml's floats bit for bit for every
 * type; quantization ggml's bytes for every type (a merge writes each back in its type). */
#include <check.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "tensor/tensor.h"
#include "test_util.h"

#define VECTORS "tests/data/quant/ggml_vectors.bin"
#define RAW     "tests/data/quant/ggml_raw_blocks.bin" /* random bytes: NaN, inf, subnormal */

typedef struct {
    uint32_t type, nbytes;
    const uint8_t *bytes;
    const float *floats; /* ggml's dequantization of bytes */
} TypeVectors;

typedef struct {
    char *file;
    uint32_t rows, cols, ntypes;
    const float *input;
    TypeVectors types[16];
} Vectors;

static uint32_t rd32(const char *p) {
    uint32_t v;
    memcpy(&v, p, 4);
    return v;
}

static void load_vectors(Vectors *v, const char *path) {
    size_t len;
    memset(v, 0, sizeof *v);
    v->file = test_read_file(path, &len);
    ck_assert_msg(v->file, "%s missing (run from the repository root)", path);
    ck_assert(len >= 16 && memcmp(v->file, "LFQV", 4) == 0);
    v->rows = rd32(v->file + 4);
    v->cols = rd32(v->file + 8);
    v->ntypes = rd32(v->file + 12);
    ck_assert(v->ntypes <= 16 && v->cols == 256);
    size_t nfloats = (size_t)v->rows * v->cols, at = 16;
    v->input = (const float *)(v->file + at);
    at += nfloats * 4;
    for (uint32_t t = 0; t < v->ntypes; t++) {
        ck_assert(at + 8 <= len);
        TypeVectors *tv = &v->types[t];
        tv->type = rd32(v->file + at);
        tv->nbytes = rd32(v->file + at + 4);
        tv->bytes = (const uint8_t *)v->file + at + 8;
        tv->floats = (const float *)(v->file + at + 8 + tv->nbytes);
        at += 8 + tv->nbytes + nfloats * 4;
        ck_assert(at <= len);
    }
    ck_assert_uint_eq(at, len);
}

/* Every float of every type bit for bit, NaN payloads included, from the quantizers' bytes
 * and from random ones. */
START_TEST(test_dequantize_matches_ggml_bit_for_bit) {
    for (int raw = 0; raw < 2; raw++) {
        Vectors v;
        load_vectors(&v, raw ? RAW : VECTORS);
        ck_assert_uint_eq(v.ntypes, 12); /* F16 BF16 Q8_0 Q4_0 Q4_1 Q5_0 Q5_1 Q2_K..Q6_K */
        int64_t n = (int64_t)v.rows * v.cols;
        float *got = malloc((size_t)n * sizeof *got);
        for (uint32_t t = 0; t < v.ntypes; t++) {
            const TypeVectors *tv = &v.types[t];
            const char *name = ggml_type_name((int)tv->type);
            ck_assert_msg(name, "type %u unknown to lorafit", tv->type);
            ck_assert_uint_eq(ggml_row_bytes((int)tv->type, v.cols) * v.rows, tv->nbytes);
            ck_assert_int_eq(quant_dequantize_row((int)tv->type, tv->bytes, got, n), 0);
            for (int64_t i = 0; i < n; i++)
                ck_assert_msg(memcmp(&got[i], &tv->floats[i], 4) == 0,
                              "%s: weight %lld (row %lld) is %a, ggml's %a", name, (long long)i,
                              (long long)(i / v.cols), (double)got[i], (double)tv->floats[i]);
        }
        free(got);
        free(v.file);
    }
}
END_TEST

START_TEST(test_quantize_matches_ggml_bytes) {
    Vectors v;
    load_vectors(&v, VECTORS);
    int64_t n = (int64_t)v.rows * v.cols;
    int checked = 0;
    for (uint32_t t = 0; t < v.ntypes; t++) {
        const TypeVectors *tv = &v.types[t];
        ck_assert_msg(quant_can_quantize((int)tv->type), "%s", ggml_type_name((int)tv->type));
        uint8_t *got = calloc(1, tv->nbytes);
        ck_assert_int_eq(quant_quantize_row((int)tv->type, v.input, got, n), 0);
        size_t block = ggml_block_bytes((int)tv->type);
        for (size_t b = 0; b < tv->nbytes / block; b++)
            ck_assert_msg(memcmp(got + b * block, tv->bytes + b * block, block) == 0,
                          "%s: block %zu (row %zu) differs from ggml's",
                          ggml_type_name((int)tv->type), b,
                          b / (ggml_row_bytes((int)tv->type, v.cols) / block));
        free(got);
        checked++;
    }
    ck_assert_int_eq(checked, 12); /* F16 BF16 Q8_0 Q4_0 Q4_1 Q5_0 Q5_1 Q2_K .. Q6_K */
    free(v.file);
}
END_TEST

START_TEST(test_type_table_sizes_and_unknown_types) {
    ck_assert_uint_eq(ggml_row_bytes(GGML_TYPE_Q4_K, 4096), 16 * 144);
    ck_assert_uint_eq(ggml_row_bytes(GGML_TYPE_Q6_K, 256), 210);
    ck_assert_uint_eq(ggml_row_bytes(GGML_TYPE_Q3_K, 512), 220);
    ck_assert_uint_eq(ggml_row_bytes(GGML_TYPE_Q5_1, 64), 48);
    ck_assert_uint_eq(ggml_row_bytes(GGML_TYPE_BF16, 3), 6);
    ck_assert_uint_eq(ggml_row_bytes(GGML_TYPE_Q4_K, 128), 0); /* not whole super-blocks */
    ck_assert_uint_eq(ggml_row_bytes(GGML_TYPE_Q8_0, 0), 0);
    for (int t = -1; t < 64; t++) { /* IQ*, TQ*, MXFP4, Q8_K, removed types, garbage */
        bool known = t == 0 || t == 1 || t == 2 || t == 3 || t == 6 || t == 7 || t == 8 ||
                     (t >= 10 && t <= 14) || t == 30;
        ck_assert_msg((ggml_type_name(t) != NULL) == known, "type %d", t);
        ck_assert_msg((ggml_row_bytes(t, 256) != 0) == known, "type %d", t);
        float out[256];
        uint8_t in[1024] = {0};
        if (!known) {
            ck_assert_int_eq(quant_dequantize_row(t, in, out, 256), -1);
            ck_assert_int_eq(quant_quantize_row(t, out, in, 256), -1);
        }
    }
    float x[32] = {0};
    uint8_t q[64];
    ck_assert_int_eq(quant_quantize_row(GGML_TYPE_Q2_K, x, q, 128), -1); /* half a block */
    ck_assert_int_eq(quant_quantize_row(GGML_TYPE_Q8_0, x, q, 31), -1);
}
END_TEST

START_TEST(test_f16_to_float_is_exact_for_every_half) {
    for (uint32_t h = 0; h < 65536; h++) {
        float f = quant_f16_to_float((uint16_t)h);
        if (isnan(f)) {
            ck_assert((h & 0x7c00) == 0x7c00 && (h & 0x3ff));
            continue;
        }
        /* rounding the float back gives the half: the widening lost nothing */
        ck_assert_msg(tensor_float_to_f16(f) == h, "half %04x -> %a", h, (double)f);
    }
    ck_assert(quant_f16_to_float(0x3c00) == 1.0f);
    ck_assert(quant_f16_to_float(0x0001) == 0x1.0p-24f);
    ck_assert(quant_f16_to_float(0xfbff) == -65504.0f);
    float snan = quant_f16_to_float(0x7c01); /* a signalling NaN comes out quiet, as in ggml */
    uint32_t u;
    memcpy(&u, &snan, 4);
    ck_assert_uint_eq(u, 0x7fc02000u);
}
END_TEST

Suite *tensor_quant_suite(void) {
    Suite *s = suite_create("tensor_quant");
    TCase *tc = tcase_create("quant");
    tcase_add_test(tc, test_dequantize_matches_ggml_bit_for_bit);
    tcase_add_test(tc, test_quantize_matches_ggml_bytes);
    tcase_add_test(tc, test_type_table_sizes_and_unknown_types);
    tcase_add_test(tc, test_f16_to_float_is_exact_for_every_half);
    suite_add_tcase(s, tc);
    return s;
}
