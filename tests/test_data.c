/* tests/test_data.c — data/: formats, batch layout, bad records, shuffle, paths, real data.
 * The cursor tests are in tests/test_data_cursor.c. */
#include "tests/test_data_util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

START_TEST(test_formats_give_identical_batches) {
    char *dir = test_tmpdir();
    for (int with_labels = 0; with_labels < 2; with_labels++) {
        uint64_t seed = 11 + (uint64_t)with_labels;
        TestRows *rows = test_rows_random(&seed, 60, 1, 40, 300, with_labels);
        const char *names[4] = {"a.jsonl", "b.jsonl.gz", "c.csv", "d.csv"};
        TestFormat fmts[4] = {TF_JSONL, TF_JSONL_GZ, TF_CSV_JSON, TF_CSV_SPACE};
        TestStream *ref[2] = {NULL, NULL};
        for (int f = 0; f < 4; f++) {
            char path[4200];
            snprintf(path, sizeof path, "%s/%d%s", dir, with_labels, names[f]);
            test_rows_write(rows, path, fmts[f]);
            for (int packing = 0; packing < 2; packing++) {
                DataOptions o = test_options(path, 16, 3);
                o.packing = packing;
                o.overflow = DATA_OVERFLOW_SPLIT;
                o.epochs = 2;
                TestStream *s = test_stream_collect(&o, -1);
                ck_assert_int_gt(s->n_batches, 5);
                if (f == 0) {
                    ref[packing] = s;
                } else {
                    test_stream_assert_equal(ref[packing], s, 0);
                    test_stream_free(s);
                }
            }
        }
        test_stream_free(ref[0]);
        test_stream_free(ref[1]);
        test_rows_free(rows);
    }
    test_rmtree(dir);
    free(dir);
}
END_TEST

/* Three rows [1 2 3 4 5], [6 7], [8 9 10 11 12 13 14] with labels -100 on the first id. */
static char *write_small(const char *dir) {
    char *path = malloc(4200);
    snprintf(path, 4200, "%s/small.jsonl", dir); /* read with shuffle off (file order) */
    const char *text =
        "{\"input_ids\": [1,2,3,4,5], \"labels\": [-100,2,3,4,5]}\n"
        "\n"
        "{\"input_ids\": [6,7], \"labels\": [-100,7]}\n"
        "{\"input_ids\": [8,9,10,11,12,13,14], \"labels\": [-100,9,10,11,12,13,14]}\n";
    test_write_file(path, text, strlen(text));
    return path;
}

START_TEST(test_unpacked_rows_are_padded_with_shifted_targets) {
    char *dir = test_tmpdir(), *path = write_small(dir);
    DataOptions o = test_options(path, 6, 2);
    o.shuffle = false;
    o.overflow = DATA_OVERFLOW_TRUNCATE;
    DataReader *r = test_open(&o);
    Batch b;
    char err[512];
    ck_assert_int_eq(data_next_batch(r, &b, err, sizeof err), 1);
    const int32_t ids0[12] = {1, 2, 3, 4, 5, 0, 6, 7, 0, 0, 0, 0};
    const int32_t tg0[12] = {2, 3, 4, 5, -100, -100, 7, -100, -100, -100, -100, -100};
    const int32_t pos0[12] = {0, 1, 2, 3, 4, 0, 0, 1, 0, 1, 2, 3};
    for (int i = 0; i < 12; i++) {
        ck_assert_int_eq(b.input_ids[i], ids0[i]);
        ck_assert_int_eq(b.targets[i], tg0[i]);
        ck_assert_int_eq(b.positions[i], pos0[i]);
        ck_assert_int_lt(b.positions[i], 6);
    }
    ck_assert_int_ne(b.segments[5], b.segments[0]);
    ck_assert_int_ne(b.segments[8], b.segments[6]);
    ck_assert_int_eq(b.n_targets, 5);
    ck_assert_int_eq(b.n_rows, 2);
    /* truncate keeps the first 6 of the 7-id row; the second sequence is all padding */
    ck_assert_int_eq(data_next_batch(r, &b, err, sizeof err), 1);
    const int32_t tg1[6] = {9, 10, 11, 12, 13, -100};
    for (int i = 0; i < 6; i++) {
        ck_assert_int_eq(b.input_ids[i], 8 + i);
        ck_assert_int_eq(b.targets[i], tg1[i]);
    }
    for (int i = 6; i < 12; i++) ck_assert_int_eq(b.targets[i], -100);
    ck_assert_int_eq(b.n_rows, 1);
    ck_assert_int_eq(b.n_targets, 5);
    ck_assert_int_eq(data_next_batch(r, &b, err, sizeof err), 0);
    data_close(r);
    test_rmtree(dir);
    free(dir);
    free(path);
}
END_TEST

