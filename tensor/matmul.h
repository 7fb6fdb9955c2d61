/* tensor/matmul.h — the ops' matrix products; private to tensor/.
 *
 * Every product of an op goes through mm_sgemm (F32 values, OpenBLAS) or mm_gemm (BF16
 * precision), which also time and count it for tensor_profile_begin().
 *
 * In BF16 precision (graph_set_precision) an op hands its products to mm_gemm with both
 * inputs as MmIn operands: values rounded to bf16 (nearest even, tensor/bf16.h), held as
 *   - bf16 bits, for oneDNN's native bf16 matmul (CPUs with AVX512-BF16 or AMX-BF16), or
 *   - the same values as floats, for the emulation on other CPUs: OpenBLAS sgemm on
 *     bf16-rounded inputs (a product of two bf16 values is exact in f32, so this is the
 *     same arithmetic as the native kernels, only slower and summed in another order).
 * The graph's kernel decides which; ops only convert through the functions below and never
 * look inside an MmIn. The output and the accumulation are f32 in every kernel.
 * In F32 precision none of this is used: ops call sgemm exactly as before. */
#ifndef LORAFIT_MATMUL_H
#define LORAFIT_MATMUL_H

#include <cblas.h>

#include "tensor/graph_internal.h"

typedef enum {
    MM_KERNEL_F32,            /* F32 precision: OpenBLAS sgemm on F32 values */
    MM_KERNEL_ONEDNN_BF16,    /* oneDNN matmul, bf16 inputs */
    MM_KERNEL_EMULATED,       /* OpenBLAS sgemm on bf16-rounded floats */
    MM_KERNEL_EMULATED_ONEDNN /* oneDNN f32 matmul on bf16-rounded floats (tests of the
                                 oneDNN plumbing on CPUs without bf16) */
} MmKernel;

/* An operand: exactly one pointer is set, by the graph's kernel. */
typedef struct {
    const uint16_t *bits; /* MM_KERNEL_ONEDNN_BF16 */
    const float *vals;    /* the emulated kernels */
    int64_t ld;           /* rows this far apart; 0: as many as the source's columns */
} MmIn;

/* The distance between in's rows, in's source having cols columns. */
static inline int64_t mm_ld(MmIn in, int64_t cols) {
    return in.ld ? in.ld : cols;
}

static inline MmIn mm_at(MmIn in, int64_t offset) {
    if (in.bits) in.bits += offset;
    if (in.vals) in.vals += offset;
    return in;
}

/* The kernel that BF16 precision gets on this machine (CPU, LORAFIT_CPU_BF16, oneDNN) and
 * the name graph_matmul_kernel() reports for a kernel. */
MmKernel mm_choose_kernel(void);
const char *mm_kernel_name(MmKernel k);

/* Conversion buffers of a graph: grown on first use, kept across graph_reset. */
typedef struct {
    void *x, *d; /* an op's input, and a second operand (an upstream gradient) */
    size_t x_bytes, d_bytes;
    void *cur;          /* the buffer holding the conversion of (x_src, x_n): x, or the arena */
    const float *x_src; /* NULL: none */
    int64_t x_n;
    int room;  /* x's rows end in this many more columns (mm_set_room) */
    bool kept; /* a backward pass reads x (mm_keep_input): conversions go to the arena */
} MmBuffers;
MmBuffers *graph_mm_buffers(Graph *g);
/* The graph's kernel: MM_KERNEL_F32 in F32 precision (graph.c). */
MmKernel graph_mm_kernel(const Graph *g);

/* Bytes of one operand element (2 or 4) under the graph's kernel. */
size_t mm_elem_bytes(const Graph *g);

/* src (n floats) as an operand. mm_input reuses the previous conversion when the same
 * tensor is asked for again (q, k and v read one input); it stays valid until the next
 * mm_input of other data. mm_input_d holds one conversion, valid until the next
 * mm_input_d. mm_input_arena converts into the arena (valid until graph_reset). A NULL
 * operand (both pointers NULL) means the graph failed. */
MmIn mm_input(Graph *g, const float *src, int64_t rows, int64_t cols);
MmIn mm_input_d(Graph *g, const float *src, int64_t n);
/* From now on the rows of mm_input's buffer (and mm_input_target's) end in `room` more
 * columns for the caller to fill (their operands' ld say so): op_lora_linear's room for
 * its s h beside x (graph_lora_uses_room). BF16 bits only. */
