/* tensor/quant_k.c — ggml's K-quants: super-blocks of 256 weights whose sub-block scales
 * are themselves quantized (see quant.h).
 *
 * Dequantization for Q2_K .. Q6_K and the reference quantizers llama-quantize runs without
 * an importance matrix (quantize_row_q4_K_ref, _q5_K_ref, _q6_K_ref) with their search
 * helpers (make_qkx2_quants: scale and min by weighted least squares over 16 or 21 trial
 * scales; make_qx_quants: symmetric scale over 19 trials), written as ggml-quants.c writes
 * them (MIT licence, the ggml authors) so that every float operation and its order is the
 * same: the result is bit-identical to llama.cpp's. Q2_K's and Q3_K's quantizers are in
 * quant_k_low.c. */
#include <math.h>

#include "tensor/quant_internal.h"

/* Sub-block j's 6-bit scale and min of a Q4_K / Q5_K super-block's 12 scale bytes. */
static inline void get_scale_min_k4(int j, const uint8_t *q, uint8_t *d, uint8_t *m) {
    if (j < 4) {
        *d = q[j] & 63;
        *m = q[j + 4] & 63;
    } else {
        *d = (uint8_t)((q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4));
        *m = (uint8_t)((q[j + 4] >> 4) | ((q[j - 0] >> 6) << 4));
    }
}

/* ---- dequantization ------------------------------------------------------------------ */

/* Written as loops over the 16 or 32 weights of one sub-block, indexed rather than through
 * *y++, so that they vectorise: each weight gets ggml's float operations in ggml's order
 * (where ggml computes an integer level differently the integer is the same). */

void dequantize_q2_k(const BlockQ2_K *restrict x, float *restrict y, int64_t nb) {
    for (int64_t i = 0; i < nb; i++) {
        const float d = f16_to_float(x[i].d);
        const float min = f16_to_float(x[i].dmin);
        const uint8_t *q = x[i].qs;
        int is = 0;
        for (int n = 0; n < QK_K; n += 128, q += 32) {
            for (int j = 0; j < 4; ++j) {
                const int shift = 2 * j;
                for (int half = 0; half < 2; half++, y += 16) {
                    const uint8_t sc = x[i].scales[is++];
                    const float dl = d * (sc & 0xF), ml = min * (sc >> 4);
                    const uint8_t *restrict qq = q + 16 * half;
                    for (int l = 0; l < 16; ++l) y[l] = dl * ((qq[l] >> shift) & 3) - ml;
                }
            }
        }
    }
}

void dequantize_q3_k(const BlockQ3_K *restrict x, float *restrict y, int64_t nb) {
    const uint32_t kmask1 = 0x03030303, kmask2 = 0x0f0f0f0f;
    uint32_t aux[4];
    int8_t scales[16];
    for (int64_t i = 0; i < nb; i++) {
        const float d_all = f16_to_float(x[i].d);
        const uint8_t *q = x[i].qs;
        const uint8_t *hm = x[i].hmask;
        /* the 16 6-bit scales, unpacked from 12 bytes as ggml does it, four at a time */
        memcpy(aux, x[i].scales, 12);
        uint32_t tmp = aux[2];
        aux[2] = ((aux[0] >> 4) & kmask2) | (((tmp >> 4) & kmask1) << 4);
        aux[3] = ((aux[1] >> 4) & kmask2) | (((tmp >> 6) & kmask1) << 4);
        aux[0] = (aux[0] & kmask2) | (((tmp >> 0) & kmask1) << 4);
        aux[1] = (aux[1] & kmask2) | (((tmp >> 2) & kmask1) << 4);
        memcpy(scales, aux, sizeof scales);
        /* ggml's level is q - (the high bit set ? 0 : 4): written as q - 4 + 4 * bit, the
         * same integer, so the loops vectorise */
        int is = 0;
        for (int n = 0; n < QK_K; n += 128, q += 32) {
            for (int j = 0; j < 4; ++j) {
                const int shift = 2 * j, bit = 4 * (n / 128) + j;
                for (int half = 0; half < 2; half++, y += 16) {
                    const float dl = d_all * (scales[is++] - 32);
                    const uint8_t *restrict qq = q + 16 * half, *restrict hh = hm + 16 * half;
                    for (int l = 0; l < 16; ++l)
                        y[l] = dl * (((qq[l] >> shift) & 3) - 4 + 4 * ((hh[l] >> bit) & 1));
                }
            }
        }
    }
}

