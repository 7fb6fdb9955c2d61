/* tests/test_data_util.h — helpers for the data/ suites: random row sets written in every
 * supported format, and whole batch streams collected for comparison. */
#ifndef LORAFIT_TEST_DATA_UTIL_H
#define LORAFIT_TEST_DATA_UTIL_H

#include "data/data.h"
#include "tests/test_util.h"

typedef struct TestRows {
    int n;
    int *len;         /* (n) */
    int32_t **ids;    /* (n, len[i]) */
    int32_t **labels; /* (n, len[i]) or NULL rows when has_labels is 0 */
    int has_labels;
} TestRows;

typedef enum { TF_JSONL, TF_JSONL_GZ, TF_CSV_JSON, TF_CSV_SPACE, TF_CSV_JSON_GZ } TestFormat;

/* n rows of length in [min_len, max_len], ids in [0, vocab); labels with some -100. */
TestRows *test_rows_random(uint64_t *seed, int n, int min_len, int max_len, int vocab,
                           int with_labels);
void test_rows_write(const TestRows *rows, const char *path, TestFormat fmt);
void test_rows_free(TestRows *rows);

/* Options with defaults: shuffle on (buffer 8), seed 7, vocab 1000, epochs 1, fail. */
DataOptions test_options(const char *path, int seq_len, int batch_size);
DataReader *test_open(const DataOptions *o); /* fails the test on error */

/* Every batch, serialized (arrays + n_rows, epoch, n_targets). */
typedef struct TestStream {
    int n_batches;
    size_t batch_words; /* int32 words per batch */
    int32_t *words;     /* (n_batches * batch_words) */
} TestStream;
/* Reads up to max_batches batches (-1 = to the end) from a fresh reader. */
TestStream *test_stream_collect(const DataOptions *o, int max_batches);
/* Appends the next up to max_batches of r; returns 0 at end, -1 on error. */
void test_stream_append(TestStream *s, DataReader *r, int max_batches);
TestStream *test_stream_new(const DataOptions *o);
/* Asserts a[from..] == b (b starting at its batch 0). */
void test_stream_assert_equal(const TestStream *a, const TestStream *b, int from);
void test_stream_free(TestStream *s);

#endif
