/* tests/test_tensor_grad.c — every op's forward against a naive double-precision reference,
 * and its fp32 analytic gradient against central finite differences of that reference.
 *
 * For an op y = f(x1, x2, ...) and a fixed random G, the scalar L = sum(y * G) has
 * dL/dxi = the op's backward seeded with dy = G; op_weighted_sum(y, G) builds exactly that
 * seed through graph_backward. The finite differences perturb the inputs in double and run
 * the reference, so they carry no fp32 rounding noise. */
#include "tensor/tensor.h"
#include "tests/test_tensor_ref.h"
#include "tests/test_util.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define MAX_IN 4

typedef struct GradCase GradCase;
/* Reference forward: x[i] the double copies of the inputs (frozen ones are read from c). */
typedef void (*RefFn)(const GradCase *c, double *const *x, double *out);
typedef Tensor *(*OpFn)(const GradCase *c, Graph *g, Tensor **in);

struct GradCase {
    int n_in;
    Tensor *in[MAX_IN];
    bool diff[MAX_IN]; /* input requires grad and is checked */
    int64_t out_size;
    RefFn ref;
    OpFn op;
    Tensor *w, *b;   /* frozen weights, or NULL */
    Tensor *wq;      /* W quantized (the op's weight; w holds its dequantized values), or NULL */
    int dim[8];      /* op-specific sizes */
    float f[4];      /* op-specific scalars */
    int32_t ids[64]; /* positions, targets */
    int32_t seg[64]; /* segment ids */
    bool use_seg;
    float cos_t[16 * 8], sin_t[16 * 8]; /* RoPE tables (max_pos 16, D/2 <= 8) */
};

static uint64_t g_rng = 12345;

static Tensor *rand_tensor(int ndim, const int64_t *shape, bool requires_grad) {
    Tensor *t = tensor_new(ndim, shape, requires_grad);
    ck_assert_ptr_nonnull(t);
    for (int64_t i = 0; i < t->size; i++) t->data[i] = test_rand_uniform(&g_rng, -1.0f, 1.0f);
    return t;
}

static double ref_loss(const GradCase *c, double *const *x, const double *G, double *out) {
    c->ref(c, x, out);
    double l = 0.0;
    for (int64_t i = 0; i < c->out_size; i++) l += out[i] * G[i];
    return l;
}

/* Runs the op once in fp32 (forward + backward) and checks it against the reference. */
static void check_case(GradCase *c, const char *name) {
    double *x[MAX_IN] = {0};
    for (int i = 0; i < c->n_in; i++) {
        x[i] = malloc((size_t)c->in[i]->size * sizeof(double));
        for (int64_t j = 0; j < c->in[i]->size; j++) x[i][j] = c->in[i]->data[j];
    }
    double *out = malloc((size_t)c->out_size * sizeof(double));
    double *G = malloc((size_t)c->out_size * sizeof(double));
    Tensor *Gt = tensor_new(1, (int64_t[]){c->out_size}, false);
    for (int64_t i = 0; i < c->out_size; i++) {
        Gt->data[i] = test_rand_uniform(&g_rng, -1.0f, 1.0f);
        G[i] = Gt->data[i];
    }

    Graph *g = graph_create();
    Tensor *y = c->op(c, g, c->in);
    ck_assert_msg(y != NULL, "%s: op failed", name);
    ck_assert_int_eq(y->size, c->out_size);
    Tensor *L = op_weighted_sum(g, y, Gt);
    ck_assert_int_eq(graph_backward(g, L, 1.0f), 0);

    /* forward against the reference */
    c->ref(c, x, out);
    double err = 0.0, norm = 0.0;
    for (int64_t i = 0; i < c->out_size; i++) {
        err += (y->data[i] - out[i]) * (y->data[i] - out[i]);
        norm += out[i] * out[i];
    }
    ck_assert_msg(sqrt(err) <= 1e-5 * sqrt(norm) + 1e-6, "%s: forward rel err %g", name,
                  sqrt(err / (norm + 1e-30)));

    const double h = 1e-4;
    for (int i = 0; i < c->n_in; i++) {
        if (!c->diff[i]) {
            ck_assert_ptr_null(c->in[i]->grad);
            continue;
        }
        ck_assert_ptr_nonnull(c->in[i]->grad);
        double num = 0.0, den = 0.0;
        for (int64_t j = 0; j < c->in[i]->size; j++) {
            double keep = x[i][j];
            x[i][j] = keep + h;
            double lp = ref_loss(c, x, G, out);
            x[i][j] = keep - h;
            double lm = ref_loss(c, x, G, out);
            x[i][j] = keep;
            double gref = (lp - lm) / (2 * h);
            double d = c->in[i]->grad[j] - gref;
            num += d * d;
            den += gref * gref;
        }
        double rel = sqrt(num) / sqrt(den);
        ck_assert_msg(den > 0.0, "%s: input %d has an all-zero reference gradient", name, i);
        ck_assert_msg(rel <= 1e-3, "%s: input %d grad rel err %g", name, i, rel);
    }
    graph_destroy(g);
    tensor_free(Gt);
    free(G);
    free(out);
    for (int i = 0; i < c->n_in; i++) {
        free(x[i]);
        tensor_free(c->in[i]);
    }
    tensor_free(c->w);
    tensor_free(c->b);
    if (c->wq) {
        free((void *)c->wq->quant);
        free(c->wq);
    }
}

