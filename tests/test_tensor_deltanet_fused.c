/* tests/test_tensor_deltanet_fused.c — the fused DeltaNet ops the Qwen3.5 layer runs:
 * op_deltanet_qkv (conv + SiLU + the q and k L2 norms in one op) and op_gated_delta_rule_qkv
 * (the delta rule reading q, k, v in place from one tensor). Each gives the same bits as the
 * unfused ops it replaces (op_causal_conv1d_silu, op_columns, op_head_l2norm;
 * op_gated_delta_rule on copies), output and gradients, with packed rows, grouped value
 * heads and for 1 and 2 threads; op_deltanet_qkv also against its float64 definition and
 * the finite differences of it (tolerance as tests/test_tensor_deltanet.c's per-token ops:
 * measured within 3e-7, asserted 3e-6); simd_expf (their SiLU's and sigmoid's exp) against
 * exp. */
#include "tensor/simd.h"
#include "tensor/tensor.h"
#include "tests/test_deltanet_ref.h"
#include "tests/test_util.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

enum { B = 2, T = 150, NK = 2, NV = 4, DK = 16, DV = 8, KW = 4 };
#define LK (NK * DK)
#define CH (2 * LK + NV * DV)

static Tensor *random_tensor(int64_t rows, int64_t cols, float lo, float hi, bool grad,
                             uint64_t *seed) {
    Tensor *t = tensor_new(2, (int64_t[]){rows, cols}, grad);
    ck_assert(t);
    for (int64_t i = 0; i < t->size; i++) t->data[i] = test_rand_uniform(seed, lo, hi);
    return t;
}

/* Row b cut at 37 + 11 b and 100 + 5 b (packed rows crossing chunks). */
static void packed_segments(int32_t *seg) {
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++)
            seg[b * T + t] = b * 3 + (t >= 37 + 11 * b) + (t >= 100 + 5 * b);
}

static void assert_same_bits(const float *a, const float *b, int64_t n, const char *what) {
    for (int64_t i = 0; i < n; i++)
        ck_assert_msg(memcmp(a + i, b + i, sizeof(float)) == 0, "%s differs at %lld: %g vs %g",
                      what, (long long)i, (double)a[i], (double)b[i]);
}

static const DeltaRuleSpec SPEC = {B, T, NK, NV, DK, DV, NULL, NULL};

/* sum(y * G) backward from y */
static void backward_from(Graph *g, Tensor *y, const Tensor *G) {
    Tensor *loss = op_weighted_sum(g, y, G);
    ck_assert_msg(loss && !graph_failed(g), "%s", graph_error(g));
    ck_assert_int_eq(graph_backward(g, loss, 1.0f), 0);
}

