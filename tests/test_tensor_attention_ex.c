/* tests/test_tensor_attention_ex.c — the fused attention (op_attention_ex) with everything it
 * computes besides causal GQA: packed rows, a sliding window shorter than the sequence,
 * soft-capping, a score scale, GQA, at head_dim 64, 128, 256 and 512, in F32 and BF16
 * precision, against the float64 reference (tests/test_tensor_ref.c) forward and backward;
 * its results bit-identical for 1 and 2 threads and for each of its kernels; its memory
 * linear in T.
 *
 * Every case has T not a multiple of the 64-row block, a window that ends inside a block,
 * segments that cross blocks, and rows whose whole block of keys is masked (the online
 * softmax must start from "nothing allowed yet").
 *
 * Tolerances. F32: each score is a sum of D products and each output and gradient a sum
 * over at most T keys, every addition rounded to f32 (relative 2^-24 = 6e-8); with D 512
 * and T 150 the worst element stays below 1e-5 of the largest (measured: about 1e-6), so
 * 1e-5 relative to the largest reference element; a missing term or a wrong mask moves
 * the result by far more. BF16: the reference runs on the same bf16-rounded q, k, v; the
 * kernel rounds P (in [0, 1]) to bf16 before P V, a relative change of at most 2^-9 of
 * each term, so |O - ref| <= 2^-9 sum_s P_s |v_s| <= 2^-9 max |v| (plus the f32 sums):
 * the bound 2^-8 max |v| has room to spare. The gradients also round dO, P and dS: each
 * rounding a relative 2^-9, their sums of many such terms move by far less than 2e-2 of
 * the largest element (measured: a few 1e-3), while a wrong gradient is off by O(1). */
#include "tensor/attention_internal.h"
#include "tensor/tensor.h"
#include "tests/test_tensor_ref.h"
#include "tests/test_util.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    RefAttention ref;
    Tensor *q, *k, *v, *G;
    int32_t *seg;
} Case;

/* Two documents per sequence crossing the first block boundary, and a third from row 100;
 * sequence 1 has different cuts. */
static Case make_case(int B, int T, int NH, int NKV, int D, double scale, double softcap,
                      int window, bool segments, uint64_t seed) {
    Case c = {.ref = {B, T, NH, NKV, D, scale, softcap, window, NULL}};
    int64_t n = (int64_t)B * T;
    c.q = tensor_new(2, (int64_t[]){n, NH * D}, true);
    c.k = tensor_new(2, (int64_t[]){n, NKV * D}, true);
    c.v = tensor_new(2, (int64_t[]){n, NKV * D}, true);
    c.G = tensor_new(2, (int64_t[]){n, NH * D}, false);
    ck_assert(c.q && c.k && c.v && c.G);
    Tensor *all[4] = {c.q, c.k, c.v, c.G};
    for (int i = 0; i < 4; i++)
        for (int64_t j = 0; j < all[i]->size; j++)
            all[i]->data[j] = test_rand_uniform(&seed, -1.0f, 1.0f);
    if (segments) {
        c.seg = malloc((size_t)n * sizeof *c.seg);
        ck_assert(c.seg);
        for (int b = 0; b < B; b++)
            for (int t = 0; t < T; t++)
                c.seg[b * T + t] = b == 0 ? (t < 70 ? 3 : t < 100 ? 4 : 5) : (t < 20 ? 7 : 8);
        c.ref.seg = c.seg;
    }
    return c;
}

static void free_case(Case *c) {
    tensor_free(c->q), tensor_free(c->k), tensor_free(c->v), tensor_free(c->G);
    free(c->seg);
}

static AttentionSpec spec_of(const Case *c) {
    const RefAttention *r = &c->ref;
    return (AttentionSpec){
        r->B, r->T, r->NH, r->NKV, r->D, (float)r->scale, (float)r->softcap, r->window, c->seg};
}

typedef struct {
    float *y, *dq, *dk, *dv;
} Run;

static float *copy_floats(const float *x, int64_t n) {
    float *c = malloc((size_t)n * sizeof *c);
    ck_assert(c);
    memcpy(c, x, (size_t)n * sizeof *c);
    return c;
}