/* ---- RMSNorm ---- */

static void ref_rmsnorm(const GradCase *c, double *const *x, double *out) {
    int n = c->dim[0], C = c->dim[1];
    for (int i = 0; i < n; i++) {
        double ss = 0.0;
        for (int j = 0; j < C; j++) ss += x[0][i * C + j] * x[0][i * C + j];
        double r = 1.0 / sqrt(ss / C + c->f[0]);
        for (int j = 0; j < C; j++) out[i * C + j] = x[0][i * C + j] * r * c->w->data[j];
    }
}
static Tensor *run_rmsnorm(const GradCase *c, Graph *g, Tensor **in) {
    return op_rmsnorm(g, in[0], c->w, c->f[0]);
}

START_TEST(test_rmsnorm_grad_matches_finite_differences) {
    GradCase c = {.n_in = 1, .diff = {true}, .ref = ref_rmsnorm, .op = run_rmsnorm};
    c.dim[0] = 5, c.dim[1] = 7, c.f[0] = 1e-5f;
    c.in[0] = rand_tensor(2, (int64_t[]){5, 7}, true);
    c.w = rand_tensor(1, (int64_t[]){7}, false);
    c.out_size = 35;
    check_case(&c, "rmsnorm");
}
END_TEST

/* Per-head RMSNorm: dim = {N, H, D}; each head's D values normed with the shared w (D). */
static void ref_head_rmsnorm(const GradCase *c, double *const *x, double *out) {
    int n = c->dim[0] * c->dim[1], d = c->dim[2];
    for (int i = 0; i < n; i++) {
        double ss = 0.0;
        for (int j = 0; j < d; j++) ss += x[0][i * d + j] * x[0][i * d + j];
        double r = 1.0 / sqrt(ss / d + c->f[0]);
        for (int j = 0; j < d; j++) out[i * d + j] = x[0][i * d + j] * r * c->w->data[j];
    }
}
static Tensor *run_head_rmsnorm(const GradCase *c, Graph *g, Tensor **in) {
    return op_head_rmsnorm(g, in[0], c->dim[1], c->w, c->f[0]);
}

START_TEST(test_head_rmsnorm_grad_matches_finite_differences) {
    GradCase c = {.n_in = 1, .diff = {true}, .ref = ref_head_rmsnorm, .op = run_head_rmsnorm};
    c.dim[0] = 3, c.dim[1] = 4, c.dim[2] = 6, c.f[0] = 1e-6f;
    c.in[0] = rand_tensor(2, (int64_t[]){3, 24}, true);
    c.w = rand_tensor(1, (int64_t[]){6}, false);
    c.out_size = 72;
    check_case(&c, "head_rmsnorm");
}
END_TEST

