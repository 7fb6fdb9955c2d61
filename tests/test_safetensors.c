/* tests/test_safetensors.c — the strict reader rejects every malformed file clearly; the
 * writer's layout; config.json validation. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tensor/tensor.h"
#include "tests/test_util.h"
#include "trainer/store/store.h"

/* Writes [8-byte length][header padded to 8][data_len bytes] with a forced length field
 * when forced_len != 0; returns the path (caller frees), under dir. */
static char *write_raw(const char *dir, const char *header, size_t data_len, uint64_t forced_len) {
    size_t h = strlen(header), padded = (h + 7) / 8 * 8;
    size_t total = 8 + padded + data_len;
    unsigned char *buf = calloc(1, total);
    uint64_t n = forced_len ? forced_len : padded;
    for (int i = 0; i < 8; i++) buf[i] = (unsigned char)(n >> (8 * i));
    memcpy(buf + 8, header, h);
    memset(buf + 8 + h, ' ', padded - h);
    for (size_t i = 0; i < data_len; i++) buf[8 + padded + i] = (unsigned char)i;
    char *path = malloc(4200);
    snprintf(path, 4200, "%s/t.safetensors", dir);
    test_write_file(path, buf, total);
    free(buf);
    return path;
}

/* st_open must fail, name the file and say `why`. */
static void expect_rejected(const char *header, size_t data_len, uint64_t forced_len,
                            const char *why) {
    char *dir = test_tmpdir();
    char *path = write_raw(dir, header, data_len, forced_len);
    char err[1024] = "";
    SafeTensors *st = st_open(path, err, sizeof err);
    ck_assert_msg(st == NULL, "accepted a file that should fail with '%s'", why);
    ck_assert_msg(strstr(err, path) != NULL, "error does not name the file: %s", err);
    ck_assert_msg(strstr(err, why) != NULL, "error '%s' does not say '%s'", err, why);
    /* The command line reports it as a runtime failure (exit 1), not a crash. */
    char cmd[8400];
    snprintf(cmd, sizeof cmd, "%s inspect %s 2>/dev/null", test_lorafit_bin(), path);
    ck_assert_int_eq(test_run(cmd, NULL), 1);
    free(path);
    test_rmtree(dir);
    free(dir);
}

#define A8 "\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}"

START_TEST(test_valid_file_reads_tensors_and_metadata) {
    char *dir = test_tmpdir();
    char *path = write_raw(dir,
                           "{\"__metadata__\":{\"format\":\"pt\"},\"b\":{\"dtype\":\"BF16\","
                           "\"shape\":[2,2],\"data_offsets\":[8,16]}," A8 "}",
                           16, 0);
    char err[512];
    SafeTensors *st = st_open(path, err, sizeof err);
    ck_assert_msg(st != NULL, "%s", err);
    ck_assert_int_eq(st_count(st), 2);
    ck_assert_str_eq(st_tensor_at(st, 0)->name, "a");
    const StTensor *b = st_find(st, "b");
    ck_assert(b && b->dtype == ST_BF16 && b->ndim == 2 && b->shape[1] == 2 && b->nbytes == 8);
    ck_assert_ptr_eq((const char *)b->data, (const char *)st_find(st, "a")->data + 8);
    ck_assert_str_eq(st_metadata(st, "format"), "pt");
    ck_assert_ptr_null(st_find(st, "c"));
    st_close(st);
    free(path);
    test_rmtree(dir);
    free(dir);
}
END_TEST

START_TEST(test_truncated_data_is_rejected) {
    expect_rejected("{" A8 "}", 4, 0, "past the 4-byte data buffer");
}
END_TEST

START_TEST(test_header_length_past_end_is_rejected) {
    expect_rejected("{" A8 "}", 8, 5000, "runs past the end");
}
END_TEST

START_TEST(test_header_length_over_100mb_is_rejected) {
    expect_rejected("{" A8 "}", 8, 200000000ull, "100 MB");
}
END_TEST

START_TEST(test_overlapping_offsets_are_rejected) {
    expect_rejected("{" A8 ",\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}", 12,
                    0, "overlap");
}
END_TEST

START_TEST(test_gapped_offsets_are_rejected) {
    expect_rejected("{" A8 ",\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[12,16]}}", 16,
                    0, "gap");
}
END_TEST

START_TEST(test_end_before_begin_is_rejected) {
    expect_rejected("{\"a\":{\"dtype\":\"U8\",\"shape\":[0],\"data_offsets\":[8,4]}}", 8, 0,
                    "before begin");
}
END_TEST

