/* tensor/thin.c — the products of LoRA's rank-r factors (see matmul.h).
 *
 * Four of them sum over the wide side of an activation into something only r (4 to 64)
 * wide: h = x A^T and dh = s dy B (N, R), dB^T = s h^T dy and dA = dh^T x (R, OUT / IN).
 * OpenBLAS runs those at a fraction of its speed: it packs the wide operand (the whole
 * activation, copied once more) for a product that does r multiply-adds per element of it.
 * These loops read it once, in place (measured at the SmolLM-135M shape, 1024 rows, 576 and
 * 1536 wide, r 8: 0.53 ms for the four against 1.01 in OpenBLAS sgemm, AMD EPYC Zen 4):
 *   thin_project  c (n, rp) = alpha a (n, k) mT (k, rp)   rows of a against mT's columns
 *   thin_reduce   g (r, k) = beta g + alpha c^T (r, n) a (n, k)
 * The two that spread R values back over a wide row (y += s h B^T, dx += dh A) stay sgemm,
 * which runs them as fast as these loops would.
 * rp is r rounded up to a multiple of 8 (THIN_PAD): thin_project writes its padded columns
 * (zero when mT's are) and thin_reduce reads them, so that every row is whole vectors.
 *
 * Every output element is one chain of fused multiply-adds over the summed index in
 * ascending order, then one multiply by alpha (and one fused add of beta y): the AVX2 loops
 * and the scalar ones (fmaf, for CPUs without AVX2) give the same bits, and the work is split
 * between threads by output rows or columns only, so the results do not depend on the thread
 * count. */
#include "tensor/matmul.h"
#include "tensor/profile.h"

#include <immintrin.h>
#include <math.h>

static int g_scalar; /* thin_set_scalar: tests compare the two paths */

void thin_set_scalar(bool scalar) {
    __atomic_store_n(&g_scalar, scalar, __ATOMIC_RELAXED);
}

static bool have_avx2(void) {
    static int ok = -1; /* every thread computes the same answer */
    if (__atomic_load_n(&g_scalar, __ATOMIC_RELAXED)) return false;
    int v = __atomic_load_n(&ok, __ATOMIC_RELAXED);
    if (v < 0) {
        __builtin_cpu_init();
        v = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
        __atomic_store_n(&ok, v, __ATOMIC_RELAXED);
    }
    return v;
}

/* ---- thin_project --------------------------------------------------------------- */

/* Rows [i0, i0 + rows) (rows <= 8), columns [jb, jb + 8). */
__attribute__((target("avx2,fma"))) static void
project_block_avx2(int64_t i0, int rows, int k, int jb, float alpha, const float *a, int64_t lda,
                   const float *mT, int ldm, float *c, int ldc) {
    __m256 acc[8];
    for (int ii = 0; ii < 8; ii++) acc[ii] = _mm256_setzero_ps();
    const float *ar[8];
    for (int ii = 0; ii < 8; ii++) ar[ii] = a + (i0 + (ii < rows ? ii : 0)) * lda;
    if (rows == 8) {
        for (int t = 0; t < k; t++) {
            __m256 m = _mm256_loadu_ps(mT + (int64_t)t * ldm + jb);
            for (int ii = 0; ii < 8; ii++)
                acc[ii] = _mm256_fmadd_ps(_mm256_set1_ps(ar[ii][t]), m, acc[ii]);
        }
    } else {
        for (int t = 0; t < k; t++) {
            __m256 m = _mm256_loadu_ps(mT + (int64_t)t * ldm + jb);
            for (int ii = 0; ii < rows; ii++)
                acc[ii] = _mm256_fmadd_ps(_mm256_set1_ps(ar[ii][t]), m, acc[ii]);
        }
    }
    __m256 al = _mm256_set1_ps(alpha);
    for (int ii = 0; ii < rows; ii++)
        _mm256_storeu_ps(c + (i0 + ii) * ldc + jb, _mm256_mul_ps(al, acc[ii]));
}

static void project_block_scalar(int64_t i0, int rows, int k, int jb, float alpha, const float *a,
                                 int64_t lda, const float *mT, int ldm, float *c, int ldc) {
    for (int ii = 0; ii < rows; ii++)
        for (int j = jb; j < jb + THIN_PAD; j++) {
            float acc = 0.0f;
            for (int t = 0; t < k; t++)
                acc = fmaf(a[(i0 + ii) * lda + t], mT[(int64_t)t * ldm + j], acc);
            c[(i0 + ii) * ldc + j] = alpha * acc;
        }
}