/* Forward and backward of sum(y * G) in a fresh graph; q, k, v as given (BF16 precision
 * rounds them in place: the caller passes copies when it needs the originals). */
static Run run(Case *c, bool bf16) {
    Tensor *in[3] = {c->q, c->k, c->v};
    for (int i = 0; i < 3; i++) memset(in[i]->grad, 0, (size_t)in[i]->size * sizeof(float));
    Graph *g = graph_create();
    ck_assert(g);
    if (bf16) ck_assert_int_eq(graph_set_precision(g, TENSOR_PRECISION_BF16), 0);
    AttentionSpec spec = spec_of(c);
    Tensor *y = op_attention_ex(g, c->q, c->k, c->v, &spec);
    Tensor *l = op_weighted_sum(g, y, c->G);
    ck_assert_msg(l && !graph_failed(g), "%s", graph_error(g));
    ck_assert_int_eq(graph_backward(g, l, 1.0f), 0);
    Run r = {copy_floats(y->data, y->size), copy_floats(c->q->grad, c->q->size),
             copy_floats(c->k->grad, c->k->size), copy_floats(c->v->grad, c->v->size)};
    graph_destroy(g);
    return r;
}

static void free_run(Run *r) {
    free(r->y), free(r->dq), free(r->dk), free(r->dv);
}

static double *to_double(const Tensor *t, bool round) {
    double *d = malloc((size_t)t->size * sizeof *d);
    ck_assert(d);
    for (int64_t i = 0; i < t->size; i++) d[i] = round ? ref_bf16(t->data[i]) : t->data[i];
    return d;
}

/* max |x - ref| / max |ref| */
static double max_rel(const float *x, const double *ref, int64_t n) {
    double err = 0, mag = 0;
    for (int64_t i = 0; i < n; i++) {
        err = fmax(err, fabs(x[i] - ref[i]));
        mag = fmax(mag, fabs(ref[i]));
    }
    return err / mag;
}

static void check_case(Case *c, bool bf16, const char *what) {
    int64_t nq = c->q->size, nk = c->k->size;
    double *q = to_double(c->q, bf16), *k = to_double(c->k, bf16), *v = to_double(c->v, bf16);
    double *G = to_double(c->G, false);
    double *out = malloc((size_t)nq * sizeof *out), *dq = malloc((size_t)nq * sizeof *dq);
    double *dk = malloc((size_t)nk * sizeof *dk), *dv = malloc((size_t)nk * sizeof *dv);
    ck_assert(out && dq && dk && dv);
    ref_attention_ex_f64(&c->ref, q, k, v, out);
    ref_attention_grad_f64(&c->ref, q, k, v, G, dq, dk, dv);
    Run r = run(c, bf16);
    double e_y = max_rel(r.y, out, nq), e_q = max_rel(r.dq, dq, nq), e_k = max_rel(r.dk, dk, nk),
           e_v = max_rel(r.dv, dv, nk);
    if (bf16) {
        double vmax = 0, worst = 0;
        for (int64_t i = 0; i < nk; i++) vmax = fmax(vmax, fabs(v[i]));
        for (int64_t i = 0; i < nq; i++) worst = fmax(worst, fabs(r.y[i] - out[i]));
        ck_assert_msg(worst <= 0x1p-8 * vmax, "%s: O off by %g (max |v| %g)", what, worst, vmax);
        ck_assert_msg(e_q <= 2e-2 && e_k <= 2e-2 && e_v <= 2e-2, "%s: dq %g dk %g dv %g", what, e_q,
                      e_k, e_v);
    } else {
        ck_assert_msg(e_y <= 1e-5 && e_q <= 1e-5 && e_k <= 1e-5 && e_v <= 1e-5,
                      "%s: y %g dq %g dk %g dv %g", what, e_y, e_q, e_k, e_v);
    }
    free_run(&r);
    free(q), free(k), free(v), free(G), free(out), free(dq), free(dk), free(dv);
}

/* window 40 < T, soft-cap, default scale, 4 / 2 heads */
static void case_d64(bool bf16) {
    Case c = make_case(2, 150, 4, 2, 64, 0.0, 5.0, 40, true, 101);
    check_case(&c, bf16, bf16 ? "D 64 bf16" : "D 64");
    free_case(&c);
}

