/* tools/bench_kernels.c — GFLOP/s of OpenBLAS sgemm and oneDNN's bf16 matmul (the peaks, at
 * 1024^3; the bf16 one where the CPU has it) and of our kernels at SmolLM-135M shapes (hidden 576,
 * 9 heads / 3 kv heads, head_dim 64, intermediate 1536, batch 4 x seq 256, LoRA r 8). FLOPs count
 * 2*M*N*K per product. Attention counts the QK^T and PV products (and in backward the four products
 * dP, dV, dQ, dK) over the FULL T x T square, about twice what the fused causal kernel computes
 * (tools/bench_attention counts the causal half). The linear layers also run with W quantized
 * (Q8_0 and Q4_0 at 576 -> 1536; Q4_K and Q6_K at 1536 -> 576, the K-quants needing rows of
 * 256s) beside the same shape in F32: tiles of W dequantized per thread (tensor/quant_product.c).
 */
#include "tensor/tensor.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "tools/bench_peak.h"

static Tensor *filled(int ndim, const int64_t *shape, bool grad, uint64_t *st) {
    Tensor *t = tensor_new(ndim, shape, grad);
    if (!t) {
        fprintf(stderr, "bench_kernels: out of memory\n");
        exit(1);
    }
    for (int64_t i = 0; i < t->size; i++)
        t->data[i] = (float)((rng_splitmix64(st) >> 40) * 0x1.0p-24 - 0.5);
    return t;
}

enum {
    B = 4,
    T = 256,
    N = B * T,
    C = 576,
    FF = 1536,
    NH = 9,
    NKV = 3,
    D = 64,
    R = 8,
    REPS = 3,
    PEAK_REPS = 10
};

typedef enum { K_LINEAR, K_LORA, K_ATTENTION } Kind;

typedef struct {
    Tensor *x, *w, *A, *Bm, *q, *k, *v;
} Inputs;

static Tensor *forward(Graph *g, Kind kind, Inputs *in) {
    switch (kind) {
    case K_LINEAR:
        return op_linear(g, in->x, in->w, NULL);
    case K_LORA:
        return op_lora_linear(g, in->x, in->w, NULL, in->A, in->Bm, 2.0f, 0.0f, 0);
    default:
        return op_attention(g, in->q, in->k, in->v, B, T, NH, NKV, D, NULL);
    }
}

/* Times forward alone and forward+backward; backward = difference. */
static void bench(const char *name, Kind kind, Inputs *in, double fwd_flops, double bwd_flops) {
    Graph *g = graph_create();
    int64_t out = kind == K_ATTENTION ? (int64_t)N * NH * D : (int64_t)N * in->w->shape[0];
    Tensor *ones = tensor_new(1, (int64_t[]){out}, false);
    for (int64_t i = 0; i < ones->size; i++) ones->data[i] = 1e-3f;
    double tf = 0, tb = 0;
    for (int rep = -1; rep < REPS; rep++) { /* rep -1 warms up */
        graph_reset(g);
        double t0 = bench_now();
        Tensor *y = forward(g, kind, in);
        double t1 = bench_now();
        Tensor *l = op_weighted_sum(g, y, ones);
        double t2 = bench_now();
        if (!l || graph_backward(g, l, 1.0f) != 0) {
            fprintf(stderr, "bench_kernels: %s failed\n", name);
            exit(1);
        }
        double t3 = bench_now();
        if (rep >= 0) tf += t1 - t0, tb += t3 - t2;
    }
    printf("%-22s forward %7.2f GFLOP/s (%6.2f ms)   backward %7.2f GFLOP/s (%6.2f ms)\n", name,
           fwd_flops * REPS / tf * 1e-9, tf / REPS * 1e3, bwd_flops * REPS / tb * 1e-9,
           tb / REPS * 1e3);
    tensor_free(ones);
    graph_destroy(g);
}

/* Prints kind's peak (bench_peak_gflops over PEAK_REPS); false (and nothing printed) when it
 * cannot run. */
static bool print_peak(const char *name, PeakKind kind, const PeakOperands *o) {
    double gflops = bench_peak_gflops(kind, o, PEAK_REPS);
    if (gflops <= 0) return false;
    printf("%-22s %7.2f GFLOP/s (%d x %d x %d, best of %d)\n", name, gflops, o->s, o->s, o->s,
           PEAK_REPS);
    return true;
}

