/* tools/bench_attention.c — op_attention forward and backward, f32 and bf16 precision, at three
 * shapes: SmolLM-135M (B 4 x T 256, 9 / 3 heads, D 64), a long sequence (B 1 x T 4096, 4 / 2
 * heads, D 64) and Gemma-3-1B's heads (B 1 x T 1024, 4 / 1 heads, D 256). Each time is the best
 * of --reps runs after a warm-up; "arena" is the graph's arena after forward and backward
 * (what one attention layer holds: its output, what it saves, the gradients). FLOPs count the
 * four products of the causal half (S = QK^T, PV forward; dP, dV, dQ, dK backward, plus S
 * recomputed where a kernel does), so GFLOP/s compares useful work only. Uses op_attention
 * alone, so that the same file measures any version of the kernel. */
#include "tensor/tensor.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tools/bench_util.h"

typedef struct {
    const char *name;
    int B, T, NH, NKV, D;
} Shape;

static Tensor *filled(int64_t rows, int64_t cols, bool grad, uint64_t *st) {
    Tensor *t = tensor_new(2, (int64_t[]){rows, cols}, grad);
    if (!t) {
        fprintf(stderr, "bench_attention: out of memory\n");
        exit(1);
    }
    for (int64_t i = 0; i < t->size; i++)
        t->data[i] = (float)((rng_splitmix64(st) >> 40) * 0x1.0p-24 - 0.5) * 2.0f;
    return t;
}

static void bench(const Shape *s, TensorPrecision prec, int reps) {
    uint64_t st = 7;
    int64_t n = (int64_t)s->B * s->T;
    Tensor *q = filled(n, (int64_t)s->NH * s->D, true, &st);
    Tensor *k = filled(n, (int64_t)s->NKV * s->D, true, &st);
    Tensor *v = filled(n, (int64_t)s->NKV * s->D, true, &st);
    Tensor *w = filled(n, (int64_t)s->NH * s->D, false, &st);
    Graph *g = graph_create();
    if (!g || graph_set_precision(g, prec) != 0) exit(1);
    double best_f = 1e30, best_b = 1e30;
    size_t bytes = 0;
    for (int rep = -1; rep < reps; rep++) { /* rep -1 warms up */
        graph_reset(g);
        double t0 = bench_now();
        Tensor *y = op_attention(g, q, k, v, s->B, s->T, s->NH, s->NKV, s->D, NULL);
        double t1 = bench_now();
        Tensor *l = op_weighted_sum(g, y, w);
        double t2 = bench_now();
        if (!l || graph_backward(g, l, 1.0f) != 0) {
            fprintf(stderr, "bench_attention: %s failed: %s\n", s->name, graph_error(g));
            exit(1);
        }
        double t3 = bench_now();
        if (rep < 0) continue;
        best_f = t1 - t0 < best_f ? t1 - t0 : best_f;
        best_b = t3 - t2 < best_b ? t3 - t2 : best_b;
    }
    bytes = graph_arena_bytes(g);
    /* causal half of T x T, D deep, per product */
    double half = 2.0 * s->B * s->NH * ((double)s->T * (s->T + 1) / 2) * s->D;
    printf("%-26s %-4s forward %8.2f ms (%6.1f GFLOP/s)  backward %8.2f ms (%6.1f GFLOP/s)  "
           "arena %7.1f MB\n",
           s->name, prec == TENSOR_PRECISION_BF16 ? "bf16" : "f32", best_f * 1e3,
           2 * half / best_f * 1e-9, best_b * 1e3, 4 * half / best_b * 1e-9, bytes / 1048576.0);
    fflush(stdout);
    graph_destroy(g);
    tensor_free(q), tensor_free(k), tensor_free(v), tensor_free(w);
}

int main(int argc, char **argv) {
    tensor_blas_use_cpu_kernels(argv);
    tensor_set_threads(0);
    int reps = 5, only = -1;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--reps") == 0 && i + 1 < argc) {
            reps = atoi(argv[++i]);
        } else if (strcmp(argv[i], "--shape") == 0 && i + 1 < argc) {
            only = atoi(argv[++i]);
        } else if (strcmp(argv[i], "--threads") == 0 && i + 1 < argc) {
            tensor_set_threads(atoi(argv[++i]));
        } else {
            fprintf(stderr, "usage: bench_attention [--reps N] [--shape 0|1|2] [--threads N]\n");
            return 2;
        }
    }
    if (reps < 1) reps = 1;
    printf("attention: threads %d, best of %d; useful FLOPs (causal half, 2 products forward, "
           "4 backward)\n",
           tensor_threads(), reps);
    const Shape shapes[] = {{"SmolLM-135M B4 T256 9/3 D64", 4, 256, 9, 3, 64},
                            {"long B1 T4096 4/2 D64", 1, 4096, 4, 2, 64},
                            {"Gemma-3-1B B1 T1024 4/1 D256", 1, 1024, 4, 1, 256}};
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) {
        if (only >= 0 && (size_t)only != i) continue;
        bench(&shapes[i], TENSOR_PRECISION_F32, reps);
        bench(&shapes[i], TENSOR_PRECISION_BF16, reps);
    }
    return 0;
}
