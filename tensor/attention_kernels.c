/* tensor/attention_kernels.c — the fused attention's block products (attention_internal.h).
 *
 * Every product of the fused attention is small: one block of 64 query rows against one block
 * of 64 keys, D deep (64 to 512), or the reverse. OpenBLAS and oneDNN spend a good part of
 * such a product packing their operands and dispatching; these loops read the operands in
 * place (A through any two strides, so a transposed P or dS costs nothing) and keep a tile of
 * C in registers: 4 rows x 64 columns (16 AVX-512 or 16 AVX2 accumulators, the FMA pipes'
 * latency times their count), B's row streamed, A's elements broadcast.
 *
 * Each element of C is one chain of fused multiply-adds over the summed index in ascending
 * order, started from 0 or from C: the AVX-512 loops, the AVX2 loops and the portable fmaf
 * loops give the same bits (tests compare them), so the results depend neither on the CPU's
 * vector width nor on how the blocks are shared out among threads. In BF16 precision the
 * operands hold bf16-rounded values, whose products are exact in f32: the arithmetic of
 * BF16 precision's contract (tensor.h), on the same loops. */
#include "tensor/attention_internal.h"
#include "tensor/attention_exp.h"
#include "tensor/bf16.h"
#include "tensor/profile.h"
#include "tensor/simd.h"

#include <immintrin.h>
#include <math.h>
#include <string.h>

enum { MR = 4, NR = 64 };

static int g_force; /* att_gemm_force */

void att_gemm_force(int level) {
    __atomic_store_n(&g_force, level, __ATOMIC_RELAXED);
}

/* 2: AVX-512, 1: AVX2 and FMA, 0: neither (simd_level), lowered by att_gemm_force. */
static int cpu_level(void) {
    int v = simd_level();
    int force = __atomic_load_n(&g_force, __ATOMIC_RELAXED);
    if (force == 1 && v > 1) v = 1;
    if (force == 2) v = 0;
    return v;
}

/* ---- AVX-512 ------------------------------------------------------------------ */

/* Rows [0, mr) x columns [0, 16 nv) of C, the last vector's lanes masked by `last`. */
__attribute__((target("avx512f"), always_inline)) static inline void
tile_avx512(int mr, int nv, __mmask16 last, int k, const float *a, int64_t a_row, int64_t a_col,
            const float *b, int64_t ldb, float *c, int64_t ldc, bool accumulate) {
    __m512 acc[MR][NR / 16];
    for (int r = 0; r < mr; r++)
        for (int v = 0; v < nv; v++) {
            __mmask16 mk = v == nv - 1 ? last : 0xffff;
            acc[r][v] =
                accumulate ? _mm512_maskz_loadu_ps(mk, c + r * ldc + 16 * v) : _mm512_setzero_ps();
        }
    for (int p = 0; p < k; p++) {
        const float *bp = b + p * ldb;
        __m512 bv[NR / 16];
        for (int v = 0; v < nv; v++)
            bv[v] = _mm512_maskz_loadu_ps(v == nv - 1 ? last : 0xffff, bp + 16 * v);
        for (int r = 0; r < mr; r++) {
            __m512 ar = _mm512_set1_ps(a[r * a_row + p * a_col]);
            for (int v = 0; v < nv; v++) acc[r][v] = _mm512_fmadd_ps(ar, bv[v], acc[r][v]);
        }
    }
    for (int r = 0; r < mr; r++)
        for (int v = 0; v < nv; v++)
            _mm512_mask_storeu_ps(c + r * ldc + 16 * v, v == nv - 1 ? last : 0xffff, acc[r][v]);
}

#define TILE512(MRC, NVC)                                                                          \
    tile_avx512(MRC, NVC, last, k, a, a_row, a_col, bj, ldb, c, ldc, accumulate)

