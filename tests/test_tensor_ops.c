/* tests/test_tensor_ops.c — each op's forward on tiny inputs whose results are worked out by
 * hand in the comments, plus the errors an op reports instead of reading out of bounds. */
#include "tensor/matmul.h"
#include "tensor/tensor.h"
#include "tensor/vexp.h"
#include "tests/test_tensor_ref.h"
#include "tests/test_util.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define TOL 1e-6

static Tensor *make(Graph *g, int ndim, const int64_t *shape, const float *values) {
    Tensor *t = graph_tensor(g, ndim, shape);
    ck_assert_ptr_nonnull(t);
    for (int64_t i = 0; i < t->size; i++) t->data[i] = values[i];
    return t;
}

static void expect(const Tensor *t, const float *want, int64_t n) {
    ck_assert_ptr_nonnull(t);
    ck_assert_int_eq(t->size, n);
    for (int64_t i = 0; i < n; i++)
        ck_assert_msg(fabs(t->data[i] - want[i]) <= TOL * (1 + fabs(want[i])),
                      "element %ld: got %.9g want %.9g", (long)i, t->data[i], want[i]);
}

START_TEST(test_embedding_copies_rows_and_rejects_bad_ids) {
    Graph *g = graph_create();
    Tensor *table = make(g, 2, (int64_t[]){3, 2}, (float[]){0, 1, 10, 11, 20, 21});
    Tensor *y = op_embedding(g, table, (int32_t[]){2, 0, 2}, 3);
    expect(y, (float[]){20, 21, 0, 1, 20, 21}, 6);
    ck_assert(!y->requires_grad);
    ck_assert(!graph_failed(g));
    ck_assert_ptr_null(op_embedding(g, table, (int32_t[]){1, 3}, 2));
    ck_assert(graph_failed(g));
    graph_destroy(g);
}
END_TEST

START_TEST(test_rmsnorm_scales_by_root_mean_square_then_weight) {
    Graph *g = graph_create();
    /* mean(x^2) = 4, r = 1/2: x r = {1, -1, 1, -1}, times w = {1, -2, 3, -4} */
    Tensor *x = make(g, 2, (int64_t[]){1, 4}, (float[]){2, -2, 2, -2});
    Tensor *w = make(g, 1, (int64_t[]){4}, (float[]){1, 2, 3, 4});
    expect(op_rmsnorm(g, x, w, 0.0f), (float[]){1, -2, 3, -4}, 4);
    graph_destroy(g);
}
END_TEST

START_TEST(test_linear_and_lora_linear_known_values) {
    Graph *g = graph_create();
    Tensor *x = make(g, 2, (int64_t[]){1, 2}, (float[]){1, 2});
    Tensor *w = make(g, 2, (int64_t[]){3, 2}, (float[]){1, 0, 0, 1, 1, 1});
    Tensor *b = make(g, 1, (int64_t[]){3}, (float[]){10, 20, 30});
    /* x W^T = {1, 2, 3}; + b */
    expect(op_linear(g, x, w, b), (float[]){11, 22, 33}, 3);
    expect(op_linear(g, x, w, NULL), (float[]){1, 2, 3}, 3);
    /* h = x A^T = 1 + 2 = 3; s h B^T = 0.5 * 3 * {1, 2, 3} = {1.5, 3, 4.5} */
    Tensor *A = make(g, 2, (int64_t[]){1, 2}, (float[]){1, 1});
    Tensor *B = make(g, 2, (int64_t[]){3, 1}, (float[]){1, 2, 3});
    expect(op_lora_linear(g, x, w, NULL, A, B, 0.5f, 0.0f, 0), (float[]){2.5f, 5, 7.5f}, 3);
    expect(op_lora_linear(g, x, w, b, A, B, 0.5f, 0.0f, 0), (float[]){12.5f, 25, 37.5f}, 3);
    ck_assert(!graph_failed(g));
    ck_assert_ptr_null(op_lora_linear(g, x, w, b, A, B, 0.5f, 1.0f, 0)); /* dropout must be < 1 */
    graph_destroy(g);
}
END_TEST

