/* tests/test_tensor_profile.c — tensor_profile_begin/_end: every product's FLOPs counted,
 * once, for the op that ran it (forward and backward alike); time lands in the classes of the
 * ops that ran and nowhere else; nothing is counted outside begin/end. */
#include "tensor/tensor.h"
#include "tests/test_util.h"

enum { N = 64, IN = 32, OUT = 48 };

/* x (N, IN) -> rmsnorm -> linear to OUT -> weighted sum, then backward. */
static void run_step(Graph *g, Tensor *x, Tensor *norm_w, Tensor *w, Tensor *sum_w) {
    graph_reset(g);
    Tensor *h = op_rmsnorm(g, x, norm_w, 1e-5f);
    Tensor *y = op_linear(g, h, w, NULL);
    Tensor *l = op_weighted_sum(g, y, sum_w);
    ck_assert_ptr_nonnull(l);
    ck_assert_int_eq(graph_backward(g, l, 1.0f), 0);
}

static Tensor *filled(int64_t rows, int64_t cols, bool grad, uint64_t seed) {
    Tensor *t = tensor_new(cols ? 2 : 1, (int64_t[]){rows, cols}, grad);
    ck_assert_ptr_nonnull(t);
    for (int64_t i = 0; i < t->size; i++) t->data[i] = test_rand_uniform(&seed, -1, 1);
    return t;
}

START_TEST(test_profile_counts_each_product_for_its_op_and_times_only_the_ops_that_ran) {
    Graph *g = graph_create();
    Tensor *x = filled(N, IN, true, 1), *norm_w = filled(IN, 0, false, 2);
    Tensor *w = filled(OUT, IN, false, 3), *sum_w = filled(N * OUT, 0, false, 4);
    run_step(g, x, norm_w, w, sum_w); /* outside begin/end: not counted */

    TensorProfile p;
    tensor_profile_begin();
    run_step(g, x, norm_w, w, sum_w);
    run_step(g, x, norm_w, w, sum_w);
    tensor_profile_end(&p);
    run_step(g, x, norm_w, w, sum_w); /* after end: not counted either */

    /* per step: y = h W^T and dh = dy W, 2 N OUT IN each */
    double want = 2 * 2 * (2.0 * N * OUT * IN);
    ck_assert_double_eq(p.product_flops, want);
    ck_assert_double_eq(p.product_flops_in[TENSOR_OP_LINEAR], want);
    ck_assert(p.product_seconds_in[TENSOR_OP_LINEAR] > 0);
    for (int c = 0; c < TENSOR_OP_CLASSES; c++) {
        ck_assert_msg(p.seconds[c] >= 0, "%s: %g s", tensor_op_class_name(c), p.seconds[c]);
        if (c != TENSOR_OP_LINEAR) ck_assert_double_eq(p.product_flops_in[c], 0);
    }
    ck_assert(p.seconds[TENSOR_OP_PRODUCTS] > 0 && p.seconds[TENSOR_OP_NORM] > 0);
    ck_assert(p.seconds[TENSOR_OP_LOSS] > 0); /* op_weighted_sum */
    const TensorOpClass idle[] = {TENSOR_OP_EMBEDDING,  TENSOR_OP_ROPE,     TENSOR_OP_ATTENTION,
                                  TENSOR_OP_SWIGLU,     TENSOR_OP_RESIDUAL, TENSOR_OP_DROPOUT,
                                  TENSOR_OP_CONVERSION, TENSOR_OP_DELTANET};
    for (size_t i = 0; i < sizeof idle / sizeof idle[0]; i++)
        ck_assert_msg(p.seconds[idle[i]] == 0, "%s ran no op but has %g s",
                      tensor_op_class_name(idle[i]), p.seconds[idle[i]]);

    tensor_profile_begin(); /* a second profile starts from zero */
    tensor_profile_end(&p);
    ck_assert_double_eq(p.product_flops, 0);
    ck_assert_double_eq(p.seconds[TENSOR_OP_NORM], 0);
    tensor_free(x), tensor_free(norm_w), tensor_free(w), tensor_free(sum_w);
    graph_destroy(g);
}
END_TEST

/* The DeltaNet's ops count as their own class (the bench's DeltaNet figures): the gated delta
 * rule's chunk products (forward and backward, inside its OpenMP tasks) as products owned by
 * the DeltaNet class, the rest of it and the L2 norms as DeltaNet time, nothing as attention. */
START_TEST(test_profile_counts_the_deltanet_ops_in_their_own_class) {
    enum { T = 80, NK = 2, DK = 8 }; /* two chunks: 64 + 16 */
    Graph *g = graph_create();
    Tensor *q = filled(T, NK * DK, true, 5), *k = filled(T, NK * DK, true, 6);
    Tensor *v = filled(T, NK * DK, true, 7), *gate = filled(T, NK, false, 8);
    Tensor *beta = filled(T, NK, false, 9), *sum_w = filled(T * NK * DK, 0, false, 10);
    for (int64_t i = 0; i < gate->size; i++) gate->data[i] = -0.5f + 0.4f * gate->data[i];
    for (int64_t i = 0; i < beta->size; i++) beta->data[i] = 0.5f + 0.4f * beta->data[i];
    DeltaRuleSpec spec = {1, T, NK, NK, DK, DK, NULL, NULL};
    TensorProfile p;
    tensor_profile_begin();
    Tensor *qn = op_head_l2norm(g, q, NK, 1e-6f, 0.35f), *kn = op_head_l2norm(g, k, NK, 1e-6f, 1);
    Tensor *o = op_gated_delta_rule(g, qn, kn, v, gate, beta, &spec);
    Tensor *l = op_weighted_sum(g, o, sum_w);
    ck_assert_ptr_nonnull(l);
    ck_assert_int_eq(graph_backward(g, l, 1.0f), 0);
    tensor_profile_end(&p);
    ck_assert(p.product_flops > 0);
    ck_assert_double_eq(p.product_flops_in[TENSOR_OP_DELTANET], p.product_flops);
    ck_assert(p.product_seconds_in[TENSOR_OP_DELTANET] > 0);
    ck_assert(p.seconds[TENSOR_OP_DELTANET] > 0 && p.seconds[TENSOR_OP_PRODUCTS] > 0);
    ck_assert_double_eq(p.seconds[TENSOR_OP_ATTENTION], 0);
    ck_assert_double_eq(p.seconds[TENSOR_OP_NORM], 0);
    ck_assert_double_eq(p.seconds[TENSOR_OP_SWIGLU], 0);
    Tensor *all[] = {q, k, v, gate, beta, sum_w};
    for (int i = 0; i < 6; i++) tensor_free(all[i]);
    graph_destroy(g);
}
END_TEST

Suite *tensor_profile_suite(void) {
    Suite *s = suite_create("tensor_profile");
    TCase *tc = tcase_create("profile");
    tcase_add_test(tc, test_profile_counts_each_product_for_its_op_and_times_only_the_ops_that_ran);
    tcase_add_test(tc, test_profile_counts_the_deltanet_ops_in_their_own_class);
    suite_add_tcase(s, tc);
    return s;
}
