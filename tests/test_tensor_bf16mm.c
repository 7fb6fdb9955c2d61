/* tests/test_tensor_bf16mm.c — TENSOR_PRECISION_BF16: the frozen model's products take
 * bf16-rounded inputs and accumulate in f32, each op against a double reference computed
 * from the rounded inputs; gradients stay within bf16 tolerance of the F32 ones; results are
 * bit-identical run to run and across 1 and 2 threads; the CPU-feature override picks the
 * kernel. On CPUs without native bf16 this runs the emulation (OpenBLAS sgemm on rounded
 * values); LORAFIT_BF16_EMULATION=onednn also runs oneDNN's f32 matmul through the same
 * primitive cache, strides, scales and accumulation the native kernels use.
 *
 * Tolerances. A product of two bf16 values is exact in f32 (8 + 8 significant bits), so the
 * only error left against a double reference on the same rounded inputs is the f32
 * summation: for K terms in any order, |error| <= K * 2^-24 * sum |terms| (one rounding per
 * addition, plus one for the output and one for beta = 1). Without the rounding of the
 * inputs the error would be up to 2^-8 per term (bf16 keeps 8 significant bits), far above that
 * bound (test_..._rounds_inputs checks that the bound does tell the two apart). Where an op rounds
 * a value it computed itself in f32 (the softmax P and dS in attention, softmax - onehot in the
 * lm_head), f32 and double may round to neighbouring bf16 values; those are checked against the F32
 * precision result with a norm-relative tolerance of 2e-2: each rounding is a relative
 * change of at most 2^-8 = 3.9e-3, and a sum of K rounded terms moves by that times about
 * sqrt(K) / K of its magnitude, so 2e-2 is several times what bf16 can explain and far
 * below what a wrong gradient (a missing term, a wrong sign) gives. */
#include <math.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>

#include "tensor/matmul.h"
#include "tensor/tensor.h"
#include "tests/test_bf16mm.h"
#include "tests/test_tensor_ref.h"
#include "tests/test_util.h"

/* ---- linear and LoRA linear ---- */

typedef struct {
    int n, in, out, r;
    Tensor *x, *w, *b, *A, *B, *dy; /* dy: the upstream gradient, through op_weighted_sum */
} LinCase;

static LinCase lin_case(int n, int in, int out, int r, uint64_t seed) {
    LinCase c = {n,
                 in,
                 out,
                 r,
                 random_tensor(n, in, true, seed, 1.0f),
                 random_tensor(out, in, false, seed + 1, 0.5f),
                 random_tensor(1, out, false, seed + 2, 0.5f),
                 random_tensor(r, in, true, seed + 3, 0.3f),
                 random_tensor(out, r, true, seed + 4, 0.3f),
                 random_tensor(n, out, false, seed + 5, 1.0f)};
    c.b->ndim = 1, c.b->shape[0] = out;
    return c;
}

static void lin_free(LinCase *c) {
    tensor_free(c->x), tensor_free(c->w), tensor_free(c->b), tensor_free(c->A), tensor_free(c->B);
    tensor_free(c->dy);
}

/* y and the gradients of one run; lora false = op_linear. */
typedef struct {
    float *y, *dx, *dA, *dB;
} LinRun;

static LinRun lin_run(LinCase *c, Graph *g, const Tensor *w, bool lora, float dropout) {
    memset(c->x->grad, 0, (size_t)c->x->size * sizeof(float));
    memset(c->A->grad, 0, (size_t)c->A->size * sizeof(float));
    memset(c->B->grad, 0, (size_t)c->B->size * sizeof(float));
    Tensor *y = lora ? op_lora_linear(g, c->x, w, c->b, c->A, c->B, 2.0f, dropout, 7)
                     : op_linear(g, c->x, w, c->b);
    Tensor *s = op_weighted_sum(g, y, c->dy);
    ck_assert(s && !graph_failed(g));
    ck_assert_int_eq(graph_backward(g, s, 1.0f), 0);
    LinRun run = {copy_of(y->data, y->size), copy_of(c->x->grad, c->x->size),
                  copy_of(c->A->grad, c->A->size), copy_of(c->B->grad, c->B->size)};
    graph_reset(g);
    return run;
}

static void run_free(LinRun *r) {
    free(r->y), free(r->dx), free(r->dA), free(r->dB);
}

/* Max over elements of |got - ref| / (K * 2^-24 * sum |terms| + 2^-30), ref and the bound
 * of y = x W^T + b from rounded x and W (what BF16 precision promises). <= 1 passes. */
