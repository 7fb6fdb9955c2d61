/* tensor/ops_attention_backward.c — the fused attention's backward (FlashAttention-2).
 *
 * For each live block pair (query block i, key block j) of a head, the probabilities are
 * recomputed from the saved log-sum-exp, P = exp(S - lse), and
 *   dP = dO V^T,  dS = P (dP - D_t) with D_t = sum_d dO_td O_td (= sum_s P_ts dP_ts),
 *   through the soft-cap: dS *= 1 - (S / softcap)^2, and the scale: dS *= scale,
 *   dV_j += P^T dO_i,  dK_j += dS^T Q_i,  dQ_i += dS K_j.
 *
 * Order, and so the bits: dQ_i sums over j in ascending order; dK_j and dV_j over the group's
 * query heads h, then i, in ascending order. Two schedules keep exactly these orders:
 *   - one task per (batch, kv head) when those tasks divide evenly among the threads (or
 *     there is one thread): it owns its heads' dQ and its dK, dV, and runs h, j, i in order,
 *     computing each pair's P and dS once for all three gradients;
 *   - otherwise (batch 1 with 1 kv head on 2 threads would leave a thread idle) two passes:
 *     one task per (batch, kv head, key block) sums dK_j and dV_j over (h, i), then one per
 *     (batch, head, query block) sums dQ_i over j, each recomputing P and dS.
 * Every element therefore gets the same operations in the same order under either schedule:
 * the results are bit-identical for any thread count. No atomics, no per-thread partial sums.
 *
 * In BF16 precision every product's operands are bf16 values: q, k, v were rounded in the
 * forward pass, dO is rounded once here, P and dS per block (after dS is computed from the
 * f32 P); on AVX512-BF16 (att_bf16_dot) they are packed into bf16 pairs instead
 * (attention_bf16.c): Q, K, V and dO once, P and dS as att_grads_pairs computes them. */
#include "tensor/attention_internal.h"
#include "tensor/profile.h"
#include "tensor/simd.h"

#include <math.h>
#include <omp.h>
#include <string.h>

typedef struct {
    const AttentionCtx *c;
    const float *dO;   /* (B*T, NH*D) the output's gradient (bf16-rounded in BF16 precision) */
    const float *drow; /* (B, NH, T) D_t */
    float *vt;         /* V transposed block by block (att_kt_at) */
    float *dq, *dk, *dv;
    /* with dot, bf16 pairs: Q and dO along D (att_heads_at); V^T along D, K, Q and dO along
     * rows, block by block (att_pairs_at) */
    uint32_t *qh, *doh, *vd, *kr, *qr, *dor;
} Backward;

/* Per thread: scores S, probabilities P, and dP then dS, each (ATT_BLOCK, ATT_BLOCK) floats;
 * with dot, P and dS in bf16 pairs along rows, dS along columns (ATT_BLOCK / 2, ATT_BLOCK)
 * words each. */
enum { BLOCK = ATT_BLOCK * ATT_BLOCK, SCRATCH_FLOATS = 3 * BLOCK + 3 * BLOCK / 2 };

/* One row of dS (dr holds dP on entry): P (dP - D_t), through the soft-cap, times the
 * scale; 0 where P is 0 (masked: dP is not computed above a diagonal). Written once, compiled
 * for AVX-512 and the baseline (simd.h: the same bits); attention_bf16.c's ds16 does the same
 * operations into bf16 pairs on AVX512-BF16. */
SIMD_INLINE void ds_row(float *restrict dr, const float *restrict pr, const float *restrict sr,
                        float d, float cap, float scale, int n) {
    for (int x = 0; x < n; x++) {
        float g = pr[x] * (dr[x] - d);
        if (cap > 0.0f) {
            float th = sr[x] / cap; /* tanh of the capped score's argument */
            g *= 1.0f - th * th;
        }
        dr[x] = pr[x] == 0.0f ? 0.0f : g * scale;
    }
}
SIMD_AVX512 static void ds_row_avx512(float *restrict dr, const float *restrict pr,
                                      const float *restrict sr, float d, float cap, float scale,
                                      int n) {
    ds_row(dr, pr, sr, d, cap, scale, n);
}

/* P and dS (scaled, ready for the products) of the pair (i, j) of head h of sequence b into
 * s's P and dS blocks. */
