/* tensor/thin.c — the products of LoRA's rank-r factors (see matmul.h).
 *
 * Four of them sum over the wide side of an activation into something only r (4 to 64)
 * wide: h = x A^T and dh = s dy B (N, R), dB^T = s h^T dy and dA = dh^T x (R, OUT / IN).
 * OpenBLAS runs those at a fraction of its speed: it packs the wide operand (the whole
 * activation, copied once more) for a product that does r multiply-adds per element of it.
 * The two that spread R values back over a wide row (y += s h B^T, dx += dh A) run at half
 * its speed or less with K = r. These loops read the wide operand once, in place:
 *   thin_project  c (n, rp) = alpha a (n, k) mT (k, rp)   rows of a against mT's columns
 *   thin_reduce   g (r, k) = beta g + alpha c^T (r, n) a (n, k)
 *   thin_spread   y (n, k) += alpha c (n, r) m (r, k)
 * rp is r rounded up to a multiple of 8 (THIN_PAD): thin_project writes its padded columns
 * (zero when mT's are) and thin_reduce reads them, so that every row is whole vectors.
 *
 * Every output element is one chain of fused multiply-adds over the summed index in
 * ascending order, starting from zero, then one multiply by alpha (thin_project, thin_reduce
 * without beta) or one fused multiply-add of alpha into the output (thin_reduce with beta,
 * thin_spread). The AVX-512, AVX2 and scalar loops (fmaf, for CPUs without AVX2) run those
 * same operations, so they give the same bits; the work is split between threads by output
 * rows or columns only, so the results do not depend on the thread count either.
 *
 * thin_spread's bits are also those of OpenBLAS's sgemm with K = r on its SkylakeX kernels
 * (the product it replaces; checked at the SmolLM-135M shapes).
 *
 * Measured at the SmolLM-135M shape (1024 rows, 576 wide, r 8, AMD EPYC Zen 4, 2 threads):
 * reduce 64 -> 46 us with a in cache, 190 -> 110 us out of it (24 chains in registers and one
 * pass over a instead of 8 and two); spread 70 us against sgemm's 107 in cache, the same out
 * of it; project no faster with AVX-512's 16 row chains than with AVX2's 8. In a bf16
 * training step the LoRA products took 138 ms instead of 154. */
#include "tensor/matmul.h"
#include "tensor/bf16.h"
#include "tensor/profile.h"
#include "tensor/simd.h"

#include <immintrin.h>
#include <math.h>
#include <string.h>

static int g_limit = THIN_AVX512; /* thin_limit_path: tests compare the paths */

void thin_limit_path(ThinPath most) {
    __atomic_store_n(&g_limit, (int)most, __ATOMIC_RELAXED);
}

static ThinPath thin_path(void) {
    int v = simd_level(), limit = __atomic_load_n(&g_limit, __ATOMIC_RELAXED);
    return (ThinPath)(v < limit ? v : limit); /* ThinPath's values are simd_level's */
}

#define AVX512 __attribute__((target("avx512f,avx512vl,fma")))
#define AVX2   __attribute__((target("avx2,fma")))

/* ---- thin_project --------------------------------------------------------------- */

/* Rows [i0, i0 + rows) (rows <= 16), columns [jb, jb + 8): sixteen independent chains, so
 * the multiply-adds' latency is hidden (AVX-512's 32 vector registers hold them). */
