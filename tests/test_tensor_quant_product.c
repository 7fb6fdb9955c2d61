/* tests/test_tensor_quant_product.c — op_linear and op_lora_linear with a quantized frozen
 * weight (tensor/quant_product.c): against the same op on the dequantized weight, bit for
 * bit across thread counts, in both precisions, and without a whole dequantized matrix;
 * op_embedding and op_lm_head_cross_entropy on a quantized table.
 * (The finite-difference gradient checks are in test_tensor_grad.c.) */
#include <check.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "tensor/tensor.h"
#include "test_util.h"

typedef struct {
    uint8_t *blocks;
    Tensor q;  /* the quantized weight (OUT, IN) */
    Tensor *f; /* the same weight dequantized, F32 */
} QuantWeight;

static QuantWeight quant_weight(GgmlType type, int64_t out, int64_t in, uint64_t seed) {
    QuantWeight w;
    size_t row = ggml_row_bytes(type, in);
    ck_assert(row > 0);
    w.blocks = malloc(row * (size_t)out);
    w.f = tensor_new(2, (int64_t[]){out, in}, false);
    ck_assert(w.blocks && w.f);
    for (int64_t i = 0; i < out * in; i++) w.f->data[i] = test_rand_uniform(&seed, -0.1f, 0.1f);
    for (int64_t i = 7; i < out * in; i += 1001) w.f->data[i] *= 20.0f; /* outliers */
    for (int64_t r = 0; r < out; r++) {
        ck_assert_int_eq(quant_quantize_row(type, w.f->data + r * in, w.blocks + r * row, in), 0);
        ck_assert_int_eq(quant_dequantize_row(type, w.blocks + r * row, w.f->data + r * in, in), 0);
    }
    ck_assert_int_eq(tensor_init_quant(&w.q, w.blocks, type, out, in), 0);
    return w;
}

static void quant_weight_free(QuantWeight *w) {
    free(w->blocks);
    tensor_free(w->f);
}

static Tensor *rand_input(int64_t n, int64_t c, uint64_t seed, bool grad) {
    Tensor *t = tensor_new(2, (int64_t[]){n, c}, grad);
    ck_assert(t);
    for (int64_t i = 0; i < t->size; i++) t->data[i] = test_rand_uniform(&seed, -1.0f, 1.0f);
    return t;
}

/* y = x W^T and dx = dy W (dy = G, through op_weighted_sum) with weight w. */
typedef struct {
    float *y, *dx;
    int64_t ny, nx;
} Run;

static Run run_linear(const Tensor *w, const Tensor *x0, const Tensor *G, bool bf16) {
    Graph *g = graph_create();
    ck_assert(g);
    if (bf16) ck_assert_int_eq(graph_set_precision(g, TENSOR_PRECISION_BF16), 0);
    Tensor *x = tensor_new(2, x0->shape, true);
    memcpy(x->data, x0->data, (size_t)x0->size * sizeof(float));
    Tensor *y = op_linear(g, x, w, NULL);
    ck_assert_msg(y != NULL, "%s", graph_error(g));
    ck_assert_int_eq(graph_backward(g, op_weighted_sum(g, y, G), 1.0f), 0);
    Run r = {malloc((size_t)y->size * 4), malloc((size_t)x->size * 4), y->size, x->size};
    memcpy(r.y, y->data, (size_t)y->size * 4);
    memcpy(r.dx, x->grad, (size_t)x->size * 4);
    graph_destroy(g);
    tensor_free(x);
    return r;
}

static void run_free(Run *r) {
    free(r->y);
    free(r->dx);
}

/* |a - b| within fp32 rounding of a sum of `terms` products of magnitude scale[i]. */
static void assert_close(const float *a, const float *b, const double *scale, int64_t n,
                         const char *what) {
    for (int64_t i = 0; i < n; i++)
        ck_assert_msg(fabs((double)a[i] - b[i]) <= 2e-6 * scale[i] + 1e-30, "%s[%lld]: %g vs %g",
                      what, (long long)i, (double)a[i], (double)b[i]);
}

/* Shapes that cut W into several tiles both ways with partial ones: OUT 1100 = 8 forward
 * tiles of 128 + 76 and 2 backward row blocks; IN 2560 = forward chunks 2048 + 512 and 10
 * backward stripes. */
enum { N = 19, OUT = 1100, IN = 2560 };