START_TEST(test_split_and_drop_overflow) {
    char *dir = test_tmpdir(), *path = write_small(dir);
    DataOptions o = test_options(path, 3, 1);
    o.shuffle = false;
    o.overflow = DATA_OVERFLOW_SPLIT;
    DataReader *r = test_open(&o);
    Batch b;
    char err[512];
    /* rows: [1 2 3] [4 5] [6 7] [8 9 10] [11 12 13] [14] */
    const int32_t first[6] = {1, 4, 6, 8, 11, 14};
    const int rows_len[6] = {3, 2, 2, 3, 3, 1};
    for (int k = 0; k < 6; k++) {
        ck_assert_int_eq(data_next_batch(r, &b, err, sizeof err), 1);
        ck_assert_int_eq(b.input_ids[0], first[k]);
        ck_assert_int_eq(b.targets[rows_len[k] - 1], -100); /* chunk end: nothing to predict */
        ck_assert_int_eq(b.n_targets, rows_len[k] - 1);
    }
    ck_assert_int_eq(data_next_batch(r, &b, err, sizeof err), 0);
    data_close(r);

    o.overflow = DATA_OVERFLOW_DROP;
    o.seq_len = 5;
    r = test_open(&o);
    ck_assert_int_eq(data_next_batch(r, &b, err, sizeof err), 1);
    ck_assert_int_eq(b.input_ids[0], 1);
    ck_assert_int_eq(data_next_batch(r, &b, err, sizeof err), 1);
    ck_assert_int_eq(b.input_ids[0], 6);
    ck_assert_int_eq(data_next_batch(r, &b, err, sizeof err), 0);
    ck_assert_int_eq(data_skipped(r), 1);
    char rep[512];
    data_skip_report(r, rep, sizeof rep);
    ck_assert_msg(strstr(rep, "small.jsonl: 0 bad, 1 too long"), "report: %s", rep);
    data_close(r);
    test_rmtree(dir);
    free(dir);
    free(path);
}
END_TEST

START_TEST(test_packing_restarts_positions_per_segment) {
    char *dir = test_tmpdir(), *path = write_small(dir);
    DataOptions o = test_options(path, 8, 2);
    o.shuffle = false;
    o.packing = true;
    DataReader *r = test_open(&o);
    Batch b;
    char err[512];
    ck_assert_int_eq(data_next_batch(r, &b, err, sizeof err), 1);
    /* seq 0: [1..5][6 7] pad ; seq 1: [8..14] pad */
    const int32_t ids[16] = {1, 2, 3, 4, 5, 6, 7, 0, 8, 9, 10, 11, 12, 13, 14, 0};
    const int32_t tg[16] = {2, 3, 4, 5, -100, 7, -100, -100, 9, 10, 11, 12, 13, 14, -100, -100};
    const int32_t pos[16] = {0, 1, 2, 3, 4, 0, 1, 0, 0, 1, 2, 3, 4, 5, 6, 0};
    const int32_t seg[16] = {0, 0, 0, 0, 0, 1, 1, 2, 0, 0, 0, 0, 0, 0, 0, 1};
    for (int i = 0; i < 16; i++) {
        ck_assert_int_eq(b.input_ids[i], ids[i]);
        ck_assert_int_eq(b.targets[i], tg[i]);
        ck_assert_int_eq(b.positions[i], pos[i]);
        ck_assert_int_eq(b.segments[i], seg[i]);
    }
    ck_assert_int_eq(b.n_rows, 3);
    ck_assert_int_eq(b.n_targets, 11);
    ck_assert_int_eq(data_next_batch(r, &b, err, sizeof err), 0);
    data_close(r);
    /* a row that does not fit starts the next sequence, even the next batch */
    o.batch_size = 1;
    o.seq_len = 7;
    r = test_open(&o);
    ck_assert_int_eq(data_next_batch(r, &b, err, sizeof err), 1);
    ck_assert_int_eq(b.n_rows, 2);
    ck_assert_int_eq(data_next_batch(r, &b, err, sizeof err), 1);
    ck_assert_int_eq(b.n_rows, 1);
    ck_assert_int_eq(b.input_ids[0], 8);
    ck_assert_int_eq(b.targets[6], -100);
    ck_assert_int_eq(data_next_batch(r, &b, err, sizeof err), 0);
    data_close(r);
    test_rmtree(dir);
    free(dir);
    free(path);
}
END_TEST

START_TEST(test_count_batches_matches_stream) {
    char *dir = test_tmpdir();
    uint64_t seed = 5;
    TestRows *rows = test_rows_random(&seed, 50, 1, 30, 100, 1);
    char path[4200];
    snprintf(path, sizeof path, "%s/x.jsonl", dir);
    test_rows_write(rows, path, TF_JSONL);
    for (int packing = 0; packing < 2; packing++) {
        DataOptions o = test_options(path, 10, 3);
        o.packing = packing;
        o.overflow = DATA_OVERFLOW_SPLIT;
        o.epochs = 3;
        char err[512];
        int64_t n = data_count_batches(&o, err, sizeof err);
        TestStream *s = test_stream_collect(&o, -1);
        ck_assert_int_eq(n, s->n_batches);
        test_stream_free(s);
        o.epochs = 0;
        ck_assert_int_eq(data_count_batches(&o, err, sizeof err), -1);
    }
    test_rows_free(rows);
    test_rmtree(dir);
    free(dir);
}
END_TEST

Suite *data_suite(void) {
    Suite *s = suite_create("data");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_formats_give_identical_batches);
    tcase_add_test(tc, test_unpacked_rows_are_padded_with_shifted_targets);
    tcase_add_test(tc, test_split_and_drop_overflow);
    tcase_add_test(tc, test_packing_restarts_positions_per_segment);
    tcase_add_test(tc, test_count_batches_matches_stream);
    suite_add_tcase(s, tc);
    return s;
}