START_TEST(test_deltanet_qkv_equals_conv_columns_l2norms) {
    uint64_t seed = 91;
    int32_t seg[B * T];
    packed_segments(seg);
    DeltaRuleSpec s = SPEC;
    s.segment = seg;
    Tensor *x = random_tensor(B * T, CH, -2.0f, 2.0f, true, &seed);
    Tensor *w = random_tensor(CH, KW, -1.0f, 1.0f, false, &seed);
    Tensor *G = random_tensor(B * T, CH, -1.0f, 1.0f, false, &seed);
    float qscale = 1.0f / sqrtf((float)DK);
    /* unfused: conv, three column blocks, two norms; loss sum([q | k | v] * G) */
    Graph *g = graph_create();
    Tensor *u = op_causal_conv1d_silu(g, x, w, B, T, seg);
    Tensor *q = op_head_l2norm(g, op_columns(g, u, 0, LK), NK, 1e-6f, qscale);
    Tensor *k = op_head_l2norm(g, op_columns(g, u, LK, LK), NK, 1e-6f, 1.0f);
    Tensor *v = op_columns(g, u, 2 * LK, NV * DV);
    Tensor *Gq = tensor_new(2, (int64_t[]){B * T, LK}, false),
           *Gk = tensor_new(2, (int64_t[]){B * T, LK}, false),
           *Gv = tensor_new(2, (int64_t[]){B * T, NV * DV}, false);
    for (int64_t r = 0; r < B * T; r++) {
        memcpy(Gq->data + r * LK, G->data + r * CH, LK * sizeof(float));
        memcpy(Gk->data + r * LK, G->data + r * CH + LK, LK * sizeof(float));
        memcpy(Gv->data + r * NV * DV, G->data + r * CH + 2 * LK, NV * DV * sizeof(float));
    }
    Tensor *loss = op_add(g, op_add(g, op_weighted_sum(g, q, Gq), op_weighted_sum(g, k, Gk)),
                          op_weighted_sum(g, v, Gv));
    ck_assert_msg(loss && !graph_failed(g), "%s", graph_error(g));
    ck_assert_int_eq(graph_backward(g, loss, 1.0f), 0);
    float *want_dx = malloc((size_t)x->size * sizeof(float));
    memcpy(want_dx, x->grad, (size_t)x->size * sizeof(float));
    /* fused, for 1 and 2 threads */
    int threads = tensor_threads();
    for (int nt = 1; nt <= 2; nt++) {
        tensor_set_threads(nt);
        memset(x->grad, 0, (size_t)x->size * sizeof(float));
        Graph *f = graph_create();
        Tensor *y = op_deltanet_qkv(f, x, w, &s, qscale, 1e-6f);
        ck_assert_msg(y && !graph_failed(f), "%s", graph_error(f));
        for (int64_t r = 0; r < B * T; r++) {
            assert_same_bits(y->data + r * CH, q->data + r * LK, LK, "q");
            assert_same_bits(y->data + r * CH + LK, k->data + r * LK, LK, "k");
            assert_same_bits(y->data + r * CH + 2 * LK, v->data + r * NV * DV, NV * DV, "v");
        }
        backward_from(f, y, G);
        assert_same_bits(x->grad, want_dx, x->size, "dx");
        graph_destroy(f);
    }
    tensor_set_threads(threads);
    graph_destroy(g);
    free(want_dx);
    Tensor *all[] = {x, w, G, Gq, Gk, Gv};
    for (int i = 0; i < 6; i++) tensor_free(all[i]);
}
END_TEST

/* The definition in float64: the conv + SiLU (test_deltanet_ref.c's), then per row the q
 * heads scaled L2 norms, the k heads L2 norms; small shape (1 row of 12, 1 key head of 4,
 * 1 value head of 3) for the finite differences. */
enum { RT = 12, RK = 4, RV = 3, RCH = 2 * RK + RV };

static void qkv_ref(const double *x, const double *w, const int32_t *seg, double *y) {
    ref_conv1d_silu(x, w, 1, RT, RCH, KW, seg, y);
    for (int r = 0; r < RT; r++)
        for (int h = 0; h < 2; h++) {
            double *u = y + r * RCH + h * RK, ss = 0.0, scale = h ? 1.0 : 1.0 / sqrt(RK);
            for (int j = 0; j < RK; j++) ss += u[j] * u[j];
            for (int j = 0; j < RK; j++) u[j] *= scale / sqrt(ss + 1e-6);
        }
}

