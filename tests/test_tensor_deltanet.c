/* tests/test_tensor_deltanet.c — the Gated DeltaNet ops (Qwen3.5) against the float64
 * definition in tests/test_deltanet_ref.c: the chunked delta rule's output and its gradients
 * to q, k, v, g and beta against the token-by-token recurrence and its backward (itself
 * checked by finite differences), at T 150 and 200 (several chunks, not multiples of 64),
 * grouped value heads, packed rows, decays of exp(g) ~ 1e-6 and ~ 1 - 1e-4; bits equal for
 * 1 and 2 threads; packed rows bit-identical to the rows alone; the generation step against
 * the chunked forward; the conv, the L2 norm, the gated RMSNorm and the gates against their
 * definitions and finite differences.
 *
 * Tolerances. The op runs in float32 (relative rounding 6e-8 per operation). The output of a
 * chunk sums at most 64 intra-chunk terms plus the state's read (sums of DK products), and
 * the triangular solve of the UT transform is a forward substitution over at most 63 rows
 * whose coefficients |beta k_i.k_j E_ij| <= 1 (unit keys, beta < 1, E <= 1). Backward adds
 * one more solve and products of the same sizes. Measured worst elements: 1e-7 to 5e-7 of
 * the largest reference element (outputs and all five gradients, every decay kind); the
 * bound asserted, 5e-6, keeps a margin of 10x and is 20x inside the model-level 1e-4
 * on LoRA gradients, while a missing term (a decay, a
 * chunk's state, the solve's backward) moves results by 1e-2 or more (measured: dropping
 * the chunk-end decay's gradient puts dg off by 0.1). The per-token ops are a few float32
 * operations per element: measured within 3e-7 of the definition and of its finite
 * differences (central, h 1e-6, in float64); asserted within 3e-6. */
#include "tensor/tensor.h"
#include "tests/test_deltanet_ref.h"
#include "tests/test_util.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define DELTA_TOL 5e-6

/* max |a - b| / max |b| */
static double rel_err(const float *a, const double *b, int64_t n) {
    double err = 0.0, big = 1e-30;
    for (int64_t i = 0; i < n; i++) {
        err = fmax(err, fabs((double)a[i] - b[i]));
        big = fmax(big, fabs(b[i]));
    }
    return err / big;
}

static double *to_double(const float *x, int64_t n) {
    double *d = malloc((size_t)n * sizeof *d);
    ck_assert(d);
    for (int64_t i = 0; i < n; i++) d[i] = x[i];
    return d;
}

typedef enum { DECAY_MIXED, DECAY_STRONG, DECAY_NEAR_ZERO } DecayKind;

typedef struct {
    RefDelta r;
    Tensor *q, *k, *v, *g, *beta, *G;
    int32_t *seg;
} DeltaCase;

static void l2_rows(float *x, int64_t n, int D, float scale) {
    for (int64_t i = 0; i < n; i++) {
        double ss = 0.0;
        for (int j = 0; j < D; j++) ss += (double)x[i * D + j] * x[i * D + j];
        for (int j = 0; j < D; j++) x[i * D + j] = (float)(x[i * D + j] * scale / sqrt(ss));
    }
}

/* Packed rows (segments != 0): row b is cut at 37 + 11 b and 100 + 5 b (segments crossing
 * chunk boundaries, a chunk starting mid-chunk). */
