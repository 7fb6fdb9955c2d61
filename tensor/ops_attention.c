/* tensor/ops_attention.c — fused causal grouped-query attention (FlashAttention-2's scheme):
 * the forward pass and the masks; backward in ops_attention_backward.c.
 *
 * Memory. The probabilities P (T x T per head) are never stored whole. Queries are taken in
 * blocks of ATT_BLOCK rows, keys and values streamed past them in blocks of ATT_BLOCK with an
 * online softmax: each row keeps its running maximum m and sum l, and its output accumulator
 * is rescaled by exp(m_old - m_new) when the maximum grows. Saved for backward: the output,
 * each row's log-sum-exp (B, NH, T) and K transposed (which the score product reads), so one
 * layer holds O(T D), and a thread's scratch is a few blocks.
 *
 * Masks, in one place (att_scores): causal (s <= t), the sliding window (t - s < window, as
 * transformers' sliding_window_overlay and llama.cpp's SWA mask), packed rows (equal segment
 * ids). Block pairs that cannot hold an allowed score are skipped (att_pair_live): above the
 * diagonal, wholly outside the window, or whose blocks' segment-id ranges do not overlap.
 * s = t is always allowed, so every row has an allowed key and its sum l > 0.
 *
 * Scores: S = scale q.k, then with soft-capping S = softcap tanh(S / softcap) (Gemma 2),
 * then the mask.
 *
 * Threads. The forward runs one task per (batch, head, query block), heaviest first; each
 * task's arithmetic is fixed (key blocks in ascending order), so the output is the same for
 * any thread count. In BF16 precision q, k and v are rounded to bf16 in place (nothing reads
 * them after attention but attention: RoPE's and the projections' backward do not), and each
 * block's probabilities before the product with V; on AVX512-BF16 (att_bf16_dot) they are
 * packed into bf16 pairs instead (attention_bf16.c), which rounds them the same way. */
#include "tensor/attention_internal.h"
#include "tensor/matmul.h"
#include "tensor/profile.h"
#include "tensor/simd.h"

#include <math.h>
#include <omp.h>
#include <string.h>

/* x[i] *= f over a row, sixteen lanes at a time with AVX-512 (simd.h: the same bits). */
SIMD_INLINE void scale_row(float *x, int n, float f) {
    for (int i = 0; i < n; i++) x[i] *= f;
}
SIMD_AVX512 static void scale_row_avx512(float *x, int n, float f) {
    scale_row(x, n, f);
}
static void scale_floats(float *x, int n, float f) {
    if (simd_avx512())
        scale_row_avx512(x, n, f);
    else
        scale_row(x, n, f);
}

static inline bool window_allows(int window, int t, int s) {
    return window <= 0 || t - s < window;
}

bool att_pair_live(const AttentionCtx *c, int b, int i, int j) {
    int t0 = i * ATT_BLOCK,
        s1 = (j + 1) * ATT_BLOCK < c->seq_len ? (j + 1) * ATT_BLOCK : c->seq_len;
    if (j > i) return false;                                 /* every key after every query */
    if (!window_allows(c->window, t0, s1 - 1)) return false; /* the nearest pair is too far */
    if (c->seg) {
        int nb = att_blocks(c->seq_len);
        const int32_t *lo = c->seg_lo + (int64_t)b * nb, *hi = c->seg_hi + (int64_t)b * nb;
        if (hi[i] < lo[j] || hi[j] < lo[i]) return false;
    }
    return true;
}

bool att_block_masked(const AttentionCtx *c, int b, int t0, int m, int s0) {
    /* window and segments: skipped for a block every pair of which they allow */
    bool check = !window_allows(c->window, t0 + m - 1, s0);
    if (c->seg) {
        int nb = att_blocks(c->seq_len), i = t0 / ATT_BLOCK, j = s0 / ATT_BLOCK;
        const int32_t *lo = c->seg_lo + (int64_t)b * nb, *hi = c->seg_hi + (int64_t)b * nb;
        check = check || !(lo[i] == hi[i] && lo[j] == hi[j] && lo[i] == lo[j]);
    }
    return check;
}

