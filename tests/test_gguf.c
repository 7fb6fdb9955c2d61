/* tests/test_gguf.c — the GGUF writer and ggml's encodings: what lorafit writes parses with an
 * independent reader (tests/test_gguf_reader.c) to the values put in; Q8_0, F16 and BF16
 * match reference implementations written from ggml's code here; the adapter export names
 * and permutes tensors as llama.cpp's convert_lora_to_gguf.py. */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests/test_gguf_reader.h"
#include "tests/test_util.h"
#include "trainer/model/model.h"
#include "trainer/store/store.h"

/* ---- references ------------------------------------------------------------------ */

/* ggml's quantize_row_q8_0_ref, with the compiler's own float -> _Float16 (round to nearest
 * even in hardware or libgcc) for the scale. */
static void ref_q8_0(const float *x, int n, uint8_t *out) {
    for (int b = 0; b < n / 32; b++) {
        float amax = 0.0f;
        for (int j = 0; j < 32; j++) {
            float v = fabsf(x[b * 32 + j]);
            amax = amax > v ? amax : v;
        }
        float d = amax / 127, id = d ? 1.0f / d : 0.0f;
        _Float16 h = (_Float16)d;
        memcpy(out + b * 34, &h, 2);
        for (int j = 0; j < 32; j++)
            out[b * 34 + 2 + j] = (uint8_t)(int8_t)roundf(x[b * 32 + j] * id);
    }
}

static uint16_t ref_bf16(float f) { /* ggml_compute_fp32_to_bf16 */
    uint32_t u;
    memcpy(&u, &f, 4);
    if ((u & 0x7fffffff) > 0x7f800000) return (uint16_t)((u >> 16) | 64);
    return (uint16_t)((u + (0x7fff + ((u >> 16) & 1))) >> 16);
}

START_TEST(test_q8_0_blocks_match_ggml_reference) {
    uint64_t s = 11;
    enum { N = 32 * 64 };
    float *x = malloc(N * sizeof *x);
    for (int i = 0; i < N; i++) x[i] = test_rand_uniform(&s, -3, 3) * (float)(1 + i / 256);
    for (int j = 0; j < 32; j++) x[j] = 0.0f;                    /* an all-zero block */
    for (int j = 32; j < 64; j++) x[j] = (float)(j - 48) * 0.5f; /* exact halves: roundf ties */
    x[64] = -1e-30f;                                             /* tiny block: subnormal d */
    for (int j = 65; j < 96; j++) x[j] = 1e-31f * (float)j;
    uint8_t *got = malloc(N / 32 * 34), *want = malloc(N / 32 * 34);
    quant_quantize_row(GGML_TYPE_Q8_0, x, got, N);
    ref_q8_0(x, N, want);
    for (int b = 0; b < N / 32; b++)
        ck_assert_msg(memcmp(got + b * 34, want + b * 34, 34) == 0, "Q8_0 block %d differs", b);
    ck_assert_int_eq(ggml_row_bytes(GGML_TYPE_Q8_0, 64), 68);
    ck_assert_int_eq(ggml_row_bytes(GGML_TYPE_Q8_0, 172), 0); /* stories260K's FF: no Q8_0 */
    free(x);
    free(got);
    free(want);
}
END_TEST

START_TEST(test_half_encodings_round_to_nearest_even) {
    uint64_t s = 3;
    float special[] = {0.0f,      -0.0f,         1.0f,          65504.0f,       65520.0f,
                       1e-8f,     5.9604645e-8f, 2.9802322e-8f, 6.1035156e-05f, INFINITY,
                       -INFINITY, 3.0e38f,       1.00048828125f};
    for (int i = 0; i < 20000; i++) {
        float f = i < (int)(sizeof special / sizeof *special)
                      ? special[i]
                      : test_rand_uniform(&s, -1, 1) * powf(2.0f, (float)(i % 40 - 30));
        _Float16 h = (_Float16)f;
        uint16_t want;
        memcpy(&want, &h, 2);
        ck_assert_msg(gguf_float_to_f16(f) == want, "f16(%a): %04x, want %04x", (double)f,
                      gguf_float_to_f16(f), want);
        ck_assert_uint_eq(gguf_float_to_bf16(f), ref_bf16(f));
    }
    ck_assert_uint_eq(gguf_float_to_f16(NAN) & 0x7e00, 0x7e00);
    ck_assert_uint_eq(gguf_float_to_bf16(NAN) & 0x7fc0, 0x7fc0);
}
END_TEST