static DeltaCase delta_case(int B, int T, int NK, int NV, int DK, int DV, bool packed,
                            DecayKind decay, uint64_t seed) {
    DeltaCase c = {.r = {B, T, NK, NV, DK, DV, NULL}};
    int64_t n = (int64_t)B * T;
    c.q = tensor_new(2, (int64_t[]){n, NK * DK}, true);
    c.k = tensor_new(2, (int64_t[]){n, NK * DK}, true);
    c.v = tensor_new(2, (int64_t[]){n, NV * DV}, true);
    c.g = tensor_new(2, (int64_t[]){n, NV}, true);
    c.beta = tensor_new(2, (int64_t[]){n, NV}, true);
    c.G = tensor_new(2, (int64_t[]){n, NV * DV}, false);
    ck_assert(c.q && c.k && c.v && c.g && c.beta && c.G);
    Tensor *uni[] = {c.q, c.k, c.v, c.G};
    for (int i = 0; i < 4; i++)
        for (int64_t j = 0; j < uni[i]->size; j++)
            uni[i]->data[j] = test_rand_uniform(&seed, -1.0f, 1.0f);
    l2_rows(c.q->data, n * NK, DK, 1.0f / sqrtf((float)DK));
    l2_rows(c.k->data, n * NK, DK, 1.0f);
    for (int64_t i = 0; i < n * NV; i++) {
        c.beta->data[i] = 1.0f / (1.0f + expf(-test_rand_uniform(&seed, -3.0f, 3.0f)));
        float gi = -test_rand_uniform(&seed, 0.01f, 1.5f);
        if (decay == DECAY_STRONG && i % 7 == 3) gi = -14.0f; /* exp(g) = 8e-7 */
        if (decay == DECAY_STRONG && i % 29 == 5) gi = -60.0f;
        if (decay == DECAY_NEAR_ZERO) gi = -test_rand_uniform(&seed, 0.0f, 1e-4f);
        c.g->data[i] = gi;
    }
    if (packed) {
        c.seg = malloc((size_t)n * sizeof *c.seg);
        for (int b = 0; b < B; b++)
            for (int t = 0; t < T; t++)
                c.seg[(int64_t)b * T + t] = b * 3 + (t >= 37 + 11 * b) + (t >= 100 + 5 * b);
        c.r.seg = c.seg;
    }
    return c;
}

static void delta_case_free(DeltaCase *c) {
    Tensor *all[] = {c->q, c->k, c->v, c->g, c->beta, c->G};
    for (int i = 0; i < 6; i++) tensor_free(all[i]);
    free(c->seg);
}

static DeltaRuleSpec spec_of(const DeltaCase *c, float *final) {
    return (DeltaRuleSpec){c->r.B, c->r.T, c->r.NK, c->r.NV, c->r.DK, c->r.DV, c->seg, final};
}

/* Forward and backward of sum(o * G) through the op; the gradients land in the case's
 * tensors (zeroed first); returns the graph holding o. */
static Graph *delta_run(DeltaCase *c, Tensor **o_out) {
    Tensor *in[] = {c->q, c->k, c->v, c->g, c->beta};
    for (int i = 0; i < 5; i++) memset(in[i]->grad, 0, (size_t)in[i]->size * sizeof(float));
    Graph *g = graph_create();
    DeltaRuleSpec s = spec_of(c, NULL);
    Tensor *o = op_gated_delta_rule(g, c->q, c->k, c->v, c->g, c->beta, &s);
    Tensor *loss = op_weighted_sum(g, o, c->G);
    ck_assert_msg(loss && !graph_failed(g), "%s", graph_error(g));
    ck_assert_int_eq(graph_backward(g, loss, 1.0f), 0);
    *o_out = o;
    return g;
}

static void check_delta_against_reference(int B, int T, int NK, int NV, int DK, int DV, bool packed,
                                          DecayKind decay, uint64_t seed) {
    DeltaCase c = delta_case(B, T, NK, NV, DK, DV, packed, decay, seed);
    Tensor *o;
    Graph *g = delta_run(&c, &o);
    Tensor *in[] = {c.q, c.k, c.v, c.g, c.beta};
    double *d[5], *dref[5];
    for (int i = 0; i < 5; i++) {
        d[i] = to_double(in[i]->data, in[i]->size);
        dref[i] = malloc((size_t)in[i]->size * sizeof(double));
    }
    double *G = to_double(c.G->data, c.G->size), *oref = malloc((size_t)o->size * sizeof(double));
    ref_delta_forward(&c.r, d[0], d[1], d[2], d[3], d[4], oref, NULL);
    ref_delta_grad(&c.r, d[0], d[1], d[2], d[3], d[4], G, dref[0], dref[1], dref[2], dref[3],
                   dref[4]);
    double e = rel_err(o->data, oref, o->size);
    ck_assert_msg(e < DELTA_TOL, "T %d decay %d: output off by %g relative", T, decay, e);
    const char *names[] = {"q", "k", "v", "g", "beta"};
    for (int i = 0; i < 5; i++) {
        e = rel_err(in[i]->grad, dref[i], in[i]->size);
        ck_assert_msg(e < DELTA_TOL, "T %d decay %d: d%s off by %g relative", T, decay, names[i],
                      e);
        free(d[i]);
        free(dref[i]);
    }
    free(G);
    free(oref);
    graph_destroy(g);
    delta_case_free(&c);
}