void dequantize_q4_k(const BlockQ4_K *restrict x, float *restrict y, int64_t nb) {
    for (int64_t i = 0; i < nb; i++) {
        const uint8_t *q = x[i].qs;
        const float d = f16_to_float(x[i].d);
        const float min = f16_to_float(x[i].dmin);
        int is = 0;
        uint8_t sc, m;
        for (int j = 0; j < QK_K; j += 64) {
            get_scale_min_k4(is + 0, x[i].scales, &sc, &m);
            const float d1 = d * sc, m1 = min * m;
            get_scale_min_k4(is + 1, x[i].scales, &sc, &m);
            const float d2 = d * sc, m2 = min * m;
            for (int l = 0; l < 32; ++l) *y++ = d1 * (q[l] & 0xF) - m1;
            for (int l = 0; l < 32; ++l) *y++ = d2 * (q[l] >> 4) - m2;
            q += 32;
            is += 2;
        }
    }
}

void dequantize_q5_k(const BlockQ5_K *restrict x, float *restrict y, int64_t nb) {
    for (int64_t i = 0; i < nb; i++) {
        const uint8_t *ql = x[i].qs;
        const uint8_t *qh = x[i].qh;
        const float d = f16_to_float(x[i].d);
        const float min = f16_to_float(x[i].dmin);
        int is = 0;
        uint8_t sc, m;
        uint8_t u1 = 1, u2 = 2;
        for (int j = 0; j < QK_K; j += 64) {
            get_scale_min_k4(is + 0, x[i].scales, &sc, &m);
            const float d1 = d * sc, m1 = min * m;
            get_scale_min_k4(is + 1, x[i].scales, &sc, &m);
            const float d2 = d * sc, m2 = min * m;
            for (int l = 0; l < 32; ++l) *y++ = d1 * ((ql[l] & 0xF) + (qh[l] & u1 ? 16 : 0)) - m1;
            for (int l = 0; l < 32; ++l) *y++ = d2 * ((ql[l] >> 4) + (qh[l] & u2 ? 16 : 0)) - m2;
            ql += 32;
            is += 2;
            u1 = (uint8_t)(u1 << 2);
            u2 = (uint8_t)(u2 << 2);
        }
    }
}

/* ggml's loop computes y = d * sc * q per weight, (d * sc) first; here d * sc is taken once
 * per sub-block of 16 (the same float product) and the loops run over 16 weights of one
 * sub-block each, which vectorises: the same operations, the same bits, 20x faster. */
void dequantize_q6_k(const BlockQ6_K *restrict x, float *restrict y, int64_t nb) {
    for (int64_t i = 0; i < nb; i++) {
        const float d = f16_to_float(x[i].d);
        float ds[QK_K / 16];
        for (int k = 0; k < QK_K / 16; k++) ds[k] = d * x[i].scales[k];
        const uint8_t *restrict ql = x[i].ql;
        const uint8_t *restrict qh = x[i].qh;
        for (int n = 0; n < QK_K; n += 128, ql += 64, qh += 32, y += 128) {
            const float *s = ds + n / 16;
            for (int h = 0; h < 2; h++) { /* weights l in [16 h, 16 h + 16): scale index is + h */
                for (int l = 16 * h; l < 16 * h + 16; l++)
                    y[l + 0] = s[h + 0] * ((int8_t)((ql[l] & 0xF) | ((qh[l] >> 0 & 3) << 4)) - 32);
                for (int l = 16 * h; l < 16 * h + 16; l++)
                    y[l + 32] =
                        s[h + 2] * ((int8_t)((ql[l + 32] & 0xF) | ((qh[l] >> 2 & 3) << 4)) - 32);
                for (int l = 16 * h; l < 16 * h + 16; l++)
                    y[l + 64] = s[h + 4] * ((int8_t)((ql[l] >> 4) | ((qh[l] >> 4 & 3) << 4)) - 32);
                for (int l = 16 * h; l < 16 * h + 16; l++)
                    y[l + 96] =
                        s[h + 6] * ((int8_t)((ql[l + 32] >> 4) | ((qh[l] >> 6 & 3) << 4)) - 32);
            }
        }
    }
}