START_TEST(test_quantized_linear_matches_the_dequantized_weight) {
    const GgmlType types[] = {GGML_TYPE_Q4_K, GGML_TYPE_Q8_0, GGML_TYPE_Q6_K};
    Tensor *x = rand_input(N, IN, 3, false), *G = rand_input(N, OUT, 4, false);
    G->ndim = 1, G->shape[0] = G->size;
    double *sy = malloc(sizeof(double) * N * OUT), *sx = malloc(sizeof(double) * N * IN);
    for (int t = 0; t < 3; t++) {
        QuantWeight w = quant_weight(types[t], OUT, IN, 10 + (uint64_t)t);
        Run q = run_linear(&w.q, x, G, false), f = run_linear(w.f, x, G, false);
        /* the scale of each output: sum of |terms| */
        for (int64_t i = 0; i < N; i++) {
            for (int64_t o = 0; o < OUT; o++) {
                double s = 0;
                for (int64_t j = 0; j < IN; j++)
                    s += fabs(x->data[i * IN + j] * w.f->data[o * IN + j]);
                sy[i * OUT + o] = s;
            }
            for (int64_t j = 0; j < IN; j++) {
                double s = 0;
                for (int64_t o = 0; o < OUT; o++)
                    s += fabs(G->data[i * OUT + o] * w.f->data[o * IN + j]);
                sx[i * IN + j] = s;
            }
        }
        assert_close(q.y, f.y, sy, N * OUT, ggml_type_name(types[t]));
        assert_close(q.dx, f.dx, sx, N * IN, ggml_type_name(types[t]));
        run_free(&q), run_free(&f);
        quant_weight_free(&w);
    }
    free(sy), free(sx);
    tensor_free(x), tensor_free(G);
}
END_TEST

START_TEST(test_quantized_products_are_bit_identical_for_any_thread_count) {
    QuantWeight w = quant_weight(GGML_TYPE_Q5_K, OUT, IN, 21);
    Tensor *x = rand_input(N, IN, 5, false), *G = rand_input(N, OUT, 6, false);
    G->ndim = 1, G->shape[0] = G->size;
    int keep = tensor_threads();
    for (int bf16 = 0; bf16 < 2; bf16++) {
        tensor_set_threads(1);
        Run one = run_linear(&w.q, x, G, bf16);
        for (int threads = 2; threads <= 3; threads++) {
            tensor_set_threads(threads);
            Run more = run_linear(&w.q, x, G, bf16);
            ck_assert_msg(memcmp(one.y, more.y, (size_t)one.ny * 4) == 0, "y, %d threads, bf16 %d",
                          threads, bf16);
            ck_assert_msg(memcmp(one.dx, more.dx, (size_t)one.nx * 4) == 0,
                          "dx, %d threads, bf16 %d", threads, bf16);
            run_free(&more);
        }
        run_free(&one);
    }
    tensor_set_threads(keep);
    quant_weight_free(&w);
    tensor_free(x), tensor_free(G);
}
END_TEST

/* In BF16 precision the product takes x and the dequantized W rounded to bf16 (natively
 * where the CPU has bf16, else emulated): against a double product of the rounded values. */
START_TEST(test_quantized_products_in_bf16_take_the_rounded_dequantized_weight) {
    QuantWeight w = quant_weight(GGML_TYPE_Q4_0, 300, 512, 31);
    enum { n = 23 };
    Tensor *x = rand_input(n, 512, 7, false), *G = rand_input(n, 300, 8, false);
    G->ndim = 1, G->shape[0] = G->size;
    for (int emulated = 0; emulated < 2; emulated++) {
        if (emulated) setenv("LORAFIT_CPU_BF16", "0", 1);
        Run r = run_linear(&w.q, x, G, true);
        for (int64_t i = 0; i < n; i++)
            for (int64_t o = 0; o < 300; o++) {
                double want = 0, scale = 0;
                for (int64_t j = 0; j < 512; j++) {
                    uint32_t ua = (uint32_t)tensor_float_to_bf16(x->data[i * 512 + j]) << 16,
                             ub = (uint32_t)tensor_float_to_bf16(w.f->data[o * 512 + j]) << 16;
                    float fa, fb;
                    memcpy(&fa, &ua, 4), memcpy(&fb, &ub, 4);
                    want += (double)fa * fb;
                    scale += fabs((double)fa * fb);
                }
                ck_assert_msg(fabs(r.y[i * 300 + o] - want) <= 2e-6 * scale + 1e-30,
                              "y[%lld, %lld] %g vs %g, emulated %d", (long long)i, (long long)o,
                              (double)r.y[i * 300 + o], want, emulated);
            }
        run_free(&r);
    }
    unsetenv("LORAFIT_CPU_BF16");
    quant_weight_free(&w);
    tensor_free(x), tensor_free(G);
}
END_TEST