/* Gemma's RMSNorm scales by 1 + w: dim = {rows, cols, heads (0: per row)}; w in [-1, 1]
 * puts 1 + w well away from 1 (and near 0, where a missing offset would show most). */
static void ref_rmsnorm_unit_offset(const GradCase *c, double *const *x, double *out) {
    int n = c->dim[0], d = c->dim[1];
    for (int i = 0; i < n; i++) {
        double ss = 0.0;
        for (int j = 0; j < d; j++) ss += x[0][i * d + j] * x[0][i * d + j];
        double r = 1.0 / sqrt(ss / d + c->f[0]);
        for (int j = 0; j < d; j++)
            out[i * d + j] = x[0][i * d + j] * r * (1.0 + (double)c->w->data[j]);
    }
}
static Tensor *run_rmsnorm_unit_offset(const GradCase *c, Graph *g, Tensor **in) {
    return c->dim[2] ? op_head_rmsnorm_unit_offset(g, in[0], c->dim[2], c->w, c->f[0])
                     : op_rmsnorm_unit_offset(g, in[0], c->w, c->f[0]);
}

START_TEST(test_unit_offset_rmsnorm_grads_match_finite_differences) {
    for (int heads = 0; heads <= 3; heads += 3) { /* (5, 8) rows; (5, 3*8) per head of 8 */
        GradCase c = {.n_in = 1,
                      .diff = {true},
                      .ref = ref_rmsnorm_unit_offset,
                      .op = run_rmsnorm_unit_offset};
        int rows = heads ? 15 : 5;
        c.dim[0] = rows, c.dim[1] = 8, c.dim[2] = heads, c.f[0] = 1e-6f;
        c.in[0] = rand_tensor(2, (int64_t[]){5, heads ? 24 : 8}, true);
        c.w = rand_tensor(1, (int64_t[]){8}, false);
        c.out_size = rows * 8;
        check_case(&c, heads ? "head_rmsnorm_unit_offset" : "rmsnorm_unit_offset");
    }
}
END_TEST

/* A norm whose length is not the heads' refuses with the shapes, and fails the graph. */
START_TEST(test_head_rmsnorm_refuses_a_norm_of_another_length) {
    Graph *g = graph_create();
    Tensor *x = rand_tensor(2, (int64_t[]){2, 12}, true),
           *w = rand_tensor(1, (int64_t[]){5}, false);
    ck_assert_ptr_null(op_head_rmsnorm(g, x, 2, w, 1e-6f));
    ck_assert(graph_failed(g));
    ck_assert_ptr_nonnull(strstr(graph_error(g), "op_head_rmsnorm"));
    graph_destroy(g);
    tensor_free(x);
    tensor_free(w);
}
END_TEST

/* ---- linear and LoRA linear: dim = {N, IN, OUT, R} ---- */

static void ref_lora(const GradCase *c, double *const *x, double *out) {
    int n = c->dim[0], in = c->dim[1], o = c->dim[2], r = c->dim[3];
    float s = c->f[0], p = c->f[1];
    uint64_t seed = 99;
    for (int i = 0; i < n; i++) {
        double h[8] = {0};
        for (int k = 0; k < r; k++) {
            for (int j = 0; j < in; j++) {
                double xd = x[0][i * in + j];
                if (p > 0)
                    xd = tensor_dropout_uniform(seed, (uint64_t)(i * in + j)) < p ? 0.0
                                                                                  : xd / (1.0 - p);
                h[k] += xd * x[1][k * in + j];
            }
        }
        for (int m = 0; m < o; m++) {
            double acc = c->b ? c->b->data[m] : 0.0;
            for (int j = 0; j < in; j++) acc += x[0][i * in + j] * c->w->data[m * in + j];
            for (int k = 0; k < r; k++) acc += s * h[k] * x[2][m * r + k];
            out[i * o + m] = acc;
        }
    }
}
static Tensor *run_lora(const GradCase *c, Graph *g, Tensor **in) {
    return op_lora_linear(g, in[0], c->wq ? c->wq : c->w, c->b, in[1], in[2], c->f[0], c->f[1], 99);
}
static void ref_linear(const GradCase *c, double *const *x, double *out) {
    int n = c->dim[0], in = c->dim[1], o = c->dim[2];
    for (int i = 0; i < n; i++)
        for (int m = 0; m < o; m++) {
            double acc = c->b ? c->b->data[m] : 0.0;
            for (int j = 0; j < in; j++) acc += x[0][i * in + j] * c->w->data[m * in + j];
            out[i * o + m] = acc;
        }
}
static Tensor *run_linear(const GradCase *c, Graph *g, Tensor **in) {
    return op_linear(g, in[0], c->wq ? c->wq : c->w, c->b);
}