AVX512 static void project_block_avx512(int64_t i0, int rows, int k, int jb, float alpha,
                                        const float *a, int64_t lda, const float *mT, int ldm,
                                        float *c, int ldc) {
    __m256 acc[16];
    for (int ii = 0; ii < 16; ii++) acc[ii] = _mm256_setzero_ps();
    const float *a0 = a + i0 * lda;
    if (rows == 16) {
        for (int t = 0; t < k; t++) {
            __m256 m = _mm256_loadu_ps(mT + (int64_t)t * ldm + jb);
            for (int ii = 0; ii < 16; ii++)
                acc[ii] = _mm256_fmadd_ps(_mm256_set1_ps(a0[ii * lda + t]), m, acc[ii]);
        }
    } else {
        for (int t = 0; t < k; t++) {
            __m256 m = _mm256_loadu_ps(mT + (int64_t)t * ldm + jb);
            for (int ii = 0; ii < rows; ii++)
                acc[ii] = _mm256_fmadd_ps(_mm256_set1_ps(a0[ii * lda + t]), m, acc[ii]);
        }
    }
    __m256 al = _mm256_set1_ps(alpha);
    for (int ii = 0; ii < rows; ii++)
        _mm256_storeu_ps(c + (i0 + ii) * ldc + jb, _mm256_mul_ps(al, acc[ii]));
}

/* Rows [i0, i0 + rows) (rows <= 8), columns [jb, jb + 8). */
AVX2 static void project_block_avx2(int64_t i0, int rows, int k, int jb, float alpha,
                                    const float *a, int64_t lda, const float *mT, int ldm, float *c,
                                    int ldc) {
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
    ThinPath path = thin_path();
    int height = path == THIN_AVX512 ? 16 : 8; /* rows a block */
    int64_t blocks = (n + height - 1) / height;
#pragma omp parallel for schedule(static)
    for (int64_t b = 0; b < blocks; b++) {
        int64_t i0 = height * b;
        int rows = n - i0 < height ? (int)(n - i0) : height;
        for (int jb = 0; jb < rp; jb += THIN_PAD) {
            if (path == THIN_AVX512)
                project_block_avx512(i0, rows, k, jb, alpha, a, lda, mT, ldm, c, ldc);
            else if (path == THIN_AVX2)
                project_block_avx2(i0, rows, k, jb, alpha, a, lda, mT, ldm, c, ldc);
            else
                project_block_scalar(i0, rows, k, jb, alpha, a, lda, mT, ldm, c, ldc);
        }
    }
    profile_product_done(start, (int)n, rp, k);
}

/* ---- thin_reduce ---------------------------------------------------------------- */

/* AVX-512: columns [t, t + 48) of g's rows [jb, jb + 8) (those below r): 24 chains in
 * registers, each row of a read once for all eight rows of g (192 contiguous bytes). */
#define REDUCE_STRIP 48
#define REDUCE_AHEAD 12 /* rows: strided lines the hardware fetches late, out of cache */
AVX512 static void reduce_strip_avx512(int64_t n, int r, int jb, int64_t t, float alpha, bool beta,
                                       const float *c, int ldc, const float *a, int64_t lda,
                                       float *g, int64_t ldg) {
    __m512 acc[8][3];
    for (int jj = 0; jj < 8; jj++)
        for (int h = 0; h < 3; h++) acc[jj][h] = _mm512_setzero_ps();
    for (int64_t i = 0; i < n; i++) {
        const float *ai = a + i * lda + t, *ci = c + i * ldc + jb;
        for (int h = 0; h < 3; h++)
            _mm_prefetch((const char *)(ai + REDUCE_AHEAD * lda + 16 * h), _MM_HINT_T0);
        __m512 a0 = _mm512_loadu_ps(ai), a1 = _mm512_loadu_ps(ai + 16),
               a2 = _mm512_loadu_ps(ai + 32);
        for (int jj = 0; jj < 8; jj++) {
            __m512 cj = _mm512_set1_ps(ci[jj]);
            acc[jj][0] = _mm512_fmadd_ps(cj, a0, acc[jj][0]);
            acc[jj][1] = _mm512_fmadd_ps(cj, a1, acc[jj][1]);
            acc[jj][2] = _mm512_fmadd_ps(cj, a2, acc[jj][2]);
        }
    }
    __m512 al = _mm512_set1_ps(alpha);
    for (int jj = 0; jj < 8 && jb + jj < r; jj++)
        for (int h = 0; h < 3; h++) {
            float *gp = g + (jb + jj) * ldg + t + 16 * h;
            _mm512_storeu_ps(gp, beta ? _mm512_fmadd_ps(al, acc[jj][h], _mm512_loadu_ps(gp))
                                      : _mm512_mul_ps(al, acc[jj][h]));
        }
}