/* The scratch is a few tiles per thread, kept across steps: a second step allocates
 * nothing, and the graph never holds the 42 MB a dequantized W would take. */
START_TEST(test_quantized_product_scratch_is_tiles_kept_across_steps) {
    QuantWeight w = quant_weight(GGML_TYPE_Q8_0, 4096, 2560, 41);
    Tensor *x = rand_input(N, 2560, 9, true);
    Graph *g = graph_create();
    size_t bytes[2];
    for (int step = 0; step < 2; step++) {
        graph_reset(g);
        Tensor *y = op_linear(g, x, &w.q, NULL);
        ck_assert(y);
        ck_assert_int_eq(graph_backward(g, y, 1.0f), 0);
        bytes[step] = graph_arena_bytes(g);
    }
    ck_assert_uint_eq(bytes[1], bytes[0]);
    ck_assert_msg(bytes[0] < (size_t)4096 * 2560 * sizeof(float), "graph holds %zu bytes",
                  bytes[0]);
    graph_destroy(g);
    quant_weight_free(&w);
    tensor_free(x);
}
END_TEST

/* op_embedding and op_lm_head_cross_entropy (forward and dx) on a quantized weight give the
 * bits of the same ops on the F32 weight holding its dequantized values, in both precisions
 * (the lm_head in several vocabulary blocks: V 4100 > its block of 4096). */
START_TEST(test_embedding_and_lm_head_on_a_quantized_weight_equal_the_dequantized_one) {
    enum { V = 4100, C = 256, n = 7 };
    QuantWeight w = quant_weight(GGML_TYPE_Q6_K, V, C, 51);
    int32_t ids[n] = {0, 4099, 17, 17, 2048, 4096, 3}, targets[n] = {5, -100, 4099, 0, 1, 2, 3};
    for (int bf16 = 0; bf16 < 2; bf16++) {
        float *got[2][3];
        for (int q = 0; q < 2; q++) {
            Graph *g = graph_create();
            if (bf16) ck_assert_int_eq(graph_set_precision(g, TENSOR_PRECISION_BF16), 0);
            const Tensor *wt = q ? &w.q : w.f;
            Tensor *e = op_embedding(g, wt, ids, n);
            ck_assert_msg(e, "%s", graph_error(g));
            Tensor *x = rand_input(n, C, 77, true);
            int64_t counted;
            Tensor *loss = op_lm_head_cross_entropy(g, x, wt, targets, &counted);
            ck_assert_msg(loss, "%s", graph_error(g));
            ck_assert_int_eq(counted, n - 1);
            ck_assert_int_eq(graph_backward(g, loss, 1.0f), 0);
            got[q][0] = malloc((size_t)e->size * 4), got[q][1] = malloc(4),
            got[q][2] = malloc((size_t)x->size * 4);
            memcpy(got[q][0], e->data, (size_t)e->size * 4);
            memcpy(got[q][1], loss->data, 4);
            memcpy(got[q][2], x->grad, (size_t)x->size * 4);
            graph_destroy(g);
            tensor_free(x);
        }
        ck_assert_msg(memcmp(got[0][0], got[1][0], (size_t)n * C * 4) == 0, "embedding, bf16 %d",
                      bf16);
        ck_assert_msg(memcmp(got[0][1], got[1][1], 4) == 0, "loss, bf16 %d", bf16);
        ck_assert_msg(memcmp(got[0][2], got[1][2], (size_t)n * C * 4) == 0, "dx, bf16 %d", bf16);
        for (int q = 0; q < 2; q++)
            for (int k = 0; k < 3; k++) free(got[q][k]);
    }
    Tensor bad;
    ck_assert_int_eq(tensor_init_quant(&bad, w.blocks, GGML_TYPE_Q4_K, 8, 64), -1); /* < 256 */
    ck_assert_int_eq(tensor_init_quant(&bad, w.blocks, (GgmlType)39, 8, 64), -1);
    quant_weight_free(&w);
}
END_TEST

Suite *tensor_quant_product_suite(void) {
    Suite *s = suite_create("tensor_quant_product");
    TCase *tc = tcase_create("quant_product");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_quantized_linear_matches_the_dequantized_weight);
    tcase_add_test(tc, test_quantized_products_are_bit_identical_for_any_thread_count);
    tcase_add_test(tc, test_quantized_products_in_bf16_take_the_rounded_dequantized_weight);
    tcase_add_test(tc, test_quantized_product_scratch_is_tiles_kept_across_steps);
    tcase_add_test(tc, test_embedding_and_lm_head_on_a_quantized_weight_equal_the_dequantized_one);
    suite_add_tcase(s, tc);
    return s;
}
