/* tests/test_tensor_attention.c — causal attention across several query blocks.
 *
 * op_attention processes query rows in blocks (64 rows) and skips the keys above each
 * block's diagonal. The finite-difference suite (test_tensor_grad.c) uses T = 5, a single
 * block; here T spans three blocks, the last one partial, with GQA and packed segments that
 * cross block boundaries. The forward is compared with a double-precision reference, and
 * each gradient with a central finite difference of that reference along a random direction
 * confined to one block of rows at a time (so an error in any block shows). */
#include "tensor/tensor.h"
#include "tests/test_tensor_ref.h"
#include "tests/test_util.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

enum { B = 2, T = 150, NH = 4, NKV = 2, D = 8, BLOCK = 64 };

/* out (B*T, NH*D) from q (B*T, NH*D), k v (B*T, NKV*D), all double; seg (B*T) or NULL. */
static void ref_attention(const double *q, const double *k, const double *v, const int32_t *seg,
                          double *out) {
    ref_attention_f64(q, k, v, seg, B, T, NH, NKV, D, out);
}

static double ref_loss(double *const *x, const int32_t *seg, const double *G, double *out) {
    ref_attention(x[0], x[1], x[2], seg, out);
    double l = 0.0;
    for (int64_t i = 0; i < (int64_t)B * T * NH * D; i++) l += out[i] * G[i];
    return l;
}

static void check_blocks(const int32_t *seg) {
    uint64_t rng = 777;
    const int64_t cols[3] = {NH * D, NKV * D, NKV * D}, n_out = (int64_t)B * T * NH * D;
    Tensor *in[3];
    double *x[3], *u[3];
    for (int i = 0; i < 3; i++) {
        in[i] = tensor_new(2, (int64_t[]){B * T, cols[i]}, true);
        ck_assert_ptr_nonnull(in[i]);
        x[i] = malloc((size_t)in[i]->size * sizeof(double));
        u[i] = malloc((size_t)in[i]->size * sizeof(double));
        for (int64_t j = 0; j < in[i]->size; j++)
            x[i][j] = in[i]->data[j] = test_rand_uniform(&rng, -1.5f, 1.5f);
    }
    Tensor *Gt = tensor_new(1, (int64_t[]){n_out}, false);
    double *G = malloc((size_t)n_out * sizeof(double)),
           *out = malloc((size_t)n_out * sizeof(double));
    for (int64_t j = 0; j < n_out; j++) G[j] = Gt->data[j] = test_rand_uniform(&rng, -1.0f, 1.0f);

    Graph *g = graph_create();
    Tensor *y = op_attention(g, in[0], in[1], in[2], B, T, NH, NKV, D, seg);
    ck_assert_ptr_nonnull(y);
    ck_assert_int_eq(graph_backward(g, op_weighted_sum(g, y, Gt), 1.0f), 0);
    ref_attention(x[0], x[1], x[2], seg, out);
    double err = 0, norm = 0;
    for (int64_t j = 0; j < n_out; j++) {
        err = fmax(err, fabs(y->data[j] - out[j]));
        norm = fmax(norm, fabs(out[j]));
    }
    ck_assert_msg(err <= 1e-5 * norm, "forward max error %g (max |y| %g)", err, norm);

    const double h = 1e-4;
    for (int i = 0; i < 3; i++)
        for (int t0 = 0; t0 < T; t0 += BLOCK) {
            int t1 = t0 + BLOCK < T ? t0 + BLOCK : T;
            double analytic = 0.0;
            for (int64_t r = 0; r < B * T; r++)
                for (int64_t c = 0; c < cols[i]; c++) {
                    int64_t j = r * cols[i] + c;
                    int t = (int)(r % T);
                    u[i][j] = t >= t0 && t < t1 ? test_rand_uniform(&rng, -1.0f, 1.0f) : 0.0;
                    analytic += in[i]->grad[j] * u[i][j];
                }
            for (int64_t j = 0; j < in[i]->size; j++) x[i][j] += h * u[i][j];
            double lp = ref_loss(x, seg, G, out);
            for (int64_t j = 0; j < in[i]->size; j++) x[i][j] -= 2 * h * u[i][j];
            double lm = ref_loss(x, seg, G, out);
            for (int64_t j = 0; j < in[i]->size; j++) x[i][j] += h * u[i][j];
            double numeric = (lp - lm) / (2 * h);
            ck_assert_msg(fabs(analytic - numeric) <= 1e-3 * fabs(numeric) + 1e-4,
                          "input %d rows [%d, %d): analytic %.8g vs numeric %.8g", i, t0, t1,
                          analytic, numeric);
        }
    graph_destroy(g);
    tensor_free(Gt);
    free(G);
    free(out);
    for (int i = 0; i < 3; i++) {
        tensor_free(in[i]);
        free(x[i]);
        free(u[i]);
    }
}

START_TEST(test_attention_matches_reference_across_causal_blocks) {
    check_blocks(NULL);
}
END_TEST

START_TEST(test_attention_segments_crossing_causal_blocks_match_reference) {
    int32_t seg[B * T];
    /* row 0: documents [0, 50), [50, 100), [100, 150); row 1: [0, 70), [70, 150) */
    for (int t = 0; t < T; t++) {
        seg[t] = t / 50;
        seg[T + t] = t < 70 ? 10 : 11;
    }
    check_blocks(seg);
}
END_TEST

Suite *tensor_attention_suite(void) {
    Suite *s = suite_create("tensor_attention");
    TCase *tc = tcase_create("blocks");
    tcase_add_test(tc, test_attention_matches_reference_across_causal_blocks);
    tcase_add_test(tc, test_attention_segments_crossing_causal_blocks_match_reference);
    suite_add_tcase(s, tc);
    return s;
}