START_TEST(test_delta_reference_gradient_matches_finite_differences) {
    DeltaCase c = delta_case(1, 20, 1, 2, 4, 3, false, DECAY_STRONG, 7);
    int32_t seg[20];
    for (int t = 0; t < 20; t++) seg[t] = t >= 9;
    c.r.seg = seg;
    Tensor *in[] = {c.q, c.k, c.v, c.g, c.beta};
    double *d[5], *dref[5];
    for (int i = 0; i < 5; i++) {
        d[i] = to_double(in[i]->data, in[i]->size);
        dref[i] = malloc((size_t)in[i]->size * sizeof(double));
    }
    double *G = to_double(c.G->data, c.G->size), *o = malloc((size_t)c.G->size * sizeof(double));
    ref_delta_grad(&c.r, d[0], d[1], d[2], d[3], d[4], G, dref[0], dref[1], dref[2], dref[3],
                   dref[4]);
    for (int i = 0; i < 5; i++)
        for (int64_t j = 0; j < in[i]->size; j++) {
            double keep = d[i][j], h = 1e-6, f[2];
            for (int s = 0; s < 2; s++) {
                d[i][j] = keep + (s ? -h : h);
                ref_delta_forward(&c.r, d[0], d[1], d[2], d[3], d[4], o, NULL);
                f[s] = 0.0;
                for (int64_t m = 0; m < c.G->size; m++) f[s] += o[m] * G[m];
            }
            d[i][j] = keep;
            double fd = (f[0] - f[1]) / (2 * h);
            ck_assert_msg(fabs(fd - dref[i][j]) < 1e-7 * (1.0 + fabs(fd)),
                          "input %d element %lld: analytic %g, finite differences %g", i,
                          (long long)j, dref[i][j], fd);
        }
    for (int i = 0; i < 5; i++) {
        free(d[i]);
        free(dref[i]);
    }
    free(G);
    free(o);
    delta_case_free(&c);
}
END_TEST

START_TEST(test_delta_rule_matches_token_reference_packed_gqa) {
    check_delta_against_reference(2, 150, 2, 4, 32, 16, true, DECAY_MIXED, 11);
}
END_TEST

START_TEST(test_delta_rule_matches_token_reference_strong_decay) {
    check_delta_against_reference(1, 200, 1, 2, 16, 32, false, DECAY_STRONG, 12);
    check_delta_against_reference(2, 150, 2, 2, 32, 32, true, DECAY_STRONG, 13);
}
END_TEST

START_TEST(test_delta_rule_matches_token_reference_decay_near_zero) {
    check_delta_against_reference(1, 200, 2, 4, 32, 32, false, DECAY_NEAR_ZERO, 14);
    check_delta_against_reference(2, 150, 1, 3, 16, 16, true, DECAY_NEAR_ZERO, 15);
}
END_TEST

START_TEST(test_delta_rule_is_bit_identical_for_1_and_2_threads) {
    float *keep[6] = {0};
    for (int threads = 1; threads <= 2; threads++) {
        tensor_set_threads(threads);
        DeltaCase c = delta_case(2, 200, 2, 4, 32, 32, true, DECAY_MIXED, 21);
        Tensor *o;
        Graph *g = delta_run(&c, &o);
        const float *got[6] = {o->data, c.q->grad, c.k->grad, c.v->grad, c.g->grad, c.beta->grad};
        int64_t sizes[6] = {o->size, c.q->size, c.k->size, c.v->size, c.g->size, c.beta->size};
        for (int i = 0; i < 6; i++) {
            if (threads == 1) {
                keep[i] = malloc((size_t)sizes[i] * sizeof(float));
                memcpy(keep[i], got[i], (size_t)sizes[i] * sizeof(float));
            } else {
                ck_assert_msg(memcmp(keep[i], got[i], (size_t)sizes[i] * sizeof(float)) == 0,
                              "result %d differs between 1 and 2 threads", i);
                free(keep[i]);
            }
        }
        graph_destroy(g);
        delta_case_free(&c);
    }
}
END_TEST