/* A gradient's first write stores where later ones add (graph_grad_for_write): x feeds two
 * linears and, through them, an add of a tensor with itself, so every op's backward meets both
 * cases. x = {1, 2}, W1 = {{1, 0}, {0, 1}, {1, 1}}, W2 = 2 W1; s = x W1^T + x W2^T = 3 x W1^T,
 * z = s + s, dz = {1, 2, 3}: ds = 2 dz = {2, 4, 6}, dx = ds W1 + ds W2 = 3 ds W1 =
 * 3 {2 + 6, 4 + 6} = {24, 30}. */
START_TEST(test_gradients_of_a_shared_input_sum_from_a_first_write) {
    Graph *g = graph_create();
    Tensor *x = make(g, 2, (int64_t[]){1, 2}, (float[]){1, 2});
    x->requires_grad = true;
    Tensor *w1 = make(g, 2, (int64_t[]){3, 2}, (float[]){1, 0, 0, 1, 1, 1});
    Tensor *w2 = make(g, 2, (int64_t[]){3, 2}, (float[]){2, 0, 0, 2, 2, 2});
    Tensor *s = op_add(g, op_linear(g, x, w1, NULL), op_linear(g, x, w2, NULL));
    Tensor *z = op_add(g, s, s);
    expect(z, (float[]){6, 12, 18}, 3);
    ck_assert_int_eq(graph_backward_from(g, z, (float[]){1, 2, 3}), 0);
    ck_assert_ptr_nonnull(s->grad);
    for (int i = 0; i < 3; i++) ck_assert_float_eq(s->grad[i], 2.0f * (float)(i + 1));
    ck_assert_float_eq(x->grad[0], 24.0f);
    ck_assert_float_eq(x->grad[1], 30.0f);
    graph_destroy(g);
}
END_TEST

START_TEST(test_rope_rotates_half_pairs_by_table_angles) {
    Graph *g = graph_create();
    /* D = 4, half = 2. Position 1: pair 0 turned by 90 degrees (cos 0, sin 1), pair 1 by
     * 180 (cos -1, sin 0). x = {1, 2, 3, 4}, pairs (x0, x2) = (1, 3) and (x1, x3) = (2, 4):
     * out0 = 1*0 - 3*1 = -3, out2 = 3*0 + 1*1 = 1, out1 = -2, out3 = -4. Position 0 keeps x. */
    const float cos_t[4] = {1, 1, 0, -1}, sin_t[4] = {0, 0, 1, 0};
    Tensor *x = make(g, 2, (int64_t[]){2, 4}, (float[]){1, 2, 3, 4, 1, 2, 3, 4});
    Tensor *y = op_rope(g, x, 1, 4, (int32_t[]){1, 0}, cos_t, sin_t, 2);
    expect(y, (float[]){-3, -2, 1, -4, 1, 2, 3, 4}, 8);
    ck_assert_ptr_null(op_rope(g, x, 1, 4, (int32_t[]){2, 0}, cos_t, sin_t, 2));
    graph_destroy(g);
}
END_TEST

START_TEST(test_attention_causal_gqa_and_segments_known_values) {
    Graph *g = graph_create();
    /* D = 1, so scores are q k. Two query heads share one kv head. k = {0, 1}, v = {2, 4}.
     * head 0: q = 0 everywhere: t0 -> 2, t1 -> mean(2, 4) = 3.
     * head 1: q1 = ln 3: scores {0, ln 3}, probs {1/4, 3/4}: t1 -> 0.5 + 3 = 3.5; t0 -> 2. */
    float l3 = logf(3.0f);
    Tensor *q = make(g, 2, (int64_t[]){2, 2}, (float[]){0, 0, 0, l3});
    Tensor *k = make(g, 2, (int64_t[]){2, 1}, (float[]){0, 1});
    Tensor *v = make(g, 2, (int64_t[]){2, 1}, (float[]){2, 4});
    expect(op_attention(g, q, k, v, 1, 2, 2, 1, 1, NULL), (float[]){2, 2, 3, 3.5f}, 4);
    /* different segments: t1 sees only itself */
    expect(op_attention(g, q, k, v, 1, 2, 2, 1, 1, (int32_t[]){0, 1}), (float[]){2, 2, 4, 4}, 4);
    ck_assert(!graph_failed(g));
    ck_assert_ptr_null(op_attention(g, q, k, v, 1, 2, 3, 2, 1, NULL)); /* 3 % 2 != 0 */
    graph_destroy(g);
}
END_TEST