/* window 100 (ends inside the second block), Gemma 2 27B's scale query_pre_attn_scalar^-1/2
 * (head_dim 128, query_pre_attn_scalar 144), soft-cap, 4 / 1 heads */
static void case_d128(bool bf16) {
    Case c = make_case(2, 150, 4, 1, 128, 1.0 / 12.0, 3.0, 100, true, 202);
    check_case(&c, bf16, bf16 ? "D 128 bf16" : "D 128");
    free_case(&c);
}

/* Gemma 3 1B's heads: 4 / 1, D 256, its scale 256^-1/2, window 70, no soft-cap; then Gemma 4's
 * scale 1.0 */
static void case_d256(bool bf16) {
    Case c = make_case(1, 130, 4, 1, 256, 1.0 / 16.0, 0.0, 70, true, 303);
    check_case(&c, bf16, bf16 ? "D 256 bf16" : "D 256");
    free_case(&c);
    Case s1 = make_case(1, 70, 2, 1, 256, 1.0, 0.0, 0, false, 304);
    for (int64_t i = 0; i < s1.q->size; i++) s1.q->data[i] *= 0.1f;
    check_case(&s1, bf16, bf16 ? "D 256 scale 1 bf16" : "D 256 scale 1");
    free_case(&s1);
}

START_TEST(test_attention_ex_matches_reference_d64) {
    case_d64(false);
}
END_TEST

START_TEST(test_attention_ex_matches_reference_d128) {
    case_d128(false);
}
END_TEST

START_TEST(test_attention_ex_matches_reference_d256) {
    case_d256(false);
}
END_TEST

START_TEST(test_attention_ex_matches_reference_d512) {
    Case c = make_case(1, 100, 2, 1, 512, 0.0, 4.0, 30, true, 404);
    check_case(&c, false, "D 512");
    free_case(&c);
}
END_TEST

/* 3 / 1 heads of an odd size (9) and T 133 (a last block of 5 rows): the bf16 pairs of
 * AVX512-BF16's products end in a half-filled pair, which must count as 0. */
static void case_odd(bool bf16) {
    Case c = make_case(2, 133, 3, 1, 9, 0.0, 0.0, 90, true, 313);
    check_case(&c, bf16, bf16 ? "D 9 T 133 bf16" : "D 9 T 133");
    free_case(&c);
}

START_TEST(test_attention_ex_matches_reference_odd_sizes) {
    case_odd(false);
}
END_TEST

/* Both ways of BF16 precision: VDPBF16PS on bf16 pairs where the CPU has AVX512-BF16, and
 * f32 FMAs on bf16-rounded values (every CPU). */
START_TEST(test_attention_ex_bf16_matches_rounded_reference) {
    for (int fma = !att_bf16_dot(); fma < 2; fma++) {
        att_bf16_dot_force(fma);
        case_d64(true);
        case_d128(true);
        case_d256(true);
        case_odd(true);
    }
    att_bf16_dot_force(false);
}
END_TEST

/* The reference's analytic gradient is what the kernel is checked against: check it
 * against central finite differences of the reference's forward, with every feature on. */
