/* tensor/attention_bf16.c — the fused attention's products in BF16 precision on AVX512-BF16
 * (attention_internal.h: att_gemm_bf16 and the packings it reads).
 *
 * VDPBF16PS multiplies 32 pairs of bf16 values and adds each two neighbours' products into
 * one of 16 f32 lanes: twice the products of an f32 FMA per instruction, and AMD's Zen 4/5
 * and Intel's Cooper Lake issue it at the FMA's rate, so BF16 precision's attention runs
 * twice as fast here as on att_gemm's f32 loops (which multiply the same bf16 values).
 * Its operands are bf16 pairs: A's two neighbouring terms of a row (A[i][2p], A[i][2p+1]) in
 * one 32-bit word, broadcast, and B's two neighbouring rows interleaved (B[2p][j],
 * B[2p+1][j]): "pairs along columns" and "pairs along rows" below. Q, K, V and dO are packed
 * so once per layer (O(T D)); P and dS are written as pairs by the loops that compute them
 * (att_exp_row_pairs, att_grads_pairs: the f32 probabilities are never stored, and no pass
 * packs them: the bits of computing them in f32 and packing, in 2-3% less of the attention's
 * time at 4 x 256 and at 4096 tokens on an AMD EPYC Zen 4).
 *
 * Bits. Each element of C is one chain of VDPBF16PS over the pairs p in ascending order; each
 * step adds the odd term's product and then the even one's, each rounded to nearest (Intel's
 * definition, and what an AMD EPYC Zen 4 was measured to do), with bf16 and f32 denormals read
 * and written as 0. So the results are not those of att_gemm's chains (one term at a time,
 * denormals kept) in their last bits, but they are the same for any thread count and on any
 * CPU that runs VDPBF16PS. Values are rounded to bf16 as everywhere in tensor/ (nearest even,
 * NaN kept quiet; VCVTNE2PS2BF16, whose denormal-to-0 VDPBF16PS would do anyway). */
#include "tensor/attention_internal.h"
#include "tensor/attention_exp.h"
#include "tensor/bf16.h"
#include "tensor/profile.h"
#include "tensor/simd.h"

#include <immintrin.h>
#include <string.h>

enum { MR = 4, NR = 64 };

static int g_off; /* att_bf16_dot_force */

void att_bf16_dot_force(bool off) {
    __atomic_store_n(&g_off, off, __ATOMIC_RELAXED);
}

bool att_bf16_dot(void) {
    /* LORAFIT_CPU_BF16=0 (tensor_cpu_has_native_bf16 false) asks for emulated bf16 */
    return simd_avx512_bf16() && !__atomic_load_n(&g_off, __ATOMIC_RELAXED) &&
           tensor_cpu_has_native_bf16();
}

#define TARGET __attribute__((target("avx512f,avx512bw,avx512bf16")))

/* Rows [0, mr) x columns [0, 16 nv) of C over kp pairs, the last vector's lanes masked. */
TARGET __attribute__((always_inline)) static inline void
tile(int mr, int nv, __mmask16 last, int kp, const uint32_t *a, int64_t a_row, int64_t a_col,
     const uint32_t *b, int64_t ldb, float *c, int64_t ldc, bool accumulate) {
    __m512 acc[MR][NR / 16];
    for (int r = 0; r < mr; r++)
        for (int v = 0; v < nv; v++) {
            __mmask16 mk = v == nv - 1 ? last : 0xffff;
            acc[r][v] =
                accumulate ? _mm512_maskz_loadu_ps(mk, c + r * ldc + 16 * v) : _mm512_setzero_ps();
        }
    for (int p = 0; p < kp; p++) {
        const uint32_t *bp = b + p * ldb;
        __m512i bv[NR / 16];
        for (int v = 0; v < nv; v++)
            bv[v] = _mm512_maskz_loadu_epi32(v == nv - 1 ? last : 0xffff, bp + 16 * v);
        for (int r = 0; r < mr; r++) {
            __m512i ar = _mm512_set1_epi32((int)a[r * a_row + p * a_col]);
            for (int v = 0; v < nv; v++)
                acc[r][v] = _mm512_dpbf16_ps(acc[r][v], (__m512bh)ar, (__m512bh)bv[v]);
        }
    }
    for (int r = 0; r < mr; r++)
        for (int v = 0; v < nv; v++)
            _mm512_mask_storeu_ps(c + r * ldc + 16 * v, v == nv - 1 ? last : 0xffff, acc[r][v]);
}

#define TILE(MRC, NVC) tile(MRC, NVC, last, kp, a, a_row, a_col, bj, ldb, c, ldc, accumulate)