START_TEST(test_swiglu_add_known_values) {
    Graph *g = graph_create();
    /* silu(ln 3) = ln 3 * sigmoid(ln 3) = 0.75 ln 3; silu(0) = 0 */
    float l3 = logf(3.0f);
    Tensor *gate = make(g, 2, (int64_t[]){1, 2}, (float[]){l3, 0});
    Tensor *up = make(g, 2, (int64_t[]){1, 2}, (float[]){2, 5});
    expect(op_swiglu(g, gate, up), (float[]){1.5f * l3, 0}, 2);
    expect(op_add(g, gate, up), (float[]){l3 + 2, 5}, 2);
    Tensor *other = make(g, 2, (int64_t[]){2, 1}, (float[]){1, 1});
    ck_assert_ptr_null(op_add(g, gate, other)); /* shapes differ */
    ck_assert_ptr_null(op_swiglu(g, NULL, up));
    graph_destroy(g);
}
END_TEST

/* SwiGLU's exp(-g): glibc's expf in F32 precision (its bits kept), vexp_floats_single in BF16
 * precision; y = g / (1 + e) u bit for bit either way, over gates wide enough to reach both
 * ends of the sigmoid. */
START_TEST(test_swiglu_takes_expf_in_f32_and_the_single_exp_in_bf16) {
    enum { N = 3001 };
    float gate[N], up[N], e[N];
    uint64_t seed = 3;
    for (int i = 0; i < N; i++) {
        gate[i] = test_rand_uniform(&seed, -30.0f, 30.0f);
        up[i] = test_rand_uniform(&seed, -2.0f, 2.0f);
    }
    for (int bf16 = 0; bf16 < 2; bf16++) {
        Graph *g = graph_create();
        if (bf16) ck_assert_int_eq(graph_set_precision(g, TENSOR_PRECISION_BF16), 0);
        Tensor *y =
            op_swiglu(g, make(g, 2, (int64_t[]){1, N}, gate), make(g, 2, (int64_t[]){1, N}, up));
        ck_assert_ptr_nonnull(y);
        for (int i = 0; i < N; i++) e[i] = bf16 ? -gate[i] : expf(-gate[i]);
        if (bf16) vexp_floats_single(e, e, N);
        int bad = -1;
        for (int i = 0; i < N && bad < 0; i++)
            if (y->data[i] != gate[i] / (1.0f + e[i]) * up[i]) bad = i;
        ck_assert_msg(bad < 0, "%s: silu(%a) * %a = %a", bf16 ? "bf16" : "f32",
                      bad >= 0 ? gate[bad] : 0.0f, bad >= 0 ? up[bad] : 0.0f,
                      bad >= 0 ? y->data[bad] : 0.0f);
        graph_destroy(g);
    }
}
END_TEST

