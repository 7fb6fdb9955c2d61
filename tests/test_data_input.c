/* tests/test_data_input.c — bad records, shuffling, path lists and globs, real data. */
#include "tests/test_data_util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct BadCase {
    const char *jsonl; /* the bad line */
    const char *csv;   /* the bad CSV row (header: id,input_ids,labels), NULL = JSONL only */
    const char *why;   /* expected in the message */
    const char *column;
} BadCase;

static const BadCase BAD[] = {
    {"{\"input_ids\": [1, 2", NULL, "invalid JSON", NULL},
    {"[1, 2, 3]", NULL, "JSON object", NULL},
    {"{\"labels\": [1, 2]}", NULL, "missing field 'input_ids'", NULL},
    {"{\"input_ids\": [1, 2.5]}", "9,\"[1, 2.5]\",\"[1, 2]\"", "not an integer", "input_ids"},
    {"{\"input_ids\": [1, \"a\"]}", "9,1 a,1 2", "not an integer", "input_ids"},
    {"{\"input_ids\": [1, 4294967297]}", "9,1 4294967297,1 2", "int32", "input_ids"},
    {"{\"input_ids\": [1, 1000]}", "9,1 1000,1 2", "vocab_size", NULL},
    {"{\"input_ids\": [1, -1]}", "9,1 -1,1 2", "vocab_size", NULL},
    {"{\"input_ids\": [1, 2], \"labels\": [1, -7]}", "9,1 2,1 -7", "neither -100", NULL},
    {"{\"input_ids\": [1, 2, 3], \"labels\": [1, 2]}", "9,1 2 3,1 2",
     "labels has 2 ids but input_ids has 3", "labels"},
    {"{\"input_ids\": []}", "9,[],[]", "is empty", NULL},
    {NULL, "9,1 2", "fields", NULL},
    {NULL, "9,\"1 2\"x,1 2", "malformed CSV", NULL},
};

/* Good rows 0..5, the bad one at line 4 (1-based, after a header for CSV). */
static void write_case(const char *path, const BadCase *c, int csv) {
    FILE *f = fopen(path, "w");
    if (csv) fprintf(f, "id,input_ids,labels\n");
    for (int i = 0; i < 6; i++) {
        if (i == 3 - csv) fprintf(f, "%s\n", csv ? c->csv : c->jsonl);
        if (csv)
            fprintf(f, "%d,%d %d,%d -100\n", i, 10 + i, 20 + i, 10 + i);
        else
            fprintf(f, "{\"input_ids\": [%d, %d], \"labels\": [%d, -100]}\n", 10 + i, 20 + i,
                    10 + i);
    }
    fclose(f);
}

START_TEST(test_bad_records_fail_with_file_line_and_column) {
    char *dir = test_tmpdir();
    for (size_t k = 0; k < sizeof BAD / sizeof *BAD; k++) {
        for (int csv = 0; csv < 2; csv++) {
            const BadCase *c = &BAD[k];
            if (!(csv ? c->csv : c->jsonl)) continue;
            char path[4200];
            snprintf(path, sizeof path, "%s/bad%zu.%s", dir, k, csv ? "csv" : "jsonl");
            write_case(path, c, csv);
            DataOptions o = test_options(path, 8, 1);
            o.shuffle = false;
            DataReader *r = test_open(&o);
            Batch b;
            char err[1024], where[4300];
            int rc, good = 0;
            while ((rc = data_next_batch(r, &b, err, sizeof err)) == 1) good++;
            ck_assert_int_eq(rc, -1);
            ck_assert_int_eq(good, 3 - csv); /* only the rows before the bad one */
            snprintf(where, sizeof where, "%s:4: ", path);
            ck_assert_msg(strstr(err, where) == err, "case %zu: %s", k, err);
            ck_assert_msg(strstr(err, c->why), "case %zu: '%s' lacks '%s'", k, err, c->why);
            ck_assert_msg(strstr(err, "on_error: skip"), "case %zu: %s", k, err);
            if (csv && c->column) {
                char col[64];
                snprintf(col, sizeof col, "column '%s'", c->column);
                ck_assert_msg(strstr(err, col), "case %zu: %s lacks %s", k, err, col);
            }
            data_close(r);

            o.on_error = DATA_ON_ERROR_SKIP;
            r = test_open(&o);
            int seen[6] = {0};
            while ((rc = data_next_batch(r, &b, err, sizeof err)) == 1) {
                ck_assert_int_eq(b.n_rows, 1);
                int id = b.input_ids[0] - 10;
                ck_assert(id >= 0 && id < 6 && b.input_ids[1] == 20 + id);
                seen[id]++;
            }
            ck_assert_msg(rc == 0, "case %zu: %s", k, err);
            for (int i = 0; i < 6; i++)
                ck_assert_msg(seen[i] == 1, "case %zu csv %d row %d", k, csv, i);
            ck_assert_int_eq(data_skipped(r), 1);
            char rep[4400];
            data_skip_report(r, rep, sizeof rep);
            ck_assert_msg(strstr(rep, "1 bad"), "report: %s", rep);
            data_close(r);
        }
    }
    test_rmtree(dir);
    free(dir);
}
END_TEST