static void pair_grads(const Backward *bw, float *s, int b, int h, int i, int j) {
    const AttentionCtx *c = bw->c;
    int T = c->seq_len, D = c->head_dim, NKV = c->n_kv_heads, kvh = h / (c->n_heads / NKV);
    int t0 = i * ATT_BLOCK, m = T - t0 < ATT_BLOCK ? T - t0 : ATT_BLOCK, ldq = c->n_heads * D;
    int s0 = j * ATT_BLOCK, n = T - s0 < ATT_BLOCK ? T - s0 : ATT_BLOCK;
    float *S = s, *P = s + BLOCK, *dS = P + BLOCK;
    int64_t kv = att_kt_at(c, b, kvh, j);
    const float *lse = c->lse + ((int64_t)b * c->n_heads + h) * T + t0;
    const float *drow = bw->drow + ((int64_t)b * c->n_heads + h) * T + t0;
    AttTri diag = i == j ? ATT_TRI_COLS : ATT_FULL;
    int64_t hd = att_heads_at(c, b, h, t0), kd = att_pairs_at(c, b, kvh, NKV, j),
            ldh = (int64_t)c->n_heads * ((D + 1) / 2);
    if (c->dot)
        att_gemm_bf16(m, n, D, bw->qh + hd, ldh, 1, c->kd + kd, ATT_BLOCK, S, ATT_BLOCK, false,
                      diag);
    else
        att_gemm(m, n, D, c->q->data + att_q_at(c, b, h, t0), ldq, 1, c->kt + kv, ATT_BLOCK, S,
                 ATT_BLOCK, false, diag);
    bool plain = att_block_plain(c, b, t0, m, s0); /* then att_grads_pairs scales S */
    if (!plain) att_scores(c, S, b, t0, m, s0, n);
    float cap = c->softcap, scale = c->scale;
    /* in the forward pass this was: O = P V; so dP = dO V^T */
    if (c->dot) { /* P and dS straight into the pairs the products read */
        att_gemm_bf16(m, n, D, bw->doh + hd, ldh, 1, bw->vd + kd, ATT_BLOCK, dS, ATT_BLOCK, false,
                      diag);
        uint32_t *pairs = (uint32_t *)(dS + BLOCK);
        att_grads_pairs(S, dS, m, n, lse, drow, cap, scale, pairs, pairs + BLOCK / 2, pairs + BLOCK,
                        plain ? scale : 0.0f, t0 - s0 + 1);
        return;
    }
    for (int r = 0; r < m; r++) att_exp_row(P + r * ATT_BLOCK, S + r * ATT_BLOCK, lse[r], n);
    att_gemm(m, n, D, bw->dO + att_q_at(c, b, h, t0), ldq, 1, bw->vt + kv, ATT_BLOCK, dS, ATT_BLOCK,
             false, diag);
    bool wide = simd_avx512();
    for (int r = 0; r < m; r++) {
        const float *pr = P + r * ATT_BLOCK, *sr = S + r * ATT_BLOCK;
        float *dr = dS + r * ATT_BLOCK;
        if (wide)
            ds_row_avx512(dr, pr, sr, drow[r], cap, scale, n);
        else
            ds_row(dr, pr, sr, drow[r], cap, scale, n);
    }
    if (c->bf16) {
        for (int r = 0; r < m; r++) {
            att_round_bf16(P + r * ATT_BLOCK, n);
            att_round_bf16(dS + r * ATT_BLOCK, n);
        }
    }
}