static double linear_forward_excess(const LinCase *c, const float *y) {
    double worst = 0;
    for (int i = 0; i < c->n; i++)
        for (int o = 0; o < c->out; o++) {
            double ref = c->b->data[o], mag = fabs(ref);
            for (int k = 0; k < c->in; k++) {
                double t = (double)ref_bf16(c->x->data[i * c->in + k]) *
                           ref_bf16(c->w->data[o * c->in + k]);
                ref += t, mag += fabs(t);
            }
            double bound = (c->in + 3) * 0x1p-24 * mag + 0x1p-30;
            worst = fmax(worst, fabs(y[i * c->out + o] - ref) / bound);
        }
    return worst;
}

/* The same for dx = dy W. */
static double linear_backward_excess(const LinCase *c, const float *dx) {
    double worst = 0;
    for (int i = 0; i < c->n; i++)
        for (int k = 0; k < c->in; k++) {
            double ref = 0, mag = 0;
            for (int o = 0; o < c->out; o++) {
                double t = (double)ref_bf16(c->dy->data[i * c->out + o]) *
                           ref_bf16(c->w->data[o * c->in + k]);
                ref += t, mag += fabs(t);
            }
            double bound = (c->out + 3) * 0x1p-24 * mag + 0x1p-30;
            worst = fmax(worst, fabs(dx[i * c->in + k] - ref) / bound);
        }
    return worst;
}

START_TEST(test_bf16_linear_matches_rounded_reference_and_rounds_inputs) {
    LinCase c = lin_case(37, 70, 45, 4, 11);
    Bf16Weight wb = bf16_weight(c.w);
    Graph *g = bf16_graph(), *gf = graph_create();
    LinRun a = lin_run(&c, g, &wb.t, false, 0.0f); /* BF16 weight used in place */
    LinRun b = lin_run(&c, g, c.w, false, 0.0f);   /* F32 weight rounded by the op */
    LinRun f = lin_run(&c, gf, c.w, false, 0.0f);  /* F32 precision */
    ck_assert_msg(linear_forward_excess(&c, a.y) <= 1.0, "y off by %g bounds",
                  linear_forward_excess(&c, a.y));
    ck_assert_msg(linear_backward_excess(&c, a.dx) <= 1.0, "dx off by %g bounds",
                  linear_backward_excess(&c, a.dx));
    ck_assert(memcmp(a.y, b.y, (size_t)c.n * c.out * sizeof(float)) == 0);
    ck_assert(memcmp(a.dx, b.dx, (size_t)c.n * c.in * sizeof(float)) == 0);
    /* The bound tells rounded from unrounded inputs apart: F32 precision exceeds it. */
    ck_assert_msg(linear_forward_excess(&c, f.y) > 10.0, "F32 y within the bf16 bound");
    ck_assert_msg(linear_backward_excess(&c, f.dx) > 10.0, "F32 dx within the bf16 bound");
    run_free(&a), run_free(&b), run_free(&f);
    graph_destroy(g), graph_destroy(gf);
    free(wb.bits);
    lin_free(&c);
}
END_TEST

/* LoRA's term and gradients from the double sums of what BF16 precision rounds on CPUs with
 * VDPBF16PS (thin_bf16): h = s x A^T from rounded x and A, the term y - (x W^T + b) =
 * s h B^T with h and B unrounded; dh = s dy B from rounded dy and B; dB = s dy^T h from
 * rounded dy and h (the reference's h, rounded); dA = dh^T x from rounded dh and x. */
typedef struct {
    double *term, *dA, *dB;
} LoraRef;

static LoraRef lora_ref(const LinCase *c, double s) {
    int n = c->n, in = c->in, out = c->out, r = c->r;
    LoraRef ref = {calloc((size_t)n * out, sizeof(double)), calloc((size_t)r * in, sizeof(double)),
                   calloc((size_t)out * r, sizeof(double))};
    double *h = calloc((size_t)n * r, sizeof(double)), *dh = calloc((size_t)n * r, sizeof(double));
    ck_assert(ref.term && ref.dA && ref.dB && h && dh);
    const float *x = c->x->data, *A = c->A->data, *B = c->B->data, *dy = c->dy->data;
    for (int i = 0; i < n; i++)
        for (int j = 0; j < r; j++) {
            for (int t = 0; t < in; t++)
                h[i * r + j] += (double)ref_bf16(x[i * in + t]) * ref_bf16(A[j * in + t]);
            for (int o = 0; o < out; o++)
                dh[i * r + j] += s * (double)ref_bf16(dy[i * out + o]) * ref_bf16(B[o * r + j]);
        }
    for (int i = 0; i < n; i++)
        for (int o = 0; o < out; o++)
            for (int j = 0; j < r; j++) {
                ref.term[i * out + o] += s * (float)h[i * r + j] * B[o * r + j];
                ref.dB[o * r + j] +=
                    s * (double)ref_bf16(dy[i * out + o]) * ref_bf16((float)h[i * r + j]);
            }
    for (int j = 0; j < r; j++)
        for (int t = 0; t < in; t++)
            for (int i = 0; i < n; i++)
                ref.dA[j * in + t] +=
                    (double)ref_bf16((float)dh[i * r + j]) * ref_bf16(x[i * in + t]);
    free(h);
    free(dh);
    return ref;
}

