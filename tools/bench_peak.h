/* tools/bench_peak.h — the machine's peaks: GFLOP/s of a 1024^3 product in OpenBLAS sgemm,
 * oneDNN's f32 matmul and oneDNN's bf16 matmul, the fastest of a few after a warm-up one
 * (oneDNN's first JITs). bench_kernels prints them; bench_train measures them again between
 * its steps. Header-only: each program in tools/ is built on its own. */
#ifndef LORAFIT_BENCH_PEAK_H
#define LORAFIT_BENCH_PEAK_H

#include <stdint.h>
#include <stdlib.h>

#include "tensor/tensor.h"
#include "tools/bench_util.h"

/* oneDNN's on its own threads (the peaks the ratios divide by), and split by rows between
 * the threads as lorafit runs its products (onednn.c; faster on some machines). */
typedef enum {
    PEAK_SGEMM,
    PEAK_ONEDNN_F32,
    PEAK_ONEDNN_BF16,
    PEAK_ONEDNN_F32_SPLIT,
    PEAK_ONEDNN_BF16_SPLIT
} PeakKind;

/* The same operands for every kind: f32 a, b and their bf16 ab, bb, (s, s) each. */
typedef struct {
    float *c, *a, *b;
    uint16_t *ab, *bb;
    int s;
} PeakOperands;

/* Operands of s x s filled with values in [-0.5, 0.5); false when out of memory. */
static inline bool bench_peak_operands(PeakOperands *o, int s) {
    size_t n = (size_t)s * s;
    *o = (PeakOperands){malloc(n * sizeof(float)),    malloc(n * sizeof(float)),
                        malloc(n * sizeof(float)),    malloc(n * sizeof(uint16_t)),
                        malloc(n * sizeof(uint16_t)), s};
    if (!o->c || !o->a || !o->b || !o->ab || !o->bb) return false;
    uint64_t st = 1;
    for (size_t i = 0; i < n; i++) {
        o->a[i] = (float)((rng_splitmix64(&st) >> 40) * 0x1.0p-24 - 0.5);
        o->b[i] = (float)((rng_splitmix64(&st) >> 40) * 0x1.0p-24 - 0.5);
    }
    tensor_float_to_bf16_array(o->ab, o->a, (int64_t)n);
    tensor_float_to_bf16_array(o->bb, o->b, (int64_t)n);
    return true;
}

static inline void bench_peak_operands_free(PeakOperands *o) {
    free(o->c), free(o->a), free(o->b), free(o->ab), free(o->bb);
}

/* One product of kind; 0, or -1 when it cannot run on this CPU. */
static inline int bench_peak_product(PeakKind kind, const PeakOperands *o) {
    switch (kind) {
    case PEAK_SGEMM:
        tensor_matmul(o->c, o->a, o->b, o->s, o->s, o->s, false, false);
        return 0;
    case PEAK_ONEDNN_F32:
    case PEAK_ONEDNN_F32_SPLIT:
        return tensor_matmul_onednn_f32(o->c, o->a, o->b, o->s, o->s, o->s, false,
                                        kind == PEAK_ONEDNN_F32_SPLIT);
    default:
        return tensor_matmul_bf16(o->c, o->ab, o->bb, o->s, o->s, o->s, false,
                                  kind == PEAK_ONEDNN_BF16_SPLIT);
    }
}

/* kind's GFLOP/s over the fastest of reps products after a warm-up one; 0 when it cannot run. */
static inline double bench_peak_gflops(PeakKind kind, const PeakOperands *o, int reps) {
    if (bench_peak_product(kind, o) != 0) return 0;
    double best = 1e30;
    for (int i = 0; i < reps; i++) {
        double t0 = bench_now();
        bench_peak_product(kind, o);
        double dt = bench_now() - t0;
        best = dt < best ? dt : best;
    }
    return 2.0 * o->s * o->s * o->s / best * 1e-9;
}

#endif