/* ---- the writer ------------------------------------------------------------------ */

static int fill_ramp(void *ctx, void *dst, size_t nbytes, char *err, size_t errlen) {
    (void)err, (void)errlen;
    const float *scale = ctx;
    float *f = dst;
    for (size_t i = 0; i < nbytes / 4; i++) f[i] = *scale * (float)i;
    return 0;
}

START_TEST(test_writer_round_trip_through_independent_reader) {
    char *dir = test_tmpdir(), path[4200], err[512];
    snprintf(path, sizeof path, "%s/t.gguf", dir);
    GgufWriter *w = gguf_writer_new();
    ck_assert(w);
    const char *names[] = {"a", "", "with space", "\xe2\x96\x81x"};
    int32_t ints[] = {1, -2, 3};
    float fl[] = {0.5f, -1e30f};
    uint32_t u[] = {7, 8};
    ck_assert_int_eq(gguf_set_str(w, "general.architecture", "llama", err, sizeof err), 0);
    ck_assert_int_eq(gguf_set_u32(w, "k.u32", 4000000000u, err, sizeof err), 0);
    ck_assert_int_eq(gguf_set_i32(w, "k.i32", -5, err, sizeof err), 0);
    ck_assert_int_eq(gguf_set_f32(w, "k.f32", 1.5f, err, sizeof err), 0);
    ck_assert_int_eq(gguf_set_bool(w, "k.bool", true, err, sizeof err), 0);
    ck_assert_int_eq(gguf_set_arr_str(w, "k.strs", names, NULL, 4, err, sizeof err), 0);
    ck_assert_int_eq(gguf_set_arr_i32(w, "k.ints", ints, 3, err, sizeof err), 0);
    ck_assert_int_eq(gguf_set_arr_f32(w, "k.floats", fl, 2, err, sizeof err), 0);
    ck_assert_int_eq(gguf_set_arr_u32(w, "k.u32s", u, 2, err, sizeof err), 0);
    ck_assert_int_eq(gguf_set_i32(w, "k.i32", 9, err, sizeof err), 0); /* replaced in place */
    ck_assert_int_eq(gguf_set_alignment(w, 64, err, sizeof err), 0);
    ck_assert_int_eq(gguf_set_alignment(w, 48, err, sizeof err), -1);
    ck_assert_int_eq(gguf_kv_count(w), 10);
    float a[3 * 5], scale = 0.25f;
    for (int i = 0; i < 15; i++) a[i] = (float)i - 7.5f;
    uint16_t half[64];
    for (int i = 0; i < 64; i++) half[i] = gguf_float_to_f16((float)i / 8);
    uint8_t q[2 * 34];
    float qsrc[64];
    for (int i = 0; i < 64; i++) qsrc[i] = sinf((float)i);
    quant_quantize_row(GGML_TYPE_Q8_0, qsrc, q, 64);
    int64_t ne_a[2] = {5, 3}, ne_h[1] = {64}, ne_q[2] = {32, 2}, ne_r[3] = {7, 1, 3};
    ck_assert_int_eq(
        gguf_add_tensor(w, "a", GGML_TYPE_F32, 2, ne_a, a, NULL, NULL, err, sizeof err), 0);
    ck_assert_int_eq(
        gguf_add_tensor(w, "h", GGML_TYPE_F16, 1, ne_h, half, NULL, NULL, err, sizeof err), 0);
    ck_assert_int_eq(
        gguf_add_tensor(w, "q", GGML_TYPE_Q8_0, 2, ne_q, q, NULL, NULL, err, sizeof err), 0);
    ck_assert_int_eq(gguf_add_tensor(w, "ramp", GGML_TYPE_F32, 3, ne_r, NULL, fill_ramp, &scale,
                                     err, sizeof err),
                     0);
    /* refused: duplicate, a Q8_0 row of 40, a 64-byte name */
    ck_assert_int_eq(
        gguf_add_tensor(w, "a", GGML_TYPE_F32, 2, ne_a, a, NULL, NULL, err, sizeof err), -1);
    int64_t ne_bad[1] = {40};
    ck_assert_int_eq(
        gguf_add_tensor(w, "bad", GGML_TYPE_Q8_0, 1, ne_bad, q, NULL, NULL, err, sizeof err), -1);
    ck_assert_msg(strstr(err, "40") && strstr(err, "Q8_0"), "%s", err);
    char long_name[80];
    memset(long_name, 'x', 64);
    long_name[64] = '\0';
    ck_assert_int_eq(
        gguf_add_tensor(w, long_name, GGML_TYPE_F32, 1, ne_h, a, NULL, NULL, err, sizeof err), -1);
    ck_assert_int_eq(gguf_writer_save(w, path, err, sizeof err), 0);
    gguf_writer_free(w);

    TgFile f;
    tg_read(path, &f);
    ck_assert_int_eq(f.alignment, 64);
    ck_assert_int_eq(f.data_start % 64, 0);
    ck_assert_int_eq(f.n_kv, 10);
    ck_assert_str_eq(f.kv[0].key, "general.architecture");
    ck_assert_str_eq(f.kv[2].key, "k.i32"); /* replaced, kept its place */
    ck_assert_uint_eq(tg_u32(&f, "k.u32"), 4000000000u);
    const TgKv *ki = tg_kv(&f, "k.i32");
    int32_t i32;
    ck_assert(ki && ki->type == GGUF_TYPE_INT32);
    memcpy(&i32, ki->val, 4);
    ck_assert_int_eq(i32, 9);
    ck_assert_float_eq(tg_f32(&f, "k.f32"), 1.5f);
    ck_assert_int_eq(tg_bool(&f, "k.bool"), 1);
    ck_assert_int_eq(tg_arr_n(&f, "k.strs"), 4);
    for (int i = 0; i < 4; i++) {
        char *s = tg_arr_str(&f, "k.strs", (uint64_t)i);
        ck_assert_str_eq(s, names[i]);
        free(s);
    }
    ck_assert_int_eq(tg_arr_i32(&f, "k.ints", 1), -2);
    ck_assert_float_eq(tg_arr_f32(&f, "k.floats", 1), -1e30f);
    ck_assert_int_eq(f.n_tensors, 4);
    const TgTensor *ta = tg_tensor(&f, "a"), *tr = tg_tensor(&f, "ramp"), *tq = tg_tensor(&f, "q");
    ck_assert(ta && tr && tq);
    ck_assert_int_eq(ta->n_dims, 2);
    ck_assert_int_eq(ta->ne[0], 5);
    ck_assert_int_eq(ta->ne[1], 3);
    ck_assert_int_eq(memcmp(ta->data, a, sizeof a), 0);
    ck_assert_int_eq(memcmp(tq->data, q, sizeof q), 0);
    ck_assert_int_eq(tr->ne[2], 3);
    uint64_t n;
    float *ramp = tg_floats(tr, &n), *hv = tg_floats(tg_tensor(&f, "h"), &n);
    ck_assert_int_eq(n, 64);
    for (int i = 0; i < 21; i++) ck_assert_float_eq(ramp[i], 0.25f * (float)i);
    for (int i = 0; i < 64; i++) ck_assert_float_eq(hv[i], (float)i / 8);
    free(ramp);
    free(hv);
    tg_free(&f);
    test_rmtree(dir);
    free(dir);
}
END_TEST

Suite *gguf_suite(void) {
    Suite *s = suite_create("gguf");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_q8_0_blocks_match_ggml_reference);
    tcase_add_test(tc, test_half_encodings_round_to_nearest_even);
    tcase_add_test(tc, test_writer_round_trip_through_independent_reader);
    suite_add_tcase(s, tc);
    return s;
}