static int g_plain_off; /* att_plain_force_off */

void att_plain_force_off(bool off) {
    __atomic_store_n(&g_plain_off, off, __ATOMIC_RELAXED);
}

bool att_block_plain(const AttentionCtx *c, int b, int t0, int m, int s0) {
    return c->dot && c->softcap <= 0.0f && !att_block_masked(c, b, t0, m, s0) &&
           !__atomic_load_n(&g_plain_off, __ATOMIC_RELAXED);
}

void att_scores(const AttentionCtx *c, float *s, int b, int t0, int m, int s0, int n) {
    float scale = c->scale, cap = c->softcap, scale_cap = cap > 0.0f ? scale / cap : 0.0f;
    const int32_t *seg = c->seg ? c->seg + (int64_t)b * c->seq_len : NULL;
    bool check = att_block_masked(c, b, t0, m, s0);
    for (int r = 0; r < m; r++) {
        int t = t0 + r, causal = t - s0 + 1 < n ? t - s0 + 1 : n; /* keys s <= t */
        float *row = s + r * ATT_BLOCK;
        if (cap > 0.0f)
            for (int x = 0; x < causal; x++) row[x] = cap * tanhf(row[x] * scale_cap);
        else
            scale_floats(row, causal, scale);
        for (int x = causal < 0 ? 0 : causal; x < n; x++)
            row[x] = -INFINITY; /* above the diagonal (maybe not computed) */
        if (check)
            for (int x = 0; x < causal; x++) {
                int sk = s0 + x;
                if (!window_allows(c->window, t, sk) || (seg && seg[sk] != seg[t]))
                    row[x] = -INFINITY;
            }
    }
}

/* Per thread: the block's scores (ATT_BLOCK, ATT_BLOCK), its output accumulator
 * (ATT_BLOCK, D), each row's running maximum and sum; with dot, the probabilities in bf16
 * pairs (ATT_BLOCK, ATT_BLOCK / 2), and Q and V packed (shared). */
typedef struct {
    float *s, *o, *mx, *sum;
    uint32_t *pb;
    const uint32_t *qh, *vr;
    MmOut yb; /* the output's copy for the products that read it (mm_input_target) */
} ForwardScratch;

static size_t forward_scratch_floats(int D) {
    return (size_t)ATT_BLOCK * ATT_BLOCK + (size_t)ATT_BLOCK * D + 2 * ATT_BLOCK +
           ATT_BLOCK * ATT_BLOCK / 2;
}

