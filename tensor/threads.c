/* tensor/threads.c — one thread count for OpenBLAS and our OpenMP loops, plus the small
 * shared helpers (matmul wrapper, dropout hash). */
#include "tensor/graph_internal.h"

#include <cblas.h>
#include <omp.h>

static int g_threads = 0; /* 0 = not set yet: whatever OpenMP defaults to */

/* OpenBLAS takes its work buffer (128 MB of address space) the first time a thread
 * multiplies, and when that mmap fails it retries forever instead of returning. One small
 * product on each thread as soon as the count is set — before any activation is allocated —
 * takes the buffers while memory is plentiful, so running out later is the graph's clear
 * "out of memory" error, never a hang inside sgemm (seen under `ulimit -v`). */
static void reserve_blas_buffers(void) {
    float a[4] = {0}, c[4];
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, 2, 2, 2, 1.0f, a, 2, a, 2, 0.0f, c, 2);
#pragma omp parallel
    {
        float t[4];
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, 2, 2, 2, 1.0f, a, 2, a, 2, 0.0f, t,
                    2);
    }
}

void tensor_set_threads(int n) {
    if (n <= 0) n = omp_get_num_procs();
    g_threads = n;
    omp_set_num_threads(n);
    openblas_set_num_threads(n);
    reserve_blas_buffers();
}

int tensor_threads(void) {
    return g_threads ? g_threads : omp_get_max_threads();
}

void tensor_matmul(float *c, const float *a, const float *b, int m, int n, int k, bool transb,
                   bool accumulate) {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, transb ? CblasTrans : CblasNoTrans, m, n, k, 1.0f, a,
                k, b, transb ? k : n, accumulate ? 1.0f : 0.0f, c, n);
}

float tensor_dropout_uniform(uint64_t seed, uint64_t index) {
    return dropout_uniform(dropout_key(seed), index);
}
