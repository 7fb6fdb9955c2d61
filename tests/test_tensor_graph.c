/* tests/test_tensor_graph.c — arenas, the tape, gradient accumulation, frozen tensors,
 * determinism across reruns and thread counts, and packed segments. */
#include "tensor/tensor.h"
#include "tests/test_util.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

START_TEST(test_arena_aligns_and_reset_keeps_chunks) {
    Arena *a = arena_create(1024);
    ck_assert_ptr_nonnull(a);
    for (int i = 0; i < 20; i++) {
        void *p = arena_alloc(a, (size_t)(i * 37 + 1));
        ck_assert_ptr_nonnull(p);
        ck_assert_uint_eq((uintptr_t)p % 64, 0);
        memset(p, 0xab, (size_t)(i * 37 + 1));
    }
    ck_assert_ptr_nonnull(arena_alloc(a, 5000)); /* larger than a chunk */
    size_t cap = arena_capacity(a), used = arena_used(a);
    ck_assert_uint_ge(cap, used);
    ck_assert_uint_ge(used, 5000);
    arena_reset(a);
    ck_assert_uint_eq(arena_used(a), 0);
    ck_assert_uint_eq(arena_capacity(a), cap);
    for (int i = 0; i < 20; i++) ck_assert_ptr_nonnull(arena_alloc(a, (size_t)(i * 37 + 1)));
    ck_assert_ptr_nonnull(arena_alloc(a, 5000));
    ck_assert_uint_eq(arena_capacity(a), cap); /* the same sequence fits the same chunks */
    ck_assert_uint_eq(arena_used(a), used);
    arena_destroy(a);
}
END_TEST

/* A miniature transformer step: embedding, RMSNorm, LoRA q/k/v, RoPE, GQA attention with
 * segments, LoRA o-projection, residual, SwiGLU MLP, LM head, cross-entropy. */
enum { V = 11, C = 12, NH = 4, NKV = 2, D = 4, R = 2, FF = 10, B = 2, T = 9, N = B * T };

typedef struct {
    Tensor *emb, *norm, *wq, *wk, *wv, *wo, *wg, *wu, *wd, *head; /* frozen */
    Tensor *A[4], *Bm[4];                                         /* LoRA on q, k, v, o */
    float cos_t[T * D / 2], sin_t[T * D / 2];
    int32_t ids[N], pos[N], seg[N], targets[N];
} Mini;

static Tensor *rnd(uint64_t *st, int ndim, const int64_t *shape, bool grad, float scale) {
    Tensor *t = tensor_new(ndim, shape, grad);
    ck_assert_ptr_nonnull(t);
    for (int64_t i = 0; i < t->size; i++) t->data[i] = scale * test_rand_uniform(st, -1, 1);
    return t;
}

static void mini_init(Mini *m) {
    uint64_t st = 77;
    m->emb = rnd(&st, 2, (int64_t[]){V, C}, false, 1);
    m->norm = rnd(&st, 1, (int64_t[]){C}, false, 1);
    m->wq = rnd(&st, 2, (int64_t[]){NH * D, C}, false, 0.5f);
    m->wk = rnd(&st, 2, (int64_t[]){NKV * D, C}, false, 0.5f);
    m->wv = rnd(&st, 2, (int64_t[]){NKV * D, C}, false, 0.5f);
    m->wo = rnd(&st, 2, (int64_t[]){C, NH * D}, false, 0.5f);
    m->wg = rnd(&st, 2, (int64_t[]){FF, C}, false, 0.5f);
    m->wu = rnd(&st, 2, (int64_t[]){FF, C}, false, 0.5f);
    m->wd = rnd(&st, 2, (int64_t[]){C, FF}, false, 0.5f);
    m->head = rnd(&st, 2, (int64_t[]){V, C}, false, 0.5f);
    const int out[4] = {NH * D, NKV * D, NKV * D, C}, in[4] = {C, C, C, NH * D};
    for (int i = 0; i < 4; i++) {
        m->A[i] = rnd(&st, 2, (int64_t[]){R, in[i]}, true, 0.3f);
        m->Bm[i] = rnd(&st, 2, (int64_t[]){out[i], R}, true, 0.3f);
    }
    for (int p = 0; p < T; p++)
        for (int i = 0; i < D / 2; i++) {
            m->cos_t[p * D / 2 + i] = cosf(p * powf(100.0f, -2.0f * i / D));
            m->sin_t[p * D / 2 + i] = sinf(p * powf(100.0f, -2.0f * i / D));
        }
    /* row 0: one document; row 1: documents of 4 and 5 tokens packed, positions restart */
    for (int n = 0; n < N; n++) {
        m->ids[n] = (int32_t)(test_rand_u64(&st) % V);
        m->targets[n] = n % 5 == 4 ? TENSOR_IGNORE_INDEX : (int32_t)(test_rand_u64(&st) % V);
        int t = n % T;
        m->seg[n] = n < T ? 0 : t < 4 ? 1 : 2;
        m->pos[n] = n < T ? t : t < 4 ? t : t - 4;
    }
}