START_TEST(test_unknown_dtype_is_rejected) {
    expect_rejected("{\"a\":{\"dtype\":\"F8\",\"shape\":[8],\"data_offsets\":[0,8]}}", 8, 0,
                    "unknown dtype \"F8\"");
}
END_TEST

START_TEST(test_shape_size_mismatch_is_rejected) {
    expect_rejected("{\"a\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}}", 8, 0,
                    "need 12");
}
END_TEST

START_TEST(test_shape_product_overflow_is_rejected) {
    expect_rejected("{\"a\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296,4],"
                    "\"data_offsets\":[0,8]}}",
                    8, 0, "overflows");
}
END_TEST

START_TEST(test_non_string_metadata_is_rejected) {
    expect_rejected("{\"__metadata__\":{\"format\":1}," A8 "}", 8, 0, "is not a string");
}
END_TEST

START_TEST(test_header_not_json_object_is_rejected) {
    expect_rejected("[1, 2, 3]", 0, 0, "not a JSON object");
    expect_rejected("{\"a\": ", 0, 0, "header JSON");
}
END_TEST

START_TEST(test_trailing_bytes_are_rejected) {
    expect_rejected("{" A8 "}", 12, 0, "trailing bytes");
}
END_TEST

START_TEST(test_duplicate_and_incomplete_entries_are_rejected) {
    expect_rejected("{" A8 "," A8 "}", 8, 0, "header JSON");
    expect_rejected("{\"a\":{\"dtype\":\"F32\",\"shape\":[2]}}", 8, 0, "missing \"data_offsets\"");
    expect_rejected("{\"a\":{\"dtype\":\"F32\",\"shape\":[-2],\"data_offsets\":[0,8]}}", 8, 0,
                    "non-negative");
}
END_TEST

START_TEST(test_tiny_files_are_rejected_without_crashing) {
    char *dir = test_tmpdir();
    char path[4200], err[512];
    snprintf(path, sizeof path, "%s/empty.safetensors", dir);
    test_write_file(path, "", 0);
    ck_assert_ptr_null(st_open(path, err, sizeof err));
    ck_assert(strstr(err, "too short") != NULL);
    test_write_file(path, "\x02\0\0\0\0\0\0\0{}", 10);
    SafeTensors *st = st_open(path, err, sizeof err); /* an empty but valid file */
    ck_assert_msg(st != NULL, "%s", err);
    ck_assert_int_eq(st_count(st), 0);
    st_close(st);
    test_rmtree(dir);
    free(dir);
}
END_TEST

START_TEST(test_writer_sorts_pads_and_round_trips) {
    char *dir = test_tmpdir();
    char path[4200], err[512];
    snprintf(path, sizeof path, "%s/w.safetensors", dir);
    float a[6] = {1, -2, 3.5f, 0, 1e-30f, 7};
    uint16_t b[3] = {tensor_float_to_bf16(1.5f), tensor_float_to_bf16(-2),
                     tensor_float_to_bf16(0.1f)};
    int64_t sa[2] = {2, 3}, sb[1] = {3};
    StWriter *w = st_writer_new();
    ck_assert_int_eq(st_writer_add(w, "zeta", ST_F32, 2, sa, a, err, sizeof err), 0);
    ck_assert_int_eq(st_writer_add(w, "alpha", ST_BF16, 1, sb, b, err, sizeof err), 0);
    ck_assert_int_ne(st_writer_add(w, "alpha", ST_BF16, 1, sb, b, err, sizeof err), 0);
    ck_assert_int_eq(st_writer_save(w, path, err, sizeof err), 0);
    st_writer_free(w);
    size_t len;
    char *raw = test_read_file(path, &len);
    uint64_t n = 0;
    for (int i = 7; i >= 0; i--) n = n << 8 | (unsigned char)raw[i];
    ck_assert_uint_eq(n % 8, 0);
    ck_assert_uint_eq(len, 8 + n + 6 + 24);
    ck_assert(strstr(raw + 8, "{\"__metadata__\":{\"format\":\"pt\"},\"alpha\"") == raw + 8);
    free(raw);
    SafeTensors *st = st_open(path, err, sizeof err);
    ck_assert_msg(st != NULL, "%s", err);
    float back[6];
    ck_assert_int_eq(st_to_float(st_find(st, "zeta"), back, err, sizeof err), 0);
    ck_assert_int_eq(memcmp(back, a, sizeof a), 0);
    ck_assert_int_eq(st_to_float(st_find(st, "alpha"), back, err, sizeof err), 0);
    ck_assert(back[0] == 1.5f && back[1] == -2.0f && fabsf(back[2] - 0.1f) < 1e-3f);
    st_close(st);
    test_rmtree(dir);
    free(dir);
}
END_TEST

