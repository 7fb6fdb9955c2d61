/* tests/test_tensor_lmhead.c — op_lm_head_cross_entropy: the fused lm_head + cross-entropy
 * equals op_linear + op_cross_entropy within fp32 rounding (loss and dx), also with the
 * final-logit soft-cap (op_softcap between them), its gradient
 * matches finite differences of a double reference, ignored rows cost nothing, and a BF16
 * lm_head gives bit-identical results to an F32 one with the same values. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "tensor/tensor.h"
#include "tests/test_util.h"

typedef struct {
    int64_t n, c, v;
    Tensor *x;        /* (N, C) requires grad */
    Tensor *w;        /* (V, C) frozen F32, values exactly BF16 */
    uint16_t *w_bits; /* the same values as BF16 */
    int32_t *targets; /* (N), every third ignored */
    float cap;        /* the logits' soft-cap; 0: none */
} LmCase;

static LmCase case_new(int64_t n, int64_t c, int64_t v, uint64_t seed) {
    LmCase k = {n,
                c,
                v,
                tensor_new(2, (int64_t[]){n, c}, true),
                tensor_new(2, (int64_t[]){v, c}, false),
                malloc((size_t)(v * c) * 2),
                malloc((size_t)n * sizeof(int32_t)),
                0.0f};
    ck_assert(k.x && k.w && k.w_bits && k.targets);
    for (int64_t i = 0; i < n * c; i++) k.x->data[i] = test_rand_uniform(&seed, -2, 2);
    for (int64_t i = 0; i < v * c; i++)
        k.w_bits[i] = tensor_float_to_bf16(test_rand_uniform(&seed, -1, 1));
    tensor_bf16_to_float(k.w->data, k.w_bits, v * c);
    for (int64_t i = 0; i < n; i++)
        k.targets[i] =
            i % 3 == 1 ? TENSOR_IGNORE_INDEX : (int32_t)(test_rand_u64(&seed) % (uint64_t)v);
    return k;
}

static void case_free(LmCase *k) {
    tensor_free(k->x);
    tensor_free(k->w);
    free(k->w_bits);
    free(k->targets);
}

/* Loss and a copy of dx (backward seeded with `seed`); fused or linear + cross-entropy. */
static float run(LmCase *k, const Tensor *w, bool fused, float seed, float **dx, int64_t *count) {
    Graph *g = graph_create();
    memset(k->x->grad, 0, (size_t)k->x->size * sizeof(float));
    Tensor *logits = fused ? NULL : op_linear(g, k->x, w, NULL);
    if (logits && k->cap > 0) logits = op_softcap(g, logits, k->cap);
    Tensor *loss = fused ? op_lm_head_cross_entropy_softcap(g, k->x, w, k->targets, k->cap, count)
                         : op_cross_entropy(g, logits, k->targets, count);
    ck_assert(loss && !graph_failed(g));
    ck_assert_int_eq(graph_backward(g, loss, seed), 0);
    float l = loss->data[0];
    *dx = malloc((size_t)k->x->size * sizeof(float));
    memcpy(*dx, k->x->grad, (size_t)k->x->size * sizeof(float));
    graph_destroy(g);
    return l;
}

static void check_matches_unfused(int64_t n, int64_t c, int64_t v, float cap) {
    LmCase k = case_new(n, c, v, 99);
    k.cap = cap;
    float *da, *db;
    int64_t ca, cb;
    float la = run(&k, k.w, true, 0.25f, &da, &ca);
    float lb = run(&k, k.w, false, 0.25f, &db, &cb);
    ck_assert_int_eq(ca, cb);
    ck_assert_int_eq(ca, n - (n + 1) / 3);
    ck_assert_msg(fabsf(la - lb) <= 1e-5f * fabsf(lb), "fused loss %.9g, unfused %.9g", la, lb);
    double err = 0, norm = 0;
    for (int64_t i = 0; i < n * c; i++) {
        err = fmax(err, fabs((double)da[i] - db[i]));
        norm = fmax(norm, fabs((double)db[i]));
    }
    ck_assert_msg(norm > 0 && err <= 1e-5 * norm, "dx differs by %g (max %g)", err, norm);
    /* Ignored rows get no gradient at all. */
    for (int64_t i = 1; i < n; i += 3)
        for (int64_t j = 0; j < c; j++) ck_assert(da[i * c + j] == 0.0f);
    free(da);
    free(db);
    case_free(&k);
}

START_TEST(test_lm_head_cross_entropy_matches_linear_then_cross_entropy) {
    check_matches_unfused(7, 8, 50, 0);      /* one block */
    check_matches_unfused(96, 16, 50000, 0); /* several vocabulary blocks and a short last one */
    check_matches_unfused(400, 8, 50000, 0); /* 267 counted rows: two row chunks, the last short */
}
END_TEST

/* Gemma 2's final-logit soft-cap inside the fused op: op_softcap then op_cross_entropy. */
START_TEST(test_lm_head_softcap_matches_softcap_then_cross_entropy) {
    check_matches_unfused(7, 8, 50, 2.5f);
    check_matches_unfused(400, 8, 50000, 3.0f); /* two row chunks of several blocks */
}
END_TEST

