/* tests/test_model_llama3.c — llama3 rope_scaling end to end: logits of a small random Llama
 * whose config.json has a llama3 rope_scaling block (original_max_position_embeddings 16,
 * sequences of 40 tokens) against the float64 reference with scaled frequencies
 * (tests/data/model/llama3, made by tools/ref_llama3_logits.py; see the README there). */
#include <check.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "tests/test_util.h"
#include "trainer/model/model.h"
#include "trainer/store/store.h"

#define FIXTURE "tests/data/model/llama3"

static float *fixture_floats(const SafeTensors *st, const char *name, int64_t numel) {
    const StTensor *t = st_find(st, name);
    ck_assert_msg(t != NULL, "expected.safetensors has no %s", name);
    ck_assert_int_eq(t->numel, numel);
    float *out = malloc((size_t)numel * sizeof *out);
    char err[256];
    ck_assert_msg(st_to_float(t, out, err, sizeof err) == 0, "%s", err);
    return out;
}

START_TEST(test_llama3_scaled_logits_match_reference) {
    char err[512];
    Model *m = model_load(FIXTURE "/model", err, sizeof err);
    ck_assert_msg(m != NULL, "%s", err);
    const ModelConfig *c = model_config(m);
    ck_assert(c->rope_scaling.llama3);
    SafeTensors *ex = st_open(FIXTURE "/expected.safetensors", err, sizeof err);
    ck_assert_msg(ex != NULL, "%s", err);
    const StTensor *ids_t = st_find(ex, "input_ids");
    ck_assert(ids_t != NULL && ids_t->dtype == ST_I32 && ids_t->ndim == 2);
    int batch = (int)ids_t->shape[0], seq = (int)ids_t->shape[1], v = c->vocab_size;
    int64_t n = (int64_t)batch * seq;
    /* Positions past original_max_position_embeddings, where the scaling matters most. */
    ck_assert_int_gt(seq, c->rope_scaling.original_max_position_embeddings);
    int32_t *ids = malloc((size_t)n * sizeof *ids);
    memcpy(ids, ids_t->data, (size_t)n * sizeof *ids);
    float *want = fixture_floats(ex, "logits", n * v);
    float *plain = fixture_floats(ex, "logits_plain", n * v);

    Graph *g = graph_create();
    Tensor *logits = model_forward_eval(m, NULL, g, ids, NULL, NULL, batch, seq);
    ck_assert(logits != NULL && logits->size == n * v);
    double diff = 0, diff_plain = 0;
    for (int64_t k = 0; k < n * v; k++) {
        diff = fmax(diff, fabs((double)logits->data[k] - want[k]));
        diff_plain = fmax(diff_plain, fabs((double)logits->data[k] - plain[k]));
    }
    ck_assert_msg(diff < 1e-4, "llama3 logits differ from the reference by %g", diff);
    /* The unscaled frequencies give clearly different logits: the fixture tests the scaling. */
    ck_assert_msg(diff_plain > 0.1, "unscaled logits differ by only %g", diff_plain);

    graph_destroy(g);
    free(want);
    free(plain);
    free(ids);
    st_close(ex);
    model_free(m);
}
END_TEST

Suite *model_llama3_suite(void) {
    Suite *s = suite_create("model_llama3");
    TCase *tc = tcase_create("reference");
    tcase_add_test(tc, test_llama3_scaled_logits_match_reference);
    suite_add_tcase(s, tc);
    return s;
}