START_TEST(test_deltanet_qkv_matches_definition_and_finite_differences) {
    uint64_t seed = 93;
    int32_t seg[RT] = {0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1}; /* a packed row starts at 5 */
    Tensor *x = random_tensor(RT, RCH, -2.0f, 2.0f, true, &seed);
    Tensor *w = random_tensor(RCH, KW, -1.0f, 1.0f, false, &seed);
    Tensor *G = random_tensor(RT, RCH, -1.0f, 1.0f, false, &seed);
    DeltaRuleSpec s = {1, RT, 1, 1, RK, RV, seg, NULL};
    Graph *g = graph_create();
    Tensor *y = op_deltanet_qkv(g, x, w, &s, 1.0f / sqrtf((float)RK), 1e-6f);
    ck_assert_msg(y && !graph_failed(g), "%s", graph_error(g));
    backward_from(g, y, G);
    double xd[RT * RCH], wd[RCH * KW], yd[RT * RCH], big = 0.0, err = 0.0;
    for (int i = 0; i < RT * RCH; i++) xd[i] = x->data[i];
    for (int i = 0; i < RCH * KW; i++) wd[i] = w->data[i];
    qkv_ref(xd, wd, seg, yd);
    for (int i = 0; i < RT * RCH; i++) {
        err = fmax(err, fabs(y->data[i] - yd[i]));
        big = fmax(big, fabs(yd[i]));
    }
    ck_assert_msg(err / big < 3e-6, "output off by %g", err / big);
    /* d sum(y G) / dx by central differences of the definition (h 1e-6) */
    double fd[RT * RCH], gbig = 1e-30, gerr = 0.0;
    for (int i = 0; i < RT * RCH; i++) {
        double keep = xd[i], sum[2];
        for (int k = 0; k < 2; k++) {
            xd[i] = keep + (k ? -1e-6 : 1e-6);
            qkv_ref(xd, wd, seg, yd);
            sum[k] = 0.0;
            for (int m = 0; m < RT * RCH; m++) sum[k] += yd[m] * G->data[m];
        }
        xd[i] = keep;
        fd[i] = (sum[0] - sum[1]) / 2e-6;
        gbig = fmax(gbig, fabs(fd[i]));
    }
    for (int i = 0; i < RT * RCH; i++) gerr = fmax(gerr, fabs(x->grad[i] - fd[i]));
    ck_assert_msg(gerr / gbig < 3e-6, "gradient off by %g", gerr / gbig);
    graph_destroy(g);
    tensor_free(x);
    tensor_free(w);
    tensor_free(G);
}
END_TEST

START_TEST(test_delta_rule_qkv_equals_delta_rule_on_copies) {
    uint64_t seed = 95;
    int32_t seg[B * T];
    packed_segments(seg);
    DeltaRuleSpec s = SPEC;
    s.segment = seg;
    int64_t n = B * T;
    /* qkv as op_deltanet_qkv leaves it (unit q, k heads), and its three column copies */
    Tensor *x = random_tensor(n, CH, -2.0f, 2.0f, false, &seed);
    Tensor *w = random_tensor(CH, KW, -1.0f, 1.0f, false, &seed);
    Graph *prep = graph_create();
    Tensor *mixed = op_deltanet_qkv(prep, x, w, &s, 1.0f / sqrtf((float)DK), 1e-6f);
    ck_assert_msg(mixed && !graph_failed(prep), "%s", graph_error(prep));
    Tensor *qkv = tensor_new(2, (int64_t[]){n, CH}, true);
    Tensor *q = tensor_new(2, (int64_t[]){n, LK}, true),
           *k = tensor_new(2, (int64_t[]){n, LK}, true);
    Tensor *v = tensor_new(2, (int64_t[]){n, NV * DV}, true);
    memcpy(qkv->data, mixed->data, (size_t)(n * CH) * sizeof(float));
    for (int64_t r = 0; r < n; r++) {
        memcpy(q->data + r * LK, qkv->data + r * CH, LK * sizeof(float));
        memcpy(k->data + r * LK, qkv->data + r * CH + LK, LK * sizeof(float));
        memcpy(v->data + r * NV * DV, qkv->data + r * CH + 2 * LK, NV * DV * sizeof(float));
    }
    Tensor *beta = random_tensor(n, NV, 0.05f, 0.95f, true, &seed);
    Tensor *gate = random_tensor(n, NV, -1.5f, -0.01f, true, &seed);
    Tensor *G = random_tensor(n, NV * DV, -1.0f, 1.0f, false, &seed);
    Graph *g = graph_create();
    Tensor *o = op_gated_delta_rule(g, q, k, v, gate, beta, &s);
    backward_from(g, o, G);
    float *dg = malloc((size_t)n * NV * sizeof(float)),
          *db = malloc((size_t)n * NV * sizeof(float));
    memcpy(dg, gate->grad, (size_t)n * NV * sizeof(float));
    memcpy(db, beta->grad, (size_t)n * NV * sizeof(float));
    int threads = tensor_threads();
    for (int nt = 1; nt <= 2; nt++) {
        tensor_set_threads(nt);
        memset(qkv->grad, 0, (size_t)qkv->size * sizeof(float));
        memset(gate->grad, 0, (size_t)gate->size * sizeof(float));
        memset(beta->grad, 0, (size_t)beta->size * sizeof(float));
        Graph *f = graph_create();
        Tensor *of = op_gated_delta_rule_qkv(f, qkv, gate, beta, &s);
        ck_assert_msg(of && !graph_failed(f), "%s", graph_error(f));
        assert_same_bits(of->data, o->data, o->size, "o");
        backward_from(f, of, G);
        for (int64_t r = 0; r < n; r++) {
            assert_same_bits(qkv->grad + r * CH, q->grad + r * LK, LK, "dq");
            assert_same_bits(qkv->grad + r * CH + LK, k->grad + r * LK, LK, "dk");
            assert_same_bits(qkv->grad + r * CH + 2 * LK, v->grad + r * NV * DV, NV * DV, "dv");
        }
        assert_same_bits(gate->grad, dg, n * NV, "dg");
        assert_same_bits(beta->grad, db, n * NV, "dbeta");
        graph_destroy(f);
    }
    tensor_set_threads(threads);
    /* a qkv of the wrong width is refused by name */
    Graph *bad = graph_create();
    ck_assert_ptr_null(op_gated_delta_rule_qkv(bad, q, gate, beta, &s));
    ck_assert(strstr(graph_error(bad), "op_gated_delta_rule_qkv"));
    graph_reset(bad);
    s.n_k_heads = 8; /* 16 heads of 16 do not fit in x's 64 columns */
    s.n_v_heads = 8;
    ck_assert_ptr_null(op_deltanet_qkv(bad, x, w, &s, 1.0f, 1e-6f));
    ck_assert(strstr(graph_error(bad), "op_deltanet_qkv"));
    graph_destroy(bad);
    graph_destroy(g);
    graph_destroy(prep);
    free(dg);
    free(db);
    Tensor *all[] = {x, w, qkv, q, k, v, beta, gate, G};
    for (int i = 0; i < 9; i++) tensor_free(all[i]);
}
END_TEST