/* Row by row: a packed row's outputs and gradients are those of the row alone, bit for bit
 * (its chunks start at its start either way), so nothing of the row before reaches it. */
START_TEST(test_delta_packed_rows_equal_rows_alone) {
    int T = 200, NK = 2, NV = 4, D = 16;
    DeltaCase c = delta_case(1, T, NK, NV, D, D, true, DECAY_MIXED, 31);
    Tensor *o;
    Graph *g = delta_run(&c, &o);
    int cuts[4] = {0, 37, 100, T};
    for (int s = 0; s < 3; s++) {
        int t0 = cuts[s], len = cuts[s + 1] - t0;
        DeltaCase a = delta_case(1, len, NK, NV, D, D, false, DECAY_MIXED, 32);
        Tensor *src[] = {c.q, c.k, c.v, c.g, c.beta, c.G},
               *dst[] = {a.q, a.k, a.v, a.g, a.beta, a.G};
        for (int i = 0; i < 6; i++) {
            int64_t cols = src[i]->shape[1];
            memcpy(dst[i]->data, src[i]->data + t0 * cols, (size_t)(len * cols) * sizeof(float));
        }
        Tensor *oa;
        Graph *ga = delta_run(&a, &oa);
        int64_t vc = NV * D;
        ck_assert(memcmp(oa->data, o->data + t0 * vc, (size_t)(len * vc) * sizeof(float)) == 0);
        for (int i = 0; i < 5; i++) {
            int64_t cols = src[i]->shape[1];
            ck_assert_msg(memcmp(dst[i]->grad, src[i]->grad + t0 * cols,
                                 (size_t)(len * cols) * sizeof(float)) == 0,
                          "row %d: gradient %d differs from the row alone", s, i);
        }
        graph_destroy(ga);
        delta_case_free(&a);
    }
    graph_destroy(g);
    delta_case_free(&c);
}
END_TEST

/* Generation: steps from a zero state give the chunked outputs; a prompt's final_state
 * continued by steps gives the chunked outputs of the whole sequence. */
START_TEST(test_delta_step_matches_chunked_forward) {
    int T = 150, NK = 2, NV = 4, DK = 32, DV = 16, P = 70;
    DeltaCase c = delta_case(1, T, NK, NV, DK, DV, false, DECAY_STRONG, 41);
    Graph *g = graph_create();
    DeltaRuleSpec s = spec_of(&c, NULL);
    Tensor *o = op_gated_delta_rule(g, c.q, c.k, c.v, c.g, c.beta, &s);
    ck_assert(o);
    int64_t st = (int64_t)NV * DK * DV;
    float *state = calloc((size_t)st, sizeof(float)),
          *out = malloc((size_t)NV * DV * sizeof(float));
    float *final = malloc((size_t)st * sizeof(float));
    double worst = 0.0;
    for (int pass = 0; pass < 2; pass++) {
        int t0 = 0;
        memset(state, 0, (size_t)st * sizeof(float));
        if (pass) { /* the prompt through the chunked op, its final state kept */
            Graph *gp = graph_create();
            DeltaCase p = delta_case(1, P, NK, NV, DK, DV, false, DECAY_MIXED, 42);
            Tensor *src[] = {c.q, c.k, c.v, c.g, c.beta}, *dst[] = {p.q, p.k, p.v, p.g, p.beta};
            for (int i = 0; i < 5; i++)
                memcpy(dst[i]->data, src[i]->data, (size_t)(P * src[i]->shape[1]) * sizeof(float));
            DeltaRuleSpec sp = spec_of(&p, state);
            ck_assert(op_gated_delta_rule(gp, p.q, p.k, p.v, p.g, p.beta, &sp));
            graph_destroy(gp);
            delta_case_free(&p);
            t0 = P;
        }
        for (int t = t0; t < T; t++) {
            tensor_gated_delta_step(state, out, c.q->data + t * NK * DK, c.k->data + t * NK * DK,
                                    c.v->data + t * NV * DV, c.g->data + t * NV,
                                    c.beta->data + t * NV, NK, NV, DK, DV);
            double *ref = to_double(o->data + t * NV * DV, NV * DV);
            worst = fmax(worst, rel_err(out, ref, NV * DV));
            free(ref);
        }
    }
    ck_assert_msg(worst < DELTA_TOL, "steps differ from the chunked forward by %g", worst);
    /* the final state of the whole sequence is the stepped state */
    DeltaRuleSpec sf = spec_of(&c, final);
    ck_assert(op_gated_delta_rule(g, c.q, c.k, c.v, c.g, c.beta, &sf));
    double *ref = to_double(state, st);
    ck_assert_msg(rel_err(final, ref, st) < DELTA_TOL, "final_state differs from the steps");
    free(ref);
    free(state);
    free(out);
    free(final);
    graph_destroy(g);
    delta_case_free(&c);
}
END_TEST

