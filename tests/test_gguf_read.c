/* tests/test_gguf_read.c — the GGUF reader (trainer/store/gguf_read.h): a file gguf-py wrote
 * with every value type and every tensor type lorafit reads, lorafit's own writer read back,
 * and damaged files (every truncation, each field made wrong) refused with the file, what
 * and where, never a crash (the fuzz harness tests/fuzz/fuzz_gguf_read.c goes further). */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tensor/tensor.h"
#include "test_util.h"
#include "trainer/store/store.h"

#define GGUF_PY "tests/data/quant/gguf_py_values.gguf"

static void expect_int(const GgufFile *f, const char *key, GgufType type, int64_t want) {
    const GgufKv *kv = gguf_find_kv(f, key);
    ck_assert_msg(kv, "%s missing", key);
    ck_assert_int_eq(kv->type, type);
    int64_t v;
    ck_assert_msg(gguf_kv_int(kv, &v) && v == want, "%s: %lld", key, (long long)v);
}

static void expect_str(const GgufKv *kv, uint64_t i, bool elem, const char *want) {
    const char *s;
    size_t len;
    ck_assert(elem ? gguf_elem_str(kv, i, &s, &len) : gguf_kv_str(kv, &s, &len));
    ck_assert_uint_eq(len, strlen(want));
    ck_assert(memcmp(s, want, len) == 0);
}

START_TEST(test_reads_every_value_and_tensor_type_gguf_py_writes) {
    char err[512];
    GgufFile *f = gguf_open(GGUF_PY, err, sizeof err);
    ck_assert_msg(f, "%s", err);
    ck_assert_uint_eq(gguf_file_version(f), 3);
    ck_assert_uint_eq(gguf_file_alignment(f), 64);
    expect_int(f, "t.u8", GGUF_TYPE_UINT8, 200);
    expect_int(f, "t.i8", GGUF_TYPE_INT8, -100);
    expect_int(f, "t.u16", GGUF_TYPE_UINT16, 60000);
    expect_int(f, "t.i16", GGUF_TYPE_INT16, -30000);
    expect_int(f, "t.u32", GGUF_TYPE_UINT32, 4000000000LL);
    expect_int(f, "t.i32", GGUF_TYPE_INT32, -2000000000LL);
    expect_int(f, "t.bool", GGUF_TYPE_BOOL, 1);
    expect_int(f, "t.u64", GGUF_TYPE_UINT64, (1LL << 62) + 3);
    expect_int(f, "t.i64", GGUF_TYPE_INT64, -(1LL << 62) - 3);
    double d;
    ck_assert(gguf_kv_float(gguf_find_kv(f, "t.f32"), &d) && d == 1.5);
    ck_assert(gguf_kv_float(gguf_find_kv(f, "t.f64"), &d) && d == -2.25);
    ck_assert(!gguf_kv_float(gguf_find_kv(f, "t.u8"), &d)); /* no conversion across kinds */
    ck_assert(!gguf_kv_int(gguf_find_kv(f, "t.str"), &(int64_t){0}));
    expect_str(gguf_find_kv(f, "t.str"), 0, false, "h\xc3\xa9llo");
    expect_str(gguf_find_kv(f, "general.architecture"), 0, false, "llama");
    const GgufKv *a = gguf_find_kv(f, "t.arr_str");
    ck_assert(a && a->type == GGUF_TYPE_ARRAY && a->arr_type == GGUF_TYPE_STRING && a->n == 4);
    expect_str(a, 0, true, "a");
    expect_str(a, 1, true, "");
    expect_str(a, 2, true, "bc");
    expect_str(a, 3, true, "\xc3\xa9\xc3\xa9");
    ck_assert(!gguf_elem_str(a, 4, &(const char *){0}, &(size_t){0}));
    int64_t v;
    a = gguf_find_kv(f, "t.arr_i32");
    ck_assert(a && a->n == 3 && gguf_elem_int(a, 1, &v) && v == -2 && !gguf_elem_int(a, 3, &v));
    a = gguf_find_kv(f, "t.arr_u8");
    ck_assert(gguf_elem_int(a, 0, &v) && v == 255);
    a = gguf_find_kv(f, "t.arr_f64");
    ck_assert(gguf_elem_float(a, 1, &d) && d == -1e300);
    a = gguf_find_kv(f, "t.arr_bool");
    ck_assert(gguf_elem_int(a, 2, &v) && v == 1 && gguf_elem_int(a, 1, &v) && v == 0);
    ck_assert_ptr_null(gguf_find_kv(f, "t.absent"));

    const GgmlType types[] = {GGML_TYPE_F32,  GGML_TYPE_F16,  GGML_TYPE_BF16, GGML_TYPE_Q8_0,
                              GGML_TYPE_Q4_0, GGML_TYPE_Q4_1, GGML_TYPE_Q5_0, GGML_TYPE_Q5_1,
                              GGML_TYPE_Q2_K, GGML_TYPE_Q3_K, GGML_TYPE_Q4_K, GGML_TYPE_Q5_K,
                              GGML_TYPE_Q6_K};
    ck_assert_int_eq(gguf_tensor_total(f), 13);
    for (int i = 0; i < 13; i++) {
        const GgufTensorInfo *t = gguf_tensor_at(f, i);
        char name[32];
        snprintf(name, sizeof name, "t%d.%s", i, ggml_type_name(types[i]));
        ck_assert_str_eq(t->name, name);
        ck_assert_ptr_eq(gguf_find_tensor(f, name), t);
        ck_assert_int_eq(t->type, types[i]);
        ck_assert(t->n_dims == 2 && t->ne[0] == 256 && t->ne[1] == 2);
        ck_assert_uint_eq(t->nbytes, 2 * ggml_row_bytes(types[i], 256));
        ck_assert_uint_eq(
            ((const uint8_t *)t->data - (const uint8_t *)gguf_tensor_at(f, 0)->data) % 64, 0);
        for (size_t b = 0; b < t->nbytes; b++)
            ck_assert_msg(((const uint8_t *)t->data)[b] == (uint8_t)((b * 7 + (size_t)i) & 0xff),
                          "%s byte %zu", name, b);
    }
    gguf_close(f);
}
END_TEST