START_TEST(test_dropout_drops_where_hash_below_p_and_rescales) {
    Graph *g = graph_create();
    int64_t n = 4096;
    Tensor *x = graph_tensor(g, 2, (int64_t[]){64, 64});
    for (int64_t i = 0; i < n; i++) x->data[i] = 1.0f;
    Tensor *y = op_dropout(g, x, 0.25f, 3);
    ck_assert_ptr_nonnull(y);
    int64_t dropped = 0;
    for (int64_t i = 0; i < n; i++) {
        bool drop = tensor_dropout_uniform(3, (uint64_t)i) < 0.25f;
        ck_assert_float_eq(y->data[i], drop ? 0.0f : 1.0f / 0.75f);
        dropped += drop;
    }
    ck_assert_int_gt(dropped, n / 4 - 200);
    ck_assert_int_lt(dropped, n / 4 + 200);
    Tensor *same = op_dropout(g, x, 0.0f, 3);
    expect(same, x->data, n);
    /* another seed gives another mask */
    int64_t differ = 0;
    for (int64_t i = 0; i < n; i++)
        differ += (tensor_dropout_uniform(3, (uint64_t)i) < 0.25f) !=
                  (tensor_dropout_uniform(4, (uint64_t)i) < 0.25f);
    ck_assert_int_gt(differ, n / 10);
    graph_destroy(g);
}
END_TEST

START_TEST(test_cross_entropy_sums_counted_rows_and_is_stable) {
    Graph *g = graph_create();
    /* row 0: uniform over 4, loss ln 4. row 1 ignored. row 2: exp sum 1+3+1+1 = 6, target
     * logit ln 3: ln 6 - ln 3 = ln 2. row 3: logits of 1000 (exp would overflow) give ln 4.
     * total = ln 4 + ln 2 + ln 4 = ln 32. */
    float l3 = logf(3.0f);
    Tensor *logits = make(g, 2, (int64_t[]){4, 4},
                          (float[]){0, 0, 0, 0, 9, 9, 9, 9, 0, l3, 0, 0, 1000, 1000, 1000, 1000});
    int64_t count = 0;
    Tensor *loss = op_cross_entropy(g, logits, (int32_t[]){2, TENSOR_IGNORE_INDEX, 1, 3}, &count);
    expect(loss, (float[]){logf(32.0f)}, 1);
    ck_assert_int_eq(count, 3);
    ck_assert_ptr_null(op_cross_entropy(g, logits, (int32_t[]){2, 4, 1, 3}, &count));
    ck_assert(graph_failed(g));
    graph_destroy(g);
}
END_TEST

START_TEST(test_matmul_helper_plain_transposed_and_accumulated) {
    float a[4] = {1, 2, 3, 4}, b[4] = {5, 6, 7, 8}, c[4] = {0};
    tensor_matmul(c, a, b, 2, 2, 2, false, false); /* A B = {19, 22, 43, 50} */
    ck_assert_float_eq(c[0], 19);
    ck_assert_float_eq(c[1], 22);
    ck_assert_float_eq(c[2], 43);
    ck_assert_float_eq(c[3], 50);
    tensor_matmul(c, a, b, 2, 2, 2, true, true); /* + A B^T = {17, 23, 39, 53} */
    ck_assert_float_eq(c[0], 36);
    ck_assert_float_eq(c[1], 45);
    ck_assert_float_eq(c[2], 82);
    ck_assert_float_eq(c[3], 103);
}
END_TEST

/* LoRA's rank-r products (tensor/thin.c) on odd sizes (rows not a multiple of 8, widths not
 * of 16, r not of 8): within f32 rounding of a double-precision product, the padded columns
 * exactly 0, and the same bits from the AVX2 and the scalar loops and from 1 and 2 threads. */
/* RMSNorm takes rows in groups whose sums interleave: each row's result and gradient must
 * be those of the row normalized alone. */