void thin_project(int64_t n, int k, int rp, float alpha, const float *a, int64_t lda,
                  const float *mT, int ldm, float *c, int ldc) {
    PROFILE_OP(TENSOR_OP_PRODUCTS);
    double start = profile_product_start();
    bool avx2 = have_avx2();
    int64_t blocks = (n + 7) / 8;
#pragma omp parallel for schedule(static)
    for (int64_t b = 0; b < blocks; b++) {
        int rows = n - 8 * b < 8 ? (int)(n - 8 * b) : 8;
        for (int jb = 0; jb < rp; jb += THIN_PAD) {
            if (avx2)
                project_block_avx2(8 * b, rows, k, jb, alpha, a, lda, mT, ldm, c, ldc);
            else
                project_block_scalar(8 * b, rows, k, jb, alpha, a, lda, mT, ldm, c, ldc);
        }
    }
    profile_product_done(start, (int)n, rp, k);
}

/* ---- thin_reduce ---------------------------------------------------------------- */

/* Columns [t, t + 16) of rows [jb, jb + 4) of g (rows beyond r not stored). */
__attribute__((target("avx2,fma"))) static void
reduce_block_avx2(int64_t n, int r, int jb, int64_t t, float alpha, bool beta, const float *c,
                  int ldc, const float *a, int64_t lda, float *g, int64_t ldg) {
    __m256 acc[4][2];
    for (int jj = 0; jj < 4; jj++) acc[jj][0] = acc[jj][1] = _mm256_setzero_ps();
    for (int64_t i = 0; i < n; i++) {
        const float *ai = a + i * lda + t, *ci = c + i * ldc + jb;
        __m256 a0 = _mm256_loadu_ps(ai), a1 = _mm256_loadu_ps(ai + 8);
        for (int jj = 0; jj < 4; jj++) {
            __m256 cj = _mm256_set1_ps(ci[jj]);
            acc[jj][0] = _mm256_fmadd_ps(cj, a0, acc[jj][0]);
            acc[jj][1] = _mm256_fmadd_ps(cj, a1, acc[jj][1]);
        }
    }
    __m256 al = _mm256_set1_ps(alpha);
    for (int jj = 0; jj < 4 && jb + jj < r; jj++)
        for (int h = 0; h < 2; h++) {
            float *gp = g + (jb + jj) * ldg + t + 8 * h;
            _mm256_storeu_ps(gp, beta ? _mm256_fmadd_ps(al, acc[jj][h], _mm256_loadu_ps(gp))
                                      : _mm256_mul_ps(al, acc[jj][h]));
        }
}

static void reduce_column_scalar(int64_t n, int r, int64_t t, float alpha, bool beta,
                                 const float *c, int ldc, const float *a, int64_t lda, float *g,
                                 int64_t ldg) {
    for (int j = 0; j < r; j++) {
        float acc = 0.0f;
        for (int64_t i = 0; i < n; i++) acc = fmaf(c[i * ldc + j], a[i * lda + t], acc);
        float *gp = g + j * ldg + t;
        *gp = beta ? fmaf(alpha, acc, *gp) : alpha * acc;
    }
}

void thin_reduce(int64_t n, int k, int r, float alpha, const float *c, int ldc, const float *a,
                 int64_t lda, bool beta, float *g, int64_t ldg) {
    PROFILE_OP(TENSOR_OP_PRODUCTS);
    double start = profile_product_start();
    bool avx2 = have_avx2();
    int64_t blocks = avx2 ? k / 16 : 0, tail = 16 * blocks;
#pragma omp parallel for schedule(static)
    for (int64_t b = 0; b < blocks + (k - tail); b++) {
        if (b < blocks) {
            for (int jb = 0; jb < r; jb += 4)
                reduce_block_avx2(n, r, jb, 16 * b, alpha, beta, c, ldc, a, lda, g, ldg);
        } else {
            reduce_column_scalar(n, r, tail + (b - blocks), alpha, beta, c, ldc, a, lda, g, ldg);
        }
    }
    profile_product_done(start, r, k, (int)n);
}