static void lora_case(bool bias, float dropout, bool x_grad) {
    GradCase c = {.n_in = 3, .diff = {x_grad, true, true}, .ref = ref_lora, .op = run_lora};
    int n = 5, in = 7, o = 4, r = 3;
    c.dim[0] = n, c.dim[1] = in, c.dim[2] = o, c.dim[3] = r;
    c.f[0] = 2.0f, c.f[1] = dropout;
    c.in[0] = rand_tensor(2, (int64_t[]){n, in}, x_grad);
    c.in[1] = rand_tensor(2, (int64_t[]){r, in}, true);
    c.in[2] = rand_tensor(2, (int64_t[]){o, r}, true);
    c.w = rand_tensor(2, (int64_t[]){o, in}, false);
    c.b = bias ? rand_tensor(1, (int64_t[]){o}, false) : NULL;
    c.out_size = n * o;
    check_case(&c, "lora");
}

START_TEST(test_linear_grad_matches_finite_differences) {
    for (int bias = 0; bias < 2; bias++) {
        GradCase c = {.n_in = 1, .diff = {true}, .ref = ref_linear, .op = run_linear};
        c.dim[0] = 5, c.dim[1] = 7, c.dim[2] = 3;
        c.in[0] = rand_tensor(2, (int64_t[]){5, 7}, true);
        c.w = rand_tensor(2, (int64_t[]){3, 7}, false);
        c.b = bias ? rand_tensor(1, (int64_t[]){3}, false) : NULL;
        c.out_size = 15;
        check_case(&c, "linear");
    }
}
END_TEST

/* c->w (OUT, IN) quantized to type into c->wq, and c->w set to the dequantized values:
 * the reference computes with what the quantized weight holds. */
static void quantize_weight(GradCase *c, GgmlType type) {
    int64_t out = c->w->shape[0], in = c->w->shape[1];
    size_t row = ggml_row_bytes(type, in);
    uint8_t *blocks = malloc(row * (size_t)out);
    c->wq = malloc(sizeof *c->wq);
    ck_assert(blocks && c->wq && row > 0);
    for (int64_t r = 0; r < out; r++) {
        ck_assert_int_eq(quant_quantize_row(type, c->w->data + r * in, blocks + r * row, in), 0);
        ck_assert_int_eq(quant_dequantize_row(type, blocks + r * row, c->w->data + r * in, in), 0);
    }
    ck_assert_int_eq(tensor_init_quant(c->wq, blocks, type, out, in), 0);
}

/* A quantized W (Q4_K, Q8_0) in op_linear and op_lora_linear: the gradients of x, A and B. */
START_TEST(test_quantized_linear_and_lora_grads_match_finite_differences) {
    const GgmlType types[] = {GGML_TYPE_Q4_K, GGML_TYPE_Q8_0};
    for (int t = 0; t < 2; t++) {
        int n = 3, in = 256, o = 5, r = 2;
        GradCase c = {.n_in = 1, .diff = {true}, .ref = ref_linear, .op = run_linear};
        c.dim[0] = n, c.dim[1] = in, c.dim[2] = o;
        c.in[0] = rand_tensor(2, (int64_t[]){n, in}, true);
        c.w = rand_tensor(2, (int64_t[]){o, in}, false);
        c.b = rand_tensor(1, (int64_t[]){o}, false);
        c.out_size = n * o;
        quantize_weight(&c, types[t]);
        check_case(&c, "quantized linear");

        GradCase l = {.n_in = 3, .diff = {true, true, true}, .ref = ref_lora, .op = run_lora};
        l.dim[0] = n, l.dim[1] = in, l.dim[2] = o, l.dim[3] = r;
        l.f[0] = 2.0f, l.f[1] = 0.0f;
        l.in[0] = rand_tensor(2, (int64_t[]){n, in}, true);
        l.in[1] = rand_tensor(2, (int64_t[]){r, in}, true);
        l.in[2] = rand_tensor(2, (int64_t[]){o, r}, true);
        l.w = rand_tensor(2, (int64_t[]){o, in}, false);
        l.out_size = n * o;
        quantize_weight(&l, types[t]);
        check_case(&l, "quantized lora");
    }
}
END_TEST