/* lorafit's writer read back by lorafit's reader, a K-quant tensor among them. */
START_TEST(test_reads_back_what_the_writer_wrote) {
    char *dir = test_tmpdir(), path[512], err[512];
    snprintf(path, sizeof path, "%s/w.gguf", dir);
    GgufWriter *w = gguf_writer_new();
    ck_assert(w);
    const char *strs[] = {"x", "yz"};
    float f32[256 * 3];
    for (int i = 0; i < 256 * 3; i++) f32[i] = (float)i / 100.0f - 3.0f;
    uint8_t q4k[3 * 144];
    ck_assert_int_eq(quant_quantize_row(GGML_TYPE_Q4_K, f32, q4k, 256 * 3), 0);
    ck_assert_int_eq(gguf_set_str(w, "general.name", "tiny", err, sizeof err), 0);
    ck_assert_int_eq(gguf_set_i32(w, "a.i32", -7, err, sizeof err), 0);
    ck_assert_int_eq(gguf_set_arr_str(w, "a.strs", strs, NULL, 2, err, sizeof err), 0);
    ck_assert_int_eq(gguf_set_alignment(w, 128, err, sizeof err), 0);
    ck_assert_int_eq(
        gguf_add_tensor(w, "f", GGML_TYPE_F32, 1, (int64_t[]){5}, f32, NULL, NULL, err, sizeof err),
        0);
    ck_assert_int_eq(gguf_add_tensor(w, "q", GGML_TYPE_Q4_K, 2, (int64_t[]){256, 3}, q4k, NULL,
                                     NULL, err, sizeof err),
                     0);
    ck_assert_msg(gguf_writer_save(w, path, err, sizeof err) == 0, "%s", err);
    gguf_writer_free(w);
    GgufFile *f = gguf_open(path, err, sizeof err);
    ck_assert_msg(f, "%s", err);
    ck_assert_uint_eq(gguf_file_alignment(f), 128);
    expect_int(f, "a.i32", GGUF_TYPE_INT32, -7);
    expect_str(gguf_find_kv(f, "a.strs"), 1, true, "yz");
    const GgufTensorInfo *q = gguf_find_tensor(f, "q");
    ck_assert(q && q->type == GGML_TYPE_Q4_K && q->ne[1] == 3 && q->offset == 128);
    ck_assert(memcmp(q->data, q4k, sizeof q4k) == 0);
    ck_assert(memcmp(gguf_find_tensor(f, "f")->data, f32, 20) == 0);
    gguf_close(f);
    test_rmtree(dir);
    free(dir);
}
END_TEST

/* ---- damaged files ------------------------------------------------------------------- */

typedef struct {
    uint8_t b[4096];
    size_t n;
} Buf;

static void put(Buf *b, const void *p, size_t n) {
    ck_assert(b->n + n <= sizeof b->b);
    memcpy(b->b + b->n, p, n);
    b->n += n;
}
static void put32(Buf *b, uint32_t v) {
    put(b, &v, 4);
}
static void put64(Buf *b, uint64_t v) {
    put(b, &v, 8);
}
static void putstr(Buf *b, const char *s) {
    put64(b, strlen(s));
    put(b, s, strlen(s));
}

/* A valid file: 2 key-values, one Q8_0 tensor (32, 2) named "w", alignment 32. The fields a
 * test damages are patched at the offsets noted. */
