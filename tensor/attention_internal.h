/* tensor/attention_internal.h — what the fused attention's files share; private to tensor/.
 *
 *   ops_attention.c           op_attention_ex: the forward pass (online softmax), the masks
 *   ops_attention_backward.c  its backward (recomputing each block's probabilities)
 *   attention_kernels.c       the block products (AVX-512, AVX2 and portable loops)
 *   attention_bf16.c          the block products on AVX512-BF16, the bf16 pairs they read
 *   attention_exp.h           the probabilities' exp, shared by the last two
 *
 * Query rows and key columns are cut into blocks of ATT_BLOCK on one grid: block i of a
 * sequence holds rows or keys [i ATT_BLOCK, (i + 1) ATT_BLOCK) (the last one shorter). */
#ifndef LORAFIT_ATTENTION_INTERNAL_H
#define LORAFIT_ATTENTION_INTERNAL_H

#include "tensor/graph_internal.h"

#define ATT_BLOCK 64

typedef struct {
    Tensor *q, *k, *v, *y;
    int batch, seq_len, n_heads, n_kv_heads, head_dim;
    float scale;        /* scores = scale q.k (resolved: never 0) */
    float softcap;      /* > 0: scores = softcap tanh(scores / softcap) */
    int window;         /* > 0: t attends s only when t - s < window */
    const int32_t *seg; /* (B*T) arena copy of the segment ids, or NULL */
    int32_t *seg_lo;    /* (B, NB) the smallest segment id in each block (with seg) */
    int32_t *seg_hi;    /* (B, NB) the largest */
    float *kt;          /* K transposed block by block (att_kt_at), or with dot: */
    uint32_t *kd;       /* K^T in bf16 pairs along D block by block (att_pairs_at) */
    bool dot;           /* BF16 precision's products on VDPBF16PS (att_bf16_dot) */
    float *lse;         /* (B, NH, T) each row's log-sum-exp of its allowed scores */
    bool bf16;          /* BF16 precision: every product's operands rounded to bf16 */
} AttentionCtx;

static inline int att_blocks(int T) {
    return (T + ATT_BLOCK - 1) / ATT_BLOCK;
}

/* Whether any (query of block i, key of block j) pair of sequence b may attend: causal,
 * window and the blocks' segment ranges. Forward and backward visit exactly these pairs. */
bool att_pair_live(const AttentionCtx *c, int b, int i, int j);

/* The tape entry of op_attention_ex (ops_attention_backward.c); ctx is its AttentionCtx. */
void attention_backward(Graph *g, void *ctx);

/* Scores of query rows [t0, t0 + m) against keys [s0, s0 + n) of head h of sequence b, from
 * the raw products S = Q K^T in s (m, n), ATT_BLOCK apart, in place: scale, soft-cap, and
 * -inf where the mask forbids. */
void att_scores(const AttentionCtx *c, float *s, int b, int t0, int m, int s0, int n);
/* Whether att_scores masks single scores in that block (a window or segments cut through
 * it), beyond the causal diagonal. */
bool att_block_masked(const AttentionCtx *c, int b, int t0, int m, int s0);
/* Whether the scores of that block are only scaled raw products with the causal mask: no
 * soft-cap, nothing att_block_masked masks; on AVX512-BF16 the softmax steps then scale them
 * as they read them (att_scaled_exp_row_pairs, att_grads_pairs' s_scale) instead of a pass of
 * att_scores, with the same bits. */
bool att_block_plain(const AttentionCtx *c, int b, int t0, int m, int s0);
/* Tests: true makes no block plain (every score through att_scores). */
void att_plain_force_off(bool off);

/* Where row t0 of head h of sequence b starts in a (B*T, NH*D) tensor (q, the output, their
 * gradients); its rows are NH*D apart. */
static inline int64_t att_q_at(const AttentionCtx *c, int b, int h, int t0) {
    return ((int64_t)b * c->seq_len + t0) * c->n_heads * c->head_dim + (int64_t)h * c->head_dim;
}

/* K or V transposed block by block, (B, NKV, NB, D, ATT_BLOCK): key block j of kv head kvh
 * of sequence b as a (D, ATT_BLOCK) matrix at att_kt_at(c, b, kvh, j), contiguous, so that a
 * product streams it from cache without the set conflicts of rows T floats apart. The last
 * block's columns beyond T are 0. */
