/* tests/test_tensor_bf16mm_attention.c — TENSOR_PRECISION_BF16's attention: against a
 * double reference computed from the rounded q, k, v (P and dS, which attention rounds
 * itself, against F32 precision's; test_tensor_bf16mm.c says why those tolerances), and the
 * same bits for any split of its work between threads, and with or without the plain blocks'
 * fused scaling (att_block_plain). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "tensor/attention_internal.h"
#include "tests/test_bf16mm.h"
#include "tests/test_tensor_ref.h"
#include "tests/test_util.h"

typedef struct {
    int B, T, NH, NKV, D;
    Tensor *q, *k, *v, *dy;
} AttCase;

static AttCase att_case(int B, int T, int NH, int NKV, int D, uint64_t seed) {
    int64_t n = (int64_t)B * T;
    AttCase c = {B,
                 T,
                 NH,
                 NKV,
                 D,
                 random_tensor(n, NH * D, true, seed, 1.5f),
                 random_tensor(n, NKV * D, true, seed + 1, 1.5f),
                 random_tensor(n, NKV * D, true, seed + 2, 1.0f),
                 random_tensor(n, NH * D, false, seed + 3, 1.0f)};
    return c;
}

static void att_free(AttCase *c) {
    tensor_free(c->q), tensor_free(c->k), tensor_free(c->v), tensor_free(c->dy);
}

typedef struct {
    float *y, *dq, *dk, *dv;
} AttRun;

static AttRun att_run(AttCase *c, Graph *g, const int32_t *seg) {
    memset(c->q->grad, 0, (size_t)c->q->size * sizeof(float));
    memset(c->k->grad, 0, (size_t)c->k->size * sizeof(float));
    memset(c->v->grad, 0, (size_t)c->v->size * sizeof(float));
    Tensor *y = op_attention(g, c->q, c->k, c->v, c->B, c->T, c->NH, c->NKV, c->D, seg);
    Tensor *s = op_weighted_sum(g, y, c->dy);
    ck_assert(s && !graph_failed(g));
    ck_assert_int_eq(graph_backward(g, s, 1.0f), 0);
    AttRun r = {copy_of(y->data, y->size), copy_of(c->q->grad, c->q->size),
                copy_of(c->k->grad, c->k->size), copy_of(c->v->grad, c->v->size)};
    graph_reset(g);
    return r;
}

static void att_run_free(AttRun *r) {
    free(r->y), free(r->dq), free(r->dk), free(r->dv);
}

static bool att_equal(const AttCase *c, const AttRun *a, const AttRun *b) {
    size_t nq = (size_t)c->q->size * sizeof(float), nk = (size_t)c->k->size * sizeof(float);
    return memcmp(a->y, b->y, nq) == 0 && memcmp(a->dq, b->dq, nq) == 0 &&
           memcmp(a->dk, b->dk, nk) == 0 && memcmp(a->dv, b->dv, nk) == 0;
}

START_TEST(test_bf16_attention_matches_rounded_reference) {
    /* T 70: two causal blocks, one partial; 4 / 2 heads (GQA). */
    AttCase c = att_case(2, 70, 4, 2, 16, 31);
    int64_t nq = c.q->size, nk = c.k->size;
    Graph *g = bf16_graph(), *gf = graph_create();
    AttRun a = att_run(&c, g, NULL), f = att_run(&c, gf, NULL);
    /* Forward against double attention on rounded q, k, v: the scores are exact products
     * summed in f32; P is rounded once more before P V, a relative change of <= 2^-8 of
     * each term, so |O - ref| <= 2^-8 * sum_s P_s |v_s| <= 2^-8 max |v| (+ summation). */
    double *qd = malloc((size_t)nq * sizeof *qd), *kd = malloc((size_t)nk * sizeof *kd);
    double *vd = malloc((size_t)nk * sizeof *vd), *od = malloc((size_t)nq * sizeof *od);
    double *ou = malloc((size_t)nq * sizeof *ou);
    ck_assert(qd && kd && vd && od && ou);
    double vmax = 0;
    for (int64_t i = 0; i < nq; i++) qd[i] = ref_bf16(c.q->data[i]);
    for (int64_t i = 0; i < nk; i++) kd[i] = ref_bf16(c.k->data[i]), vd[i] = ref_bf16(c.v->data[i]);
    for (int64_t i = 0; i < nk; i++) vmax = fmax(vmax, fabs(vd[i]));
    ref_attention_f64(qd, kd, vd, NULL, c.B, c.T, c.NH, c.NKV, c.D, od);
    double worst = 0, worst_f32 = 0;
    for (int64_t i = 0; i < nq; i++) worst = fmax(worst, fabs(a.y[i] - od[i]));
    ck_assert_msg(worst <= 0x1p-8 * vmax * 1.01 + 1e-6, "O off by %g (max |v| %g)", worst, vmax);
    /* F32 precision is closer to the unrounded reference than BF16 is: the rounding ran. */
    for (int64_t i = 0; i < nq; i++) qd[i] = c.q->data[i];
    for (int64_t i = 0; i < nk; i++) kd[i] = c.k->data[i], vd[i] = c.v->data[i];
    ref_attention_f64(qd, kd, vd, NULL, c.B, c.T, c.NH, c.NKV, c.D, ou);
    worst = 0;
    for (int64_t i = 0; i < nq; i++) {
        worst = fmax(worst, fabs(a.y[i] - ou[i]));
        worst_f32 = fmax(worst_f32, fabs(f.y[i] - ou[i]));
    }
    ck_assert_msg(worst > 100 * worst_f32, "bf16 %g vs f32 %g from the exact output", worst,
                  worst_f32);
    /* Backward: bf16 tolerance against F32 precision (see the top of the file). */
    ck_assert(norm_rel(a.dq, f.dq, nq) <= 2e-2);
    ck_assert(norm_rel(a.dk, f.dk, nk) <= 2e-2);
    ck_assert(norm_rel(a.dv, f.dv, nk) <= 2e-2);
    free(qd), free(kd), free(vd), free(od), free(ou);
    att_run_free(&a), att_run_free(&f);
    graph_destroy(g), graph_destroy(gf);
    att_free(&c);
}
END_TEST