static void first_ids(const DataOptions *o, int *out, int n) {
    DataReader *r = test_open(o);
    Batch b;
    char err[512];
    for (int i = 0; i < n; i++) {
        ck_assert_int_eq(data_next_batch(r, &b, err, sizeof err), 1);
        out[i] = b.input_ids[0];
    }
    ck_assert_int_eq(data_next_batch(r, &b, err, sizeof err), 0);
    data_close(r);
}

START_TEST(test_shuffle_is_a_seeded_permutation_per_epoch) {
    char *dir = test_tmpdir();
    char path[4200];
    snprintf(path, sizeof path, "%s/p.jsonl", dir);
    FILE *f = fopen(path, "w");
    enum { N = 200 };
    for (int i = 0; i < N; i++) fprintf(f, "{\"input_ids\": [%d, 1]}\n", i);
    fclose(f);
    DataOptions o = test_options(path, 4, 1);
    o.shuffle_buffer = 50;
    o.epochs = 2;
    static int a[2 * N], b[2 * N], c[2 * N];
    first_ids(&o, a, 2 * N);
    first_ids(&o, b, 2 * N);
    o.seed = 8;
    first_ids(&o, c, 2 * N);
    ck_assert(memcmp(a, b, sizeof a) == 0);          /* same seed: same order */
    ck_assert(memcmp(a, c, sizeof a) != 0);          /* other seed: other order */
    ck_assert(memcmp(a, a + N, N * sizeof *a) != 0); /* epochs differ */
    int in_order = 0;
    for (int e = 0; e < 2; e++) {
        int seen[N] = {0};
        for (int i = 0; i < N; i++) seen[a[e * N + i]]++, in_order += a[e * N + i] == i;
        for (int i = 0; i < N; i++) ck_assert_int_eq(seen[i], 1);
    }
    ck_assert_int_lt(in_order, 20);
    o.shuffle = false;
    first_ids(&o, c, 2 * N);
    for (int i = 0; i < 2 * N; i++) ck_assert_int_eq(c[i], i % N);
    test_rmtree(dir);
    free(dir);
}
END_TEST

START_TEST(test_globs_lists_and_missing_files) {
    char *dir = test_tmpdir();
    char p[3][4200];
    for (int i = 0; i < 3; i++) {
        snprintf(p[i], sizeof p[i], "%s/part-%d.jsonl", dir, 2 - i); /* created out of order */
        FILE *f = fopen(p[i], "w");
        fprintf(f, "{\"input_ids\": [%d, 5]}\n{\"input_ids\": [%d, 6]}\n", 2 - i, 2 - i);
        fclose(f);
    }
    char pattern[4200], missing[4200], wrong[4200];
    snprintf(pattern, sizeof pattern, "%s/part-*.jsonl", dir);
    DataOptions o = test_options(pattern, 4, 1);
    o.shuffle = false;
    int ids[6];
    first_ids(&o, ids, 6);
    const int expect[6] = {0, 0, 1, 1, 2, 2};
    for (int i = 0; i < 6; i++) ck_assert_int_eq(ids[i], expect[i]);
    const char *list[2] = {p[0], pattern}; /* part-2, then the glob */
    o.paths = list;
    o.n_paths = 2;
    int ids8[8];
    first_ids(&o, ids8, 8);
    ck_assert_int_eq(ids8[0], 2);
    ck_assert_int_eq(ids8[2], 0);
    char err[1024];
    snprintf(missing, sizeof missing, "%s/nope.jsonl", dir);
    const char *l2[1] = {missing};
    o.paths = l2;
    o.n_paths = 1;
    ck_assert_ptr_null(data_open(&o, err, sizeof err));
    ck_assert_msg(strstr(err, missing) && strstr(err, "No such file"), "%s", err);
    snprintf(missing, sizeof missing, "%s/none-*.jsonl", dir);
    ck_assert_ptr_null(data_open(&o, err, sizeof err));
    ck_assert_msg(strstr(err, "matches no files"), "%s", err);
    snprintf(wrong, sizeof wrong, "%s/x.txt", dir);
    test_write_file(wrong, "x", 1);
    l2[0] = wrong;
    ck_assert_ptr_null(data_open(&o, err, sizeof err));
    ck_assert_msg(strstr(err, "extension"), "%s", err);
    test_rmtree(dir);
    free(dir);
}
END_TEST