/* Columns [t, t + 16) of rows [jb, jb + 4) of g (rows beyond r not stored). */
AVX2 static void reduce_block_avx2(int64_t n, int r, int jb, int64_t t, float alpha, bool beta,
                                   const float *c, int ldc, const float *a, int64_t lda, float *g,
                                   int64_t ldg) {
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
    ThinPath path = thin_path();
    int64_t wide = path == THIN_AVX512 ? REDUCE_STRIP : 16; /* columns a block */
    int64_t blocks = path == THIN_SCALAR ? 0 : k / wide, tail = wide * blocks;
#pragma omp parallel for schedule(static)
    for (int64_t b = 0; b < blocks + (k - tail); b++) {
        if (b >= blocks) {
            reduce_column_scalar(n, r, tail + (b - blocks), alpha, beta, c, ldc, a, lda, g, ldg);
        } else if (path == THIN_AVX512) {
            for (int jb = 0; jb < r; jb += 8)
                reduce_strip_avx512(n, r, jb, wide * b, alpha, beta, c, ldc, a, lda, g, ldg);
        } else {
            for (int jb = 0; jb < r; jb += 4)
                reduce_block_avx2(n, r, jb, wide * b, alpha, beta, c, ldc, a, lda, g, ldg);
        }
    }
    profile_product_done(start, r, k, (int)n);
}

/* ---- thin_spread ---------------------------------------------------------------- */

/* y (4 rows from i0, columns [t, t + 64)) += alpha c m: sixteen chains in registers. */
AVX512 static void spread_block_avx512(int64_t i0, int64_t t, int r, float alpha, const float *c,
                                       int ldc, const float *m, int64_t ldm, float *y,
                                       int64_t ldy) {
    __m512 acc[4][4];
    for (int ii = 0; ii < 4; ii++)
        for (int h = 0; h < 4; h++) acc[ii][h] = _mm512_setzero_ps();
    const float *ci = c + i0 * ldc;
    for (int j = 0; j < r; j++) {
        const float *mj = m + j * ldm + t;
        __m512 mv[4];
        for (int h = 0; h < 4; h++) mv[h] = _mm512_loadu_ps(mj + 16 * h);
        for (int ii = 0; ii < 4; ii++) {
            __m512 cv = _mm512_set1_ps(ci[ii * ldc + j]);
            for (int h = 0; h < 4; h++) acc[ii][h] = _mm512_fmadd_ps(cv, mv[h], acc[ii][h]);
        }
    }
    __m512 al = _mm512_set1_ps(alpha);
    for (int ii = 0; ii < 4; ii++)
        for (int h = 0; h < 4; h++) {
            float *yp = y + (i0 + ii) * ldy + t + 16 * h;
            _mm512_storeu_ps(yp, _mm512_fmadd_ps(al, acc[ii][h], _mm512_loadu_ps(yp)));
        }
}

/* The same for one row from i, columns [t, t + cols) (cols <= 16), masked. */
AVX512 static void spread_tail_avx512(int64_t i, int64_t t, int cols, int r, float alpha,
                                      const float *c, int ldc, const float *m, int64_t ldm,
                                      float *y, int64_t ldy) {
    __mmask16 mask = cols >= 16 ? 0xffff : (__mmask16)((1u << cols) - 1);
    __m512 acc = _mm512_setzero_ps();
    for (int j = 0; j < r; j++)
        acc = _mm512_fmadd_ps(_mm512_set1_ps(c[i * ldc + j]),
                              _mm512_maskz_loadu_ps(mask, m + j * ldm + t), acc);
    float *yp = y + i * ldy + t;
    _mm512_mask_storeu_ps(
        yp, mask, _mm512_fmadd_ps(_mm512_set1_ps(alpha), acc, _mm512_maskz_loadu_ps(mask, yp)));
}