/* Columns in panels of 64 (4 vectors of 16); each panel of B stays in cache for all rows. */
__attribute__((target("avx512f"))) static void gemm_avx512(int m, int n, int k, const float *a0,
                                                           int64_t a_row, int64_t a_col,
                                                           const float *b, int64_t ldb, float *c0,
                                                           int64_t ldc, bool accumulate) {
    for (int j0 = 0; j0 < n; j0 += NR) {
        int nn = n - j0 < NR ? n - j0 : NR, nv = (nn + 15) / 16;
        __mmask16 last = (__mmask16)((1u << (nn - 16 * (nv - 1))) - 1u);
        const float *bj = b + j0;
        for (int i0 = 0; i0 < m; i0 += MR) {
            int mr = m - i0 < MR ? m - i0 : MR;
            const float *a = a0 + i0 * a_row;
            float *c = c0 + i0 * ldc + j0;
            switch (mr * 4 + nv) {
            case 4 * 4 + 4:
                TILE512(4, 4);
                break;
            case 4 * 4 + 3:
                TILE512(4, 3);
                break;
            case 4 * 4 + 2:
                TILE512(4, 2);
                break;
            case 4 * 4 + 1:
                TILE512(4, 1);
                break;
            case 3 * 4 + 4:
                TILE512(3, 4);
                break;
            case 3 * 4 + 3:
                TILE512(3, 3);
                break;
            case 3 * 4 + 2:
                TILE512(3, 2);
                break;
            case 3 * 4 + 1:
                TILE512(3, 1);
                break;
            case 2 * 4 + 4:
                TILE512(2, 4);
                break;
            case 2 * 4 + 3:
                TILE512(2, 3);
                break;
            case 2 * 4 + 2:
                TILE512(2, 2);
                break;
            case 2 * 4 + 1:
                TILE512(2, 1);
                break;
            case 1 * 4 + 4:
                TILE512(1, 4);
                break;
            case 1 * 4 + 3:
                TILE512(1, 3);
                break;
            case 1 * 4 + 2:
                TILE512(1, 2);
                break;
            default:
                TILE512(1, 1);
                break;
            }
        }
    }
}

/* ---- AVX2 ---------------------------------------------------------------------- */

__attribute__((target("avx2,fma"), always_inline)) static inline void
tile_avx2(int mr, int nv, __m256i last, int k, const float *a, int64_t a_row, int64_t a_col,
          const float *b, int64_t ldb, float *c, int64_t ldc, bool accumulate) {
    const __m256i all = _mm256_set1_epi32(-1);
    __m256 acc[MR][4];
    for (int r = 0; r < mr; r++)
        for (int v = 0; v < nv; v++)
            acc[r][v] = accumulate
                            ? _mm256_maskload_ps(c + r * ldc + 8 * v, v == nv - 1 ? last : all)
                            : _mm256_setzero_ps();
    for (int p = 0; p < k; p++) {
        const float *bp = b + p * ldb;
        __m256 bv[4];
        for (int v = 0; v < nv; v++)
            bv[v] = _mm256_maskload_ps(bp + 8 * v, v == nv - 1 ? last : all);
        for (int r = 0; r < mr; r++) {
            __m256 ar = _mm256_broadcast_ss(a + r * a_row + p * a_col);
            for (int v = 0; v < nv; v++) acc[r][v] = _mm256_fmadd_ps(ar, bv[v], acc[r][v]);
        }
    }
    for (int r = 0; r < mr; r++)
        for (int v = 0; v < nv; v++)
            _mm256_maskstore_ps(c + r * ldc + 8 * v, v == nv - 1 ? last : all, acc[r][v]);
}

#define TILE256(MRC, NVC) tile_avx2(MRC, NVC, last, k, a, a_row, a_col, bj, ldb, c, ldc, accumulate)