/* dV_j += P^T dO_i and dK_j += dS^T Q_i, from the pair's blocks in s. */
static void pair_kv(const Backward *bw, const float *s, int b, int h, int i, int j) {
    const AttentionCtx *c = bw->c;
    int T = c->seq_len, D = c->head_dim, NKV = c->n_kv_heads, kvh = h / (c->n_heads / NKV);
    int t0 = i * ATT_BLOCK, m = T - t0 < ATT_BLOCK ? T - t0 : ATT_BLOCK, ldq = c->n_heads * D;
    int s0 = j * ATT_BLOCK, n = T - s0 < ATT_BLOCK ? T - s0 : ATT_BLOCK, ldk = NKV * D;
    const float *P = s + BLOCK, *dS = P + BLOCK;
    AttTri diag = i == j ? ATT_TRI_FROM : ATT_FULL;
    int64_t at = ((int64_t)b * T + s0) * ldk + (int64_t)kvh * D;
    if (c->dot) { /* P^T and dS^T: pairs along rows read down the columns */
        const uint32_t *pairs = (const uint32_t *)(s + 3 * BLOCK);
        int64_t qi = att_pairs_at(c, b, h, c->n_heads, i);
        if (bw->dv)
            att_gemm_bf16(n, D, m, pairs, 1, ATT_BLOCK, bw->dor + qi, D, bw->dv + at, ldk, true,
                          diag);
        if (bw->dk)
            att_gemm_bf16(n, D, m, pairs + BLOCK / 2, 1, ATT_BLOCK, bw->qr + qi, D, bw->dk + at,
                          ldk, true, diag);
        return;
    }
    if (bw->dv)
        att_gemm(n, D, m, P, 1, ATT_BLOCK, bw->dO + att_q_at(c, b, h, t0), ldq, bw->dv + at, ldk,
                 true, diag);
    if (bw->dk)
        att_gemm(n, D, m, dS, 1, ATT_BLOCK, c->q->data + att_q_at(c, b, h, t0), ldq, bw->dk + at,
                 ldk, true, diag);
}

/* dQ_i += dS K_j, from the pair's dS in s. */
static void pair_q(const Backward *bw, const float *s, int b, int h, int i, int j) {
    const AttentionCtx *c = bw->c;
    int T = c->seq_len, D = c->head_dim, NKV = c->n_kv_heads, kvh = h / (c->n_heads / NKV);
    int t0 = i * ATT_BLOCK, m = T - t0 < ATT_BLOCK ? T - t0 : ATT_BLOCK, ldq = c->n_heads * D;
    int s0 = j * ATT_BLOCK, n = T - s0 < ATT_BLOCK ? T - s0 : ATT_BLOCK, ldk = NKV * D;
    const float *dS = s + 2 * BLOCK;
    if (c->dot) {
        const uint32_t *pairs = (const uint32_t *)(s + 3 * BLOCK) + BLOCK;
        att_gemm_bf16(m, D, n, pairs, ATT_BLOCK / 2, 1, bw->kr + att_pairs_at(c, b, kvh, NKV, j), D,
                      bw->dq + att_q_at(c, b, h, t0), ldq, true, i == j ? ATT_TRI_UPTO : ATT_FULL);
        return;
    }
    const float *K = c->k->data + ((int64_t)b * T + s0) * ldk + (int64_t)kvh * D;
    att_gemm(m, D, n, dS, ATT_BLOCK, 1, K, ldk, bw->dq + att_q_at(c, b, h, t0), ldq, true,
             i == j ? ATT_TRI_UPTO : ATT_FULL);
}

/* D_t = sum_d dO_td O_td for every (batch, head, row), and V transposed (att_kt_at). */
static void prepare(const Backward *bw, const float *dy, float *drow, float *vt) {
    const AttentionCtx *c = bw->c;
    int B = c->batch, T = c->seq_len, NH = c->n_heads, D = c->head_dim;
#pragma omp parallel for schedule(static)
    for (int64_t bt = 0; bt < (int64_t)B * T; bt++) {
        int64_t b = bt / T, t = bt % T;
        for (int h = 0; h < NH; h++) {
            const float *o = c->y->data + (bt * NH + h) * D, *d = dy + (bt * NH + h) * D;
            float acc = 0.0f;
            for (int x = 0; x < D; x++) acc += o[x] * d[x];
            drow[(b * NH + h) * T + t] = acc;
        }
    }
    if (c->dot) {
        PROFILE_OP(TENSOR_OP_CONVERSION);
        att_pack_heads(c, c->q->data, bw->qh);
        att_pack_heads(c, dy, bw->doh);
        att_pack_blocks(c, c->v->data, c->n_kv_heads, true, bw->vd);
        att_pack_blocks(c, c->k->data, c->n_kv_heads, false, bw->kr);
        att_pack_blocks(c, c->q->data, NH, false, bw->qr);
        att_pack_blocks(c, dy, NH, false, bw->dor);
    } else {
        att_transpose_blocks(c, c->v->data, vt);
    }
}

