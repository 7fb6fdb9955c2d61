/* tools/bench_deltanet.c — the gated delta rule (op_gated_delta_rule) forward and backward at
 * Qwen3.5-0.8B's linear-attention shape: 16 key and 16 value heads of 128, batch 1, T 1024
 * and 4096 (and any T given). Prints the best of --reps runs after a warm-up, the products'
 * GFLOP/s and their share of the op's time from tensor_profile (issue 25's acceptance 6: the
 * non-product work at most 25% of the DeltaNet time, the time per token at 4096 at most 1.2x
 * that at 1024), and the arena the op holds (its output, the saved chunk states, the
 * gradients). Inputs as the layer gives them: q, k L2-normalised (q scaled by 1/sqrt(DK)),
 * beta in (0, 1), g in [-1.5, -0.01].
 *   bench_deltanet [--reps N] [--threads N] [T ...] */
#include "tensor/tensor.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tools/bench_util.h"

enum { NK = 16, NV = 16, DK = 128, DV = 128 };

static float uniform(uint64_t *st, float lo, float hi) {
    return lo + (hi - lo) * (float)((rng_splitmix64(st) >> 40) * 0x1.0p-24);
}

static Tensor *filled(int64_t rows, int64_t cols, float lo, float hi, uint64_t *st) {
    Tensor *t = tensor_new(2, (int64_t[]){rows, cols}, true);
    if (!t) {
        fprintf(stderr, "bench_deltanet: out of memory\n");
        exit(1);
    }
    for (int64_t i = 0; i < t->size; i++) t->data[i] = uniform(st, lo, hi);
    return t;
}

static void normalise_heads(Tensor *t, int d, float scale) {
    for (int64_t i = 0; i < t->size / d; i++) {
        double ss = 0.0;
        for (int j = 0; j < d; j++) ss += (double)t->data[i * d + j] * t->data[i * d + j];
        for (int j = 0; j < d; j++) t->data[i * d + j] *= (float)(scale / sqrt(ss));
    }
}

typedef struct {
    double forward, backward, products, nonproduct, gflops;
    size_t arena;
} Result;

static Result bench(int T, int reps) {
    uint64_t st = 7;
    Tensor *q = filled(T, NK * DK, -1, 1, &st), *k = filled(T, NK * DK, -1, 1, &st);
    Tensor *v = filled(T, NV * DV, -1, 1, &st), *w = filled(T, NV * DV, -1, 1, &st);
    Tensor *g = filled(T, NV, -1.5f, -0.01f, &st), *beta = filled(T, NV, 0.05f, 0.95f, &st);
    normalise_heads(q, DK, 1.0f / sqrtf(DK));
    normalise_heads(k, DK, 1.0f);
    w->requires_grad = false;
    Graph *gr = graph_create();
    DeltaRuleSpec s = {1, T, NK, NV, DK, DV, NULL, NULL};
    Result best = {1e30, 1e30, 0, 0, 0, 0};
    for (int rep = -1; rep < reps; rep++) { /* rep -1 warms up */
        graph_reset(gr);
        tensor_profile_begin();
        double t0 = bench_now();
        Tensor *o = op_gated_delta_rule(gr, q, k, v, g, beta, &s);
        double t1 = bench_now();
        Tensor *l = op_weighted_sum(gr, o, w);
        double t2 = bench_now();
        if (!l || graph_backward(gr, l, 1.0f) != 0) {
            fprintf(stderr, "bench_deltanet: T %d failed: %s\n", T, graph_error(gr));
            exit(1);
        }
        double t3 = bench_now();
        TensorProfile p;
        tensor_profile_end(&p);
        if (rep < 0) continue;
        double total = (t1 - t0) + (t3 - t2);
        if (total < best.forward + best.backward) {
            /* the op counts as the DeltaNet class (its products taken out) */
            double prod = p.product_seconds_in[TENSOR_OP_DELTANET];
            double other = p.seconds[TENSOR_OP_DELTANET];
            best = (Result){t1 - t0,
                            t3 - t2,
                            prod,
                            other / (other + prod),
                            p.product_flops_in[TENSOR_OP_DELTANET] / prod * 1e-9,
                            graph_arena_bytes(gr)};
        }
    }
    graph_destroy(gr);
    Tensor *all[] = {q, k, v, w, g, beta};
    for (int i = 0; i < 6; i++) tensor_free(all[i]);
    return best;
}

int main(int argc, char **argv) {
    tensor_blas_use_cpu_kernels(argv);
    int reps = 3, threads = 0, ts[8], nt = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--reps") && i + 1 < argc)
            reps = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--threads") && i + 1 < argc)
            threads = atoi(argv[++i]);
        else if (atoi(argv[i]) > 0 && nt < 8)
            ts[nt++] = atoi(argv[i]);
        else {
            fprintf(stderr, "usage: bench_deltanet [--reps N] [--threads N] [T ...]\n");
            return 2;
        }
    }
    if (!nt) {
        ts[nt++] = 1024;
        ts[nt++] = 4096;
    }
    tensor_set_threads(threads);
    printf("gated delta rule, %d key / %d value heads of %d, batch 1, %d threads, OpenBLAS %s\n",
           NK, NV, DK, tensor_threads(), tensor_blas_core());
    printf("%6s %10s %10s %12s %10s %12s %10s %10s\n", "T", "fwd ms", "bwd ms", "us/token",
           "GFLOP/s", "non-product", "arena MB", "peak MB");
    double first_per_token = 0.0;
    for (int i = 0; i < nt; i++) {
        Result r = bench(ts[i], reps);
        double per_token = (r.forward + r.backward) / ts[i] * 1e6;
        if (i == 0) first_per_token = per_token;
        printf("%6d %10.1f %10.1f %12.1f %10.1f %11.1f%% %10.1f %10.1f", ts[i], r.forward * 1e3,
               r.backward * 1e3, per_token, r.gflops, 100.0 * r.nonproduct, r.arena / 1048576.0,
               bench_peak_rss_kb() / 1024.0);
        if (i > 0) printf("   per token %.2fx T %d's", per_token / first_per_token, ts[0]);
        printf("\n");
    }
    return 0;
}