static double worst_term_diff(const LinRun *run, const LinRun *base, const double *term,
                              int64_t n) {
    double worst = 0;
    for (int64_t i = 0; i < n; i++)
        worst = fmax(worst, fabs(((double)run->y[i] - base->y[i]) - term[i]));
    return worst;
}

static double norm_rel_d(const float *a, const double *ref, int64_t n) {
    double d = 0, r = 0;
    for (int64_t i = 0; i < n; i++) d += (a[i] - ref[i]) * (a[i] - ref[i]), r += ref[i] * ref[i];
    ck_assert(r > 0);
    return sqrt(d / r);
}

START_TEST(test_bf16_lora_linear_rounds_what_autocast_rounds) {
    LinCase c = lin_case(29, 48, 40, 4, 23);
    Bf16Weight wb = bf16_weight(c.w);
    Graph *g = bf16_graph(), *gf = graph_create();
    bool dot = graph_matmul_native_bf16(g) && thin_bf16();
    LoraRef ref = lora_ref(&c, 2.0);
    for (int drop = 0; drop < 2; drop++) {
        float p = drop ? 0.25f : 0.0f;
        LinRun a = lin_run(&c, g, &wb.t, true, p);
        LinRun f = lin_run(&c, gf, c.w, true, p);
        LinRun base = lin_run(&c, g, &wb.t, false, 0.0f);
        LinRun basef = lin_run(&c, gf, c.w, false, 0.0f);
        /* dx = dy W (rounded) + LoRA part: bf16 tolerance against F32 precision. */
        double rel = norm_rel(a.dx, f.dx, c.x->size);
        ck_assert_msg(rel <= 2e-2 && rel > 0, "dx relative difference %g", rel);
        /* y - (x W^T + b) is the LoRA term (|y| <= ~20: 2e-5 absolute covers the roundings
         * of y and of the base, and of h). */
        if (dot && !drop) {
            /* Rounded where autocast rounds (x and A into h; dy with B and h; dh with x):
             * each within f32 summation of its reference (and where h or dh in f32 and in
             * double round to neighbouring bf16 values), and F32 precision's, which rounds
             * nothing, off by about 2^-9 relative, so the checks tell the two apart. */
            double worst = worst_term_diff(&a, &base, ref.term, (int64_t)c.n * c.out);
            ck_assert_msg(worst <= 2e-5, "LoRA term off the rounded reference by %g", worst);
            ck_assert(worst_term_diff(&f, &basef, ref.term, (int64_t)c.n * c.out) > 1e-4);
            ck_assert_msg(norm_rel_d(a.dA, ref.dA, c.A->size) <= 2e-4, "dA off by %g",
                          norm_rel_d(a.dA, ref.dA, c.A->size));
            ck_assert_msg(norm_rel_d(a.dB, ref.dB, c.B->size) <= 2e-4, "dB off by %g",
                          norm_rel_d(a.dB, ref.dB, c.B->size));
            ck_assert(norm_rel_d(f.dA, ref.dA, c.A->size) > 5e-4);
            ck_assert(norm_rel_d(f.dB, ref.dB, c.B->size) > 5e-4);
        } else {
            /* With dropout the forward's h = drop(x) A^T is f32 (the dropped x has no bf16
             * copy); on CPUs without VDPBF16PS all of LoRA is: F32 precision's term, and its
             * dA and dB to f32 summation order there, to bf16 tolerance with dropout (backward
             * rounds dy, B, h, dh and the dropped x). */
            double worst = 0;
            for (int64_t i = 0; i < (int64_t)c.n * c.out; i++)
                worst = fmax(worst, fabs((a.y[i] - base.y[i]) - (f.y[i] - basef.y[i])));
            ck_assert_msg(worst <= 2e-5, "LoRA term differs by %g", worst);
            double tol = dot ? 2e-2 : 1e-6;
            ck_assert(norm_rel(a.dA, f.dA, c.A->size) <= tol);
            ck_assert(norm_rel(a.dB, f.dB, c.B->size) <= tol);
        }
        run_free(&a), run_free(&f), run_free(&base), run_free(&basef);
    }
    free(ref.term), free(ref.dA), free(ref.dB);
    graph_destroy(g), graph_destroy(gf);
    free(wb.bits);
    lin_free(&c);
}
END_TEST