/* Rows [t0, t0 + m) of head h of sequence b: O and the log-sum-exp. */
static void forward_block(const AttentionCtx *c, ForwardScratch w, int b, int h, int i) {
    int T = c->seq_len, D = c->head_dim, NKV = c->n_kv_heads, kvh = h / (c->n_heads / NKV);
    int t0 = i * ATT_BLOCK, m = T - t0 < ATT_BLOCK ? T - t0 : ATT_BLOCK, ldq = c->n_heads * D,
        ldk = NKV * D, D2 = (D + 1) / 2;
    const float *Q = c->q->data + att_q_at(c, b, h, t0);
    const float *V = c->v->data + (int64_t)b * T * ldk + (int64_t)kvh * D;
    memset(w.o, 0, (size_t)m * D * sizeof(float));
    for (int r = 0; r < m; r++) w.mx[r] = -INFINITY, w.sum[r] = 0.0f;
    for (int j = 0; j <= i; j++) {
        if (!att_pair_live(c, b, i, j)) continue;
        int s0 = j * ATT_BLOCK, n = T - s0 < ATT_BLOCK ? T - s0 : ATT_BLOCK;
        /* S (m, n) = Q K^T over keys [s0, s0 + n) */
        if (c->dot)
            att_gemm_bf16(m, n, D, w.qh + att_heads_at(c, b, h, t0), (int64_t)c->n_heads * D2, 1,
                          c->kd + att_pairs_at(c, b, kvh, NKV, j), ATT_BLOCK, w.s, ATT_BLOCK, false,
                          i == j ? ATT_TRI_COLS : ATT_FULL);
        else
            att_gemm(m, n, D, Q, ldq, 1, c->kt + att_kt_at(c, b, kvh, j), ATT_BLOCK, w.s, ATT_BLOCK,
                     false, i == j ? ATT_TRI_COLS : ATT_FULL);
        bool plain = att_block_plain(c, b, t0, m, s0);
        if (!plain) att_scores(c, w.s, b, t0, m, s0, n);
        for (int r = 0; r < m; r++) {
            float *row = w.s + r * ATT_BLOCK, top = w.mx[r], blocksum = 0.0f;
            uint32_t *pairs = w.pb + r * (ATT_BLOCK / 2); /* with dot, P's row as pairs */
            if (plain) {                                  /* keys s <= t */
                int limit = t0 + r - s0 + 1 < n ? t0 + r - s0 + 1 : n;
                blocksum = att_scaled_exp_row_pairs(pairs, row, c->scale, limit, &top);
            } else {
                top = simd_max(row, n, top);
            }
            if (top == -INFINITY) { /* no allowed key for this row yet */
                if (c->dot)
                    memset(pairs, 0, ATT_BLOCK / 2 * sizeof *pairs);
                else
                    memset(row, 0, (size_t)n * sizeof(float));
                continue;
            }
            /* P = exp(S - m_new); the sums and outputs so far shrink by exp(m_old - m_new) */
            float shrink = expf(w.mx[r] - top);
            if (!plain)
                blocksum =
                    c->dot ? att_exp_row_pairs(pairs, row, top, n) : att_exp_row(row, row, top, n);
            w.sum[r] = w.sum[r] * shrink + blocksum;
            w.mx[r] = top;
            if (shrink != 1.0f) scale_floats(w.o + r * D, D, shrink);
        }
        /* O (m, D) += P V over the block's keys */
        if (c->dot) {
            att_gemm_bf16(m, D, n, w.pb, ATT_BLOCK / 2, 1, w.vr + att_pairs_at(c, b, kvh, NKV, j),
                          D, w.o, D, true, i == j ? ATT_TRI_UPTO : ATT_FULL);
            continue;
        }
        if (c->bf16)
            for (int r = 0; r < m; r++) att_round_bf16(w.s + r * ATT_BLOCK, n);
        att_gemm(m, D, n, w.s, ATT_BLOCK, 1, V + (int64_t)s0 * ldk, ldk, w.o, D, true,
                 i == j ? ATT_TRI_UPTO : ATT_FULL);
    }
    float *Y = c->y->data + att_q_at(c, b, h, t0);
    float *lse = c->lse + ((int64_t)b * c->n_heads + h) * T + t0;
    for (int r = 0; r < m; r++) {
        for (int d = 0; d < D; d++) Y[(int64_t)r * ldq + d] = w.o[r * D + d] / w.sum[r];
        mm_store(w.yb, att_q_at(c, b, h, t0 + r), Y + (int64_t)r * ldq, D);
        lse[r] = w.mx[r] + logf(w.sum[r]);
    }
}

void att_transpose_blocks(const AttentionCtx *c, const float *src, float *dst) {
    int B = c->batch, T = c->seq_len, NKV = c->n_kv_heads, D = c->head_dim, nb = att_blocks(T);
#pragma omp parallel for schedule(static)
    for (int task = 0; task < B * NKV * nb; task++) {
        int b = task / (NKV * nb), kvh = task / nb % NKV, j = task % nb, s0 = j * ATT_BLOCK;
        const float *in = src + ((int64_t)b * T + s0) * NKV * D + (int64_t)kvh * D;
        float *out = dst + att_kt_at(c, b, kvh, j);
        for (int x = 0; x < ATT_BLOCK; x++)
            for (int d = 0; d < D; d++)
                out[d * ATT_BLOCK + x] = s0 + x < T ? in[(int64_t)x * NKV * D + d] : 0.0f;
    }
}