/* Double reference of the summed loss. */
static double ref_loss(const LmCase *k, const double *x) {
    double sum = 0;
    for (int64_t i = 0; i < k->n; i++) {
        if (k->targets[i] == TENSOR_IGNORE_INDEX) continue;
        double mx = -INFINITY, *l = malloc((size_t)k->v * sizeof(double));
        for (int64_t j = 0; j < k->v; j++) {
            l[j] = 0;
            for (int64_t d = 0; d < k->c; d++) l[j] += x[i * k->c + d] * k->w->data[j * k->c + d];
            if (k->cap > 0) l[j] = k->cap * tanh(l[j] / k->cap);
            mx = fmax(mx, l[j]);
        }
        double se = 0;
        for (int64_t j = 0; j < k->v; j++) se += exp(l[j] - mx);
        sum += mx + log(se) - l[k->targets[i]];
        free(l);
    }
    return sum;
}

/* With cap > 0, the soft-capped loss (logits up to about 5 against a cap of 2: tanh well
 * into its curve). */
static void check_finite_differences(float cap) {
    LmCase k = case_new(6, 5, 40, 7);
    k.cap = cap;
    float *dx;
    int64_t count;
    float loss = run(&k, k.w, true, 1.0f, &dx, &count);
    double *x = malloc((size_t)k.x->size * sizeof(double));
    for (int64_t i = 0; i < k.x->size; i++) x[i] = k.x->data[i];
    double ref = ref_loss(&k, x);
    ck_assert_msg(fabs(loss - ref) <= 1e-5 * fabs(ref), "loss %.9g, reference %.9g", loss, ref);
    double err = 0, norm = 0, h = 1e-5;
    for (int64_t i = 0; i < k.x->size; i++) {
        double keep = x[i];
        x[i] = keep + h;
        double up = ref_loss(&k, x);
        x[i] = keep - h;
        double down = ref_loss(&k, x);
        x[i] = keep;
        double fd = (up - down) / (2 * h);
        err += (dx[i] - fd) * (dx[i] - fd);
        norm += fd * fd;
    }
    ck_assert_msg(norm > 0 && sqrt(err / norm) < 1e-4, "cap %g: relative gradient error %g", cap,
                  sqrt(err / norm));
    free(x);
    free(dx);
    case_free(&k);
}

START_TEST(test_lm_head_cross_entropy_gradient_matches_finite_differences) {
    check_finite_differences(0.0f);
    check_finite_differences(2.0f);
}
END_TEST

START_TEST(test_lm_head_bf16_weight_bit_identical) {
    LmCase k = case_new(400, 16, 50000, 5); /* two row chunks of several vocabulary blocks */
    Tensor wb;
    tensor_init_bf16(&wb, k.w_bits, 2, k.w->shape);
    float *da, *db;
    int64_t ca, cb;
    float la = run(&k, k.w, true, 0.5f, &da, &ca);
    float lb = run(&k, &wb, true, 0.5f, &db, &cb);
    ck_assert(la == lb && ca == cb);
    ck_assert(memcmp(da, db, (size_t)k.x->size * sizeof(float)) == 0);
    free(da);
    free(db);
    case_free(&k);
}
END_TEST

START_TEST(test_lm_head_all_ignored_rows_cost_nothing) {
    LmCase k = case_new(4, 8, 30, 3);
    for (int i = 0; i < 4; i++) k.targets[i] = TENSOR_IGNORE_INDEX;
    Graph *g = graph_create();
    int64_t count = -1;
    Tensor *loss = op_lm_head_cross_entropy(g, k.x, k.w, k.targets, &count);
    ck_assert(loss && !graph_failed(g) && count == 0 && loss->data[0] == 0.0f);
    ck_assert_int_eq(graph_backward(g, loss, 1.0f), 0);
    graph_reset(g);
    /* A target outside [0, V) fails the graph instead of reading outside a row. */
    k.targets[2] = 30;
    ck_assert(op_lm_head_cross_entropy(g, k.x, k.w, k.targets, &count) == NULL);
    ck_assert(graph_failed(g));
    graph_destroy(g);
    case_free(&k);
}
END_TEST

Suite *tensor_lmhead_suite(void) {
    Suite *s = suite_create("tensor_lmhead");
    TCase *tc = tcase_create("lmhead");
    tcase_add_test(tc, test_lm_head_cross_entropy_matches_linear_then_cross_entropy);
    tcase_add_test(tc, test_lm_head_cross_entropy_gradient_matches_finite_differences);
    tcase_add_test(tc, test_lm_head_softcap_matches_softcap_then_cross_entropy);
    tcase_add_test(tc, test_lm_head_bf16_weight_bit_identical);
    tcase_add_test(tc, test_lm_head_all_ignored_rows_cost_nothing);
    suite_add_tcase(s, tc);
    return s;
}