/* W (OUT, IN) as bits with room for a LoRA of rank r (Tensor.room): (OUT + r) rows of
 * IN + r, the room filled with NaNs, which the op must overwrite before reading any. */
static Bf16Weight bf16_weight_with_room(const Tensor *w, int r) {
    int64_t out = w->shape[0], in = w->shape[1], ld = in + r;
    Bf16Weight b = {malloc((size_t)(out + r) * ld * sizeof(uint16_t)), {0}};
    ck_assert(b.bits);
    for (int64_t i = 0; i < (out + r) * ld; i++) b.bits[i] = 0x7fc0; /* NaN */
    for (int64_t o = 0; o < out; o++)
        tensor_float_to_bf16_array(b.bits + o * ld, w->data + o * in, in);
    tensor_init_bf16(&b.t, b.bits, w->ndim, w->shape);
    b.t.room = r;
    return b;
}

static void lora_term(const LinRun *a, const LinRun *base, int64_t ny, int64_t nx, float *ty,
                      float *tx) {
    for (int64_t i = 0; i < ny; i++) ty[i] = a->y[i] - base->y[i];
    for (int64_t i = 0; i < nx; i++) tx[i] = a->dx[i] - base->dx[i];
}

/* In W's room (graph_lora_uses_room) LoRA's spreads ride in the products with W: the same
 * dA and dB bits (the same h, dh and dy operand, only strided), y's and dx's LoRA terms
 * those of the separate passes to bf16 rounding of s h, B, dh and A (and not NaN: the room's
 * unwritten parts never read); op_linear on such a W gives the same bits as on a plain one,
 * in BF16 and in F32 precision. */
START_TEST(test_bf16_lora_linear_in_room_matches_separate_passes) {
    Graph *g = bf16_graph(), *gf = graph_create();
    if (!graph_lora_uses_room(g)) {
        graph_destroy(g), graph_destroy(gf);
        test_skip(__func__, "no AVX512-BF16 oneDNN kernels: LoRA never goes into W's room");
        return;
    }
    LinCase c = lin_case(37, 48, 40, 4, 31);
    Bf16Weight plain = bf16_weight(c.w), roomy = bf16_weight_with_room(c.w, c.r);
    int64_t ny = (int64_t)c.n * c.out, nx = c.x->size;
    LinRun a = lin_run(&c, g, &roomy.t, true, 0.0f), p = lin_run(&c, g, &plain.t, true, 0.0f);
    LinRun base = lin_run(&c, g, &plain.t, false, 0.0f);
    LinRun base_room = lin_run(&c, g, &roomy.t, false, 0.0f);
    ck_assert(memcmp(base.y, base_room.y, (size_t)ny * sizeof(float)) == 0);
    ck_assert(memcmp(base.dx, base_room.dx, (size_t)nx * sizeof(float)) == 0);
    ck_assert(memcmp(a.dA, p.dA, (size_t)c.A->size * sizeof(float)) == 0);
    ck_assert(memcmp(a.dB, p.dB, (size_t)c.B->size * sizeof(float)) == 0);
    float *ty = malloc((size_t)ny * sizeof(float)), *tx = malloc((size_t)nx * sizeof(float));
    float *py = malloc((size_t)ny * sizeof(float)), *px = malloc((size_t)nx * sizeof(float));
    ck_assert(ty && tx && py && px);
    lora_term(&a, &base, ny, nx, ty, tx);
    lora_term(&p, &base, ny, nx, py, px);
    double ry = norm_rel(ty, py, ny), rx = norm_rel(tx, px, nx);
    ck_assert_msg(ry > 0 && ry <= 1e-2, "y's LoRA term off by %g", ry);
    ck_assert_msg(rx > 0 && rx <= 1e-2, "dx's LoRA term off by %g", rx);
    LinRun f = lin_run(&c, gf, &plain.t, false, 0.0f), fr = lin_run(&c, gf, &roomy.t, false, 0.0f);
    ck_assert(memcmp(f.y, fr.y, (size_t)ny * sizeof(float)) == 0);
    ck_assert(memcmp(f.dx, fr.dx, (size_t)nx * sizeof(float)) == 0);
    run_free(&a), run_free(&p), run_free(&base), run_free(&base_room), run_free(&f), run_free(&fr);
    free(ty), free(tx), free(py), free(px), free(plain.bits), free(roomy.bits);
    graph_destroy(g), graph_destroy(gf);
    lin_free(&c);
}
END_TEST