START_TEST(test_lora_grad_matches_finite_differences) {
    lora_case(false, 0.0f, true);
    lora_case(true, 0.0f, true);
    lora_case(false, 0.0f, false); /* frozen x: only A and B get gradients */
}
END_TEST

START_TEST(test_lora_with_dropout_grad_matches_finite_differences) {
    lora_case(true, 0.3f, true);
    lora_case(false, 0.5f, true);
}
END_TEST

/* ---- RoPE: dim = {N, H, D} ---- */

static void ref_rope(const GradCase *c, double *const *x, double *out) {
    int n = c->dim[0], H = c->dim[1], D = c->dim[2], half = D / 2;
    for (int t = 0; t < n; t++)
        for (int h = 0; h < H; h++)
            for (int i = 0; i < half; i++) {
                double ang = c->ids[t] * pow(10000.0, -2.0 * i / D);
                const double *a = x[0] + (t * H + h) * D;
                double *o = out + (t * H + h) * D;
                o[i] = a[i] * cos(ang) - a[i + half] * sin(ang);
                o[i + half] = a[i + half] * cos(ang) + a[i] * sin(ang);
            }
}
static Tensor *run_rope(const GradCase *c, Graph *g, Tensor **in) {
    return op_rope(g, in[0], c->dim[1], c->dim[2], c->ids, c->cos_t, c->sin_t, 16);
}

START_TEST(test_rope_grad_matches_finite_differences) {
    GradCase c = {.n_in = 1, .diff = {true}, .ref = ref_rope, .op = run_rope};
    int n = 5, H = 2, D = 6;
    c.dim[0] = n, c.dim[1] = H, c.dim[2] = D;
    const int32_t pos[5] = {0, 3, 1, 15, 2};
    memcpy(c.ids, pos, sizeof pos);
    for (int p = 0; p < 16; p++)
        for (int i = 0; i < D / 2; i++) {
            double ang = p * pow(10000.0, -2.0 * i / D);
            c.cos_t[p * (D / 2) + i] = (float)cos(ang);
            c.sin_t[p * (D / 2) + i] = (float)sin(ang);
        }
    c.in[0] = rand_tensor(2, (int64_t[]){n, H * D}, true);
    c.out_size = n * H * D;
    check_case(&c, "rope");
}
END_TEST

/* Partial rotary: dim = {N, H, D, R}; the first R of each head rotate (pairs i, i + R/2,
 * tables of R/2 frequencies), the other D - R pass through. */
static void ref_rope_partial(const GradCase *c, double *const *x, double *out) {
    int n = c->dim[0], H = c->dim[1], D = c->dim[2], R = c->dim[3], half = R / 2;
    for (int t = 0; t < n; t++)
        for (int h = 0; h < H; h++) {
            const double *a = x[0] + (t * H + h) * D;
            double *o = out + (t * H + h) * D;
            for (int i = 0; i < half; i++) {
                double ang = c->ids[t] * pow(10000.0, -2.0 * i / R);
                o[i] = a[i] * cos(ang) - a[i + half] * sin(ang);
                o[i + half] = a[i + half] * cos(ang) + a[i] * sin(ang);
            }
            for (int i = R; i < D; i++) o[i] = a[i];
        }
}
static Tensor *run_rope_partial(const GradCase *c, Graph *g, Tensor **in) {
    return op_rope_partial(g, in[0], c->dim[1], c->dim[2], c->dim[3], c->ids, c->cos_t, c->sin_t,
                           16);
}