static void mini_free(Mini *m) {
    Tensor *all[] = {m->emb, m->norm, m->wq, m->wk, m->wv, m->wo, m->wg, m->wu, m->wd, m->head};
    for (size_t i = 0; i < sizeof all / sizeof *all; i++) tensor_free(all[i]);
    for (int i = 0; i < 4; i++) tensor_free(m->A[i]), tensor_free(m->Bm[i]);
}

/* Forward + backward of the whole step; returns the loss (NAN on failure). attn_out, when
 * given, receives the attention output. */
static float mini_step(Mini *m, Graph *g, float dropout, Tensor **attn_out) {
    Tensor *x = op_embedding(g, m->emb, m->ids, N);
    Tensor *h = op_rmsnorm(g, x, m->norm, 1e-5f);
    Tensor *q = op_lora_linear(g, h, m->wq, NULL, m->A[0], m->Bm[0], 2.0f, dropout, 1);
    Tensor *k = op_lora_linear(g, h, m->wk, NULL, m->A[1], m->Bm[1], 2.0f, dropout, 2);
    Tensor *v = op_lora_linear(g, h, m->wv, NULL, m->A[2], m->Bm[2], 2.0f, dropout, 3);
    q = op_rope(g, q, NH, D, m->pos, m->cos_t, m->sin_t, T);
    k = op_rope(g, k, NKV, D, m->pos, m->cos_t, m->sin_t, T);
    Tensor *att = op_attention(g, q, k, v, B, T, NH, NKV, D, m->seg);
    if (attn_out) *attn_out = att;
    Tensor *o = op_lora_linear(g, att, m->wo, NULL, m->A[3], m->Bm[3], 2.0f, dropout, 4);
    x = op_add(g, x, op_dropout(g, o, dropout, 5));
    h = op_rmsnorm(g, x, m->norm, 1e-5f);
    Tensor *ff = op_swiglu(g, op_linear(g, h, m->wg, NULL), op_linear(g, h, m->wu, NULL));
    x = op_add(g, x, op_linear(g, ff, m->wd, NULL));
    Tensor *logits = op_linear(g, op_rmsnorm(g, x, m->norm, 1e-5f), m->head, NULL);
    int64_t count = 0;
    Tensor *loss = op_cross_entropy(g, logits, m->targets, &count);
    if (!loss || graph_failed(g)) return NAN;
    ck_assert_int_eq(graph_backward(g, loss, 1.0f / (float)count), 0);
    return loss->data[0];
}

static void zero_grads(Mini *m) {
    for (int i = 0; i < 4; i++) {
        memset(m->A[i]->grad, 0, (size_t)m->A[i]->size * sizeof(float));
        memset(m->Bm[i]->grad, 0, (size_t)m->Bm[i]->size * sizeof(float));
    }
}