START_TEST(test_rmsnorm_rows_in_groups_give_the_bits_of_each_row_alone) {
    enum { N = 19, C = 77 };
    uint64_t seed = 41;
    Tensor *x = tensor_new(2, (int64_t[]){N, C}, true), *w = tensor_new(1, (int64_t[]){C}, false);
    Tensor *G = tensor_new(2, (int64_t[]){N, C}, false);
    ck_assert(x && w && G);
    for (int64_t j = 0; j < x->size; j++) x->data[j] = test_rand_uniform(&seed, -3, 3);
    for (int64_t j = 0; j < x->size; j++) G->data[j] = test_rand_uniform(&seed, -1, 1);
    for (int64_t j = 0; j < C; j++) w->data[j] = test_rand_uniform(&seed, 0.5f, 1.5f);
    Graph *g = graph_create();
    ck_assert(g);
    memset(x->grad, 0, sizeof(float) * N * C);
    Tensor *y = op_rmsnorm(g, x, w, 1e-5f);
    ck_assert_int_eq(graph_backward(g, op_weighted_sum(g, y, G), 1.0f), 0);
    for (int i = 0; i < N; i++) {
        Tensor *xi = tensor_new(2, (int64_t[]){1, C}, true),
               *Gi = tensor_new(2, (int64_t[]){1, C}, false);
        ck_assert(xi && Gi);
        memcpy(xi->data, x->data + i * C, sizeof(float) * C);
        memcpy(Gi->data, G->data + i * C, sizeof(float) * C);
        memset(xi->grad, 0, sizeof(float) * C);
        Graph *gi = graph_create();
        Tensor *yi = op_rmsnorm(gi, xi, w, 1e-5f);
        ck_assert_int_eq(graph_backward(gi, op_weighted_sum(gi, yi, Gi), 1.0f), 0);
        ck_assert_msg(memcmp(yi->data, y->data + i * C, sizeof(float) * C) == 0, "y row %d", i);
        ck_assert_msg(memcmp(xi->grad, x->grad + i * C, sizeof(float) * C) == 0, "dx row %d", i);
        graph_destroy(gi);
        tensor_free(xi), tensor_free(Gi);
    }
    graph_destroy(g);
    tensor_free(x), tensor_free(w), tensor_free(G);
}
END_TEST

static float *rand_floats(int64_t n, unsigned seed) {
    float *v = malloc((size_t)n * sizeof(float));
    ck_assert_ptr_nonnull(v);
    for (int64_t i = 0; i < n; i++) {
        seed = seed * 1103515245u + 12345u;
        v[i] = (float)((seed >> 8) % 2001) / 1000.0f - 1.0f;
    }
    return v;
}

/* RMSNorm's sums run eight rows at a time, in vector lanes where the CPU has AVX-512: bit for
 * bit the scalar loops' values (each row's double sum in column order), forward and backward,
 * over whole groups of eight rows and a partial one, with a width that is not a multiple of 8. */
START_TEST(test_rmsnorm_bits_are_the_scalar_formulas) {
    enum { N = 19, C = 77 };
    const float eps = 1e-5f;
    float *xv = rand_floats(N * C, 11), *wv = rand_floats(C, 12), *dyv = rand_floats(N * C, 13);
    /* row 0's backward sum depends on its order: in column order the five ones between +1e18
     * and -1e18 are absorbed (the sum is the rest of the row); added in another order they
     * would count */
    for (int j = 0; j < 8; j++) xv[j] = wv[j] = 1.0f;
    for (int j = 1; j < 6; j++) dyv[j] = 1.0f;
    dyv[0] = 1e18f, dyv[6] = -1e18f;
    Graph *g = graph_create();
    Tensor *x = make(g, 2, (int64_t[]){N, C}, xv), *w = make(g, 1, (int64_t[]){C}, wv);
    x->requires_grad = true;
    Tensor *y = op_rmsnorm(g, x, w, eps);
    ck_assert_ptr_nonnull(y);
    ck_assert_int_eq(graph_backward_from(g, y, dyv), 0);
    for (int i = 0; i < N; i++) {
        double ss = 0, dot = 0;
        for (int j = 0; j < C; j++) ss += (double)xv[i * C + j] * xv[i * C + j];
        for (int j = 0; j < C; j++) dot += (double)dyv[i * C + j] * wv[j] * xv[i * C + j];
        float rr = 1.0f / sqrtf((float)(ss / (double)C) + eps);
        float k = (float)(dot * rr * rr * rr / (double)C);
        for (int j = 0; j < C; j++) {
            float want = wv[j] * (xv[i * C + j] * rr);
            float dwant = 0.0f + (rr * wv[j] * dyv[i * C + j] - xv[i * C + j] * k);
            ck_assert_msg(memcmp(&y->data[i * C + j], &want, sizeof want) == 0,
                          "y (%d, %d): %.9g, want %.9g", i, j, y->data[i * C + j], want);
            ck_assert_msg(memcmp(&x->grad[i * C + j], &dwant, sizeof dwant) == 0,
                          "dx (%d, %d): %.9g, want %.9g", i, j, x->grad[i * C + j], dwant);
        }
    }
    graph_destroy(g);
    free(xv);
    free(wv);
    free(dyv);
}
END_TEST