START_TEST(test_partial_rope_grad_matches_finite_differences) {
    GradCase c = {.n_in = 1, .diff = {true}, .ref = ref_rope_partial, .op = run_rope_partial};
    int n = 5, H = 2, D = 10, R = 4;
    c.dim[0] = n, c.dim[1] = H, c.dim[2] = D, c.dim[3] = R;
    const int32_t pos[5] = {0, 3, 1, 15, 2};
    memcpy(c.ids, pos, sizeof pos);
    for (int p = 0; p < 16; p++)
        for (int i = 0; i < R / 2; i++) {
            double ang = p * pow(10000.0, -2.0 * i / R);
            c.cos_t[p * (R / 2) + i] = (float)cos(ang);
            c.sin_t[p * (R / 2) + i] = (float)sin(ang);
        }
    c.in[0] = rand_tensor(2, (int64_t[]){n, H * D}, true);
    c.out_size = n * H * D;
    check_case(&c, "rope_partial");
    /* an odd or oversized rotated part is refused */
    Graph *g = graph_create();
    Tensor *x = rand_tensor(2, (int64_t[]){1, 10}, false);
    int32_t p0 = 0;
    ck_assert_ptr_null(op_rope_partial(g, x, 1, 10, 3, &p0, c.cos_t, c.sin_t, 16));
    ck_assert_ptr_nonnull(strstr(graph_error(g), "op_rope_partial"));
    graph_reset(g);
    ck_assert_ptr_null(op_rope_partial(g, x, 1, 10, 12, &p0, c.cos_t, c.sin_t, 16));
    graph_destroy(g);
    tensor_free(x);
}
END_TEST

/* ---- attention: dim = {B, T, NH, NKV, D} ---- */

static void ref_attention(const GradCase *c, double *const *x, double *out) {
    ref_attention_f64(x[0], x[1], x[2], c->use_seg ? c->seg : NULL, c->dim[0], c->dim[1], c->dim[2],
                      c->dim[3], c->dim[4], out);
}
static Tensor *run_attention(const GradCase *c, Graph *g, Tensor **in) {
    return op_attention(g, in[0], in[1], in[2], c->dim[0], c->dim[1], c->dim[2], c->dim[3],
                        c->dim[4], c->use_seg ? c->seg : NULL);
}

static const int32_t PACKED[10] = {0, 0, 1, 1, 1, 4, 4, 4, 7, 7}; /* two packed docs per row */
/* As data/ lays out padded batches: real rows 0..k-1, then padding as segment k. */
static const int32_t PADDED[10] = {0, 0, 0, 1, 1, 0, 0, 0, 0, 1};

static void attention_case(int NH, int NKV, const int32_t *seg) {
    GradCase c = {.n_in = 3, .diff = {true, true, true}, .ref = ref_attention, .op = run_attention};
    int B = 2, T = 5, D = 4;
    c.dim[0] = B, c.dim[1] = T, c.dim[2] = NH, c.dim[3] = NKV, c.dim[4] = D;
    c.use_seg = seg != NULL;
    if (seg) memcpy(c.seg, seg, sizeof PACKED);
    c.in[0] = rand_tensor(2, (int64_t[]){B * T, NH * D}, true);
    c.in[1] = rand_tensor(2, (int64_t[]){B * T, NKV * D}, true);
    c.in[2] = rand_tensor(2, (int64_t[]){B * T, NKV * D}, true);
    c.out_size = B * T * NH * D;
    check_case(&c, seg == PADDED ? "attention+padding" : seg ? "attention+segments" : "attention");
}

START_TEST(test_attention_grad_matches_finite_differences_for_gqa_ratios) {
    const int heads[4][2] = {{2, 2}, {4, 2}, {3, 1}, {4, 1}}; /* NH/NKV = 1, 2, 3, 4 */
    for (int i = 0; i < 4; i++) attention_case(heads[i][0], heads[i][1], NULL);
}
END_TEST