/* At THIN_TEAM_ROWS rows and more LoRA's small loops (B into W's room, the quads of A and B,
 * the pairs of h and dh, dB's transpose) run on the team: the same bits as one thread. */
START_TEST(test_bf16_lora_linear_in_room_same_bits_per_thread_count) {
    Graph *g = bf16_graph();
    if (!graph_lora_uses_room(g)) {
        graph_destroy(g);
        test_skip(__func__, "no AVX512-BF16 oneDNN kernels: LoRA never goes into W's room");
        return;
    }
    LinCase c = lin_case(THIN_TEAM_ROWS + 45, THIN_TEAM_ROWS + 19, THIN_TEAM_ROWS + 33, 4, 41);
    Bf16Weight roomy = bf16_weight_with_room(c.w, c.r);
    int threads = tensor_threads();
    tensor_set_threads(1);
    LinRun one = lin_run(&c, g, &roomy.t, true, 0.0f);
    tensor_set_threads(threads > 1 ? threads : 2);
    LinRun team = lin_run(&c, g, &roomy.t, true, 0.0f);
    tensor_set_threads(threads);
    ck_assert(memcmp(one.y, team.y, (size_t)c.n * c.out * sizeof(float)) == 0);
    ck_assert(memcmp(one.dx, team.dx, (size_t)c.x->size * sizeof(float)) == 0);
    ck_assert(memcmp(one.dA, team.dA, (size_t)c.A->size * sizeof(float)) == 0);
    ck_assert(memcmp(one.dB, team.dB, (size_t)c.B->size * sizeof(float)) == 0);
    run_free(&one), run_free(&team);
    free(roomy.bits);
    graph_destroy(g);
    lin_free(&c);
}
END_TEST

/* In W's room dA = dh^T x reads the bf16 operand of x the forward pass made (mm_keep_input):
 * a second LoRA linear on another input, whose conversion would reuse that buffer, leaves the
 * first one's dA bit for bit what it is alone. */
START_TEST(test_bf16_lora_linear_in_room_keeps_x_for_da) {
    Graph *g = bf16_graph();
    if (!graph_lora_uses_room(g)) {
        graph_destroy(g);
        test_skip(__func__, "no AVX512-BF16 oneDNN kernels: LoRA never goes into W's room");
        return;
    }
    LinCase c = lin_case(37, 48, 40, 4, 51), other = lin_case(37, 48, 40, 4, 61);
    Bf16Weight roomy = bf16_weight_with_room(c.w, c.r);
    LinRun alone = lin_run(&c, g, &roomy.t, true, 0.0f);
    memset(c.A->grad, 0, (size_t)c.A->size * sizeof(float));
    Tensor *y1 = op_lora_linear(g, c.x, &roomy.t, c.b, c.A, c.B, 2.0f, 0.0f, 7);
    Tensor *y2 = op_lora_linear(g, other.x, &roomy.t, c.b, other.A, other.B, 2.0f, 0.0f, 7);
    Tensor *s = op_add(g, op_weighted_sum(g, y1, c.dy), op_weighted_sum(g, y2, c.dy));
    ck_assert(s && !graph_failed(g));
    ck_assert_int_eq(graph_backward(g, s, 1.0f), 0);
    ck_assert(memcmp(alone.dA, c.A->grad, (size_t)c.A->size * sizeof(float)) == 0);
    graph_reset(g);
    run_free(&alone);
    free(roomy.bits);
    graph_destroy(g);
    lin_free(&c), lin_free(&other);
}
END_TEST

/* ---- lm_head + cross-entropy ---- */

