/* tests/test_tensor_bf16.c — frozen BF16 weights: every op that accepts one gives results
 * bit-identical to an F32 weight holding the same (BF16-rounded) values, forward and backward. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "tensor/tensor.h"
#include "tests/test_util.h"

/* A frozen weight (rows, cols) in both forms: bits (BF16) and f32 (their exact floats). */
typedef struct {
    uint16_t *bits;
    Tensor f32, bf16;
} BothWeights;

static void both_init(BothWeights *w, int64_t rows, int64_t cols, uint64_t seed) {
    int64_t n = rows * cols, shape[2] = {rows, cols};
    w->bits = malloc((size_t)n * sizeof *w->bits);
    float *f = malloc((size_t)n * sizeof *f);
    ck_assert(w->bits && f);
    for (int64_t i = 0; i < n; i++)
        w->bits[i] = tensor_float_to_bf16(test_rand_uniform(&seed, -1, 1));
    tensor_bf16_to_float(f, w->bits, n);
    tensor_init(&w->f32, f, 2, shape);
    tensor_init_bf16(&w->bf16, w->bits, 2, shape);
    ck_assert(w->bf16.data == NULL && w->bf16.size == n);
}

static void both_free(BothWeights *w) {
    free(w->bits);
    free(w->f32.data);
}

static Tensor *random_tensor(int64_t rows, int64_t cols, bool grad, uint64_t seed) {
    Tensor *t = tensor_new(2, (int64_t[]){rows, cols}, grad);
    ck_assert(t);
    for (int64_t i = 0; i < t->size; i++) t->data[i] = test_rand_uniform(&seed, -1, 1);
    return t;
}

static void assert_bits_equal(const float *a, const float *b, int64_t n, const char *what) {
    ck_assert_msg(memcmp(a, b, (size_t)n * sizeof(float)) == 0, "%s differs bitwise", what);
}

/* What one run of a linear layer produces: y and the gradients of x, A and B. */
typedef struct {
    float *y, *dx, *dA, *dB;
} LinearRun;

static void run_free(LinearRun *r) {
    free(r->y);
    free(r->dx);
    free(r->dA);
    free(r->dB);
}

static float *copy_floats(const float *p, int64_t n) {
    float *c = malloc((size_t)n * sizeof *c);
    ck_assert(c && p);
    memcpy(c, p, (size_t)n * sizeof *c);
    return c;
}

/* y = linear or LoRA-linear of fresh copies of the inputs (all seeded the same way), then
 * backward of sum(y * dy_weights). lora false: op_linear. */
static LinearRun run_linear(const Tensor *w, const Tensor *b, int64_t n, bool lora, float dropout) {
    int64_t out = w->shape[0], in = w->shape[1], r = 4;
    Graph *g = graph_create();
    ck_assert(g);
    Tensor *x = random_tensor(n, in, true, 11);
    Tensor *A = random_tensor(r, in, true, 12);
    Tensor *B = random_tensor(out, r, true, 13);
    Tensor *dy = random_tensor(n, out, false, 14);
    LinearRun run = {0};
    /* Two steps on one graph: the second reuses the grown scratch buffers. */
    for (int step = 0; step < 2; step++) {
        graph_reset(g);
        memset(x->grad, 0, (size_t)x->size * sizeof(float));
        memset(A->grad, 0, (size_t)A->size * sizeof(float));
        memset(B->grad, 0, (size_t)B->size * sizeof(float));
        Tensor *y =
            lora ? op_lora_linear(g, x, w, b, A, B, 0.5f, dropout, 77) : op_linear(g, x, w, b);
        Tensor *s = op_weighted_sum(g, y, dy);
        ck_assert(s && !graph_failed(g));
        ck_assert_int_eq(graph_backward(g, s, 1.0f), 0);
        if (step == 1) {
            run.y = copy_floats(y->data, y->size);
            run.dx = copy_floats(x->grad, x->size);
            run.dA = copy_floats(A->grad, A->size);
            run.dB = copy_floats(B->grad, B->size);
        }
    }
    tensor_free(x);
    tensor_free(A);
    tensor_free(B);
    tensor_free(dy);
    graph_destroy(g);
    return run;
}

static void check_linear(int64_t n, int64_t out, int64_t in, bool bias, bool lora, float dropout) {
    BothWeights w;
    both_init(&w, out, in, 5);
    Tensor *b = bias ? random_tensor(1, out, false, 6) : NULL;
    if (b) b->ndim = 1, b->shape[0] = out;
    LinearRun f = run_linear(&w.f32, b, n, lora, dropout);
    LinearRun h = run_linear(&w.bf16, b, n, lora, dropout);
    assert_bits_equal(f.y, h.y, n * out, "y");
    assert_bits_equal(f.dx, h.dx, n * in, "dx");
    if (lora) {
        assert_bits_equal(f.dA, h.dA, 4 * in, "dA");
        assert_bits_equal(f.dB, h.dB, out * 4, "dB");
    }
    /* The comparison is not vacuous: the backward reached x. */
    double norm = 0;
    for (int64_t i = 0; i < n * in; i++) norm += fabs(f.dx[i]);
    ck_assert(norm > 0);
    run_free(&f);
    run_free(&h);
    tensor_free(b);
    both_free(&w);
}

