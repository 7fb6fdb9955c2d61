/* tensor/quant_product.c — products with a frozen weight held in a ggml block type
 * (Tensor.quant): y = x W^T and, for backward, dx += dy W, without ever holding W
 * dequantized as a whole.
 *
 * W (OUT, IN) is cut into tiles of fixed shape; each thread dequantizes a tile into its own
 * scratch (allocated once in the graph's weight buffer and kept across steps) and runs one
 * single-threaded product on it (sgemm in F32 precision; in BF16 precision the tile is
 * rounded to bf16 and goes to mm_gemm, oneDNN's bf16 matmul or the emulation):
 *   forward:  tiles of QP_OUT_ROWS rows of W, each the whole IN long in chunks of QP_IN_COLS
 *             (accumulated in chunk order): y[:, rows] = x W[rows, :]^T. Work is split by
 *             tile, each tile's output written by one thread.
 *   backward: column stripes of QP_STRIPE columns of W, in blocks of QP_STRIPE_ROWS rows
 *             (accumulated in row-block order): dx[:, cols] += dy[:, rows] W[rows, cols].
 *             Work is split by stripe, each stripe's output written by one thread.
 * Tile shapes depend on (OUT, IN) only and every output element is summed by one thread in
 * a fixed order, so results are bit-identical for any thread count. Against the product of
 * an F32 weight holding the same values (the whole matrix in oneDNN's f32 matmul, mm_f32)
 * they are equal within fp32 rounding, not bit for bit: the two sum in different orders.
 * (While F32 weights went to OpenBLAS too, dx was bit-identical at every shape tried, and y
 * while IN <= QP_IN_COLS and N is not small.) The tests compare within fp32 rounding.
 * Bigger tiles would pack x fewer times (each tile's sgemm packs all of x) but take more
 * scratch per thread: 128 x 2048 floats is 1 MB.
 * Each weight is dequantized once per product, 0.2 to 0.7 ns per weight for every type
 * (vectorised, quant_k.c), against 2 N flops of product per weight: a few per cent at the
 * N of a training step. */
#include <omp.h>
#include <stdlib.h>

#include "tensor/graph_internal.h"
#include "tensor/matmul.h"
#include "tensor/profile.h"
#include "tensor/quant_internal.h"

#define QP_OUT_ROWS    128  /* forward tile: rows of W */
#define QP_IN_COLS     2048 /* forward tile: columns of W per chunk (a multiple of 256) */
#define QP_STRIPE      256  /* backward tile: columns of W (a multiple of 256) */
#define QP_STRIPE_ROWS 1024 /* backward tile: rows of W */

static inline int64_t min64(int64_t a, int64_t b) {
    return a < b ? a : b;
}

/* Per-thread scratch: a float tile (dequantized) and its operand form in BF16 precision. */
typedef struct {
    char *base;
    size_t per_thread, floats_bytes;
} Scratch;

static int scratch_get(Graph *g, int64_t tile_elems, Scratch *s) {
    bool bf16 = graph_precision(g) == TENSOR_PRECISION_BF16;
    s->floats_bytes = ((size_t)tile_elems * sizeof(float) + 63) / 64 * 64;
    s->per_thread =
        s->floats_bytes + (bf16 ? ((size_t)tile_elems * mm_elem_bytes(g) + 63) / 64 * 64 : 0);
    s->base = graph_weight_buffer(g, s->per_thread * (size_t)omp_get_max_threads());
    return s->base ? 0 : -1;
}

/* W[r0 : r0 + rows, c0 : c0 + cols] dequantized into tile (rows, cols); c0 and cols are
 * whole blocks. */
static void dequantize_tile(const Tensor *w, int64_t r0, int64_t rows, int64_t c0, int64_t cols,
                            float *tile) {
    int64_t in = w->shape[1];
    size_t row_bytes = ggml_row_bytes(w->quant_type, in);
    size_t skip = (size_t)(c0 / ggml_block_size(w->quant_type)) * ggml_block_bytes(w->quant_type);
    const uint8_t *base = w->quant;
    for (int64_t r = 0; r < rows; r++)
        quant_dequantize_row(w->quant_type,
                             base + (size_t)quant_stored_row(w, r0 + r) * row_bytes + skip,
                             tile + r * cols, cols);
}