/* ---- the reference quantizers -------------------------------------------------------- */

float make_qkx2_quants(int n, int nmax, const float *x, const float *weights, uint8_t *L,
                       float *the_min, uint8_t *Laux, float rmin, float rdelta, int nstep,
                       bool use_mad) {
    float min = x[0], max = x[0];
    float sum_w = weights[0];
    float sum_x = sum_w * x[0];
    for (int i = 1; i < n; ++i) {
        if (x[i] < min) min = x[i];
        if (x[i] > max) max = x[i];
        float w = weights[i];
        sum_w += w;
        sum_x += w * x[i];
    }
    if (min > 0) min = 0;
    if (max == min) {
        for (int i = 0; i < n; ++i) L[i] = 0;
        *the_min = -min;
        return 0.f;
    }
    float iscale = nmax / (max - min);
    float scale = 1 / iscale;
    float best_error = 0;
    for (int i = 0; i < n; ++i) {
        int l = nearest_int(iscale * (x[i] - min));
        L[i] = (uint8_t)QMAX(0, QMIN(nmax, l));
        float diff = scale * L[i] + min - x[i];
        diff = use_mad ? fabsf(diff) : diff * diff;
        float w = weights[i];
        best_error += w * diff;
    }
    if (nstep < 1) {
        *the_min = -min;
        return scale;
    }
    for (int is = 0; is <= nstep; ++is) {
        iscale = (rmin + rdelta * is + nmax) / (max - min);
        float sum_l = 0, sum_l2 = 0, sum_xl = 0;
        for (int i = 0; i < n; ++i) {
            int l = nearest_int(iscale * (x[i] - min));
            l = QMAX(0, QMIN(nmax, l));
            Laux[i] = (uint8_t)l;
            float w = weights[i];
            sum_l += w * l;
            sum_l2 += w * l * l;
            sum_xl += w * l * x[i];
        }
        float D = sum_w * sum_l2 - sum_l * sum_l;
        if (D > 0) {
            float this_scale = (sum_w * sum_xl - sum_x * sum_l) / D;
            float this_min = (sum_l2 * sum_x - sum_l * sum_xl) / D;
            if (this_min > 0) {
                this_min = 0;
                this_scale = sum_xl / sum_l2;
            }
            float cur_error = 0;
            for (int i = 0; i < n; ++i) {
                float diff = this_scale * Laux[i] + this_min - x[i];
                diff = use_mad ? fabsf(diff) : diff * diff;
                float w = weights[i];
                cur_error += w * diff;
            }
            if (cur_error < best_error) {
                for (int i = 0; i < n; ++i) L[i] = Laux[i];
                best_error = cur_error;
                scale = this_scale;
                min = this_min;
            }
        }
    }
    *the_min = -min;
    return scale;
}

/* Symmetric scale of n weights as levels L in [0, 2 nmax) (x ~ scale (L - nmax)), weighted
 * by x^2 (ggml's rmse_type 1, no importance matrix), best of 19 trial scales. */