START_TEST(test_attention_with_segments_grad_matches_finite_differences) {
    attention_case(2, 2, PACKED);
    attention_case(4, 2, PACKED);
    attention_case(3, 1, PACKED);
}
END_TEST

START_TEST(test_attention_with_padding_grad_matches_finite_differences) {
    attention_case(2, 2, PADDED);
    attention_case(4, 1, PADDED);
}
END_TEST

/* ---- SwiGLU, add, dropout: dim = {N, C} ---- */

static void ref_swiglu(const GradCase *c, double *const *x, double *out) {
    for (int i = 0; i < c->dim[0] * c->dim[1]; i++)
        out[i] = x[0][i] / (1.0 + exp(-x[0][i])) * x[1][i];
}
static Tensor *run_swiglu(const GradCase *c, Graph *g, Tensor **in) {
    (void)c;
    return op_swiglu(g, in[0], in[1]);
}
/* gelu_pytorch_tanh(g) * up, in double */
static void ref_geglu(const GradCase *c, double *const *x, double *out) {
    for (int i = 0; i < c->dim[0] * c->dim[1]; i++) {
        double g = x[0][i];
        out[i] = 0.5 * g * (1.0 + tanh(sqrt(2.0 / M_PI) * (g + 0.044715 * g * g * g))) * x[1][i];
    }
}
static Tensor *run_geglu(const GradCase *c, Graph *g, Tensor **in) {
    (void)c;
    return op_geglu(g, in[0], in[1]);
}
static void ref_add(const GradCase *c, double *const *x, double *out) {
    for (int i = 0; i < c->dim[0] * c->dim[1]; i++) out[i] = x[0][i] + x[1][i];
}
static Tensor *run_add(const GradCase *c, Graph *g, Tensor **in) {
    (void)c;
    return op_add(g, in[0], in[1]);
}
static void ref_scale(const GradCase *c, double *const *x, double *out) {
    for (int i = 0; i < c->dim[0] * c->dim[1]; i++) out[i] = (double)c->f[0] * x[0][i];
}
static Tensor *run_scale(const GradCase *c, Graph *g, Tensor **in) {
    return op_scale(g, in[0], c->f[0]);
}
/* columns 2..5 of a (5, 7) x */
static void ref_columns(const GradCase *c, double *const *x, double *out) {
    (void)c;
    for (int i = 0; i < 5; i++)
        for (int j = 0; j < 4; j++) out[i * 4 + j] = x[0][i * 7 + 2 + j];
}
static Tensor *run_columns(const GradCase *c, Graph *g, Tensor **in) {
    (void)c;
    return op_columns(g, in[0], 2, 4);
}
static void ref_dropout(const GradCase *c, double *const *x, double *out) {
    double p = c->f[0];
    for (int i = 0; i < c->dim[0] * c->dim[1]; i++)
        out[i] = tensor_dropout_uniform(7, (uint64_t)i) < p ? 0.0 : x[0][i] / (1.0 - p);
}
static Tensor *run_dropout(const GradCase *c, Graph *g, Tensor **in) {
    return op_dropout(g, in[0], c->f[0], 7);
}

static void pointwise_case(int n_in, RefFn ref, OpFn op, float f0, const char *name) {
    GradCase c = {.n_in = n_in, .diff = {true, true}, .ref = ref, .op = op};
    c.dim[0] = 5, c.dim[1] = 7, c.f[0] = f0;
    for (int i = 0; i < n_in; i++) {
        c.in[i] = rand_tensor(2, (int64_t[]){5, 7}, true);
        for (int64_t j = 0; j < 35; j++) c.in[i]->data[j] *= 3.0f; /* reach silu's tails */
    }
    c.out_size = 35;
    check_case(&c, name);
}

START_TEST(test_columns_grad_matches_finite_differences_and_bad_ranges_fail) {
    GradCase c = {.n_in = 1, .diff = {true}, .ref = ref_columns, .op = run_columns};
    c.dim[0] = 5, c.dim[1] = 7;
    c.in[0] = rand_tensor(2, (int64_t[]){5, 7}, true);
    c.out_size = 20;
    check_case(&c, "columns");
    Graph *g = graph_create();
    Tensor *x = graph_tensor(g, 2, (int64_t[]){5, 7});
    ck_assert_ptr_null(op_columns(g, x, 4, 4));
    ck_assert_ptr_nonnull(strstr(graph_error(g), "op_columns"));
    graph_destroy(g);
}
END_TEST