START_TEST(test_attention_reference_gradient_matches_finite_differences) {
    Case c = make_case(2, 23, 2, 1, 6, 0.4, 1.5, 7, true, 505);
    for (int t = 0; t < 23; t++) c.seg[t] = t < 9 ? 0 : 1, c.seg[23 + t] = t % 5 == 0; /* gaps */
    int64_t nq = c.q->size, nk = c.k->size, n[3] = {nq, nk, nk};
    double *x[3] = {to_double(c.q, false), to_double(c.k, false), to_double(c.v, false)};
    double *G = to_double(c.G, false), *out = malloc((size_t)nq * sizeof *out);
    double *d[3] = {malloc((size_t)nq * sizeof(double)), malloc((size_t)nk * sizeof(double)),
                    malloc((size_t)nk * sizeof(double))};
    ck_assert(out && d[0] && d[1] && d[2]);
    ref_attention_grad_f64(&c.ref, x[0], x[1], x[2], G, d[0], d[1], d[2]);
    uint64_t seed = 9;
    const double h = 1e-5;
    for (int i = 0; i < 3; i++)
        for (int dir = 0; dir < 3; dir++) {
            double *u = malloc((size_t)n[i] * sizeof *u), analytic = 0, l[2];
            ck_assert(u);
            for (int64_t j = 0; j < n[i]; j++) {
                u[j] = test_rand_uniform(&seed, -1.0f, 1.0f);
                analytic += d[i][j] * u[j];
            }
            for (int side = 0; side < 2; side++) {
                for (int64_t j = 0; j < n[i]; j++) x[i][j] += (side ? -2 : 1) * h * u[j];
                ref_attention_ex_f64(&c.ref, x[0], x[1], x[2], out);
                l[side] = 0;
                for (int64_t j = 0; j < nq; j++) l[side] += out[j] * G[j];
            }
            for (int64_t j = 0; j < n[i]; j++) x[i][j] += h * u[j];
            double numeric = (l[0] - l[1]) / (2 * h);
            ck_assert_msg(fabs(analytic - numeric) <= 1e-6 * fabs(numeric) + 1e-8,
                          "input %d: analytic %.10g vs numeric %.10g", i, analytic, numeric);
            free(u);
        }
    for (int i = 0; i < 3; i++) free(x[i]), free(d[i]);
    free(G), free(out);
    free_case(&c);
}
END_TEST

static bool same_run(const Case *c, const Run *a, const Run *b) {
    size_t nq = (size_t)c->q->size * sizeof(float), nk = (size_t)c->k->size * sizeof(float);
    return memcmp(a->y, b->y, nq) == 0 && memcmp(a->dq, b->dq, nq) == 0 &&
           memcmp(a->dk, b->dk, nk) == 0 && memcmp(a->dv, b->dv, nk) == 0;
}

/* Batch 1 with 1 kv head (and 3 kv heads) runs backward in two passes on 2 threads and in
 * one on 1 thread: the bits must not change, in F32 and in both ways of BF16 precision (path
 * 1 on VDPBF16PS where the CPU has AVX512-BF16, path 2 on FMAs). */
START_TEST(test_attention_ex_is_bit_identical_for_1_and_2_threads) {
    int saved = tensor_threads();
    const int heads[2][2] = {{4, 1}, {6, 3}};
    for (int path = 0; path < 3; path++)
        for (int hc = 0; hc < 2; hc++) {
            bool bf16 = path > 0;
            att_bf16_dot_force(path == 2);
            Case c = make_case(1, 200, heads[hc][0], heads[hc][1], 64, 0.0, 10.0, 100, true, 606);
            Tensor *orig[3] = {c.q, c.k, c.v};
            float *keep[3];
            for (int i = 0; i < 3; i++) keep[i] = copy_floats(orig[i]->data, orig[i]->size);
            Run r[2];
            for (int th = 0; th < 2; th++) {
                for (int i = 0; i < 3; i++)
                    memcpy(orig[i]->data, keep[i], (size_t)orig[i]->size * sizeof(float));
                tensor_set_threads(th + 1);
                r[th] = run(&c, bf16);
            }
            tensor_set_threads(saved);
            att_bf16_dot_force(false);
            ck_assert_msg(same_run(&c, &r[0], &r[1]), "path %d, %d/%d heads", path, heads[hc][0],
                          heads[hc][1]);
            free_run(&r[0]), free_run(&r[1]);
            for (int i = 0; i < 3; i++) free(keep[i]);
            free_case(&c);
        }
}
END_TEST

/* The AVX-512, AVX2 and portable block products, exps and bf16 roundings give the same bits
 * (head_dim 72: a panel and a partial one of each vector width), in F32 and BF16 precision.
 * AVX512-BF16's products (VDPBF16PS) are not among them: they add two products at a time and
 * read denormals as 0, so their bits differ (they are held to the reference above, and to
 * the same bits for any thread count); BF16 precision runs on FMAs here. */
