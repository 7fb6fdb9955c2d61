/* tests/test_embed_rows.c — an untied embedding read a row at a time from its file
 * (op_embedding_read, trainer/model/embed_rows.c): the same bits as through the table, and
 * the table's pages never mapped into the process. */
#include <check.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tensor/quant.h"
#include "tensor/tensor.h"
#include "tests/test_util.h"
#include "trainer/model/decoder.h"
#include "trainer/store/safetensors.h"

enum { V = 40, C = 64 };

typedef struct {
    const uint8_t *bytes;
    size_t row_bytes;
    int64_t failing_row; /* -1: none */
} Rows;

static int read_rows(void *ctx, int64_t row, void *dst, size_t bytes, char *err, size_t errlen) {
    const Rows *r = ctx;
    if (row == r->failing_row) {
        snprintf(err, errlen, "the disk said no");
        return -1;
    }
    ck_assert_uint_eq(bytes, r->row_bytes);
    memcpy(dst, r->bytes + (size_t)row * bytes, bytes);
    return 0;
}

/* op_embedding_read on table's bytes gives op_embedding's output bit for bit. */
static void same_as_through_the_table(const Tensor *table, const void *bytes, size_t row_bytes) {
    const int32_t ids[] = {3, 0, 39, 3, 17, 22, 8};
    int64_t n = sizeof ids / sizeof *ids;
    Graph *g = graph_create();
    Rows rows = {bytes, row_bytes, -1};
    Tensor *a = op_embedding(g, table, ids, n);
    Tensor *b = op_embedding_read(g, table, ids, n, read_rows, &rows);
    ck_assert_msg(a && b, "%s", graph_error(g));
    ck_assert_int_eq(b->shape[0], n);
    ck_assert_int_eq(b->shape[1], C);
    ck_assert(memcmp(a->data, b->data, (size_t)(n * C) * sizeof(float)) == 0);
    graph_destroy(g);
}

START_TEST(test_rows_read_give_the_tables_bits) {
    float *f = malloc((size_t)V * C * sizeof *f);
    uint16_t *h = malloc((size_t)V * C * sizeof *h);
    size_t q8_row = ggml_row_bytes(GGML_TYPE_Q8_0, C);
    uint8_t *q8 = malloc((size_t)V * q8_row);
    for (int i = 0; i < V * C; i++) f[i] = (float)((i * 7919) % 1000) / 333.0f - 1.5f;
    tensor_float_to_bf16_array(h, f, (int64_t)V * C);
    for (int r = 0; r < V; r++)
        ck_assert_int_eq(quant_quantize_row(GGML_TYPE_Q8_0, f + r * C, q8 + r * q8_row, C), 0);
    const int64_t shape[2] = {V, C};
    Tensor t32, t16, tq;
    memset(&tq, 0, sizeof tq);
    tensor_init(&t32, f, 2, shape);
    tensor_init_bf16(&t16, h, 2, shape);
    ck_assert_int_eq(tensor_init_quant(&tq, q8, GGML_TYPE_Q8_0, V, C), 0);
    same_as_through_the_table(&t32, f, C * sizeof(float));
    same_as_through_the_table(&t16, h, C * sizeof(uint16_t));
    same_as_through_the_table(&tq, q8, q8_row);
    free(f);
    free(h);
    free(q8);
}
END_TEST

START_TEST(test_a_failed_read_names_the_row_and_why) {
    float f[V * C] = {0};
    Tensor t;
    tensor_init(&t, f, 2, (int64_t[]){V, C});
    Rows rows = {(const uint8_t *)f, C * sizeof(float), 17};
    Graph *g = graph_create();
    ck_assert(op_embedding_read(g, &t, (int32_t[]){1, 17}, 2, read_rows, &rows) == NULL);
    ck_assert(graph_failed(g));
    ck_assert_msg(strstr(graph_error(g), "embedding row 17: the disk said no"), "%s",
                  graph_error(g));
    graph_reset(g);
    ck_assert(op_embedding_read(g, &t, (int32_t[]){V}, 1, read_rows, &rows) == NULL);
    ck_assert_msg(strstr(graph_error(g), "outside"), "%s", graph_error(g));
    graph_destroy(g);
}
END_TEST

/* Pages of the mapping of `path` present in this process within file offsets [from, to). */
static long pages_present(const char *path, uint64_t from, uint64_t to) {
    FILE *maps = fopen("/proc/self/maps", "r");
    int pagemap = open("/proc/self/pagemap", O_RDONLY);
    ck_assert(maps && pagemap >= 0);
    long page = sysconf(_SC_PAGESIZE), present = 0;
    char line[8192];
    while (fgets(line, sizeof line, maps)) {
        unsigned long lo, hi, off;
        char name[4096] = "";
        if (sscanf(line, "%lx-%lx %*s %lx %*s %*s %4095s", &lo, &hi, &off, name) < 3 ||
            strcmp(name, path) != 0)
            continue;
        for (unsigned long a = lo; a < hi; a += (unsigned long)page) {
            uint64_t at = off + (a - lo), entry = 0;
            if (at < from || at >= to) continue;
            ck_assert(pread(pagemap, &entry, 8, (off_t)(a / (unsigned long)page * 8)) == 8);
            present += (long)(entry >> 63);
        }
    }
    fclose(maps);
    close(pagemap);
    return present;
}

/* An untied F32 model whose 8 MiB table is most of its file: after a pass over 512 ids
 * spread over the vocabulary, no page inside the table is mapped (2 MiB at each edge are
 * left out: the kernel may map a whole folio of the neighbouring tensors, up to 2 MiB). */
START_TEST(test_an_untied_table_stays_out_of_resident_memory) {
    char *dir = test_tmpdir(), cmd[8192], file[4200], err[2048];
    snprintf(cmd, sizeof cmd,
             "'%s/make_model' --out '%s/m' --hidden 256 --intermediate 256 --layers 1 --heads 2 "
             "--kv-heads 1 --vocab 8192 --seed 3 --dtype f32",
             test_tools_dir(), dir);
    ck_assert_msg(test_run(cmd, "/dev/null") == 0, "failed: %s", cmd);
    snprintf(file, sizeof file, "%s/m/model.safetensors", dir);
    SafeTensors *st = st_open(file, err, sizeof err);
    ck_assert_msg(st, "%s", err);
    const StTensor *t = st_find(st, "model.embed_tokens.weight");
    ck_assert(t != NULL);
    uint64_t from = st_file_offset(st, t) + (2u << 20), to = st_file_offset(st, t) + t->nbytes;
    to -= 2u << 20;
    st_close(st);
    snprintf(cmd, sizeof cmd, "%s/m", dir);
    Model *m = model_load(cmd, err, sizeof err);
    ck_assert_msg(m, "%s", err);
    int32_t ids[512];
    for (int i = 0; i < 512; i++) ids[i] = (i * 16 + i / 32) % 8192;
    Graph *g = graph_create();
    ck_assert_msg(model_forward_hidden_eval(m, NULL, g, ids, NULL, NULL, 1, 512) != NULL, "%s",
                  graph_error(g));
    ck_assert_int_eq(pages_present(file, from, to), 0);
    graph_destroy(g);
    model_free(m);
    test_rmtree(dir);
    free(dir);
}
END_TEST

Suite *embed_rows_suite(void) {
    Suite *s = suite_create("embed_rows");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_rows_read_give_the_tables_bits);
    tcase_add_test(tc, test_a_failed_read_names_the_row_and_why);
    tcase_add_test(tc, test_an_untied_table_stays_out_of_resident_memory);
    suite_add_tcase(s, tc);
    return s;
}