START_TEST(test_half_conversions_round_to_nearest_even) {
    ck_assert_uint_eq(tensor_float_to_f16(1.0f), 0x3c00);
    ck_assert_uint_eq(tensor_float_to_f16(65504.0f), 0x7bff);
    ck_assert_uint_eq(tensor_float_to_f16(70000.0f), 0x7c00);
    ck_assert_uint_eq(tensor_float_to_f16(5.9604645e-8f), 0x0001); /* smallest subnormal */
    ck_assert(st_f16_to_float(0x0001) == 5.9604645e-8f);
    ck_assert(st_f16_to_float(0xc000) == -2.0f);
    ck_assert_uint_eq(tensor_float_to_bf16(1.0f), 0x3f80);
    ck_assert_uint_eq(tensor_float_to_bf16(1.00390625f), 0x3f80); /* halfway: to even */
    ck_assert_uint_eq(tensor_float_to_bf16(1.01171875f), 0x3f82); /* halfway: to even (up) */
    for (uint32_t h = 0; h < 0x7c00; h++) /* every finite f16 survives a round trip */
        ck_assert_uint_eq(tensor_float_to_f16(st_f16_to_float((uint16_t)h)), h);
}
END_TEST

/* st_to_float splits big tensors over the threads in chunks: every element converted once,
 * across chunk boundaries and a tail shorter than a chunk, from an unaligned source. */
START_TEST(test_big_tensors_convert_whole) {
    const int64_t n = ((int64_t)5 << 20) / 4 + 7; /* 5 MiB of F32 and a tail */
    uint8_t *raw = malloc((size_t)n * 4 + 1);
    float *out = malloc((size_t)n * sizeof *out);
    ck_assert(raw && out);
    uint8_t *src = raw + 1; /* unaligned, as a mapped tensor may be */
    char err[256];
    for (int half = 0; half < 2; half++) {
        for (int64_t i = 0; i < n; i++) {
            float v = (float)(i % 1000003) * 0.25f - 7.0f;
            if (half) {
                uint16_t h = tensor_float_to_bf16(v);
                memcpy(src + 2 * i, &h, 2);
            } else {
                memcpy(src + 4 * i, &v, 4);
            }
        }
        StTensor t = {.name = "w",
                      .dtype = half ? ST_BF16 : ST_F32,
                      .ndim = 1,
                      .shape = {n},
                      .numel = n,
                      .data = src,
                      .nbytes = (size_t)n * (half ? 2 : 4)};
        memset(out, 0xff, (size_t)n * sizeof *out);
        ck_assert_int_eq(st_to_float(&t, out, err, sizeof err), 0);
        for (int64_t i = 0; i < n; i++) {
            float v = (float)(i % 1000003) * 0.25f - 7.0f;
            float want = half ? st_bf16_to_float(tensor_float_to_bf16(v)) : v;
            ck_assert_msg(out[i] == want, "%s element %lld: %g, not %g", half ? "BF16" : "F32",
                          (long long)i, out[i], want);
        }
    }
    free(raw);
    free(out);
}
END_TEST

/* ---- config.json --------------------------------------------------------------------- */

Suite *safetensors_suite(void) {
    Suite *s = suite_create("safetensors");
    TCase *tc = tcase_create("reader");
    tcase_add_test(tc, test_valid_file_reads_tensors_and_metadata);
    tcase_add_test(tc, test_truncated_data_is_rejected);
    tcase_add_test(tc, test_header_length_past_end_is_rejected);
    tcase_add_test(tc, test_header_length_over_100mb_is_rejected);
    tcase_add_test(tc, test_overlapping_offsets_are_rejected);
    tcase_add_test(tc, test_gapped_offsets_are_rejected);
    tcase_add_test(tc, test_end_before_begin_is_rejected);
    tcase_add_test(tc, test_unknown_dtype_is_rejected);
    tcase_add_test(tc, test_shape_size_mismatch_is_rejected);
    tcase_add_test(tc, test_shape_product_overflow_is_rejected);
    tcase_add_test(tc, test_non_string_metadata_is_rejected);
    tcase_add_test(tc, test_header_not_json_object_is_rejected);
    tcase_add_test(tc, test_trailing_bytes_are_rejected);
    tcase_add_test(tc, test_duplicate_and_incomplete_entries_are_rejected);
    tcase_add_test(tc, test_tiny_files_are_rejected_without_crashing);
    tcase_add_test(tc, test_writer_sorts_pads_and_round_trips);
    tcase_add_test(tc, test_half_conversions_round_to_nearest_even);
    tcase_add_test(tc, test_big_tensors_convert_whole);
    suite_add_tcase(s, tc);
    return s;
}