/* All LoRA gradients, concatenated, into out (caller-sized by grad_count). */
static int64_t grad_count(const Mini *m) {
    int64_t n = 0;
    for (int i = 0; i < 4; i++) n += m->A[i]->size + m->Bm[i]->size;
    return n;
}
static void grads_copy(const Mini *m, float *out) {
    for (int i = 0; i < 4; i++) {
        memcpy(out, m->A[i]->grad, (size_t)m->A[i]->size * sizeof(float));
        out += m->A[i]->size;
        memcpy(out, m->Bm[i]->grad, (size_t)m->Bm[i]->size * sizeof(float));
        out += m->Bm[i]->size;
    }
}

START_TEST(test_second_step_allocates_nothing_and_repeats_bit_identically) {
    Mini m;
    mini_init(&m);
    Graph *g = graph_create();
    float l1 = mini_step(&m, g, 0.1f, NULL);
    ck_assert(isfinite(l1));
    size_t bytes = graph_arena_bytes(g);
    int64_t ng = grad_count(&m);
    float *g1 = malloc((size_t)ng * sizeof(float)), *g2 = malloc((size_t)ng * sizeof(float));
    grads_copy(&m, g1);
    for (int step = 0; step < 3; step++) {
        graph_reset(g);
        zero_grads(&m);
        float l2 = mini_step(&m, g, 0.1f, NULL);
        ck_assert_uint_eq(graph_arena_bytes(g), bytes);
        ck_assert_int_eq(memcmp(&l1, &l2, sizeof l1), 0);
        grads_copy(&m, g2);
        ck_assert_int_eq(memcmp(g1, g2, (size_t)ng * sizeof(float)), 0);
    }
    free(g1);
    free(g2);
    graph_destroy(g);
    mini_free(&m);
}
END_TEST

START_TEST(test_backward_twice_accumulates_and_frozen_grads_stay_null) {
    Mini m;
    mini_init(&m);
    Graph *g = graph_create();
    int64_t ng = grad_count(&m);
    float *g1 = malloc((size_t)ng * sizeof(float)), *g2 = malloc((size_t)ng * sizeof(float));
    mini_step(&m, g, 0.0f, NULL);
    grads_copy(&m, g1);
    double norm = 0.0;
    for (int64_t i = 0; i < ng; i++) norm += fabs(g1[i]);
    ck_assert(norm > 0.0);
    graph_reset(g);
    mini_step(&m, g, 0.0f, NULL); /* no zeroing: a second micro-batch adds */
    grads_copy(&m, g2);
    for (int64_t i = 0; i < ng; i++) ck_assert_float_eq(g2[i], 2.0f * g1[i]);
    Tensor *frozen[] = {m.emb, m.norm, m.wq, m.wk, m.wv, m.wo, m.wg, m.wu, m.wd, m.head};
    for (size_t i = 0; i < sizeof frozen / sizeof *frozen; i++) ck_assert_ptr_null(frozen[i]->grad);
    free(g1);
    free(g2);
    graph_destroy(g);
    mini_free(&m);
}
END_TEST

static void run_with_threads(Mini *m, int threads, float *loss, float *grads) {
    tensor_set_threads(threads);
    ck_assert_int_eq(tensor_threads(), threads);
    Graph *g = graph_create();
    zero_grads(m);
    *loss = mini_step(m, g, 0.2f, NULL);
    grads_copy(m, grads);
    graph_destroy(g);
}

/* Backward gives an op's output's gradient buffer back once the op's backward has run
 * (graph.c, reuse_dead_grads): a chain of 16 ops holds a few gradients at a time, not 16,
 * the leaf keeps its gradient for the caller, and the values are those of the chain rule. */