/* simd_expf over a vector of inputs, vectorised with AVX-512 where the CPU has it. */
SIMD_AVX512 static void expf_avx512(float *y, const float *x, int n) {
    for (int i = 0; i < n; i++) y[i] = simd_expf(x[i]);
}

START_TEST(test_simd_expf_within_two_ulp_same_bits_vectorised) {
    enum { N = 1 << 20 };
    float *x = malloc(N * sizeof *x), *y = malloc(N * sizeof *y);
    ck_assert(x && y);
    double worst = 0.0; /* measured 8.0e-8 (2^-23 = 1.19e-7 is one ulp at 1) */
    for (int i = 0; i < N; i++) {
        x[i] = -87.33f + 175.7f * (float)i / (float)N; /* [-87.33, 88.37) */
        y[i] = simd_expf(x[i]);
        double e = exp((double)x[i]);
        worst = fmax(worst, fabs(y[i] - e) / e);
    }
    ck_assert_msg(worst < 2.4e-7, "simd_expf off by %g relative", worst);
    ck_assert(simd_expf(0.0f) == 1.0f);
    ck_assert(simd_expf(-100.0f) == 0.0f && isinf(simd_expf(100.0f)));
    if (simd_avx512()) {
        float *v = malloc(N * sizeof *v);
        expf_avx512(v, x, N);
        ck_assert(memcmp(v, y, N * sizeof *v) == 0);
        free(v);
    }
    free(x);
    free(y);
}
END_TEST

Suite *tensor_deltanet_fused_suite(void) {
    Suite *s = suite_create("tensor_deltanet_fused");
    TCase *tc = tcase_create("fused");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_deltanet_qkv_equals_conv_columns_l2norms);
    tcase_add_test(tc, test_deltanet_qkv_matches_definition_and_finite_differences);
    tcase_add_test(tc, test_delta_rule_qkv_equals_delta_rule_on_copies);
    tcase_add_test(tc, test_simd_expf_within_two_ulp_same_bits_vectorised);
    suite_add_tcase(s, tc);
    return s;
}