typedef struct {
    float *project, *reduce, *spread;
} ThinOut;

/* TN over one block of reduce_strip_avx512 rows and not a multiple of 16, TK two strips of 48
 * and a tail, TW two blocks of 64 and a masked tail. */
enum { TN = 77, TK = 101, TR = 5, TRP = THIN_PAD, TW = 133 };

static ThinOut thin_run(const float *a, const float *mT, const float *c, const float *g0,
                        const float *m, const float *y0) {
    ThinOut o = {malloc(TN * TRP * sizeof(float)), malloc(TR * TK * sizeof(float)),
                 malloc(TN * TW * sizeof(float))};
    ck_assert(o.project && o.reduce && o.spread);
    thin_project(TN, TK, TRP, 0.5f, a, TK, mT, TRP, o.project, TRP);
    memcpy(o.reduce, g0, TR * TK * sizeof(float));
    thin_reduce(TN, TK, TR, 0.25f, c, TRP, a, TK, true, o.reduce, TK);
    memcpy(o.spread, y0, TN * TW * sizeof(float));
    thin_spread(TN, TW, TR, 0.75f, c, TRP, m, TW, o.spread, TW);
    return o;
}

static void thin_free(ThinOut o) {
    free(o.project);
    free(o.reduce);
    free(o.spread);
}

START_TEST(test_thin_products_match_double_and_give_the_same_bits_every_way) {
    float *a = rand_floats(TN * TK, 1), *mT = rand_floats(TK * TRP, 2);
    float *c = rand_floats(TN * TRP, 3), *g0 = rand_floats(TR * TK, 4);
    float *m = rand_floats(TR * TW, 5), *y0 = rand_floats(TN * TW, 6);
    for (int t = 0; t < TK; t++)
        for (int j = TR; j < TRP; j++) mT[t * TRP + j] = 0.0f; /* r 5, padded to 8 */
    ThinOut base = thin_run(a, mT, c, g0, m, y0);
    for (int i = 0; i < TN; i++)
        for (int j = 0; j < TRP; j++) {
            double want = 0;
            for (int t = 0; t < TK; t++) want += (double)a[i * TK + t] * mT[t * TRP + j];
            want *= 0.5;
            ck_assert_msg(fabs(base.project[i * TRP + j] - want) <= 1e-5 * (1 + fabs(want)),
                          "project (%d, %d): %.9g, want %.9g", i, j, base.project[i * TRP + j],
                          want);
            if (j >= TR) ck_assert(base.project[i * TRP + j] == 0.0f);
        }
    for (int j = 0; j < TR; j++)
        for (int t = 0; t < TK; t++) {
            double want = 0;
            for (int i = 0; i < TN; i++) want += (double)c[i * TRP + j] * a[i * TK + t];
            want = g0[j * TK + t] + 0.25 * want;
            ck_assert_msg(fabs(base.reduce[j * TK + t] - want) <= 1e-5 * (1 + fabs(want)),
                          "reduce (%d, %d): %.9g, want %.9g", j, t, base.reduce[j * TK + t], want);
        }
    for (int i = 0; i < TN; i++)
        for (int t = 0; t < TW; t++) {
            double want = 0; /* c's padded columns (j >= r) are not read */
            for (int j = 0; j < TR; j++) want += (double)c[i * TRP + j] * m[j * TW + t];
            want = y0[i * TW + t] + 0.75 * want;
            ck_assert_msg(fabs(base.spread[i * TW + t] - want) <= 1e-5 * (1 + fabs(want)),
                          "spread (%d, %d): %.9g, want %.9g", i, t, base.spread[i * TW + t], want);
        }
    ThinOut other[3];
    thin_limit_path(THIN_AVX2);
    other[0] = thin_run(a, mT, c, g0, m, y0);
    thin_limit_path(THIN_SCALAR);
    other[1] = thin_run(a, mT, c, g0, m, y0);
    thin_limit_path(THIN_AVX512);
    int threads = tensor_threads();
    tensor_set_threads(1);
    other[2] = thin_run(a, mT, c, g0, m, y0);
    tensor_set_threads(threads);
    for (int k = 0; k < 3; k++) {
        ck_assert_msg(memcmp(base.project, other[k].project, TN * TRP * sizeof(float)) == 0,
                      "project differs (way %d)", k);
        ck_assert_msg(memcmp(base.reduce, other[k].reduce, TR * TK * sizeof(float)) == 0,
                      "reduce differs (way %d)", k);
        ck_assert_msg(memcmp(base.spread, other[k].spread, TN * TW * sizeof(float)) == 0,
                      "spread differs (way %d)", k);
        thin_free(other[k]);
    }
    thin_free(base);
    free(a);
    free(mT);
    free(c);
    free(g0);
    free(m);
    free(y0);
}
END_TEST