/* Columns in panels of 32 (4 vectors of 8). */
__attribute__((target("avx2,fma"))) static void gemm_avx2(int m, int n, int k, const float *a0,
                                                          int64_t a_row, int64_t a_col,
                                                          const float *b, int64_t ldb, float *c0,
                                                          int64_t ldc, bool accumulate) {
    for (int j0 = 0; j0 < n; j0 += 32) {
        int nn = n - j0 < 32 ? n - j0 : 32, nv = (nn + 7) / 8, tail = nn - 8 * (nv - 1);
        __m256i last =
            _mm256_cmpgt_epi32(_mm256_set1_epi32(tail), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
        const float *bj = b + j0;
        for (int i0 = 0; i0 < m; i0 += MR) {
            int mr = m - i0 < MR ? m - i0 : MR;
            const float *a = a0 + i0 * a_row;
            float *c = c0 + i0 * ldc + j0;
            switch (mr * 4 + nv) {
            case 4 * 4 + 4:
                TILE256(4, 4);
                break;
            case 4 * 4 + 3:
                TILE256(4, 3);
                break;
            case 4 * 4 + 2:
                TILE256(4, 2);
                break;
            case 4 * 4 + 1:
                TILE256(4, 1);
                break;
            case 3 * 4 + 4:
                TILE256(3, 4);
                break;
            case 3 * 4 + 3:
                TILE256(3, 3);
                break;
            case 3 * 4 + 2:
                TILE256(3, 2);
                break;
            case 3 * 4 + 1:
                TILE256(3, 1);
                break;
            case 2 * 4 + 4:
                TILE256(2, 4);
                break;
            case 2 * 4 + 3:
                TILE256(2, 3);
                break;
            case 2 * 4 + 2:
                TILE256(2, 2);
                break;
            case 2 * 4 + 1:
                TILE256(2, 1);
                break;
            case 1 * 4 + 4:
                TILE256(1, 4);
                break;
            case 1 * 4 + 3:
                TILE256(1, 3);
                break;
            case 1 * 4 + 2:
                TILE256(1, 2);
                break;
            default:
                TILE256(1, 1);
                break;
            }
        }
    }
}

/* ---- portable ------------------------------------------------------------------ */

static void gemm_portable(int m, int n, int k, const float *a, int64_t a_row, int64_t a_col,
                          const float *b, int64_t ldb, float *c, int64_t ldc, bool accumulate) {
    for (int i = 0; i < m; i++) {
        float *ci = c + i * ldc;
        if (!accumulate)
            for (int j = 0; j < n; j++) ci[j] = 0.0f;
        for (int p = 0; p < k; p++) {
            float ap = a[i * a_row + p * a_col];
            const float *bp = b + p * ldb;
            for (int j = 0; j < n; j++) ci[j] = fmaf(ap, bp[j], ci[j]);
        }
    }
}

typedef void (*GemmFn)(int m, int n, int k, const float *a, int64_t a_row, int64_t a_col,
                       const float *b, int64_t ldb, float *c, int64_t ldc, bool accumulate);

void att_gemm(int m, int n, int k, const float *a, int64_t a_row, int64_t a_col, const float *b,
              int64_t ldb, float *c, int64_t ldc, bool accumulate, AttTri tri) {
    if (m <= 0 || n <= 0) return;
    double start = profile_product_start();
    int level = cpu_level();
    GemmFn fn = level == 2 ? gemm_avx512 : level == 1 ? gemm_avx2 : gemm_portable;
    if (tri == ATT_FULL) {
        fn(m, n, k, a, a_row, a_col, b, ldb, c, ldc, accumulate);
    } else {
        for (int i0 = 0; i0 < m; i0 += MR) {
            int mr = m - i0 < MR ? m - i0 : MR, end = i0 + mr;
            const float *ai = a + i0 * a_row;
            float *ci = c + i0 * ldc;
            if (tri == ATT_TRI_COLS)
                fn(mr, n < end ? n : end, k, ai, a_row, a_col, b, ldb, ci, ldc, accumulate);
            else if (tri == ATT_TRI_UPTO)
                fn(mr, n, k < end ? k : end, ai, a_row, a_col, b, ldb, ci, ldc, accumulate);
            else if (k > i0 || !accumulate)
                fn(mr, n, k > i0 ? k - i0 : 0, ai + i0 * a_col, a_row, a_col, b + i0 * ldb, ldb, ci,
                   ldc, accumulate);
        }
    }
    profile_product_done(start, m, n, k);
}

/* ---- exp of a row of scores ------------------------------------------------------ */

/* The row's sum: 16 partial sums, lane l taking x = l, l + 16, ... in order, then halved
 * (lane l + lane l + 8, then + 4, + 2, + 1), as the vector paths add them. */
static float exp_row_scalar(float *p, const float *s, float shift, int n) {
    float lanes[16] = {0};
    for (int x0 = 0; x0 < n; x0 += 16)
        for (int l = 0; l < 16 && x0 + l < n; l++) {
            p[x0 + l] = att_exp_scalar(s[x0 + l] - shift);
            lanes[l] += p[x0 + l];
        }
    for (int w = 8; w >= 1; w /= 2)
        for (int l = 0; l < w; l++) lanes[l] += lanes[l + w];
    return lanes[0];
}

__attribute__((target("avx512f"))) static float exp_row_avx512(float *p, const float *s,
                                                               float shift, int n) {
    __m512 acc = _mm512_setzero_ps(), sh = _mm512_set1_ps(shift);
    for (int x0 = 0; x0 < n; x0 += 16) {
        __mmask16 mk = att_lanes(n - x0);
        __m512 e = att_exp16(s + x0, mk, sh);
        _mm512_mask_storeu_ps(p + x0, mk, e);
        acc = _mm512_add_ps(acc, e);
    }
    return att_lanes_sum_avx512(acc);
}

__attribute__((target("avx2,fma"))) static float exp_row_avx2(float *p, const float *s, float shift,
                                                              int n) {
    __m256 lo = _mm256_setzero_ps(), hi = _mm256_setzero_ps(), sh = _mm256_set1_ps(shift);
    const __m256i idx = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    for (int x0 = 0; x0 < n; x0 += 8) {
        __m256i mk = _mm256_cmpgt_epi32(_mm256_set1_epi32(n - x0), idx);
        __m256 e = att_exp_avx2(_mm256_sub_ps(_mm256_maskload_ps(s + x0, mk), sh));
        e = _mm256_and_ps(e, _mm256_castsi256_ps(mk));
        _mm256_maskstore_ps(p + x0, mk, e);
        if (x0 % 16)
            hi = _mm256_add_ps(hi, e);
        else
            lo = _mm256_add_ps(lo, e);
    }
    __m256 h8 = _mm256_add_ps(lo, hi);
    __m128 h4 = _mm_add_ps(_mm256_castps256_ps128(h8), _mm256_extractf128_ps(h8, 1));
    __m128 h2 = _mm_add_ps(h4, _mm_movehl_ps(h4, h4));
    __m128 h1 = _mm_add_ss(h2, _mm_shuffle_ps(h2, h2, 1));
    return _mm_cvtss_f32(h1);
}

float att_exp_row(float *p, const float *s, float shift, int n) {
    switch (cpu_level()) {
    case 2:
        return exp_row_avx512(p, s, shift, n);
    case 1:
        return exp_row_avx2(p, s, shift, n);
    default:
        return exp_row_scalar(p, s, shift, n);
    }
}

/* bf16_round_float on 16 lanes: nearest even on the bit pattern, a NaN kept quiet. */
__attribute__((target("avx512f"))) static void round_bf16_avx512(float *x, int64_t n) {
    const __m512i one = _mm512_set1_epi32(1), bias = _mm512_set1_epi32(0x7fff);
    const __m512i high = _mm512_set1_epi32((int)0xffff0000u), quiet = _mm512_set1_epi32(0x400000);
    const __m512i abs = _mm512_set1_epi32(0x7fffffff), inf = _mm512_set1_epi32(0x7f800000);
    for (int64_t i = 0; i < n; i += 16) {
        __mmask16 mk = n - i >= 16 ? 0xffff : (__mmask16)((1u << (n - i)) - 1u);
        __m512i u = _mm512_castps_si512(_mm512_maskz_loadu_ps(mk, x + i));
        __m512i odd = _mm512_and_si512(_mm512_srli_epi32(u, 16), one);
        __m512i r = _mm512_and_si512(_mm512_add_epi32(u, _mm512_add_epi32(bias, odd)), high);
        __mmask16 nan = _mm512_cmpgt_epu32_mask(_mm512_and_si512(u, abs), inf);
        r = _mm512_mask_mov_epi32(r, nan, _mm512_or_si512(_mm512_and_si512(u, high), quiet));
        _mm512_mask_storeu_ps(x + i, mk, _mm512_castsi512_ps(r));
    }
}

void att_round_bf16(float *x, int64_t n) {
    if (cpu_level() == 2) {
        round_bf16_avx512(x, n);
        return;
    }
    for (int64_t i = 0; i < n; i++) x[i] = bf16_round_float(x[i]);
}