START_TEST(test_swiglu_geglu_add_dropout_grads_match_finite_differences) {
    pointwise_case(2, ref_swiglu, run_swiglu, 0.0f, "swiglu");
    pointwise_case(2, ref_geglu, run_geglu, 0.0f, "geglu");
    pointwise_case(2, ref_add, run_add, 0.0f, "add");
    pointwise_case(1, ref_scale, run_scale, -0.37f, "scale");
    pointwise_case(1, ref_dropout, run_dropout, 0.4f, "dropout");
}
END_TEST

/* ---- cross-entropy: dim = {N, V} ---- */

static void ref_cross_entropy(const GradCase *c, double *const *x, double *out) {
    int n = c->dim[0], V = c->dim[1];
    double total = 0.0;
    for (int i = 0; i < n; i++) {
        if (c->ids[i] == TENSOR_IGNORE_INDEX) continue;
        double se = 0.0;
        for (int j = 0; j < V; j++) se += exp(x[0][i * V + j]);
        total += log(se) - x[0][i * V + c->ids[i]];
    }
    out[0] = total;
}
static Tensor *run_cross_entropy(const GradCase *c, Graph *g, Tensor **in) {
    int64_t count = -1;
    Tensor *y = op_cross_entropy(g, in[0], c->ids, &count);
    ck_assert_int_eq(count, 4);
    return y;
}

START_TEST(test_cross_entropy_grad_matches_finite_differences_with_ignored_rows) {
    GradCase c = {.n_in = 1, .diff = {true}, .ref = ref_cross_entropy, .op = run_cross_entropy};
    c.dim[0] = 6, c.dim[1] = 7;
    const int32_t targets[6] = {3, TENSOR_IGNORE_INDEX, 0, 6, TENSOR_IGNORE_INDEX, 2};
    memcpy(c.ids, targets, sizeof targets);
    c.in[0] = rand_tensor(2, (int64_t[]){6, 7}, true);
    for (int64_t j = 0; j < 42; j++) c.in[0]->data[j] *= 4.0f;
    c.out_size = 1;
    check_case(&c, "cross_entropy");
}
END_TEST

Suite *tensor_grad_suite(void) {
    Suite *s = suite_create("tensor_grad");
    TCase *tc = tcase_create("finite_differences");
    tcase_add_test(tc, test_rmsnorm_grad_matches_finite_differences);
    tcase_add_test(tc, test_head_rmsnorm_grad_matches_finite_differences);
    tcase_add_test(tc, test_head_rmsnorm_refuses_a_norm_of_another_length);
    tcase_add_test(tc, test_unit_offset_rmsnorm_grads_match_finite_differences);
    tcase_add_test(tc, test_linear_grad_matches_finite_differences);
    tcase_add_test(tc, test_lora_grad_matches_finite_differences);
    tcase_add_test(tc, test_quantized_linear_and_lora_grads_match_finite_differences);
    tcase_add_test(tc, test_lora_with_dropout_grad_matches_finite_differences);
    tcase_add_test(tc, test_rope_grad_matches_finite_differences);
    tcase_add_test(tc, test_partial_rope_grad_matches_finite_differences);
    tcase_add_test(tc, test_attention_grad_matches_finite_differences_for_gqa_ratios);
    tcase_add_test(tc, test_attention_with_segments_grad_matches_finite_differences);
    tcase_add_test(tc, test_attention_with_padding_grad_matches_finite_differences);
    tcase_add_test(tc, test_swiglu_geglu_add_dropout_grads_match_finite_differences);
    tcase_add_test(tc, test_columns_grad_matches_finite_differences_and_bad_ranges_fail);
    tcase_add_test(tc, test_cross_entropy_grad_matches_finite_differences_with_ignored_rows);
    suite_add_tcase(s, tc);
    return s;
}