static inline int64_t att_kt_at(const AttentionCtx *c, int b, int kvh, int j) {
    int nb = att_blocks(c->seq_len);
    return (((int64_t)b * c->n_kv_heads + kvh) * nb + j) * c->head_dim * ATT_BLOCK;
}
static inline size_t att_kt_floats(const AttentionCtx *c) {
    return (size_t)att_kt_at(c, c->batch, 0, 0);
}
/* dst (att_kt_floats) = src (B*T, NKV*D) (k or v) transposed block by block. */
void att_transpose_blocks(const AttentionCtx *c, const float *src, float *dst);

/* Q, K, V or dO (B*T, heads*D) in bf16 pairs block by block, (B, heads, NB, (D+1)/2,
 * ATT_BLOCK) 32-bit words: block j of head h of sequence b at att_pairs_at(c, b, h, heads, j),
 * either as the B operand of a product over D (transposed: pairs along D, (D+1)/2 rows of
 * ATT_BLOCK keys, for S = Q K^T and dP = dO V^T) or over the block's rows (pairs along rows,
 * ATT_BLOCK / 2 rows of D, for O = P V, dQ = dS K, dK = dS^T Q, dV = P^T dO). Rows beyond T
 * are 0. */
static inline int64_t att_pairs_at(const AttentionCtx *c, int b, int h, int heads, int j) {
    int nb = att_blocks(c->seq_len);
    return (((int64_t)b * heads + h) * nb + j) * ((c->head_dim + 1) / 2) * ATT_BLOCK;
}
static inline size_t att_pairs_words(const AttentionCtx *c, int heads) {
    return (size_t)att_pairs_at(c, c->batch, 0, heads, 0);
}
void att_pack_blocks(const AttentionCtx *c, const float *src, int heads, bool transposed,
                     uint32_t *dst);
/* Q or dO (B*T*NH, D) in bf16 pairs along D, (B*T*NH, (D+1)/2) words: the A operand of
 * S = Q K^T and dP = dO V^T, row t0 of head h of sequence b at att_heads_at(c, b, h, t0),
 * rows NH ((D+1)/2) apart. */
static inline int64_t att_heads_at(const AttentionCtx *c, int b, int h, int t0) {
    return (((int64_t)b * c->seq_len + t0) * c->n_heads + h) * ((c->head_dim + 1) / 2);
}
void att_pack_heads(const AttentionCtx *c, const float *src, uint32_t *dst);

/* Which part of a diagonal block pair (query block i = key block j, so row r and key column r
 * are the same position) a product needs: P and dS are 0 above the diagonal. */
typedef enum {
    ATT_FULL,     /* everything */
    ATT_TRI_COLS, /* C (rows, keys): columns up to each row's (the rest left unwritten) */
    ATT_TRI_UPTO, /* C (rows, D) = P (rows, keys) B: terms p <= row only */
    ATT_TRI_FROM  /* C (keys, D) = P^T (keys, rows) B: terms p >= row only */
} AttTri;

/* C (m, n) = (accumulate ? C : 0) + A (m, k) B (k, n): A[i][p] = a[i a_row + p a_col] (so A
 * may be a transposed view), B rows ldb apart, C rows ldc apart. Each element of C is one
 * chain of fused multiply-adds over p in ascending order, whichever instructions run it
 * (AVX-512, AVX2 or fmaf), so the result does not depend on the CPU's vector width; with
 * tri, the terms known to be 0 (and the columns not needed) are skipped in strips of 4 rows,
 * the same strips on every path. Counted as a product by the profile. */
void att_gemm(int m, int n, int k, const float *a, int64_t a_row, int64_t a_col, const float *b,
              int64_t ldb, float *c, int64_t ldc, bool accumulate, AttTri tri);
/* Tests: 0 picks the widest kernel the CPU has, 1 forces AVX2, 2 the portable loops. */
void att_gemm_force(int level);

/* p[x] = exp(s[x] - shift) for x < n (n <= ATT_BLOCK; p may be s), 0 where s[x] - shift < -87
 * (and for masked -inf); returns their sum, added in a fixed order. The same bits on every
 * path (AVX-512, AVX2, portable). */
float att_exp_row(float *p, const float *s, float shift, int n);

