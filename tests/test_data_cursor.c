/* tests/test_data_cursor.c — exact resume of the data stream from a saved cursor. */
#include "tests/test_data_util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Reads `cut` batches, saves, restores into a fresh reader, reads the rest. */
static TestStream *resumed_tail(const DataOptions *o, int cut) {
    char err[1024];
    DataReader *a = test_open(o);
    TestStream *skip = test_stream_new(o);
    test_stream_append(skip, a, cut);
    test_stream_free(skip);
    size_t n = data_cursor_size(a);
    void *blob = malloc(n);
    ck_assert_msg(data_cursor_save(a, blob, n, err, sizeof err) == 0, "save: %s", err);
    data_close(a);
    DataReader *b = test_open(o);
    ck_assert_msg(data_cursor_restore(b, blob, n, err, sizeof err) == 0, "restore: %s", err);
    free(blob);
    TestStream *tail = test_stream_new(o);
    test_stream_append(tail, b, -1);
    data_close(b);
    return tail;
}

START_TEST(test_restore_continues_the_exact_stream) {
    char *dir = test_tmpdir();
    uint64_t seed = 99;
    TestRows *rows = test_rows_random(&seed, 45, 1, 25, 500, 1);
    char jsonl[4200], gz[4200];
    snprintf(jsonl, sizeof jsonl, "%s/r.jsonl", dir);
    snprintf(gz, sizeof gz, "%s/r.csv.gz", dir);
    test_rows_write(rows, jsonl, TF_JSONL);
    test_rows_write(rows, gz, TF_CSV_JSON_GZ);
    for (int combo = 0; combo < 8; combo++) {
        DataOptions o = test_options(combo & 4 ? gz : jsonl, 12, 2);
        o.shuffle = combo & 1;
        o.packing = combo & 2;
        o.overflow = DATA_OVERFLOW_SPLIT;
        o.epochs = 3;
        TestStream *full = test_stream_collect(&o, -1);
        /* cut points: random ones, and around each epoch boundary */
        int cuts[16], n_cuts = 0;
        uint64_t rs = 1000 + (uint64_t)combo;
        for (int i = 0; i < 4; i++)
            cuts[n_cuts++] = (int)(test_rand_u64(&rs) % (uint64_t)(full->n_batches + 1));
        for (int k = 1; k < full->n_batches && n_cuts < 13; k++) {
            int32_t e0 = full->words[(size_t)(k - 1) * full->batch_words + full->batch_words - 3];
            int32_t e1 = full->words[(size_t)k * full->batch_words + full->batch_words - 3];
            if (e0 != e1) cuts[n_cuts++] = k - 1, cuts[n_cuts++] = k, cuts[n_cuts++] = k + 1;
        }
        ck_assert_int_ge(n_cuts, 8); /* two epoch boundaries were seen */
        cuts[n_cuts++] = 0;
        cuts[n_cuts++] = full->n_batches;
        for (int i = 0; i < n_cuts; i++) {
            int cut = cuts[i] > full->n_batches ? full->n_batches : cuts[i];
            TestStream *tail = resumed_tail(&o, cut);
            test_stream_assert_equal(full, tail, cut);
            test_stream_free(tail);
        }
        test_stream_free(full);
    }
    test_rows_free(rows);
    test_rmtree(dir);
    free(dir);
}
END_TEST

START_TEST(test_restore_with_skipped_records_keeps_counts) {
    char *dir = test_tmpdir();
    char path[4200];
    snprintf(path, sizeof path, "%s/s.jsonl", dir);
    FILE *f = fopen(path, "w");
    for (int i = 0; i < 40; i++) {
        if (i % 7 == 3)
            fprintf(f, "{\"input_ids\": [1, \"x\"]}\n");
        else
            fprintf(f, "{\"input_ids\": [%d, %d, %d]}\n", i, i + 1, i + 2);
    }
    fclose(f);
    DataOptions o = test_options(path, 4, 2);
    o.on_error = DATA_ON_ERROR_SKIP;
    o.epochs = 2;
    TestStream *full = test_stream_collect(&o, -1);
    TestStream *tail = resumed_tail(&o, 5);
    test_stream_assert_equal(full, tail, 5);
    test_stream_free(full);
    test_stream_free(tail);
    test_rmtree(dir);
    free(dir);
}
END_TEST

static int restore_after_edit(const char *path, const char *dir, int truncate) {
    DataOptions o = test_options(path, 8, 2);
    DataReader *a = test_open(&o);
    TestStream *s = test_stream_new(&o);
    test_stream_append(s, a, 3);
    test_stream_free(s);
    char err[1024];
    size_t n = data_cursor_size(a);
    void *blob = malloc(n);
    ck_assert_int_eq(data_cursor_save(a, blob, n, err, sizeof err), 0);
    data_close(a);
    size_t len;
    char *text = test_read_file(path, &len);
    if (truncate) {
        len -= 30;
    } else {
        char *p = strstr(text + len / 2, "1");
        ck_assert_ptr_nonnull(p);
        *p = '2'; /* same size, different bytes */
    }
    test_write_file(path, text, len);
    free(text);
    DataReader *b = test_open(&o);
    int rc = data_cursor_restore(b, blob, n, err, sizeof err);
    if (rc != 0) ck_assert_msg(strstr(err, "changed") != NULL, "error: %s", err);
    data_close(b);
    free(blob);
    (void)dir;
    return rc;
}

START_TEST(test_restore_refuses_changed_or_truncated_file) {
    char *dir = test_tmpdir();
    uint64_t seed = 3;
    TestRows *rows = test_rows_random(&seed, 40, 2, 20, 900, 1);
    char path[4200];
    for (int truncate = 0; truncate < 2; truncate++) {
        snprintf(path, sizeof path, "%s/m%d.jsonl", dir, truncate);
        test_rows_write(rows, path, TF_JSONL);
        ck_assert_int_eq(restore_after_edit(path, dir, truncate), -1);
    }
    /* a corrupt or foreign blob is refused too */
    snprintf(path, sizeof path, "%s/m0.jsonl", dir);
    test_rows_write(rows, path, TF_JSONL);
    DataOptions o = test_options(path, 8, 2);
    DataReader *r = test_open(&o);
    char err[512];
    unsigned char junk[64] = {1, 2, 3};
    ck_assert_int_eq(data_cursor_restore(r, junk, sizeof junk, err, sizeof err), -1);
    size_t n = data_cursor_size(r);
    unsigned char *blob = malloc(n);
    ck_assert_int_eq(data_cursor_save(r, blob, n, err, sizeof err), 0);
    ck_assert_int_eq(data_cursor_restore(r, blob, n - 1, err, sizeof err), -1);
    data_close(r);
    o.seq_len = 9; /* other options: refused */
    r = test_open(&o);
    ck_assert_int_eq(data_cursor_restore(r, blob, n, err, sizeof err), -1);
    ck_assert_msg(strstr(err, "options") != NULL, "error: %s", err);
    data_close(r);
    free(blob);
    test_rows_free(rows);
    test_rmtree(dir);
    free(dir);
}
END_TEST

Suite *data_cursor_suite(void) {
    Suite *s = suite_create("data_cursor");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_restore_continues_the_exact_stream);
    tcase_add_test(tc, test_restore_with_skipped_records_keeps_counts);
    tcase_add_test(tc, test_restore_refuses_changed_or_truncated_file);
    suite_add_tcase(s, tc);
    return s;
}
