/* tensor/onednn.h — oneDNN matmul primitives, created once per shape; private to tensor/.
 *
 * C (M, N) = alpha A (M, K) op(B) + beta C, row-major with leading dimensions: A rows lda
 * apart, B (K, N) rows ldb apart, or with transb B^T where B is stored (N, K) rows ldb apart;
 * C is F32, rows ldc apart. A and B are both BF16 (the native kernels) or both F32 (the
 * same plumbing on any CPU: tests run it where bf16 is not implemented). beta is 0 or 1.
 *
 * Safe to call from inside an OpenMP parallel region (each thread has its own stream,
 * scratchpad and memory objects; oneDNN then runs single-threaded in the caller's thread);
 * outside one, oneDNN parallelises with OpenMP over omp_get_max_threads() threads. */
#ifndef LORAFIT_ONEDNN_H
#define LORAFIT_ONEDNN_H

#include <stdbool.h>
#include <stdint.h>

typedef enum { ONEDNN_F32, ONEDNN_BF16 } OnednnType;

/* 0; ONEDNN_OUT_OF_MEMORY when a new product's kernel was not created because
 * ONEDNN_HEADROOM_MB could not be mapped (onednn.c says why); -1 when oneDNN cannot create or
 * run this product (unimplemented on this CPU). */
#define ONEDNN_OUT_OF_MEMORY (-2)
#define ONEDNN_HEADROOM_MB   16
int onednn_gemm(OnednnType type, int m, int n, int k, float alpha, const void *a, int64_t lda,
                const void *b, int64_t ldb, bool transb, float beta, float *c, int64_t ldc);

/* The same as one oneDNN product on oneDNN's own threads (no split by rows): the library as
 * it comes, whose 1024^3 speed is the peak tools/bench_kernels reports. */
int onednn_gemm_whole(OnednnType type, int m, int n, int k, const void *a, const void *b,
                      bool transb, float *c);

/* The implementation oneDNN picks for a typical layer product (256 x 256 x 256, B
 * transposed) of this type, e.g. "brg:avx512_core_amx_bf16"; NULL when unimplemented. */
const char *onednn_impl_name(OnednnType type);

#endif