/* y (2 rows from i0, columns [t, t + 32)) += alpha c m. */
AVX2 static void spread_block_avx2(int64_t i0, int rows, int64_t t, int r, float alpha,
                                   const float *c, int ldc, const float *m, int64_t ldm, float *y,
                                   int64_t ldy) {
    __m256 acc[2][4];
    for (int ii = 0; ii < 2; ii++)
        for (int h = 0; h < 4; h++) acc[ii][h] = _mm256_setzero_ps();
    for (int j = 0; j < r; j++) {
        const float *mj = m + j * ldm + t;
        __m256 mv[4];
        for (int h = 0; h < 4; h++) mv[h] = _mm256_loadu_ps(mj + 8 * h);
        for (int ii = 0; ii < rows; ii++) {
            __m256 cv = _mm256_set1_ps(c[(i0 + ii) * ldc + j]);
            for (int h = 0; h < 4; h++) acc[ii][h] = _mm256_fmadd_ps(cv, mv[h], acc[ii][h]);
        }
    }
    __m256 al = _mm256_set1_ps(alpha);
    for (int ii = 0; ii < rows; ii++)
        for (int h = 0; h < 4; h++) {
            float *yp = y + (i0 + ii) * ldy + t + 8 * h;
            _mm256_storeu_ps(yp, _mm256_fmadd_ps(al, acc[ii][h], _mm256_loadu_ps(yp)));
        }
}

static void spread_scalar(int64_t i0, int rows, int64_t t0, int64_t t1, int r, float alpha,
                          const float *c, int ldc, const float *m, int64_t ldm, float *y,
                          int64_t ldy) {
    for (int64_t i = i0; i < i0 + rows; i++)
        for (int64_t t = t0; t < t1; t++) {
            float acc = 0.0f;
            for (int j = 0; j < r; j++) acc = fmaf(c[i * ldc + j], m[j * ldm + t], acc);
            y[i * ldy + t] = fmaf(alpha, acc, y[i * ldy + t]);
        }
}

void thin_spread(int64_t n, int64_t k, int r, float alpha, const float *c, int ldc, const float *m,
                 int64_t ldm, float *y, int64_t ldy) {
    PROFILE_OP(TENSOR_OP_PRODUCTS);
    double start = profile_product_start();
    ThinPath path = thin_path();
    int height = path == THIN_AVX512 ? 4 : path == THIN_AVX2 ? 2 : 1;
    int64_t wide = path == THIN_AVX512 ? 64 : 32, blocks = (n + height - 1) / height;
#pragma omp parallel for schedule(static)
    for (int64_t b = 0; b < blocks; b++) {
        int64_t i0 = height * b;
        int rows = n - i0 < height ? (int)(n - i0) : height;
        if (path == THIN_AVX512) {
            int64_t t = 0;
            if (rows == 4)
                for (; t + wide <= k; t += wide)
                    spread_block_avx512(i0, t, r, alpha, c, ldc, m, ldm, y, ldy);
            for (int ii = 0; ii < rows; ii++)
                for (int64_t u = t; u < k; u += 16)
                    spread_tail_avx512(i0 + ii, u, (int)(k - u < 16 ? k - u : 16), r, alpha, c, ldc,
                                       m, ldm, y, ldy);
        } else if (path == THIN_AVX2) {
            int64_t t = 0;
            for (; t + wide <= k; t += wide)
                spread_block_avx2(i0, rows, t, r, alpha, c, ldc, m, ldm, y, ldy);
            spread_scalar(i0, rows, t, k, r, alpha, c, ldc, m, ldm, y, ldy);
        } else {
            spread_scalar(i0, rows, 0, k, r, alpha, c, ldc, m, ldm, y, ldy);
        }
    }
    profile_product_done(start, (int)n, (int)k, r);
}

/* ---- from bf16 operands: BF16 precision on AVX512-BF16 -------------------------- */