/* Columns in panels of 64 (4 vectors of 16); each panel of B stays in cache for all rows. */
TARGET static void gemm(int m, int n, int kp, const uint32_t *a0, int64_t a_row, int64_t a_col,
                        const uint32_t *b, int64_t ldb, float *c0, int64_t ldc, bool accumulate) {
    for (int j0 = 0; j0 < n; j0 += NR) {
        int nn = n - j0 < NR ? n - j0 : NR, nv = (nn + 15) / 16;
        __mmask16 last = (__mmask16)((1u << (nn - 16 * (nv - 1))) - 1u);
        const uint32_t *bj = b + j0;
        for (int i0 = 0; i0 < m; i0 += MR) {
            int mr = m - i0 < MR ? m - i0 : MR;
            const uint32_t *a = a0 + i0 * a_row;
            float *c = c0 + i0 * ldc + j0;
            switch (mr * 4 + nv) {
            case 4 * 4 + 4:
                TILE(4, 4);
                break;
            case 4 * 4 + 3:
                TILE(4, 3);
                break;
            case 4 * 4 + 2:
                TILE(4, 2);
                break;
            case 4 * 4 + 1:
                TILE(4, 1);
                break;
            case 3 * 4 + 4:
                TILE(3, 4);
                break;
            case 3 * 4 + 3:
                TILE(3, 3);
                break;
            case 3 * 4 + 2:
                TILE(3, 2);
                break;
            case 3 * 4 + 1:
                TILE(3, 1);
                break;
            case 2 * 4 + 4:
                TILE(2, 4);
                break;
            case 2 * 4 + 3:
                TILE(2, 3);
                break;
            case 2 * 4 + 2:
                TILE(2, 2);
                break;
            case 2 * 4 + 1:
                TILE(2, 1);
                break;
            case 1 * 4 + 4:
                TILE(1, 4);
                break;
            case 1 * 4 + 3:
                TILE(1, 3);
                break;
            case 1 * 4 + 2:
                TILE(1, 2);
                break;
            default:
                TILE(1, 1);
                break;
            }
        }
    }
}

void att_gemm_bf16(int m, int n, int k, const uint32_t *a, int64_t a_row, int64_t a_col,
                   const uint32_t *b, int64_t ldb, float *c, int64_t ldc, bool accumulate,
                   AttTri tri) {
    if (m <= 0 || n <= 0) return;
    double start = profile_product_start();
    if (tri == ATT_FULL) {
        gemm(m, n, (k + 1) / 2, a, a_row, a_col, b, ldb, c, ldc, accumulate);
    } else {
        /* strips of MR rows, as att_gemm; MR is even, so a strip starts on a pair */
        for (int i0 = 0; i0 < m; i0 += MR) {
            int mr = m - i0 < MR ? m - i0 : MR, end = i0 + mr;
            const uint32_t *ai = a + i0 * a_row;
            float *ci = c + i0 * ldc;
            if (tri == ATT_TRI_COLS)
                gemm(mr, n < end ? n : end, (k + 1) / 2, ai, a_row, a_col, b, ldb, ci, ldc,
                     accumulate);
            else if (tri == ATT_TRI_UPTO)
                gemm(mr, n, ((k < end ? k : end) + 1) / 2, ai, a_row, a_col, b, ldb, ci, ldc,
                     accumulate);
            else if (k > i0 || !accumulate)
                gemm(mr, n, k > i0 ? (k - i0 + 1) / 2 : 0, ai + i0 / 2 * a_col, a_row, a_col,
                     b + i0 / 2 * ldb, ldb, ci, ldc, accumulate);
        }
    }
    profile_product_done(start, m, n, k);
}

/* ---- packing -------------------------------------------------------------------- */

/* 32 floats (lo: the first 16) as 32 bf16 in order. */
TARGET static inline __m512i pack32(__m512 lo, __m512 hi) {
    return (__m512i)_mm512_cvtne2ps_pbh(hi, lo);
}

TARGET void att_pack_cols(const float *src, int64_t ld, int rows, int cols, uint32_t *dst,
                          int64_t ldd, int pairs) {
    for (int r = 0; r < rows; r++) {
        const float *s = src + r * ld;
        uint32_t *d = dst + r * ldd;
        for (int p0 = 0; p0 < pairs; p0 += 16) {
            int x0 = 2 * p0;
            __m512i w = pack32(_mm512_maskz_loadu_ps(att_lanes(cols - x0), s + x0),
                               _mm512_maskz_loadu_ps(att_lanes(cols - x0 - 16), s + x0 + 16));
            _mm512_mask_storeu_epi32(d + p0, att_lanes(pairs - p0), w);
        }
    }
}

