/* tests/test_packing.c — packing is invisible to the loss: every target token of a row has
 * the same loss whether the row is packed with others or alone (SPEC section 3), because
 * packed rows attend only to themselves and their RoPE positions restart at 0. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "data/data.h"
#include "tests/test_train_util.h"
#include "tests/test_util.h"
#include "trainer/model/model.h"

#define MAX_TOKENS 4096

/* Per-token losses, in stream order, of every target of the dataset. */
static int token_losses(const Model *m, const Lora *lora, const char *rows, bool packing, int batch,
                        int seq_len, double *out) {
    const char *paths[1] = {rows};
    DataOptions o = {.paths = paths,
                     .n_paths = 1,
                     .input_field = "input_ids",
                     .labels_field = "labels",
                     .seq_len = seq_len,
                     .batch_size = batch,
                     .packing = packing,
                     .overflow = DATA_OVERFLOW_TRUNCATE,
                     .shuffle = false,
                     .on_error = DATA_ON_ERROR_FAIL,
                     .vocab_size = model_config(m)->vocab_size,
                     .seed = 1,
                     .epochs = 1};
    char err[1024];
    DataReader *r = data_open(&o, err, sizeof err);
    ck_assert_msg(r != NULL, "%s", err);
    Graph *g = graph_create();
    int n = 0, V = model_config(m)->vocab_size;
    Batch b;
    int rc;
    while ((rc = data_next_batch(r, &b, err, sizeof err)) == 1) {
        graph_reset(g);
        Tensor *logits = model_forward_eval(m, lora, g, b.input_ids, b.positions, b.segments,
                                            b.batch, b.seq_len);
        ck_assert(logits != NULL);
        for (int i = 0; i < b.batch * b.seq_len; i++) {
            int32_t y = b.targets[i];
            if (y == TENSOR_IGNORE_INDEX) continue;
            const float *z = logits->data + (size_t)i * (size_t)V;
            double mx = z[0], sum = 0;
            for (int v = 1; v < V; v++) mx = z[v] > mx ? z[v] : mx;
            for (int v = 0; v < V; v++) sum += exp((double)z[v] - mx);
            ck_assert_int_lt(n, MAX_TOKENS);
            out[n++] = mx + log(sum) - z[y];
        }
    }
    ck_assert_msg(rc == 0, "%s", err);
    graph_destroy(g);
    data_close(r);
    return n;
}

/* Every target token's loss, packed two sequences of seq_len at a time and unpacked, on
 * model_dir, for 30 random rows of min_len..max_len tokens. */
static void check_packing_rows(const char *model_dir, int seq_len, int min_len, int max_len) {
    char err[1024];
    Model *m = model_load(model_dir, err, sizeof err);
    ck_assert_msg(m != NULL, "%s", err);
    /* A LoRA adapter with non-zero B on every module, so the adapter path is exercised. */
    LoraSpec spec = {.r = 4, .alpha = 8, .targets = LORA_ALL};
    Lora *lora = lora_create(m, &spec, err, sizeof err);
    ck_assert_msg(lora != NULL, "%s", err);
    size_t n;
    float *p = lora_params(lora, &n);
    uint64_t s = 9;
    for (size_t i = 0; i < n; i++) p[i] = test_rand_uniform(&s, -0.2f, 0.2f);

    char *dir = test_tmpdir();
    char rows[4200];
    snprintf(rows, sizeof rows, "%s/rows.jsonl", dir);
    tt_random_rows(rows, 30, min_len, max_len, 97, 3);
    static double packed[MAX_TOKENS], unpacked[MAX_TOKENS];
    int np = token_losses(m, lora, rows, true, 2, seq_len, packed);
    int nu = token_losses(m, lora, rows, false, 3, seq_len, unpacked);
    ck_assert_int_eq(np, nu);
    ck_assert_int_gt(np, 200);
    for (int i = 0; i < np; i++)
        ck_assert_msg(fabs(packed[i] - unpacked[i]) <= 1e-4 * (1 + fabs(unpacked[i])),
                      "token %d: packed %.9g, unpacked %.9g", i, packed[i], unpacked[i]);
    test_rmtree(dir);
    free(dir);
    lora_free(lora);
    model_free(m);
}

static void check_packing(const char *model_dir) {
    check_packing_rows(model_dir, 48, 2, 20);
}

START_TEST(test_packing_matches_unpacked_loss_per_token) {
    check_packing("tests/data/train/qwen2-untied/model");
    check_packing("tests/data/train/qwen3-untied/model");   /* q/k norms per head and token */
    check_packing("tests/data/train/smollm3-nope/model");   /* a layer without RoPE */
    check_packing("tests/data/train/olmo2-untied/model");   /* q/k norms over the projection */
    check_packing("tests/data/train/granite-untied/model"); /* the multipliers */
    /* Qwen3.5: rows of 30..70 tokens, about three to a sequence of 160 (three delta-rule
     * chunks): the DeltaNet state and conv window restart with each packed row, rows cross
     * chunk boundaries, and a row alone is padded to 160 */
    check_packing_rows("tests/data/train/qwen35-text/model", 160, 30, 70);
}
END_TEST

Suite *packing_suite(void) {
    Suite *s = suite_create("packing");
    TCase *tc = tcase_create("loss");
    tcase_add_test(tc, test_packing_matches_unpacked_loss_per_token);
    suite_add_tcase(s, tc);
    return s;
}