int main(int argc, char **argv) {
    tensor_blas_use_cpu_kernels(argv);
    int threads = 0;
    if (argc == 3 && strcmp(argv[1], "--threads") == 0) {
        threads = atoi(argv[2]);
    } else if (argc != 1) {
        fprintf(stderr, "usage: bench_kernels [--threads N]\n");
        return 2;
    }
    tensor_set_threads(threads);
    uint64_t st = 1;
    printf("threads %d; N = B*T = %d*%d; FLOPs = 2*M*N*K per product\n", tensor_threads(), B, T);
    printf("OpenBLAS kernels %s\n", tensor_blas_core());

    PeakOperands po;
    if (!bench_peak_operands(&po, 1024)) return 1;
    print_peak("sgemm", PEAK_SGEMM, &po);
    print_peak("oneDNN f32 matmul", PEAK_ONEDNN_F32, &po);
    if (!print_peak("oneDNN bf16 matmul", PEAK_ONEDNN_BF16, &po))
        printf("%-22s unimplemented on this CPU (no AVX512-BF16 or AMX-BF16)\n",
               "oneDNN bf16 matmul");
    /* the same split by rows as lorafit's products run (not the peaks the ratios use) */
    print_peak("oneDNN f32 row split", PEAK_ONEDNN_F32_SPLIT, &po);
    print_peak("oneDNN bf16 row split", PEAK_ONEDNN_BF16_SPLIT, &po);
    bench_peak_operands_free(&po);

    Inputs in = {0};
    in.x = filled(2, (int64_t[]){N, C}, true, &st);
    in.w = filled(2, (int64_t[]){FF, C}, false, &st);
    in.A = filled(2, (int64_t[]){R, C}, true, &st);
    in.Bm = filled(2, (int64_t[]){FF, R}, true, &st);
    in.q = filled(2, (int64_t[]){N, NH * D}, true, &st);
    in.k = filled(2, (int64_t[]){N, NKV * D}, true, &st);
    in.v = filled(2, (int64_t[]){N, NKV * D}, true, &st);

    double lin = 2.0 * N * FF * C;
    /* LoRA forward: base + x A^T + h B^T; backward: dx = dy W, dB, dh, dh A, dA */
    double lora_f = lin + 2.0 * N * R * C + 2.0 * N * FF * R;
    double lora_b = lin + 2.0 * FF * R * N + 2.0 * N * R * FF + 2.0 * N * C * R + 2.0 * R * C * N;
    double att = 2.0 * B * NH * (2.0 * T * T * D); /* QK^T and PV, full square */
    bench("linear 576->1536", K_LINEAR, &in, lin, lin);
    bench("lora 576->1536 r8", K_LORA, &in, lora_f, lora_b);
    bench("attention 9/3 heads", K_ATTENTION, &in, att, 2.0 * att);

    /* quantized W: 576 -> 1536 in Q8_0 and Q4_0, 1536 -> 576 (F32, Q4_K, Q6_K) */
    Tensor *w_f32 = in.w, *x576 = in.x;
    Tensor *w_down = filled(2, (int64_t[]){C, FF}, false, &st);
    Tensor *x_ff = filled(2, (int64_t[]){N, FF}, true, &st);
    const struct {
        GgmlType type;
        Tensor *w, *x;
    } runs[] = {{GGML_TYPE_Q8_0, w_f32, x576},
                {GGML_TYPE_Q4_0, w_f32, x576},
                {GGML_TYPE_F32, w_down, x_ff},
                {GGML_TYPE_Q4_K, w_down, x_ff},
                {GGML_TYPE_Q6_K, w_down, x_ff}};
    for (size_t r = 0; r < sizeof runs / sizeof runs[0]; r++) {
        Tensor *w = runs[r].w, quant;
        int64_t rows = w->shape[0], cols = w->shape[1];
        size_t row = ggml_row_bytes(runs[r].type, cols);
        uint8_t *blocks = runs[r].type == GGML_TYPE_F32 ? NULL : malloc(row * (size_t)rows);
        if (blocks) {
            for (int64_t i = 0; i < rows; i++)
                quant_quantize_row(runs[r].type, w->data + i * cols, blocks + (size_t)i * row,
                                   cols);
            tensor_init_quant(&quant, blocks, runs[r].type, rows, cols);
        }
        char name[64];
        snprintf(name, sizeof name, "linear %s %lld->%lld", ggml_type_name(runs[r].type),
                 (long long)cols, (long long)rows);
        in.w = blocks ? &quant : w;
        in.x = runs[r].x;
        bench(name, K_LINEAR, &in, lin, lin);
        free(blocks);
    }
    in.w = w_f32, in.x = x576;
    tensor_free(w_down), tensor_free(x_ff);
    Tensor *all[] = {in.x, in.w, in.A, in.Bm, in.q, in.k, in.v};
    for (int i = 0; i < 7; i++) tensor_free(all[i]);
    return 0;
}