START_TEST(test_backward_reuses_dead_gradients) {
    enum { ROWS = 64, COLS = 256, OPS = 16 };
    Graph *g = graph_create();
    Tensor *x = graph_tensor(g, 2, (int64_t[]){ROWS, COLS}), *y = x, *made[OPS];
    x->requires_grad = true;
    for (int i = 0; i < ROWS * COLS; i++) x->data[i] = (float)(i % 7) - 3.0f;
    for (int k = 0; k < OPS; k++) made[k] = y = op_scale(g, y, 1.0f + 0.01f * (float)k);
    ck_assert(y != NULL);
    size_t bytes = (size_t)ROWS * COLS * sizeof(float), forward = graph_arena_used(g);
    ck_assert_int_eq(graph_backward(g, y, 1.0f), 0);
    size_t backward = graph_arena_used(g) - forward;
    ck_assert_msg(backward <= 3 * bytes + 4096,
                  "backward took %zu bytes for gradients of %zu each (%d ops)", backward, bytes,
                  OPS);
    float expect = 1.0f;
    for (int k = OPS - 1; k >= 0; k--) expect = (1.0f + 0.01f * (float)k) * expect;
    ck_assert_ptr_nonnull(x->grad);
    for (int i = 0; i < ROWS * COLS; i++) ck_assert_float_eq(x->grad[i], expect);
    for (int k = 0; k < OPS; k++) ck_assert_ptr_null(made[k]->grad);
    graph_destroy(g);
}
END_TEST

START_TEST(test_results_bit_identical_per_thread_count) {
    Mini m;
    mini_init(&m);
    int64_t ng = grad_count(&m);
    float *ga = malloc((size_t)ng * sizeof(float)), *gb = malloc((size_t)ng * sizeof(float));
    float la, lb, l1 = 0;
    for (int threads = 1; threads <= 2; threads++) {
        run_with_threads(&m, threads, &la, ga);
        run_with_threads(&m, threads, &lb, gb);
        ck_assert_int_eq(memcmp(&la, &lb, sizeof la), 0);
        ck_assert_int_eq(memcmp(ga, gb, (size_t)ng * sizeof(float)), 0);
        if (threads == 1)
            l1 = la;
        else
            ck_assert(fabsf(la - l1) <= 1e-5f * fabsf(l1)); /* same maths, maybe other rounding */
    }
    tensor_set_threads(0);
    free(ga);
    free(gb);
    mini_free(&m);
}
END_TEST

START_TEST(test_packed_segment_matches_running_it_alone) {
    /* Row 1 of the mini batch packs documents of 4 and 5 tokens. Attention outputs of the
     * second document must equal a run of that document alone, positions from 0. */
    Mini m;
    mini_init(&m);
    Graph *g = graph_create();
    Tensor *packed = NULL;
    mini_step(&m, g, 0.0f, &packed);
    ck_assert_ptr_nonnull(packed);

    enum { L = 5 };
    Graph *g2 = graph_create();
    const int32_t *ids = m.ids + T + 4, *pos = m.pos + T + 4;
    for (int i = 0; i < L; i++) ck_assert_int_eq(pos[i], i);
    Tensor *x = op_embedding(g2, m.emb, ids, L);
    Tensor *h = op_rmsnorm(g2, x, m.norm, 1e-5f);
    Tensor *q = op_lora_linear(g2, h, m.wq, NULL, m.A[0], m.Bm[0], 2.0f, 0.0f, 1);
    Tensor *k = op_lora_linear(g2, h, m.wk, NULL, m.A[1], m.Bm[1], 2.0f, 0.0f, 2);
    Tensor *v = op_lora_linear(g2, h, m.wv, NULL, m.A[2], m.Bm[2], 2.0f, 0.0f, 3);
    q = op_rope(g2, q, NH, D, pos, m.cos_t, m.sin_t, T);
    k = op_rope(g2, k, NKV, D, pos, m.cos_t, m.sin_t, T);
    Tensor *alone = op_attention(g2, q, k, v, 1, L, NH, NKV, D, NULL);
    ck_assert_ptr_nonnull(alone);
    const float *tail = packed->data + (int64_t)(T + 4) * NH * D;
    for (int i = 0; i < L * NH * D; i++)
        ck_assert_msg(fabsf(tail[i] - alone->data[i]) <= 1e-5f, "element %d: %g vs %g", i, tail[i],
                      alone->data[i]);
    graph_destroy(g2);
    graph_destroy(g);
    mini_free(&m);
}
END_TEST