/* VDPBF16PS adds two products of bf16 pairs into each f32 lane (attention_bf16.c has its
 * bits): twice an f32 FMA's products per instruction, from operands half as wide. BF16
 * precision's base products already hold their inputs in bf16 (the activation x, the
 * upstream gradient dy), so h = x A^T, dh = s dy B and dB^T = s h^T dy read those copies and
 * A, B and h rounded to bf16, and dA = dh^T x rounds x as it reads it, as PyTorch's autocast
 * computes a LoRA layer (ops_linear.c says which and what they gain). thin_project_bf16 keeps a
 * chain a row in one 16-lane register, each lane pair summing alternate pairs of a quad of k;
 * thin_reduce_bf16 runs thin_reduce's strips over pairs of rows, the two rows' values interleaved
 * in registers (and rounded there when a is f32). */
#define AVX512BF16 __attribute__((target("avx512f,avx512vl,avx512bw,avx512bf16,fma")))

bool thin_bf16(void) {
    return simd_avx512_bf16();
}

size_t thin_quads_size(int k, int rp) {
    return (size_t)(k + 3) / 4 * (size_t)rp * 4;
}

void thin_quads(uint16_t *q, const float *m, int k, int r, int rp, int64_t st, int64_t sj) {
#pragma omp parallel for schedule(static) if (k >= THIN_TEAM_ROWS)
    for (int u = 0; u < (k + 3) / 4; u++)
        for (int j = 0; j < rp; j++)
            for (int e = 0; e < 4; e++) {
                int t = 4 * u + e;
                float v = t < k && j < r ? m[t * st + j * sj] : 0.0f;
                q[((int64_t)u * rp + j) * 4 + e] = bf16_round(v);
            }
}

size_t thin_pairs_size(int64_t n, int rp) {
    return (size_t)(n + 1) / 2 * (size_t)rp * 2;
}

void thin_pairs(uint16_t *p, const float *c, int64_t n, int rp, int ldc) {
#pragma omp parallel for schedule(static) if (n >= THIN_TEAM_ROWS)
    for (int64_t i = 0; i < n; i += 2) {
        const float *c0 = c + i * ldc, *c1 = c0 + ldc;
        uint16_t *pi = p + i * rp; /* pair i / 2: (i / 2) rp 2 */
        for (int j = 0; j < rp; j++) {
            pi[2 * j] = bf16_round(c0[j]);
            pi[2 * j + 1] = i + 1 < n ? bf16_round(c1[j]) : 0;
        }
    }
}

/* a's terms [4u, 4u + 4) of a row as one 64-bit word for every pair of lanes: the even
 * lane gets the quad's first pair, the odd lane its second. */
AVX512BF16 static inline __m512i quad_of(const uint16_t *row, int u) {
    long long v;
    memcpy(&v, row + 4 * u, sizeof v);
    return _mm512_set1_epi64(v);
}

/* The same for the last quad when k is not a multiple of 4: zero beyond k. */
AVX512BF16 static inline __m512i last_quad_of(const uint16_t *row, int u, int k) {
    uint64_t v = 0;
    for (int e = 0; e < k - 4 * u; e++) v |= (uint64_t)row[4 * u + e] << 16 * e;
    return _mm512_set1_epi64((long long)v);
}

/* Rows [i0, i0 + ROWS) (a constant for the compiler to unroll), columns [jb, jb + 8): a
 * chain a row, lane 2j over the quads' first pairs and lane 2j + 1 over their second, the
 * two added at the end. */
