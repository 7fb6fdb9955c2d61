/* tensor/attention_internal.h — what ops_attention.c shares with its BF16-precision blocks
 * (ops_attention_bf16.c); private to tensor/. */
#ifndef LORAFIT_ATTENTION_INTERNAL_H
#define LORAFIT_ATTENTION_INTERNAL_H

#include "tensor/matmul.h"

#define ATT_BLOCK 64 /* query rows per causal block */

typedef struct {
    Tensor *q, *k, *v, *y;
    int batch, seq_len, n_heads, n_kv_heads, head_dim;
    const int32_t *segment; /* (B*T) arena copy, or NULL */
    float *probs;           /* (B, NH, T, T) */
    /* BF16 precision only: */
    bool bf16;
    Graph *g;
    MmIn qb, kb, vb;       /* q, k, v rounded (arena, kept for backward) */
    MmIn dyb;              /* the output's gradient rounded (backward) */
    char *blockbuf;        /* per thread: one (ATT_BLOCK, T) operand block */
    size_t blockbuf_bytes; /* per thread */
    int blockbuf_threads;
} AttentionCtx;

/* Masked softmax of rows [t0, t1) of p (T, T) in place; only s <= t was computed, every
 * s in (t, t1) becomes 0 (columns from t1 on are never read). seg is the sequence's (T)
 * segment ids or NULL. */
void masked_softmax(float *p, int T, int t0, int t1, const int32_t *seg);
/* Rows [t0, t1) of block `blk` (0 = first) of a sequence of length T. */
void block_rows(int blk, int T, int *t0, int *t1);
/* softmax backward of rows [t0, t1): ds = P * (ds - sum_s P ds), s <= t (0 beyond). */
void softmax_backward_rows(const float *P, float *ds, int T, int t0, int t1);

/* BF16 precision: rounds q, k, v and sets up the per-thread block buffers. 0, or -1. */
int attention_bf16_prepare(Graph *g, AttentionCtx *c);
/* The blocks of ops_attention.c, on rounded operands. */
void attention_forward_block_bf16(const AttentionCtx *c, int b, int h, int t0, int t1);
void attention_backward_block_bf16(const AttentionCtx *c, float *dq, float *ds, int b, int h,
                                   int t0, int t1);
void attention_backward_kv_block_bf16(const AttentionCtx *c, float *acc, const float *p,
                                      bool dk_side, int b, int h, int t0, int t1);

#endif