/* BF16 precision's LoRA products on VDPBF16PS (thin_bf16) at rank r padded to rp: the f32
 * sums, to f32 rounding, of the bf16-rounded operands, from the quad and pair layouts however
 * m was stored, and the same bits with one thread. TN odd leaves the last pair of rows half
 * empty; TK is not a multiple of 4 (a last quad with one term) nor of 48 (a masked strip). */
static void check_thin_bf16(int r, int rp) {
    float *a = rand_floats(TN * TK, 21), *mT = rand_floats(TK * rp, 22);
    float *c = rand_floats(TN * rp, 23), *g0 = rand_floats(r * TK, 24);
    float *rounding = malloc(r * TK * sizeof *rounding);
    uint16_t *ab = malloc(TN * TK * sizeof *ab), *q = malloc(thin_quads_size(TK, rp) * 2);
    uint16_t *qt = malloc(thin_quads_size(TK, rp) * 2), *p = malloc(thin_pairs_size(TN, rp) * 2);
    float *m = malloc(r * TK * sizeof *m); /* mT's first r columns stored transposed */
    float *project = malloc(TN * rp * sizeof *project), *reduce = malloc(r * TK * sizeof *reduce);
    float *again = malloc(TN * rp * sizeof *again), *again_r = malloc(r * TK * sizeof *again_r);
    ck_assert(ab && q && qt && p && m && project && reduce && again && again_r && rounding);
    for (int i = 0; i < TN * TK; i++) ab[i] = tensor_float_to_bf16(a[i]);
    for (int j = 0; j < r; j++)
        for (int t = 0; t < TK; t++) m[j * TK + t] = mT[t * rp + j];
    thin_quads(q, mT, TK, r, rp, rp, 1);
    thin_quads(qt, m, TK, r, rp, 1, TK);
    ck_assert(memcmp(q, qt, thin_quads_size(TK, rp) * 2) == 0);
    thin_pairs(p, c, TN, rp, rp);
    thin_project_bf16(TN, TK, rp, 0.5f, ab, TK, q, project, rp);
    thin_reduce_bf16(TN, TK, r, 0.25f, p, rp, ab, NULL, TK, false, reduce, TK);
    /* a as floats, rounded by the loop, and beta: g0 + 0.25 c^T a in one rounding, which is
     * g0 + the sum above in one rounding (0.25 scales exactly) */
    memcpy(rounding, g0, r * TK * sizeof(float));
    thin_reduce_bf16(TN, TK, r, 0.25f, p, rp, NULL, a, TK, true, rounding, TK);
    for (int i = 0; i < TN; i++)
        for (int j = 0; j < rp; j++) {
            double want = 0;
            for (int t = 0; t < TK && j < r; t++)
                want += (double)ref_bf16(a[i * TK + t]) * ref_bf16(mT[t * rp + j]);
            want *= 0.5;
            ck_assert_msg(fabs(project[i * rp + j] - want) <= 1e-5 * (1 + fabs(want)),
                          "project (%d, %d): %.9g, want %.9g", i, j, project[i * rp + j], want);
        }
    for (int j = 0; j < r; j++)
        for (int t = 0; t < TK; t++) {
            double want = 0;
            for (int i = 0; i < TN; i++)
                want += (double)ref_bf16(c[i * rp + j]) * ref_bf16(a[i * TK + t]);
            want *= 0.25;
            ck_assert_msg(fabs(reduce[j * TK + t] - want) <= 1e-5 * (1 + fabs(want)),
                          "reduce (%d, %d): %.9g, want %.9g", j, t, reduce[j * TK + t], want);
            ck_assert_msg(rounding[j * TK + t] == fmaf(1.0f, reduce[j * TK + t], g0[j * TK + t]),
                          "reduce from floats (%d, %d): %.9g, want %.9g + %.9g", j, t,
                          rounding[j * TK + t], g0[j * TK + t], reduce[j * TK + t]);
        }
    int threads = tensor_threads();
    tensor_set_threads(1);
    thin_project_bf16(TN, TK, rp, 0.5f, ab, TK, q, again, rp);
    thin_reduce_bf16(TN, TK, r, 0.25f, p, rp, ab, NULL, TK, false, again_r, TK);
    tensor_set_threads(threads);
    ck_assert(memcmp(project, again, TN * rp * sizeof(float)) == 0);
    ck_assert(memcmp(reduce, again_r, r * TK * sizeof(float)) == 0);
    free(a);
    free(mT);
    free(c);
    free(ab);
    free(q);
    free(qt);
    free(p);
    free(m);
    free(project);
    free(reduce);
    free(again);
    free(again_r);
    free(g0);
    free(rounding);
}