/* The first batch's error of the data at paths; fails the test unless there is one. */
static void first_batch_error(const char *const *paths, int n, bool skip, char *err, size_t len) {
    DataOptions o = test_options(paths[0], 8, 1);
    o.paths = (const char **)paths;
    o.n_paths = n;
    o.on_error = skip ? DATA_ON_ERROR_SKIP : DATA_ON_ERROR_FAIL;
    DataReader *r = test_open(&o);
    Batch b;
    ck_assert_int_eq(data_next_batch(r, &b, err, len), -1);
    data_close(r);
}

/* An empty data file says that it holds no records, naming it (not that its records were
 * bad); so do several; a file whose every record is bad still says that. */
START_TEST(test_an_empty_data_file_says_it_holds_no_records) {
    char *dir = test_tmpdir(), empty[4200], other[4200], bad[4200], err[8192], want[4400];
    snprintf(empty, sizeof empty, "%s/empty.jsonl", dir);
    snprintf(other, sizeof other, "%s/other.jsonl", dir);
    snprintf(bad, sizeof bad, "%s/bad.jsonl", dir);
    test_write_file(empty, "", 0);
    test_write_file(other, "\n", 1);
    test_write_file(bad, "{\"input_ids\": 5}\n", 17);
    const char *one[1] = {empty}, *two[2] = {empty, other}, *bad_one[1] = {bad};
    first_batch_error(one, 1, false, err, sizeof err);
    snprintf(want, sizeof want, "%s: the data file holds no records (is it empty?)", empty);
    ck_assert_msg(strstr(err, want) && !strstr(err, "bad"), "%s", err);
    first_batch_error(two, 2, true, err, sizeof err);
    snprintf(want, sizeof want, "%s and the 1 other data file hold no records", empty);
    ck_assert_msg(strstr(err, want), "%s", err);
    first_batch_error(bad_one, 1, true, err, sizeof err);
    ck_assert_msg(strstr(err, "every record was skipped as bad"), "%s", err);
    test_rmtree(dir);
    free(dir);
}
END_TEST

static void assert_same_batches(const char *a, const char *b, int seq_len, int vocab) {
    DataOptions o = test_options(a, seq_len, 4);
    o.vocab_size = vocab;
    o.shuffle_buffer = 64;
    o.packing = true;
    o.overflow = DATA_OVERFLOW_SPLIT;
    TestStream *x = test_stream_collect(&o, -1);
    DataOptions o2 = o;
    const char *pb[1] = {b};
    o2.paths = pb;
    TestStream *y = test_stream_collect(&o2, -1);
    ck_assert_int_gt(x->n_batches, 20);
    test_stream_assert_equal(x, y, 0);
    test_stream_free(x);
    test_stream_free(y);
}

START_TEST(test_real_data_jsonl_and_csv_agree) {
    TEST_NEED_SHARED(shared);
    char a[4200], b[4200];
    snprintf(a, sizeof a, "%s/data/tinystories/train.jsonl.gz", shared);
    snprintf(b, sizeof b, "%s/data/tinystories/train.csv", shared);
    assert_same_batches(a, b, 256, 512);
    snprintf(a, sizeof a, "%s/data/alpaca/train.jsonl", shared);
    snprintf(b, sizeof b, "%s/data/alpaca/train.csv", shared);
    assert_same_batches(a, b, 256, 512);
}
END_TEST

Suite *data_input_suite(void) {
    Suite *s = suite_create("data_input");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_bad_records_fail_with_file_line_and_column);
    tcase_add_test(tc, test_shuffle_is_a_seeded_permutation_per_epoch);
    tcase_add_test(tc, test_globs_lists_and_missing_files);
    tcase_add_test(tc, test_an_empty_data_file_says_it_holds_no_records);
    tcase_add_test(tc, test_real_data_jsonl_and_csv_agree);
    suite_add_tcase(s, tc);
    return s;
}
