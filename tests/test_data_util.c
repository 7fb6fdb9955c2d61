/* tests/test_data_util.c — see test_data_util.h. */
#include "tests/test_data_util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

TestRows *test_rows_random(uint64_t *seed, int n, int min_len, int max_len, int vocab,
                           int with_labels) {
    TestRows *r = calloc(1, sizeof *r);
    r->n = n;
    r->has_labels = with_labels;
    r->len = calloc((size_t)n, sizeof *r->len);
    r->ids = calloc((size_t)n, sizeof *r->ids);
    r->labels = calloc((size_t)n, sizeof *r->labels);
    for (int i = 0; i < n; i++) {
        int L = min_len + (int)(test_rand_u64(seed) % (uint64_t)(max_len - min_len + 1));
        r->len[i] = L;
        r->ids[i] = malloc((size_t)L * sizeof(int32_t));
        r->labels[i] = malloc((size_t)L * sizeof(int32_t));
        for (int t = 0; t < L; t++) {
            r->ids[i][t] = (int32_t)(test_rand_u64(seed) % (uint64_t)vocab);
            r->labels[i][t] = with_labels && test_rand_u64(seed) % 4 == 0 ? -100 : r->ids[i][t];
        }
    }
    return r;
}

void test_rows_free(TestRows *r) {
    for (int i = 0; i < r->n; i++) free(r->ids[i]), free(r->labels[i]);
    free(r->len);
    free(r->ids);
    free(r->labels);
    free(r);
}

static void put_list(FILE *f, const int32_t *v, int n, int json) {
    if (json) fputc('[', f);
    for (int t = 0; t < n; t++) fprintf(f, t ? (json ? ", %d" : " %d") : "%d", v[t]);
    if (json) fputc(']', f);
}

void test_rows_write(const TestRows *r, const char *path, TestFormat fmt) {
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    int csv = fmt == TF_CSV_JSON || fmt == TF_CSV_SPACE || fmt == TF_CSV_JSON_GZ;
    int json_cells = fmt != TF_CSV_SPACE;
    if (csv) fprintf(f, r->has_labels ? "id,input_ids,labels\r\n" : "id,input_ids\n");
    for (int i = 0; i < r->n; i++) {
        if (csv) {
            fprintf(f, "%d,\"", i);
            put_list(f, r->ids[i], r->len[i], json_cells);
            if (r->has_labels) {
                fprintf(f, "\",\"");
                put_list(f, r->labels[i], r->len[i], json_cells);
            }
            fprintf(f, r->has_labels ? "\"\r\n" : "\"\n");
        } else {
            fprintf(f, "{\"input_ids\": ");
            put_list(f, r->ids[i], r->len[i], 1);
            if (r->has_labels) {
                fprintf(f, ", \"labels\": ");
                put_list(f, r->labels[i], r->len[i], 1);
            }
            fprintf(f, "}\n");
        }
    }
    fclose(f);
    if (fmt == TF_JSONL_GZ || fmt == TF_CSV_JSON_GZ) {
        gzFile gz = gzopen(path, "wb");
        ck_assert_ptr_nonnull(gz);
        ck_assert_int_eq(gzwrite(gz, text, (unsigned)len), (int)len);
        ck_assert_int_eq(gzclose(gz), Z_OK);
    } else {
        test_write_file(path, text, len);
    }
    free(text);
}

DataOptions test_options(const char *path, int seq_len, int batch_size) {
    static const char *paths[1];
    paths[0] = path;
    DataOptions o = {0};
    o.paths = paths;
    o.n_paths = 1;
    o.input_field = "input_ids";
    o.labels_field = "labels";
    o.seq_len = seq_len;
    o.batch_size = batch_size;
    o.shuffle = true;
    o.shuffle_buffer = 8;
    o.vocab_size = 1000;
    o.seed = 7;
    o.epochs = 1;
    return o;
}

DataReader *test_open(const DataOptions *o) {
    char err[1024];
    DataReader *r = data_open(o, err, sizeof err);
    ck_assert_msg(r != NULL, "data_open: %s", err);
    return r;
}

TestStream *test_stream_new(const DataOptions *o) {
    TestStream *s = calloc(1, sizeof *s);
    s->batch_words = 4 * (size_t)o->batch_size * (size_t)o->seq_len + 4;
    return s;
}

void test_stream_append(TestStream *s, DataReader *r, int max_batches) {
    char err[1024];
    Batch b;
    for (int k = 0; max_batches < 0 || k < max_batches; k++) {
        int rc = data_next_batch(r, &b, err, sizeof err);
        ck_assert_msg(rc >= 0, "data_next_batch: %s", err);
        if (rc == 0) return;
        size_t bt = (size_t)b.batch * (size_t)b.seq_len;
        ck_assert_uint_eq(4 * bt + 4, s->batch_words);
        s->words = realloc(s->words, (size_t)(s->n_batches + 1) * s->batch_words * 4);
        int32_t *w = s->words + (size_t)s->n_batches * s->batch_words;
        memcpy(w, b.input_ids, bt * 4);
        memcpy(w + bt, b.targets, bt * 4);
        memcpy(w + 2 * bt, b.positions, bt * 4);
        memcpy(w + 3 * bt, b.segments, bt * 4);
        w[4 * bt] = b.n_rows;
        w[4 * bt + 1] = b.epoch;
        w[4 * bt + 2] = (int32_t)b.n_targets;
        w[4 * bt + 3] = 0x5eed;
        s->n_batches++;
    }
}

TestStream *test_stream_collect(const DataOptions *o, int max_batches) {
    TestStream *s = test_stream_new(o);
    DataReader *r = test_open(o);
    test_stream_append(s, r, max_batches);
    data_close(r);
    return s;
}

void test_stream_assert_equal(const TestStream *a, const TestStream *b, int from) {
    ck_assert_uint_eq(a->batch_words, b->batch_words);
    ck_assert_int_eq(a->n_batches - from, b->n_batches);
    for (int k = 0; k < b->n_batches; k++) {
        const int32_t *x = a->words + (size_t)(from + k) * a->batch_words;
        const int32_t *y = b->words + (size_t)k * b->batch_words;
        ck_assert_msg(memcmp(x, y, a->batch_words * 4) == 0, "batch %d differs", from + k);
    }
}

void test_stream_free(TestStream *s) {
    if (!s) return;
    free(s->words);
    free(s);
}