START_TEST(test_bf16_attention_is_the_same_for_any_task_split) {
    /* B 1 with 3 kv heads: 2 threads split per (head, block), 1 thread per kv head. */
    AttCase c = att_case(1, 130, 6, 3, 8, 37);
    int32_t seg[130];
    for (int i = 0; i < 130; i++) seg[i] = i < 50 ? 0 : 1; /* two packed rows */
    int saved = tensor_threads();
    Graph *g = bf16_graph();
    tensor_set_threads(2);
    AttRun a = att_run(&c, g, seg), b = att_run(&c, g, seg);
    tensor_set_threads(1);
    AttRun one = att_run(&c, g, seg);
    tensor_set_threads(saved);
    ck_assert(att_equal(&c, &a, &b));
    ck_assert(att_equal(&c, &a, &one));
    att_run_free(&a), att_run_free(&b), att_run_free(&one);
    graph_destroy(g);
    att_free(&c);
}
END_TEST

/* On AVX512-BF16 the plain blocks (no soft-cap, no window or segment cutting through them)
 * scale their raw products as the softmax steps read them: the same bits as att_scores' pass
 * (elsewhere both runs take att_scores). Partial blocks, GQA, head sizes 16 and 64, and packed
 * rows, which leave some blocks masked and others plain. */
START_TEST(test_bf16_attention_plain_blocks_same_bits_as_scored) {
    const int heads[2] = {16, 64};
    int32_t seg[2 * 150];
    for (int i = 0; i < 2 * 150; i++) seg[i] = i % 150 < 90 ? 0 : 1;
    for (int h = 0; h < 2; h++)
        for (int packed = 0; packed < 2; packed++) {
            AttCase c = att_case(2, 150, 4, 2, heads[h], 41 + (uint64_t)h);
            Graph *g = bf16_graph();
            AttRun fused = att_run(&c, g, packed ? seg : NULL);
            att_plain_force_off(true);
            AttRun scored = att_run(&c, g, packed ? seg : NULL);
            att_plain_force_off(false);
            ck_assert_msg(att_equal(&c, &fused, &scored), "head size %d, packed %d", heads[h],
                          packed);
            att_run_free(&fused), att_run_free(&scored);
            graph_destroy(g);
            att_free(&c);
        }
}
END_TEST

Suite *tensor_bf16mm_attention_suite(void) {
    Suite *s = suite_create("tensor_bf16mm_attention");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_bf16_attention_matches_rounded_reference);
    tcase_add_test(tc, test_bf16_attention_is_the_same_for_any_task_split);
    tcase_add_test(tc, test_bf16_attention_plain_blocks_same_bits_as_scored);
    suite_add_tcase(s, tc);
    return s;
}