void mm_set_room(Graph *g, int room);
/* src (rows, cols) in mm_input_d's buffer with rows ld apart (ld - cols columns after each
 * row left to the caller). BF16 bits only. */
MmIn mm_input_d_rows(Graph *g, const float *src, int64_t rows, int64_t cols, int64_t ld);
/* The buffer of mm_input's (or mm_input_target's) last conversion stays as it is until
 * graph_reset, for a backward pass to read (op_lora_linear's dA = dh^T x from x's bits):
 * from now on conversions go to the arena, which keeps them until graph_reset as well. */
void mm_keep_input(Graph *g);
MmIn mm_input_arena(Graph *g, const float *src, int64_t n);
/* An op whose output its consumers multiply (RMSNorm, SwiGLU, attention) writes the output's
 * operand form as it writes each row, while the row is in cache, instead of mm_input
 * reading the whole output again: mm_input_target(g, data, n) returns the buffer mm_input
 * would convert data (n floats) into, and makes mm_input(g, data, n) return it as it is;
 * the op then fills all of it with mm_store, the same values mm_input would write, before
 * anything else calls mm_input. Empty (nothing to write) in F32 precision and with the
 * graph failed. */
typedef struct {
    uint16_t *bits;
    float *vals;
    int64_t cols, ld; /* ld > 0: element i of the source goes to row i / cols, rows ld apart */
} MmOut;
MmOut mm_input_target(Graph *g, const float *data, int64_t rows, int64_t cols);
/* The same for mm_input_d's buffer (n elements): an op that computes an upstream gradient
 * for its own product (the lm_head's softmax - onehot) writes its operand form row by row;
 * mm_target_operand gives the filled target as the product's operand. */
MmOut mm_input_d_target(Graph *g, int64_t n);
static inline MmIn mm_target_operand(MmOut out) {
    return (MmIn){out.bits, out.vals, out.ld};
}
/* Elements [at, at + n) of the target = src (n floats) rounded. Thread-safe. */
void mm_store(MmOut out, int64_t at, const float *src, int64_t n);

/* For an activation that nothing reads after this op but its products: under the
 * emulations, data (n floats) itself rounded in place, no copy; under oneDNN, as
 * mm_input_arena (a bf16 copy, data unchanged). */
MmIn mm_input_in_place(Graph *g, float *data, int64_t n);
/* Rows [row0, row0 + rows) of a frozen weight: BF16 bits in place for oneDNN; otherwise
 * converted into the graph's weight buffer (valid until the next weight request). */
MmIn mm_weight(Graph *g, const Tensor *w, int64_t row0, int64_t rows);
/* The distance between rows of mm_weight's operand: tensor_bf16_ld in place, else IN. */
int64_t mm_weight_ld(const Graph *g, const Tensor *w);
/* A (rows, cols) block of src (rows ld apart) converted into dst (mm_elem_bytes each):
 * dst (rows, cols) contiguous, or with transpose dst (cols, rows). Single-threaded: for
 * per-thread block buffers inside OpenMP regions. */
MmIn mm_block(const Graph *g, void *dst, const float *src, int rows, int cols, int64_t ld,
              bool transpose);

/* F32 precision's products of the layers (a frozen weight, the lm_head, LoRA's spread with
 * dropout): C (m, n) = alpha A (m, k) op(B) + beta C, beta 0 or 1, as in tensor/onednn.h, in
 * oneDNN's f32 matmul, which runs them at or above OpenBLAS's 1024^3 peak where sgemm ran
 * them 5-35% below it (SmolLM-135M shapes, AMD EPYC Zen 4); sgemm where oneDNN has no f32
 * kernel. Timed and counted as a product. 0, or -1 with the graph failed. */
int mm_f32(Graph *g, bool transb, int m, int n, int k, float alpha, const float *a, int lda,
           const float *b, int ldb, float beta, float *c, int ldc);

/* cblas_sgemm, row-major: C (m, n) = alpha op(A) op(B) + beta C. */
void mm_sgemm(CBLAS_TRANSPOSE transa, CBLAS_TRANSPOSE transb, int m, int n, int k, float alpha,
              const float *a, int lda, const float *b, int ldb, float beta, float *c, int ldc);