START_TEST(test_bf16_lm_head_matches_rounded_reference) {
    int n = 20, C = 24, V = 5000; /* V > one vocabulary block (4096) */
    Tensor *x = random_tensor(n, C, true, 41, 1.0f), *w = random_tensor(V, C, false, 42, 0.5f);
    int32_t targets[20];
    uint64_t seed = 43;
    for (int i = 0; i < n; i++)
        targets[i] = i % 4 == 3 ? TENSOR_IGNORE_INDEX : (int32_t)(test_rand_u64(&seed) % V);
    Bf16Weight wb = bf16_weight(w);
    Graph *g = bf16_graph(), *gf = graph_create();
    float losses[2], *dx[2];
    for (int run = 0; run < 2; run++) {
        memset(x->grad, 0, (size_t)x->size * sizeof(float));
        int64_t count = 0;
        Graph *gg = run ? gf : g;
        Tensor *l = op_lm_head_cross_entropy(gg, x, run ? w : &wb.t, targets, &count);
        ck_assert(l && count == 15);
        ck_assert_int_eq(graph_backward(gg, l, 1.0f), 0);
        losses[run] = l->data[0];
        dx[run] = copy_of(x->grad, x->size);
    }
    /* loss = sum over rows of lse(l) - l[t], l from rounded x and W; an error e in every
     * logit moves a row's loss by at most 2e: bound = rows * 2 * (C+2) 2^-24 max sum|terms|,
     * plus the f32 rounding of the summed loss. */
    double ref = 0, ref_exact = 0, maxmag = 0;
    double *l = malloc((size_t)V * sizeof *l), *le = malloc((size_t)V * sizeof *le);
    ck_assert(l && le);
    for (int i = 0; i < n; i++) {
        if (targets[i] == TENSOR_IGNORE_INDEX) continue;
        double mx = -1e300, mxe = -1e300, se = 0, see = 0;
        for (int j = 0; j < V; j++) {
            double acc = 0, mag = 0, acce = 0;
            for (int k = 0; k < C; k++) {
                double t = (double)ref_bf16(x->data[i * C + k]) * ref_bf16(w->data[j * C + k]);
                acc += t, mag += fabs(t), acce += (double)x->data[i * C + k] * w->data[j * C + k];
            }
            l[j] = acc, le[j] = acce, maxmag = fmax(maxmag, mag);
            mx = fmax(mx, acc), mxe = fmax(mxe, acce);
        }
        for (int j = 0; j < V; j++) se += exp(l[j] - mx), see += exp(le[j] - mxe);
        ref += mx + log(se) - l[targets[i]];
        ref_exact += mxe + log(see) - le[targets[i]];
    }
    double bound = 15 * 2 * (C + 2) * 0x1p-24 * maxmag + 2 * 0x1p-24 * fabs(ref);
    ck_assert_msg(fabs(losses[0] - ref) <= bound, "loss %.9g, reference %.9g (bound %g)", losses[0],
                  ref, bound);
    ck_assert_msg(fabs(losses[1] - ref) > bound, "F32 precision within the bf16 bound");
    ck_assert(fabs(losses[1] - ref_exact) <= bound);
    ck_assert(norm_rel(dx[0], dx[1], x->size) <= 2e-2);
    free(l), free(le), free(dx[0]), free(dx[1]), free(wb.bits);
    graph_destroy(g), graph_destroy(gf);
    tensor_free(x), tensor_free(w);
}
END_TEST

/* ---- determinism and kernels ---- */

/* A small block of a model: q/k/v LoRA linears, attention, an o linear, the lm_head.
 * Returns the loss and (in *grads, allocated) dA and dB of the q LoRA concatenated. */
static float tiny_step(Graph *g, float **grads, int64_t *ngrads) {
    int B = 2, T = 80, C = 48, NH = 4, NKV = 2, D = 12, V = 300, R = 4;
    int64_t n = (int64_t)B * T;
    Tensor *x = random_tensor(n, C, false, 51, 1.0f);
    Tensor *wq = random_tensor(NH * D, C, false, 52, 0.3f),
           *wk = random_tensor(NKV * D, C, false, 53, 0.3f);
    Tensor *wv = random_tensor(NKV * D, C, false, 54, 0.3f),
           *wo = random_tensor(C, NH * D, false, 55, 0.3f);
    Tensor *wh = random_tensor(V, C, false, 56, 0.3f);
    Tensor *A = random_tensor(R, C, true, 57, 0.2f), *Bq = random_tensor(NH * D, R, true, 58, 0.2f);
    Bf16Weight bq = bf16_weight(wq), bk = bf16_weight(wk), bv = bf16_weight(wv),
               bo = bf16_weight(wo);
    Bf16Weight bh = bf16_weight(wh);
    int32_t *targets = malloc((size_t)n * sizeof *targets);
    uint64_t seed = 59;
    for (int64_t i = 0; i < n; i++) targets[i] = (int32_t)(test_rand_u64(&seed) % V);
    Tensor *q = op_lora_linear(g, x, &bq.t, NULL, A, Bq, 2.0f, 0.1f, 3);
    Tensor *k = op_linear(g, x, &bk.t, NULL), *v = op_linear(g, x, &bv.t, NULL);
    Tensor *o = op_linear(g, op_attention(g, q, k, v, B, T, NH, NKV, D, NULL), &bo.t, NULL);
    int64_t count = 0;
    Tensor *loss = op_lm_head_cross_entropy(g, op_add(g, o, x), &bh.t, targets, &count);
    ck_assert(loss && !graph_failed(g));
    ck_assert_int_eq(graph_backward(g, loss, 1.0f / (float)count), 0);
    *ngrads = A->size + Bq->size;
    *grads = malloc((size_t)*ngrads * sizeof(float));
    memcpy(*grads, A->grad, (size_t)A->size * sizeof(float));
    memcpy(*grads + A->size, Bq->grad, (size_t)Bq->size * sizeof(float));
    float l = loss->data[0];
    graph_reset(g);
    Tensor *all[] = {x, wq, wk, wv, wo, wh, A, Bq};
    for (size_t i = 0; i < sizeof all / sizeof *all; i++) tensor_free(all[i]);
    free(bq.bits), free(bk.bits), free(bv.bits), free(bo.bits), free(bh.bits), free(targets);
    return l;
}