void att_pack_blocks(const AttentionCtx *c, const float *src, int heads, bool transposed,
                     uint32_t *dst) {
    int B = c->batch, T = c->seq_len, D = c->head_dim, nb = att_blocks(T);
#pragma omp parallel for schedule(static)
    for (int task = 0; task < B * heads * nb; task++) {
        int b = task / (heads * nb), h = task / nb % heads, j = task % nb, s0 = j * ATT_BLOCK;
        int n = T - s0 < ATT_BLOCK ? T - s0 : ATT_BLOCK;
        const float *in = src + ((int64_t)b * T + s0) * heads * D + (int64_t)h * D;
        uint32_t *out = dst + att_pairs_at(c, b, h, heads, j);
        if (transposed)
            att_pack_cols_t(in, (int64_t)heads * D, n, D, out, ATT_BLOCK, ATT_BLOCK);
        else
            att_pack_rows(in, (int64_t)heads * D, n, D, out, D, ATT_BLOCK / 2);
    }
}

void att_pack_heads(const AttentionCtx *c, const float *src, uint32_t *dst) {
    int64_t rows = (int64_t)c->batch * c->seq_len * c->n_heads, per = 256;
    int D = c->head_dim, D2 = (D + 1) / 2;
#pragma omp parallel for schedule(static)
    for (int64_t r0 = 0; r0 < rows; r0 += per)
        att_pack_cols(src + r0 * D, D, (int)(rows - r0 < per ? rows - r0 : per), D, dst + r0 * D2,
                      D2, D2);
}

/* Each block's smallest and largest segment id. */
static void segment_ranges(AttentionCtx *c) {
    int T = c->seq_len, nb = att_blocks(T);
    for (int b = 0; b < c->batch; b++)
        for (int i = 0; i < nb; i++) {
            const int32_t *seg = c->seg + (int64_t)b * T;
            int32_t lo = seg[i * ATT_BLOCK], hi = lo;
            for (int t = i * ATT_BLOCK; t < T && t < (i + 1) * ATT_BLOCK; t++) {
                lo = seg[t] < lo ? seg[t] : lo;
                hi = seg[t] > hi ? seg[t] : hi;
            }
            c->seg_lo[(int64_t)b * nb + i] = lo, c->seg_hi[(int64_t)b * nb + i] = hi;
        }
}