TARGET void att_pack_rows(const float *src, int64_t ld, int rows, int cols, uint32_t *dst,
                          int64_t ldd, int pairs) {
    for (int p = 0; p < pairs; p++) {
        bool has_even = 2 * p < rows, has_odd = 2 * p + 1 < rows;
        const float *even = has_even ? src + 2 * p * ld : src, *odd = has_odd ? even + ld : src;
        uint32_t *d = dst + p * ldd;
        for (int x0 = 0; x0 < cols; x0 += 16) {
            __mmask16 mk = att_lanes(cols - x0);
            __m512 e = _mm512_maskz_loadu_ps(has_even ? mk : 0, even + x0);
            __m512 o = _mm512_maskz_loadu_ps(has_odd ? mk : 0, odd + x0);
            _mm512_mask_storeu_epi32(d + x0, mk, bf16_interleave16(e, o));
        }
    }
}

TARGET void att_pack_cols_t(const float *src, int64_t ld, int rows, int cols, uint32_t *dst,
                            int64_t ldd, int width) {
    uint32_t strip[ATT_BLOCK][16]; /* 16 pairs of each row, then transposed into dst */
    int pairs = (cols + 1) / 2;
    for (int x0 = 0; x0 < width; x0 += ATT_BLOCK) {
        int xs = width - x0 < ATT_BLOCK ? width - x0 : ATT_BLOCK;
        for (int p0 = 0; p0 < pairs; p0 += 16) {
            int ps = pairs - p0 < 16 ? pairs - p0 : 16;
            for (int x = 0; x < xs; x++) {
                if (x0 + x >= rows) {
                    memset(strip[x], 0, sizeof strip[x]);
                    continue;
                }
                const float *s = src + (x0 + x) * ld + 2 * p0;
                int left = cols - 2 * p0; /* terms of this row from 2 p0 on */
                __m512i w = pack32(_mm512_maskz_loadu_ps(att_lanes(left), s),
                                   _mm512_maskz_loadu_ps(att_lanes(left - 16), s + 16));
                _mm512_storeu_si512(strip[x], w);
            }
            for (int p = 0; p < ps; p++)
                for (int x = 0; x < xs; x++) dst[(p0 + p) * ldd + x0 + x] = strip[x][p];
        }
    }
}

/* ---- probabilities and their gradients straight into pairs ------------------------ */

/* pairs = exp(v - shift) of a row's scores held in registers, lanes from n on 0 (as att_exp16
 * takes them), and their sum in att_exp_row's order. */
TARGET static inline float exps_into_pairs(uint32_t *pairs, const __m512 v[ATT_BLOCK / 16], int n,
                                           __m512 shift) {
    __m512 acc = _mm512_setzero_ps();
    for (int x0 = 0; x0 < ATT_BLOCK; x0 += 32) {
        __mmask16 ml = att_lanes(n - x0), mh = att_lanes(n - x0 - 16);
        __m512 lo = _mm512_maskz_mov_ps(ml, att_exp_avx512(_mm512_sub_ps(v[x0 / 16], shift)));
        __m512 hi = _mm512_maskz_mov_ps(mh, att_exp_avx512(_mm512_sub_ps(v[x0 / 16 + 1], shift)));
        if (ml) acc = _mm512_add_ps(acc, lo);
        if (mh) acc = _mm512_add_ps(acc, hi);
        _mm512_storeu_si512(pairs + x0 / 2, pack32(lo, hi));
    }
    return att_lanes_sum_avx512(acc);
}

TARGET float att_exp_row_pairs(uint32_t *pairs, const float *s, float shift, int n) {
    __m512 v[ATT_BLOCK / 16];
    for (int k = 0; k < ATT_BLOCK / 16; k++)
        v[k] = _mm512_maskz_loadu_ps(att_lanes(n - 16 * k), s + 16 * k);
    return exps_into_pairs(pairs, v, n, _mm512_set1_ps(shift));
}

TARGET float att_scaled_exp_row_pairs(uint32_t *pairs, const float *s, float scale, int limit,
                                      float *top) {
    __m512 v[ATT_BLOCK / 16], mx = _mm512_set1_ps(*top), sc = _mm512_set1_ps(scale);
    for (int k = 0; k < ATT_BLOCK / 16; k++) { /* att_scores' products, -inf beyond limit */
        __mmask16 mk = att_lanes(limit - 16 * k);
        v[k] = _mm512_mask_mul_ps(_mm512_set1_ps(-INFINITY), mk,
                                  _mm512_maskz_loadu_ps(mk, s + 16 * k), sc);
        mx = _mm512_max_ps(v[k], mx); /* simd_max's operand order: a NaN score is skipped */
    }
    float lanes[16], m = *top;
    _mm512_storeu_ps(lanes, mx);
    for (int l = 0; l < 16; l++) m = lanes[l] > m ? lanes[l] : m;
    *top = m;
    if (m == -INFINITY) {
        memset(pairs, 0, ATT_BLOCK / 2 * sizeof *pairs);
        return 0.0f;
    }
    return exps_into_pairs(pairs, v, limit, _mm512_set1_ps(m));
}