typedef struct {
    size_t version, n_tensors, n_kv, kv_type, arr_count, name_len, n_dims, ne0, type, offset;
} Spots;

static Buf valid_file(Spots *s) {
    Buf b = {.n = 0};
    put(&b, "GGUF", 4);
    s->version = b.n;
    put32(&b, 3);
    s->n_tensors = b.n;
    put64(&b, 1);
    s->n_kv = b.n;
    put64(&b, 2);
    putstr(&b, "general.architecture");
    s->kv_type = b.n;
    put32(&b, GGUF_TYPE_STRING);
    putstr(&b, "llama");
    putstr(&b, "a.arr");
    put32(&b, GGUF_TYPE_ARRAY);
    put32(&b, GGUF_TYPE_INT32);
    s->arr_count = b.n;
    put64(&b, 2);
    put32(&b, 1);
    put32(&b, 2);
    s->name_len = b.n;
    putstr(&b, "w");
    s->n_dims = b.n;
    put32(&b, 2);
    s->ne0 = b.n;
    put64(&b, 32);
    put64(&b, 2);
    s->type = b.n;
    put32(&b, GGML_TYPE_Q8_0);
    s->offset = b.n;
    put64(&b, 0);
    while (b.n % 32) put(&b, "", 1);
    for (int i = 0; i < 68; i++) put(&b, &(uint8_t){(uint8_t)i}, 1);
    while (b.n % 32) put(&b, "", 1);
    return b;
}

/* Opens b from a file and expects a refusal whose message holds the path and `want`. */
static void expect_refused(const Buf *b, const char *want, const char *dir) {
    char path[512], err[512] = "";
    snprintf(path, sizeof path, "%s/bad.gguf", dir);
    test_write_file(path, b->b, b->n);
    GgufFile *f = gguf_open(path, err, sizeof err);
    if (f) gguf_close(f);
    ck_assert_msg(!f, "accepted, expected a refusal saying '%s'", want);
    ck_assert_msg(strstr(err, path) && strstr(err, want), "message '%s' lacks '%s'", err, want);
}

static void patch32(Buf *b, size_t at, uint32_t v) {
    memcpy(b->b + at, &v, 4);
}
static void patch64(Buf *b, size_t at, uint64_t v) {
    memcpy(b->b + at, &v, 8);
}

START_TEST(test_every_truncation_is_refused) {
    char *dir = test_tmpdir(), path[512], err[512];
    Spots s;
    Buf full = valid_file(&s);
    snprintf(path, sizeof path, "%s/ok.gguf", dir);
    test_write_file(path, full.b, full.n);
    GgufFile *f = gguf_open(path, err, sizeof err);
    ck_assert_msg(f, "%s", err);
    gguf_close(f);
    /* every prefix that loses a byte of the header or of the tensor's 68 bytes (the file
     * ends with the tensor padded to 96) */
    size_t last = full.n - 96 + 68;
    for (size_t n = 0; n < last; n++) {
        Buf cut = full;
        cut.n = n;
        expect_refused(&cut, n < 4 ? "magic" : n < 24 ? "past the end" : "", dir);
    }
    test_rmtree(dir);
    free(dir);
}
END_TEST