static float make_qx_quants(int n, int nmax, const float *x, int8_t *L) {
    float max = 0, amax = 0;
    for (int i = 0; i < n; ++i) {
        float ax = fabsf(x[i]);
        if (ax > amax) {
            amax = ax;
            max = x[i];
        }
    }
    if (amax < GROUP_MAX_EPS) { /* all zero */
        for (int i = 0; i < n; ++i) L[i] = 0;
        return 0.f;
    }
    float iscale = -nmax / max;
    float sumlx = 0, suml2 = 0;
    for (int i = 0; i < n; ++i) {
        int l = nearest_int(iscale * x[i]);
        l = QMAX(-nmax, QMIN(nmax - 1, l));
        L[i] = (int8_t)(l + nmax);
        float w = x[i] * x[i];
        sumlx += w * x[i] * l;
        suml2 += w * l * l;
    }
    float scale = suml2 ? sumlx / suml2 : 0.0f;
    float best = scale * sumlx;
    for (int is = -9; is <= 9; ++is) {
        if (is == 0) continue;
        iscale = -(nmax + 0.1f * is) / max;
        sumlx = suml2 = 0;
        for (int i = 0; i < n; ++i) {
            int l = nearest_int(iscale * x[i]);
            l = QMAX(-nmax, QMIN(nmax - 1, l));
            float w = x[i] * x[i];
            sumlx += w * x[i] * l;
            suml2 += w * l * l;
        }
        if (suml2 > 0 && sumlx * sumlx > best * suml2) {
            for (int i = 0; i < n; ++i) {
                int l = nearest_int(iscale * x[i]);
                L[i] = (int8_t)(nmax + QMAX(-nmax, QMIN(nmax - 1, l)));
            }
            scale = sumlx / suml2;
            best = scale * sumlx;
        }
    }
    return scale;
}

/* Q4_K and Q5_K share everything but the level count and the search's trial range: eight
 * sub-blocks of 32 with a 6-bit scale and min each, packed into 12 bytes. Fills scales
 * (12 bytes), d, dmin and the levels L (256, in [0, nmax]). */
static void quantize_k_scales_mins(const float *x, int nmax, float rmin, int nstep,
                                   uint8_t *scales_out, uint16_t *d_out, uint16_t *dmin_out,
                                   uint8_t *L) {
    uint8_t Laux[32];
    float weights[32], mins[QK_K / 32], scales[QK_K / 32];
    float max_scale = 0, max_min = 0; /* scales are positive once the min is deducted */
    for (int j = 0; j < QK_K / 32; ++j) {
        float sum_x2 = 0;
        for (int l = 0; l < 32; ++l) sum_x2 += x[32 * j + l] * x[32 * j + l];
        float av_x = sqrtf(sum_x2 / 32);
        for (int l = 0; l < 32; ++l) weights[l] = av_x + fabsf(x[32 * j + l]);
        scales[j] = make_qkx2_quants(32, nmax, x + 32 * j, weights, L + 32 * j, &mins[j], Laux,
                                     rmin, 0.1f, nstep, false);
        if (scales[j] > max_scale) max_scale = scales[j];
        if (mins[j] > max_min) max_min = mins[j];
    }
    float inv_scale = max_scale > 0 ? 63.f / max_scale : 0.f;
    float inv_min = max_min > 0 ? 63.f / max_min : 0.f;
    for (int j = 0; j < QK_K / 32; ++j) {
        uint8_t ls = (uint8_t)nearest_int(inv_scale * scales[j]);
        uint8_t lm = (uint8_t)nearest_int(inv_min * mins[j]);
        ls = QMIN(63, ls);
        lm = QMIN(63, lm);
        if (j < 4) {
            scales_out[j] = ls;
            scales_out[j + 4] = lm;
        } else {
            scales_out[j + 4] = (uint8_t)((ls & 0xF) | ((lm & 0xF) << 4));
            scales_out[j - 4] |= (uint8_t)((ls >> 4) << 6);
            scales_out[j - 0] |= (uint8_t)((lm >> 4) << 6);
        }
    }
    *d_out = tensor_float_to_f16(max_scale / 63.f);
    *dmin_out = tensor_float_to_f16(max_min / 63.f);
    uint8_t sc, m;
    for (int j = 0; j < QK_K / 32; ++j) {
        get_scale_min_k4(j, scales_out, &sc, &m);
        const float d = f16_to_float(*d_out) * sc;
        if (!d) continue;
        const float dm = f16_to_float(*dmin_out) * m;
        for (int ii = 0; ii < 32; ++ii) {
            int l = nearest_int((x[32 * j + ii] + dm) / d);
            L[32 * j + ii] = (uint8_t)QMAX(0, QMIN(nmax, l));
        }
    }
}