START_TEST(test_failed_graph_propagates_null_and_backward_refuses) {
    Graph *g = graph_create();
    Tensor *a = graph_tensor(g, 2, (int64_t[]){2, 3});
    Tensor *b = graph_tensor(g, 2, (int64_t[]){3, 2});
    ck_assert_str_eq(graph_error(g), "");
    ck_assert_ptr_null(op_add(g, a, b));
    ck_assert(graph_failed(g));
    /* The first failure is the one reported: the op and both shapes. */
    ck_assert_str_eq(graph_error(g),
                     "op_add: a (2, 3) and b (3, 2) differ in shape (or are not F32)");
    ck_assert_ptr_null(op_swiglu(g, op_add(g, a, b), a));
    ck_assert_int_eq(graph_backward(g, a, 1.0f), -1);
    ck_assert_str_eq(graph_error(g),
                     "op_add: a (2, 3) and b (3, 2) differ in shape (or are not F32)");
    graph_reset(g);
    ck_assert(!graph_failed(g));
    ck_assert_str_eq(graph_error(g), "");
    /* A linear whose W does not fit x names the op and the shapes. */
    Tensor *x = graph_tensor(g, 2, (int64_t[]){4, 8});
    Tensor w;
    float wd[16 * 7];
    tensor_init(&w, wd, 2, (int64_t[]){16, 7});
    ck_assert_ptr_null(op_linear(g, x, &w, NULL));
    ck_assert_str_eq(graph_error(g), "op_linear: x (4, 8), W (16, 7) and b none do not match "
                                     "(need x (N, IN), W (OUT, IN))");
    graph_destroy(g);
}
END_TEST

/* This process's resident pages (/proc/self/statm). */
static long resident_pages(void) {
    FILE *f = fopen("/proc/self/statm", "r");
    long size = 0, resident = -1;
    ck_assert(f && fscanf(f, "%ld %ld", &size, &resident) == 2);
    fclose(f);
    return resident;
}

/* graph_release gives a touched arena's pages back and the graph works on afterwards (the
 * chunks kept: the same tensor address, the same results). A count of pages, not a time. */
START_TEST(test_release_returns_the_arena_pages) {
    Graph *g = graph_create();
    const int64_t n = (int64_t)16 << 20; /* 64 MiB of floats */
    Tensor *t = graph_tensor(g, 1, &n);
    ck_assert(t != NULL);
    memset(t->data, 1, (size_t)n * sizeof(float));
    long page = sysconf(_SC_PAGESIZE), touched = resident_pages();
    float *at = t->data;
    graph_release(g);
    long released = touched - resident_pages();
    ck_assert_msg(released * page >= (60L << 20), "only %ld KiB given back",
                  released * page / 1024);
    t = graph_tensor(g, 1, &n);
    ck_assert(t != NULL && t->data == at);
    ck_assert(t->data[0] == 0.0f && t->data[n - 1] == 0.0f); /* fresh zero pages */
    graph_destroy(g);
}
END_TEST

Suite *tensor_graph_suite(void) {
    Suite *s = suite_create("tensor_graph");
    TCase *tc = tcase_create("graph");
    tcase_add_test(tc, test_arena_aligns_and_reset_keeps_chunks);
    tcase_add_test(tc, test_release_returns_the_arena_pages);
    tcase_add_test(tc, test_second_step_allocates_nothing_and_repeats_bit_identically);
    tcase_add_test(tc, test_backward_twice_accumulates_and_frozen_grads_stay_null);
    tcase_add_test(tc, test_backward_reuses_dead_gradients);
    tcase_add_test(tc, test_results_bit_identical_per_thread_count);
    tcase_add_test(tc, test_packed_segment_matches_running_it_alone);
    tcase_add_test(tc, test_failed_graph_propagates_null_and_backward_refuses);
    suite_add_tcase(s, tc);
    return s;
}