void attention_backward(Graph *g, void *p) {
    AttentionCtx *c = p;
    const float *dy = c->y->grad;
    if (!dy) return;
    Backward bw = {
        .c = c, .dq = graph_grad(g, c->q), .dk = graph_grad(g, c->k), .dv = graph_grad(g, c->v)};
    if (graph_failed(g) || (!bw.dq && !bw.dk && !bw.dv)) return;
    int B = c->batch, T = c->seq_len, NH = c->n_heads, NKV = c->n_kv_heads;
    int group = NH / NKV, nb = att_blocks(T), threads = omp_get_max_threads();
    /* scratch: D_t (B, NH, T); V^T (B, NKV, D, T) and dO rounded (BF16 precision), or with
     * dot the six packings; per thread */
    size_t nrow = (size_t)B * NH * T, nkv = c->dot ? 0 : att_kt_floats(c),
           ndo = c->bf16 && !c->dot ? c->y->size : 0;
    size_t heads = (size_t)c->y->size / c->head_dim * ((c->head_dim + 1) / 2);
    size_t npk = c->dot ? 2 * heads + 2 * att_pairs_words(c, NKV) + 2 * att_pairs_words(c, NH) : 0;
    float *drow = graph_scratch(
        g, (nrow + nkv + ndo + npk + (size_t)threads * SCRATCH_FLOATS + 64) * sizeof(float));
    if (!drow) return;
    bw.drow = drow;
    bw.vt = drow + nrow;
    if (c->dot) {
        bw.qh = (uint32_t *)bw.vt;
        bw.doh = bw.qh + heads;
        bw.vd = bw.doh + heads;
        bw.kr = bw.vd + att_pairs_words(c, NKV);
        bw.qr = bw.kr + att_pairs_words(c, NKV);
        bw.dor = bw.qr + att_pairs_words(c, NH);
    }
    float *scratch = bw.vt + nkv + ndo + npk;
    size_t misaligned = (uintptr_t)scratch % 64; /* the blocks 64-byte aligned */
    if (misaligned) scratch += (64 - misaligned) / sizeof(float);
    bw.dO = dy;
    if (c->bf16 && !c->dot) {
        PROFILE_OP(TENSOR_OP_CONVERSION);
        float *r = bw.vt + nkv;
        memcpy(r, dy, ndo * sizeof(float));
        att_round_bf16(r, (int64_t)ndo);
        bw.dO = r;
    }
    prepare(&bw, dy, drow, bw.vt);
    if (threads == 1 || (B * NKV) % threads == 0) {
#pragma omp parallel for schedule(static)
        for (int task = 0; task < B * NKV; task++) {
            int b = task / NKV, kvh = task % NKV;
            float *s = scratch + (size_t)omp_get_thread_num() * SCRATCH_FLOATS;
            for (int h = kvh * group; h < (kvh + 1) * group; h++)
                for (int j = 0; j < nb; j++)
                    for (int i = j; i < nb; i++) {
                        if (!att_pair_live(c, b, i, j)) continue;
                        pair_grads(&bw, s, b, h, i, j);
                        if (bw.dk || bw.dv) pair_kv(&bw, s, b, h, i, j);
                        if (bw.dq) pair_q(&bw, s, b, h, i, j);
                    }
        }
        return;
    }
    if (bw.dk || bw.dv) {
        /* first key blocks (the most query blocks see them) first */
#pragma omp parallel for schedule(dynamic, 1)
        for (int task = 0; task < B * NKV * nb; task++) {
            int bk = task / nb, j = task % nb, b = bk / NKV, kvh = bk % NKV;
            float *s = scratch + (size_t)omp_get_thread_num() * SCRATCH_FLOATS;
            for (int h = kvh * group; h < (kvh + 1) * group; h++)
                for (int i = j; i < nb; i++) {
                    if (!att_pair_live(c, b, i, j)) continue;
                    pair_grads(&bw, s, b, h, i, j);
                    pair_kv(&bw, s, b, h, i, j);
                }
        }
    }
    if (bw.dq) {
        /* last query blocks (the most key blocks) first */
#pragma omp parallel for schedule(dynamic, 1)
        for (int task = 0; task < B * NH * nb; task++) {
            int bh = task / nb, i = nb - 1 - task % nb, b = bh / NH, h = bh % NH;
            float *s = scratch + (size_t)omp_get_thread_num() * SCRATCH_FLOATS;
            for (int j = 0; j <= i; j++) {
                if (!att_pair_live(c, b, i, j)) continue;
                pair_grads(&bw, s, b, h, i, j);
                pair_q(&bw, s, b, h, i, j);
            }
        }
    }
}