/* One tile product in the graph's precision: C (m, n) = A (m, k) op(B) + beta C, A a row
 * slice of the activation (f32 in F32 precision, its operand form in BF16), B the tile. */
static int tile_gemm(Graph *g, int m, int n, int k, const float *a, MmIn ab, int64_t lda,
                     float *tile, void *tile_op, bool transb, float beta, float *c, int64_t ldc) {
    int ldb = transb ? k : n;
    if (graph_precision(g) != TENSOR_PRECISION_BF16) {
        mm_sgemm(CblasNoTrans, transb ? CblasTrans : CblasNoTrans, m, n, k, 1.0f, a, (int)lda, tile,
                 ldb, beta, c, (int)ldc);
        return 0;
    }
    int rows = transb ? n : k, cols = transb ? k : n;
    MmIn b = mm_block(g, tile_op, tile, rows, cols, cols, false);
    return mm_gemm(g, m, n, k, 1.0f, ab, lda, b, ldb, transb, beta, c, ldc);
}

int quant_product_xwt(Graph *g, const float *x, int64_t n, const Tensor *w, float beta, float *y) {
    int64_t out = w->shape[0], in = w->shape[1];
    int64_t chunk = min64(in, QP_IN_COLS), tiles = (out + QP_OUT_ROWS - 1) / QP_OUT_ROWS;
    Scratch s;
    if (scratch_get(g, QP_OUT_ROWS * chunk, &s) != 0) return -1;
    bool bf16 = graph_precision(g) == TENSOR_PRECISION_BF16;
    MmIn xb = bf16 ? mm_input(g, x, n, in) : (MmIn){0};
    if (graph_failed(g)) return -1;
    int failed = 0;
#pragma omp parallel for schedule(dynamic, 1) reduction(| : failed)
    for (int64_t t = 0; t < tiles; t++) {
        char *mine = s.base + s.per_thread * (size_t)omp_get_thread_num();
        float *tile = (float *)mine;
        int64_t r0 = t * QP_OUT_ROWS, rows = min64(QP_OUT_ROWS, out - r0);
        for (int64_t c0 = 0; c0 < in; c0 += chunk) {
            int64_t cols = min64(chunk, in - c0);
            dequantize_tile(w, r0, rows, c0, cols, tile);
            /* y[:, r0 : r0 + rows] (+)= x[:, c0 : c0 + cols] tile^T */
            failed |= tile_gemm(g, (int)n, (int)rows, (int)cols, x + c0, bf16 ? mm_at(xb, c0) : xb,
                                bf16 ? mm_ld(xb, in) : in, tile, mine + s.floats_bytes, true,
                                c0 ? 1.0f : beta, y + r0, out) != 0;
        }
    }
    return failed ? -1 : 0;
}

int quant_product_dyw(Graph *g, const float *dy, int64_t n, const Tensor *w, float *dx) {
    int64_t out = w->shape[0], in = w->shape[1];
    int64_t stripe = min64(in, QP_STRIPE), stripes = (in + stripe - 1) / stripe;
    Scratch s;
    if (scratch_get(g, QP_STRIPE_ROWS * stripe, &s) != 0) return -1;
    bool bf16 = graph_precision(g) == TENSOR_PRECISION_BF16;
    MmIn dyb = bf16 ? mm_input_d(g, dy, n * out) : (MmIn){0};
    if (graph_failed(g)) return -1;
    int failed = 0;
#pragma omp parallel for schedule(dynamic, 1) reduction(| : failed)
    for (int64_t t = 0; t < stripes; t++) {
        char *mine = s.base + s.per_thread * (size_t)omp_get_thread_num();
        float *tile = (float *)mine;
        int64_t c0 = t * stripe, cols = min64(stripe, in - c0);
        for (int64_t r0 = 0; r0 < out; r0 += QP_STRIPE_ROWS) {
            int64_t rows = min64(QP_STRIPE_ROWS, out - r0);
            dequantize_tile(w, r0, rows, c0, cols, tile);
            /* dx[:, c0 : c0 + cols] += dy[:, r0 : r0 + rows] tile */
            failed |=
                tile_gemm(g, (int)n, (int)cols, (int)rows, dy + r0, bf16 ? mm_at(dyb, r0) : dyb,
                          out, tile, mine + s.floats_bytes, false, 1.0f, dx + c0, in) != 0;
        }
    }
    return failed ? -1 : 0;
}