/* ---- BF16 precision on AVX512-BF16 (attention_bf16.c) ----
 * Whether BF16 precision's products run on VDPBF16PS: the CPU has AVX512-BF16 and
 * tensor_cpu_has_native_bf16 agrees (LORAFIT_CPU_BF16=0 turns it off), and tests have not
 * turned it off (att_bf16_dot_force(true)). */
bool att_bf16_dot(void);
void att_bf16_dot_force(bool off);

/* att_gemm on bf16 pairs: C (m, n) = (accumulate ? C : 0) + A (m, k) B (k, n), k terms in
 * (k + 1) / 2 pairs. A's pair p of row i (A[i][2p] in the low half, A[i][2p + 1] in the high)
 * is the 32-bit word a[i a_row + p a_col]; B's is b[p ldb + j] (B[2p][j], B[2p + 1][j]). An
 * odd k's missing term must be 0 in A and B. tri as att_gemm (rows in strips of 4, so a strip
 * starts on a pair; a strip's last pair may hold a term beyond its diagonal, which is 0). */
void att_gemm_bf16(int m, int n, int k, const uint32_t *a, int64_t a_row, int64_t a_col,
                   const uint32_t *b, int64_t ldb, float *c, int64_t ldc, bool accumulate,
                   AttTri tri);
/* Pairs along columns: dst[r ldd + p] = (M[r][2p], M[r][2p + 1]) of M (rows, cols), M's rows
 * ld apart, for p < pairs; terms beyond cols are 0. */
void att_pack_cols(const float *src, int64_t ld, int rows, int cols, uint32_t *dst, int64_t ldd,
                   int pairs);
/* Pairs along rows: dst[p ldd + c] = (M[2p][c], M[2p + 1][c]) for p < pairs, c < cols; rows
 * beyond rows are 0. */
void att_pack_rows(const float *src, int64_t ld, int rows, int cols, uint32_t *dst, int64_t ldd,
                   int pairs);
/* Pairs along columns, transposed: dst[p ldd + x] = (M[x][2p], M[x][2p + 1]) for x < width
 * ((cols + 1) / 2 rows of dst); rows x >= rows of M are 0. Rounded as att_pack_cols rounds
 * (VCVTNE2PS2BF16), in strips of 16 pairs transposed through the stack. */
void att_pack_cols_t(const float *src, int64_t ld, int rows, int cols, uint32_t *dst, int64_t ldd,
                     int width);

/* att_exp_row (AVX-512) with P's row written as att_pack_cols would write it: pairs[p] =
 * (P[2p], P[2p + 1]) for p < ATT_BLOCK / 2, 0 beyond n; returns the row's sum, the same bits. */
float att_exp_row_pairs(uint32_t *pairs, const float *s, float shift, int n);
/* For a plain block (att_block_plain): one row's raw products s, keys [0, limit) allowed
 * (1 <= limit <= ATT_BLOCK), scaled as att_scores scales them, their maximum with *top into
 * *top (simd_max's), and att_exp_row_pairs(pairs, scores, *top, limit) from them; the same
 * bits as those three in turn, without writing the scores. When *top stays -inf the pairs
 * are 0 and so is the sum. */
float att_scaled_exp_row_pairs(uint32_t *pairs, const float *s, float scale, int limit, float *top);
/* A block pair's probabilities and their gradients, as the backward pass computes them from
 * the scores S and dP (m rows of n, ATT_BLOCK apart; rows' lse and D_t): P = exp(S - lse),
 * dS = P (dP - D_t), through the soft-cap, times the scale, written only as bf16 pairs, the
 * words att_pack_rows and att_pack_cols would write from them: P and dS along rows (p_rows,
 * ds_rows: ATT_BLOCK / 2 rows of ATT_BLOCK words), dS along columns (ds_cols: m rows of
 * ATT_BLOCK / 2 words). With s_scale > 0 S holds a plain block's raw products instead
 * (att_block_plain): scaled by s_scale as they are read, row r's keys from r + diag_from on
 * masked (diag_from = t0 - s0 + 1), with the same bits as after att_scores. */
void att_grads_pairs(const float *S, const float *dP, int m, int n, const float *lse,
                     const float *drow, float cap, float scale, uint32_t *p_rows, uint32_t *ds_rows,
                     uint32_t *ds_cols, float s_scale, int diag_from);

/* x[i] = the nearest bf16 value of x[i] (tensor_float_to_bf16), for i < n. */
void att_round_bf16(float *x, int64_t n);

#endif