/* At r 5 (one block of 8 columns) and 12 (two). Only on CPUs with AVX512-BF16, the only ones
 * that run these loops. */
START_TEST(test_thin_bf16_products_sum_the_rounded_operands) {
    if (!thin_bf16()) return;
    check_thin_bf16(TR, TRP);
    check_thin_bf16(12, 2 * THIN_PAD);
}
END_TEST

Suite *tensor_ops_suite(void) {
    Suite *s = suite_create("tensor_ops");
    TCase *tc = tcase_create("known_values");
    tcase_add_test(tc, test_embedding_copies_rows_and_rejects_bad_ids);
    tcase_add_test(tc, test_rmsnorm_scales_by_root_mean_square_then_weight);
    tcase_add_test(tc, test_linear_and_lora_linear_known_values);
    tcase_add_test(tc, test_gradients_of_a_shared_input_sum_from_a_first_write);
    tcase_add_test(tc, test_rmsnorm_bits_are_the_scalar_formulas);
    tcase_add_test(tc, test_rope_rotates_half_pairs_by_table_angles);
    tcase_add_test(tc, test_attention_causal_gqa_and_segments_known_values);
    tcase_add_test(tc, test_swiglu_add_known_values);
    tcase_add_test(tc, test_swiglu_takes_expf_in_f32_and_the_single_exp_in_bf16);
    tcase_add_test(tc, test_dropout_drops_where_hash_below_p_and_rescales);
    tcase_add_test(tc, test_cross_entropy_sums_counted_rows_and_is_stable);
    tcase_add_test(tc, test_matmul_helper_plain_transposed_and_accumulated);
    tcase_add_test(tc, test_thin_products_match_double_and_give_the_same_bits_every_way);
    tcase_add_test(tc, test_thin_bf16_products_sum_the_rounded_operands);
    tcase_add_test(tc, test_rmsnorm_rows_in_groups_give_the_bits_of_each_row_alone);
    suite_add_tcase(s, tc);
    return s;
}