/* C (m, n) = alpha A (m, k) op(B) + beta C (beta 0 or 1), as in tensor/onednn.h: A rows lda
 * apart; B (k, n) rows ldb apart, or with transb B^T with B stored (n, k). 0, or -1 with the
 * graph failed. Inside an OpenMP region it runs in the calling thread only. */
int mm_gemm(Graph *g, int m, int n, int k, float alpha, MmIn a, int64_t lda, MmIn b, int64_t ldb,
            bool transb, float beta, float *c, int64_t ldc);

/* The products of LoRA's rank-r factors, in place and thread-count independent (thin.c):
 *   thin_project: c (n, rp) = alpha a (n, k) mT (k, rp); rp a multiple of THIN_PAD, mT's
 *                 columns beyond r zero (so are c's then);
 *   thin_reduce:  g (r, k) = beta g + alpha c^T (r, n) a (n, k), beta 0 or 1 (false /
 *                 true), c's rows rp >= r wide
 *                 (ldc a multiple of THIN_PAD, as thin_project writes them);
 *   thin_spread:  y (n, k) += alpha c (n, r) m (r, k), c's rows ldc apart, m's ldm.
 * Each is timed and counted as a product. */
#define THIN_PAD 8
/* LoRA's small element-wise loops (thin_quads, thin_pairs, B into W's room, dB's transpose)
 * over at least this many rows run on the whole team, not on the main thread alone while the
 * others wait: the bf16 SmolLM-135M step 2-23 ms faster (10 on average over four runs of
 * steps alternating between the two; AMD EPYC Zen 5, 2 threads). */
#define THIN_TEAM_ROWS 256
static inline int thin_padded(int r) {
    return (r + THIN_PAD - 1) / THIN_PAD * THIN_PAD;
}
void thin_project(int64_t n, int k, int rp, float alpha, const float *a, int64_t lda,
                  const float *mT, int ldm, float *c, int ldc);
void thin_reduce(int64_t n, int k, int r, float alpha, const float *c, int ldc, const float *a,
                 int64_t lda, bool beta, float *g, int64_t ldg);
void thin_spread(int64_t n, int64_t k, int r, float alpha, const float *c, int ldc, const float *m,
                 int64_t ldm, float *y, int64_t ldy);
/* The same products from bf16 operands on AVX512-BF16 (thin_bf16()), for BF16 precision:
 *   thin_quads:        q = m (k, rp) in bf16 by quads of k: q[((t / 4) rp + j) 4 + t % 4] is
 *                      m's (t, j), element m[t st + j sj], zero for t >= k or j >= r
 *                      (thin_quads_size(k, rp) elements);
 *   thin_project_bf16: c (n, rp) = alpha a (n, k) m (k, rp), a bf16 with rows lda apart, m as
 *                      thin_quads holds it;
 *   thin_pairs:        p = c (n, rp) (rows ldc apart) in bf16 by pairs of rows:
 *                      p[((i / 2) rp + j) 2 + i % 2] is c[i][j], zero for i >= n
 *                      (thin_pairs_size(n, rp) elements);
 *   thin_reduce_bf16:  g (r, k) = beta g + alpha c^T (r, n) a (n, k), beta 0 or 1, c as
 *                      thin_pairs holds it, a with rows lda apart, bf16 (a_bits) or f32 rounded
 *                      to bf16 in registers (a_floats; the other NULL).
 * Thread-count independent as the f32 loops; timed and counted as products. */
bool thin_bf16(void);
size_t thin_quads_size(int k, int rp);
void thin_quads(uint16_t *q, const float *m, int k, int r, int rp, int64_t st, int64_t sj);
void thin_project_bf16(int64_t n, int k, int rp, float alpha, const uint16_t *a, int64_t lda,
                       const uint16_t *q, float *c, int ldc);
size_t thin_pairs_size(int64_t n, int rp);
void thin_pairs(uint16_t *p, const float *c, int64_t n, int rp, int ldc);
void thin_reduce_bf16(int64_t n, int k, int r, float alpha, const uint16_t *p, int rp,
                      const uint16_t *a_bits, const float *a_floats, int64_t lda, bool beta,
                      float *g, int64_t ldg);
/* The fastest loops the CPU runs, at most `most` (tests check that every path gives the same
 * bits). */
typedef enum { THIN_SCALAR, THIN_AVX2, THIN_AVX512 } ThinPath;
void thin_limit_path(ThinPath most);

#endif