AVX512BF16 __attribute__((always_inline)) static inline void
project_rows_bf16(int ROWS, int64_t i0, int k, int rp, int jb, float alpha, const uint16_t *a,
                  int64_t lda, const uint16_t *q, float *c, int ldc) {
    __m512 acc[16];
    for (int ii = 0; ii < ROWS; ii++) acc[ii] = _mm512_setzero_ps();
    const uint16_t *a0 = a + i0 * lda;
    int whole = k / 4;
    for (int u = 0; u < whole; u++) {
        __m512i m = _mm512_loadu_si512(q + ((int64_t)u * rp + jb) * 4);
        for (int ii = 0; ii < ROWS; ii++)
            acc[ii] = _mm512_dpbf16_ps(acc[ii], (__m512bh)quad_of(a0 + ii * lda, u), (__m512bh)m);
    }
    if (k % 4) {
        __m512i m = _mm512_loadu_si512(q + ((int64_t)whole * rp + jb) * 4);
        for (int ii = 0; ii < ROWS; ii++)
            acc[ii] = _mm512_dpbf16_ps(acc[ii], (__m512bh)last_quad_of(a0 + ii * lda, whole, k),
                                       (__m512bh)m);
    }
    __m256 al = _mm256_set1_ps(alpha);
    for (int ii = 0; ii < ROWS; ii++) {
        __m512 both = _mm512_add_ps(acc[ii], _mm512_permute_ps(acc[ii], 0xb1)); /* 2j + (2j+1) */
        __m256 sum = _mm512_castps512_ps256(_mm512_maskz_compress_ps(0x5555, both));
        _mm256_storeu_ps(c + (i0 + ii) * ldc + jb, _mm256_mul_ps(al, sum));
    }
}

AVX512BF16 static void project_block_bf16(int64_t i0, int rows, int k, int rp, int jb, float alpha,
                                          const uint16_t *a, int64_t lda, const uint16_t *q,
                                          float *c, int ldc) {
    if (rows == 16)
        project_rows_bf16(16, i0, k, rp, jb, alpha, a, lda, q, c, ldc);
    else
        for (int ii = 0; ii < rows; ii++)
            project_rows_bf16(1, i0 + ii, k, rp, jb, alpha, a, lda, q, c, ldc);
}

void thin_project_bf16(int64_t n, int k, int rp, float alpha, const uint16_t *a, int64_t lda,
                       const uint16_t *q, float *c, int ldc) {
    PROFILE_OP(TENSOR_OP_PRODUCTS);
    double start = profile_product_start();
    int64_t blocks = (n + 15) / 16;
#pragma omp parallel for schedule(static)
    for (int64_t b = 0; b < blocks; b++) {
        int64_t i0 = 16 * b;
        int rows = n - i0 < 16 ? (int)(n - i0) : 16;
        for (int jb = 0; jb < rp; jb += THIN_PAD)
            project_block_bf16(i0, rows, k, rp, jb, alpha, a, lda, q, c, ldc);
    }
    profile_product_done(start, (int)n, rp, k);
}

/* a's columns [t, t + 16) (those under mask) of rows i and i + 1 (zero when i + 1 = n)
 * interleaved: lane l holds the pair (a[i][t + l], a[i + 1][t + l]). */
AVX512BF16 static inline __m512i row_pairs(const uint16_t *ai, int64_t lda, bool second,
                                           __mmask16 mask) {
    __m512i lo = _mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(mask, ai));
    if (!second) return lo;
    __m512i hi = _mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(mask, ai + lda));
    return _mm512_or_si512(lo, _mm512_slli_epi32(hi, 16));
}

/* The same from f32 rows, rounded here (bf16_interleave16). */
AVX512BF16 static inline __m512i row_pairs_rounded(const float *ai, int64_t lda, bool second,
                                                   __mmask16 mask) {
    __m512 lo = _mm512_maskz_loadu_ps(mask, ai);
    __m512 hi = second ? _mm512_maskz_loadu_ps(mask, ai + lda) : _mm512_setzero_ps();
    return bf16_interleave16(lo, hi);
}

/* Columns [t, t + 16 NV) of g's rows [jb, jb + 8) (those below r; the last vector's columns
 * under `last`): 8 NV chains over the pairs of rows, of a's bits or of its floats rounded. */
