/* tensor/deltanet_internal.h — what the gated delta rule's forward (ops_deltanet.c) shares
 * with its backward (ops_deltanet_backward.c); private to tensor/.
 *
 * The chunked form, for one (batch row, value head h) and one chunk of n <= DN_CHUNK
 * positions entering with state S0 (DK, DV); gam_i = sum_{j <= i} g_j within the chunk:
 *   E_ij = exp(gam_i - gam_j) (j <= i), the decay from position j to i
 *   A_ij = beta_i E_ij k_i.k_j (j < i),  P_ij = E_ij q_i.k_j (j <= i)
 *   [U | W] = (I + A)^-1 [diag(beta) V | diag(beta exp(gam)) K]   (unit-lower solve)
 *   Delta = U - W S0          (row i: what position i writes into the state)
 *   O = diag(exp(gam)) Q S0 + P Delta
 *   S_end = exp(gam_last) S0 + (diag(exp(gam_last - gam)) K)^T Delta
 * which is the token recurrence S_t = exp(g_t)(I - beta_t k_t k_t^T) S_{t-1} + beta_t k_t v_t^T
 * unrolled over the chunk (Delta_i = beta_i (v_i - exp(g_i) S_{i-1}^T k_i)). gam is summed in
 * double and every decay is the exp of a difference, so strong decays (exp(g) ~ 1e-6 per
 * position, gam ~ -900 over a chunk) underflow to 0 where they should and lose no digits
 * elsewhere. */
#ifndef LORAFIT_DELTANET_INTERNAL_H
#define LORAFIT_DELTANET_INTERNAL_H

#include "tensor/graph_internal.h"

#define DN_CHUNK 64

typedef struct {
    Tensor *q, *k, *v, *g, *beta, *o; /* q, k, v: one tensor (op_gated_delta_rule_qkv) or three */
    int64_t q0, k0, v0;               /* the first column of q, k, v in their tensors */
    int64_t ldqk, ldv;                /* the row strides of q and k, of v (o's is NV*DV) */
    int batch, seq_len, nk, nv, dk, dv;
    int n_chunks;
    int32_t *chunk_t0, *chunk_len; /* (n_chunks) each chunk's first position in its row, length */
    uint8_t *chunk_reset;          /* (n_chunks) 1 where a packed row starts: S0 = 0 */
    int32_t *row_chunk;            /* (B + 1) the first chunk of each batch row */
    float *states;                 /* (n_chunks, NV, DK, DV) S0 of each chunk, or NULL */
} DeltaCtx;

/* One thread's buffers for one chunk (C = DN_CHUNK; the (C, C) ones are C apart). */
typedef struct {
    double *gam, *dgam;             /* (C) */
    float *eg, *ekd;                /* (C) exp(gam_i), exp(gam_last - gam_i) */
    float *E, *KK, *QK, *P, *A;     /* (C, C) */
    float *X;                       /* (C, DV + DK): the right-hand sides, then [U | W] */
    float *delta, *qg, *kd;         /* (C, DV), (C, DK) diag(exp(gam)) Q, (C, DK) */
    float *S;                       /* (DK, DV) the running state */
    float *dS, *dS_prev;            /* (DK, DV) */
    float *ddelta, *dX, *dqg, *dkd; /* (C, DV), (C, DV + DK), (C, DK), (C, DK) */
    float *dP, *dA, *dQK, *dKK;     /* (C, C) */
} DeltaWork;

/* Bytes of one thread's DeltaWork, and its buffers carved from mem (64-byte aligned). */
size_t delta_work_bytes(int dk, int dv);
DeltaWork delta_work_carve(void *mem, int dk, int dv);

/* The chunk's E, KK, QK, P, A, [U | W], Delta, Qg and Kd from q, k, v, g, beta at rows
 * [r0, r0 + n) for value head h (key head kh) and the entering state S0. */
void delta_chunk_prepare(const DeltaCtx *c, DeltaWork *w, int64_t r0, int kh, int h, int n,
                         const float *S0);

/* A unit-lower-triangular solve in place, X (n, cols) = (I + A)^-1 X, or (I + A)^-T X with
 * transpose; A (n, n) C apart, only its strictly lower part read. OpenBLAS strsm in the
 * calling thread, timed as a product. */
void delta_solve(const float *A, float *X, int n, int cols, int ldx, bool transpose);

/* Asks the cache for rows [r0, r0 + n) of q, k (key head kh), v (value head h) and, when
 * not NULL, of a (B*T, NV*DV) gradient: the rows lie NV*DV floats apart, a page or more, so
 * the hardware prefetcher does not fetch them and each chunk's first reads would wait
 * (measured: 3/4 of delta_chunk_prepare's cycles at T 4096). Called a chunk ahead. */
void delta_prefetch_chunk(const DeltaCtx *c, int64_t r0, int kh, int h, int n, const float *dO);

void delta_backward(Graph *g, void *ctx);

#endif