START_TEST(test_linear_bf16_weight_bit_identical_forward_backward) {
    check_linear(5, 7, 3, false, false, 0.0f);
    check_linear(37, 300, 96, true, false, 0.0f); /* W above the parallel conversion chunk */
    check_linear(64, 192, 576, false, false, 0.0f);
}
END_TEST

START_TEST(test_lora_linear_bf16_weight_bit_identical_forward_backward) {
    check_linear(9, 24, 16, true, true, 0.0f);
    check_linear(33, 300, 96, true, true, 0.1f); /* dropout uses the other scratch buffer */
    check_linear(64, 576, 192, false, true, 0.0f);
}
END_TEST

START_TEST(test_embedding_bf16_table_bit_identical) {
    BothWeights w;
    both_init(&w, 97, 40, 21);
    int32_t ids[6] = {0, 96, 5, 5, 50, 1};
    Graph *g = graph_create();
    Tensor *a = op_embedding(g, &w.f32, ids, 6);
    Tensor *b = op_embedding(g, &w.bf16, ids, 6);
    ck_assert(a && b && !graph_failed(g));
    assert_bits_equal(a->data, b->data, a->size, "embedding rows");
    int32_t bad[1] = {97};
    ck_assert(op_embedding(g, &w.bf16, bad, 1) == NULL && graph_failed(g));
    graph_destroy(g);
    both_free(&w);
}
END_TEST

START_TEST(test_bf16_rounding_is_nearest_even) {
    /* 1 + 2^-8 is halfway between 1 and 1 + 2^-7: ties go to the even mantissa (1). */
    ck_assert_uint_eq(tensor_float_to_bf16(1.0f + 0x1p-8f), 0x3f80);
    /* 1 + 3 * 2^-8 is halfway between 1 + 2^-7 (odd) and 1 + 2^-6: up to even. */
    ck_assert_uint_eq(tensor_float_to_bf16(1.0f + 3 * 0x1p-8f), 0x3f82);
    ck_assert_uint_eq(tensor_float_to_bf16(1.0f + 0x1p-8f + 0x1p-20f), 0x3f81);
    ck_assert_uint_eq(tensor_float_to_bf16(-2.0f), 0xc000);
    ck_assert_uint_eq(tensor_float_to_bf16(INFINITY), 0x7f80);
    uint16_t nan = tensor_float_to_bf16(NAN);
    ck_assert((nan & 0x7f80) == 0x7f80 && (nan & 0x7f) != 0);
    float back;
    tensor_bf16_to_float(&back, (uint16_t[]){0x3f81}, 1);
    ck_assert(back == 1.0f + 0x1p-7f);
}
END_TEST

START_TEST(test_bf16_weight_refused_where_f32_is_needed) {
    uint16_t bits[8] = {0x3f80, 0x3f80, 0x3f80, 0x3f80, 0x3f80, 0x3f80, 0x3f80, 0x3f80};
    Tensor norm;
    tensor_init_bf16(&norm, bits, 1, (int64_t[]){8});
    Tensor *x = random_tensor(2, 8, false, 3);
    Graph *g = graph_create();
    ck_assert(op_rmsnorm(g, x, &norm, 1e-6f) == NULL && graph_failed(g));
    graph_reset(g);
    ck_assert(op_weighted_sum(g, x, &(Tensor){.ndim = 2, .shape = {2, 8}, .size = 16}) == NULL);
    ck_assert(graph_failed(g));
    graph_reset(g);
    /* A weight with neither data nor bits is refused, not dereferenced. */
    Tensor empty;
    tensor_init(&empty, NULL, 2, (int64_t[]){4, 8});
    ck_assert(op_linear(g, x, &empty, NULL) == NULL && graph_failed(g));
    graph_destroy(g);
    tensor_free(x);
}
END_TEST

Suite *tensor_bf16_suite(void) {
    Suite *s = suite_create("tensor_bf16");
    TCase *tc = tcase_create("bf16");
    tcase_add_test(tc, test_linear_bf16_weight_bit_identical_forward_backward);
    tcase_add_test(tc, test_lora_linear_bf16_weight_bit_identical_forward_backward);
    tcase_add_test(tc, test_embedding_bf16_table_bit_identical);
    tcase_add_test(tc, test_bf16_rounding_is_nearest_even);
    tcase_add_test(tc, test_bf16_weight_refused_where_f32_is_needed);
    suite_add_tcase(s, tc);
    return s;
}