AVX512BF16 __attribute__((always_inline)) static inline void
reduce_strip_bf16(int NV, __mmask16 last, int64_t n, int r, int rp, int jb, int64_t t, float alpha,
                  const uint16_t *p, const uint16_t *a_bits, const float *a_floats, int64_t lda,
                  bool beta, float *g, int64_t ldg) {
    __m512 acc[8][3];
    for (int jj = 0; jj < 8; jj++)
        for (int h = 0; h < NV; h++) acc[jj][h] = _mm512_setzero_ps();
    for (int64_t i = 0; i < n; i += 2) {
        __m512i v[3];
        for (int h = 0; h < NV; h++) {
            __mmask16 mask = h == NV - 1 ? last : 0xffff;
            if (a_bits) {
                const uint16_t *ai = a_bits + i * lda + t + 16 * h;
                _mm_prefetch((const char *)(ai + REDUCE_AHEAD * lda), _MM_HINT_T0);
                v[h] = row_pairs(ai, lda, i + 1 < n, mask);
            } else {
                const float *ai = a_floats + i * lda + t + 16 * h;
                _mm_prefetch((const char *)(ai + REDUCE_AHEAD * lda), _MM_HINT_T0);
                v[h] = row_pairs_rounded(ai, lda, i + 1 < n, mask);
            }
        }
        const uint16_t *pi = p + ((i / 2) * rp + jb) * 2;
        for (int jj = 0; jj < 8; jj++) {
            uint32_t pair;
            memcpy(&pair, pi + 2 * jj, sizeof pair);
            __m512i cj = _mm512_set1_epi32((int)pair);
            for (int h = 0; h < NV; h++)
                acc[jj][h] = _mm512_dpbf16_ps(acc[jj][h], (__m512bh)cj, (__m512bh)v[h]);
        }
    }
    __m512 al = _mm512_set1_ps(alpha);
    for (int jj = 0; jj < 8 && jb + jj < r; jj++)
        for (int h = 0; h < NV; h++) {
            __mmask16 mask = h == NV - 1 ? last : 0xffff;
            float *gp = g + (jb + jj) * ldg + t + 16 * h;
            _mm512_mask_storeu_ps(
                gp, mask,
                beta ? _mm512_fmadd_ps(al, acc[jj][h], _mm512_maskz_loadu_ps(mask, gp))
                     : _mm512_mul_ps(al, acc[jj][h]));
        }
}

AVX512BF16 static void reduce_block_bf16(int64_t n, int k, int r, int rp, int64_t t, float alpha,
                                         const uint16_t *p, const uint16_t *a_bits,
                                         const float *a_floats, int64_t lda, bool beta, float *g,
                                         int64_t ldg) {
    int cols = k - t < REDUCE_STRIP ? (int)(k - t) : REDUCE_STRIP, nv = (cols + 15) / 16;
    __mmask16 last = (__mmask16)((1u << (cols - 16 * (nv - 1))) - 1u);
    for (int jb = 0; jb < r; jb += 8) {
        if (nv == 3 && a_bits)
            reduce_strip_bf16(3, last, n, r, rp, jb, t, alpha, p, a_bits, NULL, lda, beta, g, ldg);
        else if (nv == 3)
            reduce_strip_bf16(3, last, n, r, rp, jb, t, alpha, p, NULL, a_floats, lda, beta, g,
                              ldg);
        else
            reduce_strip_bf16(nv, last, n, r, rp, jb, t, alpha, p, a_bits, a_floats, lda, beta, g,
                              ldg);
    }
}

void thin_reduce_bf16(int64_t n, int k, int r, float alpha, const uint16_t *p, int rp,
                      const uint16_t *a_bits, const float *a_floats, int64_t lda, bool beta,
                      float *g, int64_t ldg) {
    PROFILE_OP(TENSOR_OP_PRODUCTS);
    double start = profile_product_start();
    int64_t blocks = (k + REDUCE_STRIP - 1) / REDUCE_STRIP;
#pragma omp parallel for schedule(static)
    for (int64_t b = 0; b < blocks; b++)
        reduce_block_bf16(n, k, r, rp, REDUCE_STRIP * b, alpha, p, a_bits, a_floats, lda, beta, g,
                          ldg);
    profile_product_done(start, r, k, (int)n);
}