Tensor *op_attention_ex(Graph *g, Tensor *q, Tensor *k, Tensor *v, const AttentionSpec *spec) {
    PROFILE_OP(TENSOR_OP_ATTENTION);
    if (!g || !q || !k || !v || !spec) return NULL;
    int B = spec->batch, T = spec->seq_len, NH = spec->n_heads, NKV = spec->n_kv_heads,
        D = spec->head_dim;
    int64_t rows = (int64_t)B * T;
    if (B < 1 || T < 1 || NH < 1 || NKV < 1 || D < 1 || NH % NKV || tensor_rows(q) != rows ||
        tensor_rows(k) != rows || tensor_rows(v) != rows || tensor_cols(q) != (int64_t)NH * D ||
        tensor_cols(k) != (int64_t)NKV * D || tensor_cols(v) != (int64_t)NKV * D) {
        graph_fail(g,
                   "op_attention: q %s, k %s, v %s do not fit batch %d x seq_len %d with %d "
                   "heads / %d kv heads of size %d",
                   SHAPE(q), SHAPE(k), SHAPE(v), B, T, NH, NKV, D);
        return NULL;
    }
    if (!(spec->scale >= 0.0f) || !isfinite(spec->scale) || !(spec->softcap >= 0.0f) ||
        !isfinite(spec->softcap) || spec->window < 0) {
        graph_fail(g,
                   "op_attention: scale %g, softcap %g and window %d must be finite and not "
                   "negative (0 means: 1/sqrt(head_dim), no soft-capping, no window)",
                   spec->scale, spec->softcap, spec->window);
        return NULL;
    }
    int nb = att_blocks(T);
    Tensor *y = graph_new_tensor(g, q->ndim, q->shape);
    AttentionCtx ctx = {.q = q,
                        .k = k,
                        .v = v,
                        .y = y,
                        .batch = B,
                        .seq_len = T,
                        .n_heads = NH,
                        .n_kv_heads = NKV,
                        .head_dim = D,
                        .scale = spec->scale > 0.0f ? spec->scale : 1.0f / sqrtf((float)D),
                        .softcap = spec->softcap,
                        .window = spec->window,
                        .bf16 = graph_precision(g) == TENSOR_PRECISION_BF16};
    ctx.dot = ctx.bf16 && att_bf16_dot();
    if (ctx.dot)
        ctx.kd = graph_alloc(g, att_pairs_words(&ctx, NKV) * sizeof(uint32_t));
    else
        ctx.kt = graph_alloc(g, att_kt_floats(&ctx) * sizeof(float));
    ctx.lse = graph_alloc(g, (size_t)rows * NH * sizeof(float));
    if (spec->segment) {
        ctx.seg = graph_copy_ids(g, spec->segment, rows);
        ctx.seg_lo = graph_alloc(g, (size_t)B * nb * sizeof(int32_t));
        ctx.seg_hi = graph_alloc(g, (size_t)B * nb * sizeof(int32_t));
    }
    int threads = omp_get_max_threads();
    size_t per_thread = forward_scratch_floats(D);
    /* with dot: Q and V packed, then each thread's scratch */
    size_t packed = ctx.dot ? (size_t)q->size / D * ((D + 1) / 2) + att_pairs_words(&ctx, NKV) : 0;
    packed = (packed + 15) / 16 * 16; /* the scratch 64-byte aligned */
    uint32_t *qh =
        (uint32_t *)graph_scratch(g, (packed + (size_t)threads * per_thread) * sizeof(float));
    if (!y || !qh || graph_failed(g)) return NULL;
    uint32_t *vr = qh + (size_t)q->size / D * ((D + 1) / 2);
    float *scratch = (float *)(qh + packed);
    if (ctx.seg) segment_ranges(&ctx);
    MmOut yb = mm_input_target(g, y->data, tensor_rows(y), tensor_cols(y));
    if (ctx.dot) {
        PROFILE_OP(TENSOR_OP_CONVERSION);
        att_pack_heads(&ctx, q->data, qh);
        att_pack_blocks(&ctx, k->data, NKV, true, ctx.kd);
        att_pack_blocks(&ctx, v->data, NKV, false, vr);
    } else {
        if (ctx.bf16) {
            PROFILE_OP(TENSOR_OP_CONVERSION);
            att_round_bf16(q->data, q->size);
            att_round_bf16(k->data, k->size);
            att_round_bf16(v->data, v->size);
        }
        att_transpose_blocks(&ctx, k->data, ctx.kt);
    }
    /* heaviest (last) query blocks first so that dynamic scheduling balances */
#pragma omp parallel for schedule(dynamic, 1)
    for (int task = 0; task < B * NH * nb; task++) {
        int bh = task / nb, i = nb - 1 - task % nb;
        float *mine = scratch + (size_t)omp_get_thread_num() * per_thread;
        ForwardScratch w = {.s = mine,
                            .o = mine + ATT_BLOCK * ATT_BLOCK,
                            .mx = mine + ATT_BLOCK * ATT_BLOCK + (size_t)ATT_BLOCK * D,
                            .qh = qh,
                            .vr = vr,
                            .yb = yb};
        w.sum = w.mx + ATT_BLOCK;
        w.pb = (uint32_t *)(w.sum + ATT_BLOCK);
        forward_block(&ctx, w, bh / NH, bh % NH, i);
    }
    if (tensor_any_grad(q, k, v)) {
        AttentionCtx *c = graph_record(g, attention_backward, sizeof *c);
        if (!c) return NULL;
        *c = ctx;
        y->requires_grad = true;
    }
    return y;
}

Tensor *op_attention(Graph *g, Tensor *q, Tensor *k, Tensor *v, int batch, int seq_len, int n_heads,
                     int n_kv_heads, int head_dim, const int32_t *segment) {
    AttentionSpec spec = {.batch = batch,
                          .seq_len = seq_len,
                          .n_heads = n_heads,
                          .n_kv_heads = n_kv_heads,
                          .head_dim = head_dim,
                          .segment = segment};
    return op_attention_ex(g, q, k, v, &spec);
}