START_TEST(test_delta_rule_refuses_bad_shapes) {
    DeltaCase c = delta_case(1, 10, 2, 4, 8, 8, false, DECAY_MIXED, 51);
    Graph *g = graph_create();
    DeltaRuleSpec s = spec_of(&c, NULL);
    s.n_v_heads = 3; /* not a multiple of the key heads */
    ck_assert_ptr_null(op_gated_delta_rule(g, c.q, c.k, c.v, c.g, c.beta, &s));
    ck_assert(strstr(graph_error(g), "multiple of key heads"));
    graph_reset(g);
    s = spec_of(&c, NULL);
    s.v_dim = 4; /* v holds 4 heads of 8 */
    ck_assert_ptr_null(op_gated_delta_rule(g, c.q, c.k, c.v, c.g, c.beta, &s));
    ck_assert(strstr(graph_error(g), "op_gated_delta_rule"));
    graph_destroy(g);
    delta_case_free(&c);
}
END_TEST

/* ---- the per-token ops: forward against the definition, gradients of sum(y * G) against
 * central finite differences of the float64 definition ---- */

typedef void (*RefOp)(double *const *in, double *y, const void *ctx);

/* d sum(f(in) * G) / d in[which][j] by central differences (h 1e-6). */
static void finite_grad(RefOp f, double **in, int which, int64_t n_in, int64_t n_out,
                        const double *G, const void *ctx, double *grad) {
    double *y = malloc((size_t)n_out * sizeof *y);
    for (int64_t j = 0; j < n_in; j++) {
        double keep = in[which][j], s[2];
        for (int k = 0; k < 2; k++) {
            in[which][j] = keep + (k ? -1e-6 : 1e-6);
            f(in, y, ctx);
            s[k] = 0.0;
            for (int64_t m = 0; m < n_out; m++) s[k] += y[m] * G[m];
        }
        in[which][j] = keep;
        grad[j] = (s[0] - s[1]) / 2e-6;
    }
    free(y);
}

static Tensor *random_tensor(int64_t rows, int64_t cols, float lo, float hi, bool grad,
                             uint64_t *seed) {
    Tensor *t = tensor_new(2, (int64_t[]){rows, cols}, grad);
    ck_assert(t);
    for (int64_t i = 0; i < t->size; i++) t->data[i] = test_rand_uniform(seed, lo, hi);
    return t;
}

/* Checks y against f(in) and each gradient-requiring input's grad against finite
 * differences; y's graph has been seeded with G through op_weighted_sum by the caller. */