void quantize_q4_k(const float *x, BlockQ4_K *y, int64_t nb) {
    uint8_t L[QK_K];
    for (int64_t i = 0; i < nb; i++, x += QK_K) {
        memset(y[i].scales, 0, sizeof y[i].scales);
        quantize_k_scales_mins(x, 15, -1.f, 20, y[i].scales, &y[i].d, &y[i].dmin, L);
        uint8_t *q = y[i].qs;
        for (int j = 0; j < QK_K; j += 64, q += 32)
            for (int l = 0; l < 32; ++l) q[l] = (uint8_t)(L[j + l] | (L[j + l + 32] << 4));
    }
}

void quantize_q5_k(const float *x, BlockQ5_K *y, int64_t nb) {
    uint8_t L[QK_K];
    for (int64_t i = 0; i < nb; i++, x += QK_K) {
        memset(y[i].scales, 0, sizeof y[i].scales);
        quantize_k_scales_mins(x, 31, -0.5f, 15, y[i].scales, &y[i].d, &y[i].dmin, L);
        uint8_t *qh = y[i].qh, *ql = y[i].qs;
        memset(qh, 0, QK_K / 8);
        uint8_t m1 = 1, m2 = 2;
        for (int n = 0; n < QK_K; n += 64, ql += 32) {
            for (int j = 0; j < 32; ++j) {
                int l1 = L[n + j];
                if (l1 > 15) {
                    l1 -= 16;
                    qh[j] |= m1;
                }
                int l2 = L[n + j + 32];
                if (l2 > 15) {
                    l2 -= 16;
                    qh[j] |= m2;
                }
                ql[j] = (uint8_t)(l1 | (l2 << 4));
            }
            m1 = (uint8_t)(m1 << 2);
            m2 = (uint8_t)(m2 << 2);
        }
    }
}

void quantize_q6_k(const float *x, BlockQ6_K *y, int64_t nb) {
    int8_t L[QK_K];
    float scales[QK_K / 16];
    for (int64_t i = 0; i < nb; i++, x += QK_K) {
        float max_scale = 0, max_abs_scale = 0;
        for (int ib = 0; ib < QK_K / 16; ++ib) {
            const float scale = make_qx_quants(16, 32, x + 16 * ib, L + 16 * ib);
            scales[ib] = scale;
            const float abs_scale = fabsf(scale);
            if (abs_scale > max_abs_scale) {
                max_abs_scale = abs_scale;
                max_scale = scale;
            }
        }
        if (max_abs_scale < GROUP_MAX_EPS) {
            memset(&y[i], 0, sizeof(BlockQ6_K));
            continue;
        }
        float iscale = -128.f / max_scale;
        y[i].d = tensor_float_to_f16(1 / iscale);
        for (int ib = 0; ib < QK_K / 16; ++ib)
            y[i].scales[ib] = (int8_t)QMIN(127, nearest_int(iscale * scales[ib]));
        for (int j = 0; j < QK_K / 16; ++j) {
            float d = f16_to_float(y[i].d) * y[i].scales[j];
            if (!d) continue;
            for (int ii = 0; ii < 16; ++ii) {
                int l = nearest_int(x[16 * j + ii] / d);
                l = QMAX(-32, QMIN(31, l));
                L[16 * j + ii] = (int8_t)(l + 32);
            }
        }
        uint8_t *ql = y[i].ql, *qh = y[i].qh;
        for (int j = 0; j < QK_K; j += 128, ql += 64, qh += 32) {
            for (int l = 0; l < 32; ++l) {
                const uint8_t q1 = L[j + l + 0] & 0xF;
                const uint8_t q2 = L[j + l + 32] & 0xF;
                const uint8_t q3 = L[j + l + 64] & 0xF;
                const uint8_t q4 = L[j + l + 96] & 0xF;
                ql[l + 0] = (uint8_t)(q1 | (q3 << 4));
                ql[l + 32] = (uint8_t)(q2 | (q4 << 4));
                qh[l] = (uint8_t)((L[j + l] >> 4) | ((L[j + l + 32] >> 4) << 2) |
                                  ((L[j + l + 64] >> 4) << 4) | ((L[j + l + 96] >> 4) << 6));
            }
        }
    }
}