START_TEST(test_attention_ex_kernels_give_the_same_bits) {
    att_bf16_dot_force(true);
    for (int bf16 = 0; bf16 < 2; bf16++) {
        Case c = make_case(2, 150, 4, 2, 72, 0.0, 0.0, 0, true, 707);
        Tensor *orig[3] = {c.q, c.k, c.v};
        float *keep[3];
        for (int i = 0; i < 3; i++) keep[i] = copy_floats(orig[i]->data, orig[i]->size);
        Run r[3];
        for (int level = 0; level < 3; level++) {
            for (int i = 0; i < 3; i++)
                memcpy(orig[i]->data, keep[i], (size_t)orig[i]->size * sizeof(float));
            att_gemm_force(level);
            r[level] = run(&c, bf16);
        }
        att_gemm_force(0);
        ck_assert_msg(same_run(&c, &r[0], &r[1]), "bf16 %d: AVX2", bf16);
        ck_assert_msg(same_run(&c, &r[0], &r[2]), "bf16 %d: portable", bf16);
        for (int level = 0; level < 3; level++) free_run(&r[level]);
        for (int i = 0; i < 3; i++) free(keep[i]);
        free_case(&c);
    }
    att_bf16_dot_force(false);
}
END_TEST

/* Bytes one attention layer's graph holds after forward and backward (its output, what it
 * saves, the gradients, the scratch). */
static size_t layer_bytes(int T) {
    Case c = make_case(1, T, 4, 2, 64, 0.0, 0.0, 0, false, 808);
    Graph *g = graph_create();
    ck_assert(g);
    AttentionSpec spec = spec_of(&c);
    Tensor *y = op_attention_ex(g, c.q, c.k, c.v, &spec);
    Tensor *l = op_weighted_sum(g, y, c.G);
    ck_assert(l && graph_backward(g, l, 1.0f) == 0);
    size_t used = graph_arena_used(g);
    ck_assert_uint_ge(used, (size_t)y->size * sizeof(float));
    graph_destroy(g);
    free_case(&c);
    return used;
}

START_TEST(test_attention_ex_memory_is_linear_in_seq_len) {
    size_t at_t = layer_bytes(256), at_4t = layer_bytes(1024);
    /* T x T probabilities would make it 16 times */
    ck_assert_msg(at_4t <= 4 * at_t + 65536, "%zu bytes at T 256, %zu at T 1024", at_t, at_4t);
}
END_TEST

START_TEST(test_attention_ex_refuses_a_bad_spec) {
    Case c = make_case(1, 10, 2, 1, 8, 0.0, 0.0, 0, false, 909);
    AttentionSpec bad[3] = {spec_of(&c), spec_of(&c), spec_of(&c)};
    bad[0].window = -1;
    bad[1].softcap = NAN;
    bad[2].scale = -1.0f;
    for (int i = 0; i < 3; i++) {
        Graph *g = graph_create();
        ck_assert_ptr_null(op_attention_ex(g, c.q, c.k, c.v, &bad[i]));
        ck_assert(graph_failed(g));
        ck_assert_ptr_nonnull(strstr(graph_error(g), "window"));
        graph_destroy(g);
    }
    free_case(&c);
}
END_TEST

Suite *tensor_attention_ex_suite(void) {
    Suite *s = suite_create("tensor_attention_ex");
    TCase *tc = tcase_create("reference");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_attention_ex_matches_reference_d64);
    tcase_add_test(tc, test_attention_ex_matches_reference_d128);
    tcase_add_test(tc, test_attention_ex_matches_reference_d256);
    tcase_add_test(tc, test_attention_ex_matches_reference_d512);
    tcase_add_test(tc, test_attention_ex_matches_reference_odd_sizes);
    tcase_add_test(tc, test_attention_ex_bf16_matches_rounded_reference);
    tcase_add_test(tc, test_attention_reference_gradient_matches_finite_differences);
    suite_add_tcase(s, tc);
    TCase *td = tcase_create("determinism");
    tcase_set_timeout(td, 120);
    tcase_add_test(td, test_attention_ex_is_bit_identical_for_1_and_2_threads);
    tcase_add_test(td, test_attention_ex_kernels_give_the_same_bits);
    tcase_add_test(td, test_attention_ex_memory_is_linear_in_seq_len);
    tcase_add_test(td, test_attention_ex_refuses_a_bad_spec);
    suite_add_tcase(s, td);
    return s;
}