static void check_op(const char *name, RefOp f, Tensor **in, int n_in, const Tensor *y,
                     const Tensor *G, const void *ctx, double tol) {
    double *d[4], *dG = to_double(G->data, G->size),
                  *yref = malloc((size_t)y->size * sizeof(double));
    for (int i = 0; i < n_in; i++) d[i] = to_double(in[i]->data, in[i]->size);
    f(d, yref, ctx);
    double e = rel_err(y->data, yref, y->size);
    ck_assert_msg(e < tol, "%s: output off by %g", name, e);
    for (int i = 0; i < n_in; i++) {
        if (!in[i]->requires_grad) continue;
        double *fd = malloc((size_t)in[i]->size * sizeof(double));
        finite_grad(f, d, i, in[i]->size, y->size, dG, ctx, fd);
        e = rel_err(in[i]->grad, fd, in[i]->size);
        ck_assert_msg(e < tol, "%s: gradient of input %d off by %g", name, i, e);
        free(fd);
    }
    for (int i = 0; i < n_in; i++) free(d[i]);
    free(dG);
    free(yref);
}

typedef struct {
    int B, T, CH, KW, H, D;
    const int32_t *seg;
} OpShape;

static void conv_ref(double *const *in, double *y, const void *ctx) {
    const OpShape *s = ctx;
    ref_conv1d_silu(in[0], in[1], s->B, s->T, s->CH, s->KW, s->seg, y);
}

static Tensor *backward_through(Graph *g, Tensor *y, const Tensor *G) {
    Tensor *loss = op_weighted_sum(g, y, G);
    ck_assert_msg(loss && !graph_failed(g), "%s", graph_error(g));
    ck_assert_int_eq(graph_backward(g, loss, 1.0f), 0);
    return y;
}

START_TEST(test_conv1d_silu_matches_definition_packed) {
    uint64_t seed = 61;
    int B = 2, T = 40, CH = 6, KW = 4;
    int32_t seg[80];
    for (int i = 0; i < B * T; i++) seg[i] = i / T * 4 + (i % T >= 2) + (i % T >= 17 + i / T);
    OpShape s = {B, T, CH, KW, 0, 0, seg};
    Tensor *x = random_tensor(B * T, CH, -2.0f, 2.0f, true, &seed);
    Tensor *w = random_tensor(CH, KW, -1.0f, 1.0f, false, &seed);
    Tensor *G = random_tensor(B * T, CH, -1.0f, 1.0f, false, &seed);
    Graph *g = graph_create();
    Tensor *y = backward_through(g, op_causal_conv1d_silu(g, x, w, B, T, seg), G);
    check_op("conv1d", conv_ref, (Tensor *[]){x, w}, 2, y, G, &s, 3e-6);
    /* the generation step, from a zeroed window at row 0's start, gives the same bits */
    float window[6 * 3] = {0}, out[6];
    for (int t = 0; t < 2; t++) { /* row 0's first packed row is positions 0 and 1 */
        tensor_conv1d_silu_step(window, out, x->data + t * CH, w->data, CH, KW);
        ck_assert(memcmp(out, y->data + t * CH, sizeof out) == 0);
    }
    memset(window, 0, sizeof window);
    for (int t = 2; t < 17; t++) {
        tensor_conv1d_silu_step(window, out, x->data + t * CH, w->data, CH, KW);
        ck_assert_msg(memcmp(out, y->data + t * CH, sizeof out) == 0, "step %d", t);
    }
    graph_destroy(g);
    tensor_free(x);
    tensor_free(w);
    tensor_free(G);
}
END_TEST

static void l2_ref(double *const *in, double *y, const void *ctx) {
    const OpShape *s = ctx;
    ref_head_l2norm(in[0], s->T, s->H, s->D, 1e-6, 1.0 / sqrt(s->D), y);
}

static void gated_ref(double *const *in, double *y, const void *ctx) {
    const OpShape *s = ctx;
    ref_head_rmsnorm_gated(in[0], in[1], in[2], s->T, s->H, s->D, 1e-6, y);
}

static void decay_ref(double *const *in, double *y, const void *ctx) {
    const OpShape *s = ctx;
    ref_log_decay(in[0], in[1], in[2], s->T, s->H, y);
}