static void check_deterministic(void) {
    int saved = tensor_threads();
    float *g1, *g2, *g3, *gf;
    int64_t n;
    Graph *g = bf16_graph(), *f = graph_create();
    tensor_set_threads(2);
    float l1 = tiny_step(g, &g1, &n);
    float l2 = tiny_step(g, &g2, &n); /* the same graph again: buffers reused */
    tensor_set_threads(1);
    float l3 = tiny_step(g, &g3, &n);
    float lf = tiny_step(f, &gf, &n);
    tensor_set_threads(saved);
    ck_assert(l1 == l2 && memcmp(g1, g2, (size_t)n * sizeof(float)) == 0);
    ck_assert_msg(l1 == l3 && memcmp(g1, g3, (size_t)n * sizeof(float)) == 0,
                  "1 and 2 threads differ");
    /* and it is a bf16 result: close to F32 precision, not equal to it */
    ck_assert(l1 != lf && fabsf(l1 - lf) <= 5e-3f * fabsf(lf));
    double rel = norm_rel(g1, gf, n);
    ck_assert_msg(rel > 0 && rel <= 0.15, "LoRA gradient relative difference %g", rel);
    free(g1), free(g2), free(g3), free(gf);
    graph_destroy(g), graph_destroy(f);
}

START_TEST(test_bf16_step_is_bit_identical_across_runs_and_thread_counts) {
    check_deterministic();
}
END_TEST

START_TEST(test_bf16_onednn_plumbing_matches_sgemm_emulation) {
    /* oneDNN's f32 matmul on the same rounded operands: the same values up to f32 summation
     * order, and deterministic as well (skipped where even that is unavailable). */
    setenv("LORAFIT_CPU_BF16", "0", 1);
    setenv("LORAFIT_BF16_EMULATION", "onednn", 1);
    Graph *g = bf16_graph();
    const char *name = graph_matmul_kernel(g);
    if (!strstr(name, "oneDNN")) {
        graph_destroy(g);
        unsetenv("LORAFIT_BF16_EMULATION");
        unsetenv("LORAFIT_CPU_BF16");
        test_skip(__func__, "oneDNN f32 matmul unavailable");
        return;
    }
    float *a, *b;
    int64_t n;
    float la = tiny_step(g, &a, &n);
    check_deterministic();
    graph_destroy(g);
    unsetenv("LORAFIT_BF16_EMULATION");
    g = bf16_graph();
    ck_assert(strstr(graph_matmul_kernel(g), "OpenBLAS sgemm"));
    float lb = tiny_step(g, &b, &n);
    ck_assert_msg(fabsf(la - lb) <= 1e-5f * fabsf(lb), "loss %.9g vs %.9g", la, lb);
    ck_assert(norm_rel(a, b, n) <= 1e-3);
    free(a), free(b);
    graph_destroy(g);
    unsetenv("LORAFIT_CPU_BF16");
}
END_TEST

/* RMSNorm, SwiGLU and attention write the bf16 copy of their output that the products
 * reading it take (no separate conversion pass): a product of such an output must give the
 * same bits as the product of a copy made outside the graph, which the product converts
 * itself. Natively (where the CPU has bf16) and emulated (floats rounded). */