START_TEST(test_each_damaged_field_is_refused_with_what_and_where) {
    char *dir = test_tmpdir();
    Spots s;
    Buf b;
    b = valid_file(&s), memcpy(b.b, "GGUG", 4), expect_refused(&b, "magic", dir);
    b = valid_file(&s), patch32(&b, s.version, 1), expect_refused(&b, "version 1", dir);
    b = valid_file(&s), patch32(&b, s.version, 3u << 24), expect_refused(&b, "big-endian", dir);
    b = valid_file(&s), patch64(&b, s.n_tensors, 1ull << 60), expect_refused(&b, "claims", dir);
    b = valid_file(&s), patch64(&b, s.n_kv, 1ull << 62), expect_refused(&b, "claims", dir);
    b = valid_file(&s), patch32(&b, s.kv_type, 13), expect_refused(&b, "value type 13", dir);
    b = valid_file(&s), patch64(&b, s.arr_count, 1ull << 61),
    expect_refused(&b, "claims 2305843009213693952 elements", dir);
    b = valid_file(&s), patch32(&b, s.arr_count - 4, GGUF_TYPE_ARRAY),
    expect_refused(&b, "nested", dir);
    b = valid_file(&s), memcpy(b.b + s.kv_type - 20, "a.arr\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0", 20),
    expect_refused(&b, "NUL byte", dir);
    {
        Buf d = {.n = 0};
        put(&d, "GGUF", 4), put32(&d, 3), put64(&d, 0), put64(&d, 2);
        putstr(&d, "k"), put32(&d, GGUF_TYPE_UINT8), put(&d, "\1", 1);
        putstr(&d, "k"), put32(&d, GGUF_TYPE_UINT8), put(&d, "\2", 1);
        expect_refused(&d, "key 'k' appears twice", dir);
        Buf a = {.n = 0};
        put(&a, "GGUF", 4), put32(&a, 3), put64(&a, 0), put64(&a, 1);
        putstr(&a, "general.alignment"), put32(&a, GGUF_TYPE_UINT32), put32(&a, 48);
        expect_refused(&a, "power of two", dir);
    }
    b = valid_file(&s), patch32(&b, s.n_dims, 5), expect_refused(&b, "5 dimensions", dir);
    b = valid_file(&s), patch64(&b, s.ne0, 0), expect_refused(&b, "dimension 0 of 0", dir);
    b = valid_file(&s), patch64(&b, s.ne0, 33), expect_refused(&b, "rows of 33", dir);
    b = valid_file(&s), patch32(&b, s.type, 16),
    expect_refused(&b, "tensor 'w' has ggml type 16 (IQ2_XXS)", dir);
    b = valid_file(&s), patch32(&b, s.type, 39), expect_refused(&b, "(MXFP4)", dir);
    b = valid_file(&s), patch32(&b, s.type, 1000), expect_refused(&b, "(unknown)", dir);
    b = valid_file(&s), patch64(&b, s.offset, 32), expect_refused(&b, "offset 32, expected 0", dir);
    b = valid_file(&s), patch64(&b, s.name_len, 64), expect_refused(&b, "name of 64 bytes", dir);
    b = valid_file(&s), patch64(&b, s.ne0 + 8, 4), /* 4 rows: 136 bytes, 96 in the file */
        expect_refused(&b, "past the end of the file", dir);
    test_rmtree(dir);
    free(dir);
}
END_TEST

START_TEST(test_open_errors_name_the_file) {
    char err[512];
    ck_assert_ptr_null(gguf_open("/nonexistent/x.gguf", err, sizeof err));
    ck_assert(strstr(err, "/nonexistent/x.gguf") && strstr(err, "cannot open"));
    ck_assert_ptr_null(gguf_open("/tmp", err, sizeof err));
    ck_assert(strstr(err, "not a regular file"));
}
END_TEST

/* `lorafit inspect` on a GGUF: metadata, tensors with their types, totals; a damaged one
 * refused with exit 1 and the reader's message. */
START_TEST(test_inspect_lists_a_gguf_and_refuses_a_damaged_one) {
    char *dir = test_tmpdir(), cmd[2048], out[512], bad[512];
    snprintf(out, sizeof out, "%s/out.txt", dir);
    snprintf(cmd, sizeof cmd, "'%s' inspect " GGUF_PY, test_lorafit_bin());
    ck_assert_int_eq(test_run(cmd, out), 0);
    size_t len;
    char *text = test_read_file(out, &len);
    ck_assert(text);
    const char *want[] = {"GGUF version 3, alignment 64",
                          "metadata t.str = \"h\xc3\xa9llo\" (string)",
                          "metadata t.arr_str = [4 string: \"a\", \"\", \"bc\", ",
                          "metadata t.i64 = -4611686018427387907 (i64)",
                          "t10.Q4_K ",
                          " Q4_K  [256, 2]",
                          "13 tensors",
                          "6656 parameters"};
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
        ck_assert_msg(strstr(text, want[i]), "inspect output lacks '%s':\n%s", want[i], text);
    free(text);
    size_t n;
    char *full = test_read_file(GGUF_PY, &n);
    snprintf(bad, sizeof bad, "%s/cut.gguf", dir);
    test_write_file(bad, full, n - 300); /* the last tensors' bytes are gone */
    free(full);
    snprintf(cmd, sizeof cmd, "'%s' inspect '%s'", test_lorafit_bin(), bad);
    ck_assert_int_eq(test_run(cmd, out), 1);
    text = test_read_file(out, &len);
    ck_assert_msg(strstr(text, bad) && strstr(text, "past the end of the file"), "%s", text);
    free(text);
    test_rmtree(dir);
    free(dir);
}
END_TEST

Suite *gguf_read_suite(void) {
    Suite *s = suite_create("gguf_read");
    TCase *tc = tcase_create("gguf_read");
    tcase_add_test(tc, test_reads_every_value_and_tensor_type_gguf_py_writes);
    tcase_add_test(tc, test_reads_back_what_the_writer_wrote);
    tcase_add_test(tc, test_every_truncation_is_refused);
    tcase_add_test(tc, test_each_damaged_field_is_refused_with_what_and_where);
    tcase_add_test(tc, test_open_errors_name_the_file);
    tcase_add_test(tc, test_inspect_lists_a_gguf_and_refuses_a_damaged_one);
    suite_add_tcase(s, tc);
    return s;
}