static void sigmoid_ref(double *const *in, double *y, const void *ctx) {
    const OpShape *s = ctx;
    for (int64_t i = 0; i < (int64_t)s->T * s->H; i++) y[i] = 1.0 / (1.0 + exp(-in[0][i]));
}

START_TEST(test_deltanet_norms_and_gates_match_definition) {
    uint64_t seed = 71;
    OpShape s = {1, 12, 0, 0, 3, 8, NULL}; /* 12 rows of 3 heads of 8 */
    Tensor *x = random_tensor(12, 24, -2.0f, 2.0f, true, &seed);
    Tensor *z = random_tensor(12, 24, -3.0f, 3.0f, true, &seed);
    Tensor *w = random_tensor(1, 8, 0.5f, 1.5f, false, &seed);
    Tensor *G = random_tensor(12, 24, -1.0f, 1.0f, false, &seed);
    Graph *g = graph_create();
    Tensor *y = backward_through(g, op_head_l2norm(g, x, 3, 1e-6f, 1.0f / sqrtf(8.0f)), G);
    check_op("l2norm", l2_ref, (Tensor *[]){x}, 1, y, G, &s, 3e-6);
    graph_reset(g);
    memset(x->grad, 0, (size_t)x->size * sizeof(float));
    Tensor *w8 = tensor_new(1, (int64_t[]){8}, false);
    memcpy(w8->data, w->data, 8 * sizeof(float));
    y = backward_through(g, op_head_rmsnorm_gated(g, x, z, 3, w8, 1e-6f), G);
    check_op("gated rmsnorm", gated_ref, (Tensor *[]){x, z, w}, 3, y, G, &s, 3e-6);

    OpShape sh = {1, 12, 0, 0, 4, 1, NULL}; /* a (12, 4): one u above 20 */
    Tensor *a = random_tensor(12, 4, -6.0f, 6.0f, true, &seed);
    a->data[5] = 25.0f;
    Tensor *a_log = tensor_new(1, (int64_t[]){4}, false),
           *dt = tensor_new(1, (int64_t[]){4}, false);
    for (int h = 0; h < 4; h++) {
        a_log->data[h] = logf(0.5f + (float)h);
        dt->data[h] = 0.3f * (float)h - 0.5f;
    }
    Tensor *Gh = random_tensor(12, 4, -1.0f, 1.0f, false, &seed);
    graph_reset(g);
    y = backward_through(g, op_deltanet_log_decay(g, a, a_log, dt), Gh);
    check_op("log decay", decay_ref, (Tensor *[]){a, a_log, dt}, 3, y, Gh, &sh, 3e-6);
    graph_reset(g);
    memset(a->grad, 0, (size_t)a->size * sizeof(float));
    y = backward_through(g, op_sigmoid(g, a), Gh);
    check_op("sigmoid", sigmoid_ref, (Tensor *[]){a}, 1, y, Gh, &sh, 3e-6);
    graph_destroy(g);
    Tensor *all[] = {x, z, w, G, w8, a, a_log, dt, Gh};
    for (int i = 0; i < 9; i++) tensor_free(all[i]);
}
END_TEST

Suite *tensor_deltanet_suite(void) {
    Suite *s = suite_create("tensor_deltanet");
    TCase *tc = tcase_create("reference");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_delta_reference_gradient_matches_finite_differences);
    tcase_add_test(tc, test_delta_rule_matches_token_reference_packed_gqa);
    tcase_add_test(tc, test_delta_rule_matches_token_reference_strong_decay);
    tcase_add_test(tc, test_delta_rule_matches_token_reference_decay_near_zero);
    tcase_add_test(tc, test_delta_rule_is_bit_identical_for_1_and_2_threads);
    tcase_add_test(tc, test_delta_packed_rows_equal_rows_alone);
    tcase_add_test(tc, test_delta_step_matches_chunked_forward);
    tcase_add_test(tc, test_delta_rule_refuses_bad_shapes);
    tcase_add_test(tc, test_conv1d_silu_matches_definition_packed);
    tcase_add_test(tc, test_deltanet_norms_and_gates_match_definition);
    suite_add_tcase(s, tc);
    return s;
}