START_TEST(test_bf16_products_take_the_copy_an_op_writes_exactly) {
    Tensor *x = random_tensor(37, 48, false, 11, 3.0f), *u = random_tensor(37, 48, false, 12, 2.0f);
    Tensor *k = random_tensor(37, 24, false, 13, 1.0f), *v = random_tensor(37, 24, false, 14, 1.0f);
    Tensor *nw = random_tensor(1, 48, false, 15, 1.5f), *w = random_tensor(32, 48, false, 16, 0.2f);
    Bf16Weight wb = bf16_weight(w);
    Tensor *copy = tensor_new(2, (int64_t[]){37, 48}, false);
    ck_assert(copy);
    for (int emulated = 0; emulated < 2; emulated++) {
        if (emulated) setenv("LORAFIT_CPU_BF16", "0", 1);
        Graph *g = bf16_graph();
        for (int op = 0; op < 3; op++) {
            Tensor *y = op == 0   ? op_rmsnorm(g, x, nw, 1e-5f)
                        : op == 1 ? op_swiglu(g, x, u)
                                  : op_attention(g, x, k, v, 1, 37, 4, 2, 12, NULL);
            Tensor *z = op_linear(g, y, &wb.t, NULL);
            ck_assert(y && z);
            memcpy(copy->data, y->data, (size_t)y->size * sizeof(float));
            Tensor *zc = op_linear(g, copy, &wb.t, NULL);
            ck_assert(zc && !graph_failed(g));
            ck_assert_msg(memcmp(z->data, zc->data, (size_t)z->size * sizeof(float)) == 0,
                          "op %d, emulated %d", op, emulated);
        }
        graph_destroy(g);
    }
    unsetenv("LORAFIT_CPU_BF16");
    tensor_free(x), tensor_free(u), tensor_free(k), tensor_free(v), tensor_free(nw);
    tensor_free(w), tensor_free(copy);
    free(wb.bits);
}
END_TEST

START_TEST(test_cpu_bf16_override_selects_the_kernel) {
    setenv("LORAFIT_CPU_BF16", "0", 1);
    ck_assert(!tensor_cpu_has_native_bf16());
    Graph *g = bf16_graph();
    ck_assert_int_eq(graph_precision(g), TENSOR_PRECISION_BF16);
    ck_assert(!graph_matmul_native_bf16(g));
    ck_assert(!tensor_cpu_bf16_faster());
    ck_assert(strstr(graph_matmul_kernel(g), "emulated (bf16-rounded inputs, OpenBLAS sgemm, "));
    setenv("LORAFIT_CPU_BF16", "slow", 1);
    ck_assert(tensor_cpu_has_native_bf16());
    ck_assert(!tensor_cpu_bf16_faster());
    setenv("LORAFIT_CPU_BF16", "1", 1);
    ck_assert(tensor_cpu_has_native_bf16());
    ck_assert(tensor_cpu_bf16_faster());
    /* Forced on: oneDNN's kernel where it has one, else still the emulation, never a failure. */
    ck_assert_int_eq(graph_set_precision(g, TENSOR_PRECISION_BF16), 0);
    ck_assert(strstr(graph_matmul_kernel(g), graph_matmul_native_bf16(g) ? "oneDNN" : "emulated"));
    float *gr;
    int64_t n;
    ck_assert(isfinite(tiny_step(g, &gr, &n)));
    free(gr);
    ck_assert_int_eq(graph_set_precision(g, TENSOR_PRECISION_F32), 0);
    char want[128];
    snprintf(want, sizeof want, "and OpenBLAS sgemm, %s kernels (f32)", tensor_blas_core());
    ck_assert_msg(strncmp(graph_matmul_kernel(g), "oneDNN f32 matmul ", 18) == 0 &&
                      strstr(graph_matmul_kernel(g), want),
                  "%s", graph_matmul_kernel(g));
    ck_assert_int_eq(graph_set_precision(g, (TensorPrecision)7), -1);
    ck_assert_int_eq(graph_set_precision(NULL, TENSOR_PRECISION_BF16), -1);
    unsetenv("LORAFIT_CPU_BF16");
    graph_destroy(g);
}
END_TEST

Suite *tensor_bf16mm_suite(void) {
    Suite *s = suite_create("tensor_bf16mm");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_bf16_linear_matches_rounded_reference_and_rounds_inputs);
    tcase_add_test(tc, test_bf16_lora_linear_rounds_what_autocast_rounds);
    tcase_add_test(tc, test_bf16_lora_linear_in_room_matches_separate_passes);
    tcase_add_test(tc, test_bf16_lora_linear_in_room_same_bits_per_thread_count);
    tcase_add_test(tc, test_bf16_lora_linear_in_room_keeps_x_for_da);
    tcase_add_test(tc, test_bf16_lm_head_matches_rounded_reference);
    tcase_add_test(tc, test_bf16_step_is_bit_identical_across_runs_and_thread_counts);
    tcase_add_test(tc, test_bf16_onednn_plumbing_matches_sgemm_emulation);
    tcase_add_test(tc, test_bf16_products_take_the_copy_an_op_writes_exactly);
    tcase_add_test(tc, test_cpu_bf16_override_selects_the_kernel);
    suite_add_tcase(s, tc);
    return s;
}