/* dS in the lanes mk holds as ops_attention_backward.c's ds_row computes it: P (dP - d),
 * through the soft-cap, times the scale; 0 where P is 0 and in the other lanes. */
TARGET static inline __m512 ds16(__m512 p, const float *dp, const float *s, __mmask16 mk, float d,
                                 float cap, float scale) {
    if (!mk) return _mm512_setzero_ps();
    __m512 g = _mm512_mul_ps(p, _mm512_sub_ps(_mm512_maskz_loadu_ps(mk, dp), _mm512_set1_ps(d)));
    if (cap > 0.0f) {
        __m512 th = _mm512_div_ps(_mm512_maskz_loadu_ps(mk, s), _mm512_set1_ps(cap));
        g = _mm512_mul_ps(g, _mm512_sub_ps(_mm512_set1_ps(1.0f), _mm512_mul_ps(th, th)));
    }
    __mmask16 live = _mm512_cmp_ps_mask(p, _mm512_setzero_ps(), _CMP_NEQ_UQ);
    return _mm512_maskz_mul_ps(live & mk, g, _mm512_set1_ps(scale));
}

/* exp(S - shift) in the lanes mk holds as att_exp16 takes it, S scaled first when s_scale
 * > 0 (a plain block's raw products, as att_scores would have scaled them). */
TARGET static inline __m512 p16(const float *s, __mmask16 mk, __m512 shift, float s_scale) {
    if (!mk) return _mm512_setzero_ps();
    __m512 v = _mm512_maskz_loadu_ps(mk, s);
    if (s_scale > 0.0f) v = _mm512_mul_ps(v, _mm512_set1_ps(s_scale));
    return _mm512_maskz_mov_ps(mk, att_exp_avx512(_mm512_sub_ps(v, shift)));
}

TARGET void att_grads_pairs(const float *S, const float *dP, int m, int n, const float *lse,
                            const float *drow, float cap, float scale, uint32_t *p_rows,
                            uint32_t *ds_rows, uint32_t *ds_cols, float s_scale, int diag_from) {
    for (int q = 0; q < ATT_BLOCK / 2; q++) {
        int r = 2 * q;
        bool even = r < m, odd = r + 1 < m;
        const float *se = S + r * ATT_BLOCK, *so = se + ATT_BLOCK;
        const float *de = dP + r * ATT_BLOCK, *dd = de + ATT_BLOCK;
        __m512 she = _mm512_set1_ps(even ? lse[r] : 0.0f),
               sho = _mm512_set1_ps(odd ? lse[r + 1] : 0.0f);
        for (int x0 = 0; x0 < ATT_BLOCK; x0 += 32) {
            __m512 pe[2], po[2], dse[2], dso[2];
            for (int h = 0; h < 2; h++) {
                int x = x0 + 16 * h;
                __mmask16 mk = att_lanes(n - x), me = even ? mk : 0, mo = odd ? mk : 0;
                if (s_scale > 0.0f) { /* keys s <= t: x < r + diag_from */
                    me &= att_lanes(r + diag_from - x);
                    mo &= att_lanes(r + 1 + diag_from - x);
                }
                pe[h] = p16(se + x, me, she, s_scale);
                po[h] = p16(so + x, mo, sho, s_scale);
                dse[h] = ds16(pe[h], de + x, se + x, me, even ? drow[r] : 0.0f, cap, scale);
                dso[h] = ds16(po[h], dd + x, so + x, mo, odd ? drow[r + 1] : 0.0f, cap, scale);
                _mm512_mask_storeu_epi32(p_rows + q * ATT_BLOCK + x, mk,
                                         bf16_interleave16(pe[h], po[h]));
                _mm512_mask_storeu_epi32(ds_rows + q * ATT_BLOCK + x, mk,
                                         bf16_interleave16(dse[h], dso[h]));
            }
            if (even)
                _mm512_storeu_si512(ds_cols + r * (ATT_BLOCK / 2) + x0 / 2, pack32(dse[0], dse[1]));
            if (odd)
                _mm512_storeu_si512(ds_cols + (r + 1) * (ATT_BLOCK / 2) + x0 / 2,
                                    pack32(dso[0], dso[1]));
        }
    }
}
