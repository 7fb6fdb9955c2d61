/* tensor/matmul.c — BF16-precision products: choosing the kernel, converting operands,
 * running the product (see matmul.h).
 *
 * Conversions run once per operand per op (an activation, an upstream gradient) into
 * buffers the graph keeps, or per block into the caller's per-thread buffers, so a step
 * allocates nothing after the first. Big conversions are parallel over fixed chunks;
 * rounding is element-wise, so the result never depends on the thread count. */
#include "tensor/matmul.h"

#include <cblas.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tensor/bf16.h"
#include "tensor/onednn.h"
#include "tensor/profile.h"
#include "tensor/simd.h"

#define CONVERT_CHUNK ((int64_t)1 << 15)

SIMD_INLINE void store_bits(uint16_t *restrict d, const float *restrict src, int64_t n) {
    for (int64_t i = 0; i < n; i++) d[i] = bf16_round(src[i]);
}
SIMD_INLINE void store_vals(float *restrict d, const float *restrict src, int64_t n) {
    for (int64_t i = 0; i < n; i++) d[i] = bf16_round_float(src[i]);
}
SIMD_AVX512 static void store_bits_avx512(uint16_t *restrict d, const float *restrict src,
                                          int64_t n) {
    store_bits(d, src, n);
}
SIMD_AVX512 static void store_vals_avx512(float *restrict d, const float *restrict src, int64_t n) {
    store_vals(d, src, n);
}

/* dst[i] = src[i] rounded to bf16, as bits or as the floats they hold (the loops vectorised
 * for AVX-512 where the CPU has it: the conversions of the upstream gradients took 2% of a
 * BF16 step at the SmolLM-135M shape in SSE2). Single-threaded. */
static void round_to_bits(uint16_t *restrict d, const float *restrict src, int64_t n) {
    if (simd_avx512())
        store_bits_avx512(d, src, n);
    else
        store_bits(d, src, n);
}

static void round_to_vals(float *restrict d, const float *restrict src, int64_t n) {
    if (simd_avx512())
        store_vals_avx512(d, src, n);
    else
        store_vals(d, src, n);
}

/* The same over n elements, parallel over fixed chunks when big and not already inside a
 * parallel region. */
static void convert(void *dst, const float *src, int64_t n, bool bits) {
#pragma omp parallel for schedule(static) if (n > 2 * CONVERT_CHUNK && !omp_in_parallel())
    for (int64_t i0 = 0; i0 < n; i0 += CONVERT_CHUNK) {
        int64_t len = n - i0 < CONVERT_CHUNK ? n - i0 : CONVERT_CHUNK;
        if (bits)
            round_to_bits((uint16_t *)dst + i0, src + i0, len);
        else
            round_to_vals((float *)dst + i0, src + i0, len);
    }
}

/* src (rows, cols) rounded into dst as bf16 bits, rows ld apart; parallel over row chunks
 * when big and not already inside a parallel region. */
static void convert_rows(uint16_t *dst, const float *src, int64_t rows, int64_t cols, int64_t ld) {
    int64_t chunk = CONVERT_CHUNK / cols + 1;
#pragma omp parallel for schedule(static) if (rows * cols > 2 * CONVERT_CHUNK && !omp_in_parallel())
    for (int64_t i0 = 0; i0 < rows; i0 += chunk)
        for (int64_t i = i0; i < rows && i < i0 + chunk; i++)
            round_to_bits(dst + i * ld, src + i * cols, cols);
}

MmKernel mm_choose_kernel(void) {
    if (tensor_cpu_has_native_bf16() && onednn_impl_name(ONEDNN_BF16)) return MM_KERNEL_ONEDNN_BF16;
    const char *emu = getenv("LORAFIT_BF16_EMULATION");
    if (emu && strcmp(emu, "onednn") == 0 && onednn_impl_name(ONEDNN_F32))
        return MM_KERNEL_EMULATED_ONEDNN;
    return MM_KERNEL_EMULATED;
}

/* Filled on first use from the main thread (graph_matmul_kernel). */
const char *mm_kernel_name(MmKernel k) {
    static char names[4][192];
    char *s = names[k];
    if (s[0]) return s;
    const char *impl;
    switch (k) {
    case MM_KERNEL_F32: /* the layers' products on oneDNN (mm_f32), the rest on OpenBLAS */
        impl = onednn_impl_name(ONEDNN_F32);
        snprintf(s, sizeof names[0], "oneDNN f32 matmul %s and OpenBLAS sgemm, %s kernels (f32)",
                 impl ? impl : "?", tensor_blas_core());
        break;
    case MM_KERNEL_ONEDNN_BF16:
        impl = onednn_impl_name(ONEDNN_BF16);
        snprintf(s, sizeof names[0], "oneDNN matmul %s (bf16 inputs, f32 accumulation)",
                 impl ? impl : "?");
        break;
    case MM_KERNEL_EMULATED_ONEDNN:
        impl = onednn_impl_name(ONEDNN_F32);
        snprintf(s, sizeof names[0], "emulated (bf16-rounded inputs, oneDNN f32 matmul %s)",
                 impl ? impl : "?");
        break;
    default:
        snprintf(s, sizeof names[0], "emulated (bf16-rounded inputs, OpenBLAS sgemm, %s kernels)",
                 tensor_blas_core());
        break;
    }
    return s;
}

size_t mm_elem_bytes(const Graph *g) {
    return graph_mm_kernel(g) == MM_KERNEL_ONEDNN_BF16 ? sizeof(uint16_t) : sizeof(float);
}

static MmIn as_operand(const Graph *g, const void *p) {
    MmIn in = {0};
    if (!p) return in;
    if (graph_mm_kernel(g) == MM_KERNEL_ONEDNN_BF16)
        in.bits = p;
    else
        in.vals = p;
    return in;
}

/* dst as a target for mm_store: bits or floats, as as_operand reads it back. */
static MmOut as_target(const Graph *g, void *dst) {
    return mm_elem_bytes(g) == sizeof(uint16_t) ? (MmOut){.bits = dst} : (MmOut){.vals = dst};
}

/* A buffer of at least `bytes` in *buf (capacity *cap); NULL with the graph failed. */
static void *grow(Graph *g, void **buf, size_t *cap, size_t bytes) {
    if (bytes > *cap) {
        size_t rounded = (bytes + 63) / 64 * 64;
        void *p = tensor_alloc_pages(rounded);
        if (!p) {
            graph_fail(g, "out of memory: cannot allocate a %zu-byte bf16 matmul buffer", bytes);
            return NULL;
        }
        free(*buf);
        *buf = p;
        *cap = rounded;
    }
    return *buf;
}

/* The distance between the rows of mm_input's buffer for cols columns: cols + the room
 * (mm_set_room), or 0 without room (contiguous). */
static int64_t x_ld(const MmBuffers *b, int64_t cols) {
    return b->room ? cols + b->room : 0;
}

/* A buffer for mm_input's next conversion, (rows, cols) rows ld apart (x_ld): its own
 * buffer grown, or once a backward pass keeps one (mm_keep_input) a new one in the arena;
 * NULL with the graph failed. */
static void *x_buffer(Graph *g, MmBuffers *b, int64_t rows, int64_t cols, int64_t ld) {
    int64_t elems = rows * (ld ? ld : cols);
    size_t bytes = (size_t)(elems > 0 ? elems : 1) * mm_elem_bytes(g);
    b->x_src = NULL;
    b->cur = b->kept ? graph_alloc(g, bytes) : grow(g, &b->x, &b->x_bytes, bytes);
    return b->cur;
}

void mm_keep_input(Graph *g) {
    graph_mm_buffers(g)->kept = true;
}

MmIn mm_input(Graph *g, const float *src, int64_t rows, int64_t cols) {
    PROFILE_OP(TENSOR_OP_CONVERSION);
    MmBuffers *b = graph_mm_buffers(g);
    int64_t n = rows * cols, ld = x_ld(b, cols);
    void *dst = b->x_src == src && b->x_n == n ? b->cur : NULL;
    if (!dst) {
        dst = x_buffer(g, b, rows, cols, ld);
        if (!dst) return (MmIn){0};
        if (ld) /* bits only: mm_set_room */
            convert_rows(dst, src, rows, cols, ld);
        else
            convert(dst, src, n, mm_elem_bytes(g) == sizeof(uint16_t));
        b->x_src = src;
        b->x_n = n;
    }
    MmIn in = as_operand(g, dst);
    in.ld = ld;
    return in;
}

void mm_set_room(Graph *g, int room) {
    MmBuffers *b = graph_mm_buffers(g);
    if (b->room == room) return;
    b->room = room;
    b->x_src = NULL;
}

MmOut mm_input_target(Graph *g, const float *data, int64_t rows, int64_t cols) {
    if (graph_precision(g) != TENSOR_PRECISION_BF16 || graph_failed(g)) return (MmOut){0};
    MmBuffers *b = graph_mm_buffers(g);
    int64_t ld = x_ld(b, cols);
    void *dst = x_buffer(g, b, rows, cols, ld);
    if (!dst) return (MmOut){0};
    b->x_src = data;
    b->x_n = rows * cols;
    MmOut out = as_target(g, dst);
    out.cols = cols;
    out.ld = ld;
    return out;
}

MmOut mm_input_d_target(Graph *g, int64_t n) {
    if (graph_precision(g) != TENSOR_PRECISION_BF16 || graph_failed(g)) return (MmOut){0};
    MmBuffers *b = graph_mm_buffers(g);
    void *dst = grow(g, &b->d, &b->d_bytes, (size_t)(n > 0 ? n : 1) * mm_elem_bytes(g));
    return dst ? as_target(g, dst) : (MmOut){0};
}

void mm_store(MmOut out, int64_t at, const float *restrict src, int64_t n) {
    if (out.bits && out.ld) { /* row by row, rows ld apart */
        while (n > 0) {
            int64_t i = at / out.cols, j = at % out.cols;
            int64_t len = out.cols - j < n ? out.cols - j : n;
            round_to_bits(out.bits + i * out.ld + j, src, len);
            at += len, src += len, n -= len;
        }
    } else if (out.bits) {
        round_to_bits(out.bits + at, src, n);
    } else if (out.vals) {
        round_to_vals(out.vals + at, src, n);
    }
}

MmIn mm_input_d(Graph *g, const float *src, int64_t n) {
    PROFILE_OP(TENSOR_OP_CONVERSION);
    MmBuffers *b = graph_mm_buffers(g);
    void *dst = grow(g, &b->d, &b->d_bytes, (size_t)(n > 0 ? n : 1) * mm_elem_bytes(g));
    if (dst) convert(dst, src, n, mm_elem_bytes(g) == sizeof(uint16_t));
    return as_operand(g, dst);
}

MmIn mm_input_d_rows(Graph *g, const float *src, int64_t rows, int64_t cols, int64_t ld) {
    PROFILE_OP(TENSOR_OP_CONVERSION);
    MmBuffers *b = graph_mm_buffers(g);
    void *dst = grow(g, &b->d, &b->d_bytes, (size_t)(rows > 0 ? rows : 1) * ld * sizeof(uint16_t));
    if (!dst) return (MmIn){0};
    convert_rows(dst, src, rows, cols, ld);
    return (MmIn){.bits = dst, .ld = ld};
}

MmIn mm_input_arena(Graph *g, const float *src, int64_t n) {
    PROFILE_OP(TENSOR_OP_CONVERSION);
    void *dst = graph_alloc(g, (size_t)(n > 0 ? n : 1) * mm_elem_bytes(g));
    if (dst) convert(dst, src, n, mm_elem_bytes(g) == sizeof(uint16_t));
    return as_operand(g, dst);
}

MmIn mm_input_in_place(Graph *g, float *data, int64_t n) {
    if (mm_elem_bytes(g) == sizeof(uint16_t)) return mm_input_arena(g, data, n);
    PROFILE_OP(TENSOR_OP_CONVERSION);
#pragma omp parallel for schedule(static) if (n > 2 * CONVERT_CHUNK && !omp_in_parallel())
    for (int64_t i0 = 0; i0 < n; i0 += CONVERT_CHUNK) {
        int64_t end = n - i0 < CONVERT_CHUNK ? n : i0 + CONVERT_CHUNK;
        for (int64_t i = i0; i < end; i++) data[i] = bf16_round_float(data[i]);
    }
    return as_operand(g, data);
}

MmIn mm_weight(Graph *g, const Tensor *w, int64_t row0, int64_t rows) {
    int64_t cols = tensor_cols(w), n = rows * cols;
    bool bits = graph_mm_kernel(g) == MM_KERNEL_ONEDNN_BF16;
    if (bits && w->bf16) return as_operand(g, w->bf16 + row0 * tensor_bf16_ld(w)); /* in place */
    PROFILE_OP(TENSOR_OP_CONVERSION);
    if (!w->bf16 && !w->data && !w->quant) {
        graph_fail(g, "a weight %s with neither F32, BF16 nor quantized data", SHAPE(w));
        return (MmIn){0};
    }
    /* An F32 weight is rounded on every call (the caller should hold BF16 weights), the
     * emulation widens BF16 weights, exactly, for sgemm, and a quantized weight is dequantized
     * into the buffer's tail, then rounded into its head. */
    size_t head = ((size_t)(n > 0 ? n : 1) * mm_elem_bytes(g) + 63) / 64 * 64;
    size_t tail = w->quant ? (size_t)(n > 0 ? n : 1) * sizeof(float) : 0;
    char *dst = graph_weight_buffer(g, head + tail);
    if (!dst) return (MmIn){0};
    if (w->bf16) {
        tensor_bf16_rows_to_float((float *)dst, w, row0, rows);
    } else if (w->quant) {
        float *f = (float *)(dst + head);
        tensor_dequantize_rows(f, w, row0, rows);
        convert(dst, f, n, bits);
    } else {
        convert(dst, w->data + row0 * cols, n, bits);
    }
    return as_operand(g, dst);
}

int64_t mm_weight_ld(const Graph *g, const Tensor *w) {
    bool bits = graph_mm_kernel(g) == MM_KERNEL_ONEDNN_BF16;
    return bits && w->bf16 ? tensor_bf16_ld(w) : tensor_cols(w);
}

MmIn mm_block(const Graph *g, void *dst, const float *src, int rows, int cols, int64_t ld,
              bool transpose) {
    bool bits = mm_elem_bytes(g) == sizeof(uint16_t);
    uint16_t *restrict db = dst;
    float *restrict df = dst;
    for (int i = 0; i < rows; i++) {
        const float *restrict s = src + (int64_t)i * ld;
        if (!transpose && bits)
            for (int j = 0; j < cols; j++) db[(int64_t)i * cols + j] = bf16_round(s[j]);
        else if (!transpose)
            for (int j = 0; j < cols; j++) df[(int64_t)i * cols + j] = bf16_round_float(s[j]);
        else if (bits)
            for (int j = 0; j < cols; j++) db[(int64_t)j * rows + i] = bf16_round(s[j]);
        else
            for (int j = 0; j < cols; j++) df[(int64_t)j * rows + i] = bf16_round_float(s[j]);
    }
    return as_operand(g, dst);
}

/* C (m, n) = A B or A B^T, packed operands, on oneDNN: split by rows or on its own threads. */
static int onednn_product(OnednnType type, float *c, const void *a, const void *b, int m, int n,
                          int k, bool transb, bool split) {
    int rc = split ? onednn_gemm(type, m, n, k, 1.0f, a, k, b, transb ? k : n, transb, 0.0f, c, n)
                   : onednn_gemm_whole(type, m, n, k, a, b, transb, c);
    return rc ? -1 : 0;
}

int tensor_matmul_bf16(float *c, const uint16_t *a, const uint16_t *b, int m, int n, int k,
                       bool transb, bool split) {
    return onednn_product(ONEDNN_BF16, c, a, b, m, n, k, transb, split);
}

int tensor_matmul_onednn_f32(float *c, const float *a, const float *b, int m, int n, int k,
                             bool transb, bool split) {
    return onednn_product(ONEDNN_F32, c, a, b, m, n, k, transb, split);
}

void mm_sgemm(CBLAS_TRANSPOSE transa, CBLAS_TRANSPOSE transb, int m, int n, int k, float alpha,
              const float *a, int lda, const float *b, int ldb, float beta, float *c, int ldc) {
    PROFILE_OP(TENSOR_OP_PRODUCTS);
    double start = profile_product_start();
    cblas_sgemm(CblasRowMajor, transa, transb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
    profile_product_done(start, m, n, k);
}

static void fail_kernel_memory(Graph *g, int m, int n, int k) {
    graph_fail(g,
               "out of memory: cannot allocate %d MB to create the oneDNN kernel of a %d x %d x %d "
               "matmul",
               ONEDNN_HEADROOM_MB, m, n, k);
}

/* oneDNN's f32 kernels exist on every x86-64 CPU it supports; -1 means none here. */
int mm_f32(Graph *g, bool transb, int m, int n, int k, float alpha, const float *a, int lda,
           const float *b, int ldb, float beta, float *c, int ldc) {
    if (m <= 0 || n <= 0) return 0;
    PROFILE_OP(TENSOR_OP_PRODUCTS);
    double start = profile_product_start();
    int rc = onednn_gemm(ONEDNN_F32, m, n, k, alpha, a, lda, b, ldb, transb, beta, c, ldc);
    if (rc == -1) {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, transb ? CblasTrans : CblasNoTrans, m, n, k, alpha,
                    a, lda, b, ldb, beta, c, ldc);
        rc = 0;
    }
    profile_product_done(start, m, n, k);
    if (rc == ONEDNN_OUT_OF_MEMORY) fail_kernel_memory(g, m, n, k);
    return rc == 0 ? 0 : -1;
}

int mm_gemm(Graph *g, int m, int n, int k, float alpha, MmIn a, int64_t lda, MmIn b, int64_t ldb,
            bool transb, float beta, float *c, int64_t ldc) {
    if (m <= 0 || n <= 0) return 0;
    PROFILE_OP(TENSOR_OP_PRODUCTS);
    double start = profile_product_start();
    MmKernel kernel = graph_mm_kernel(g);
    int rc = -1;
    if (kernel == MM_KERNEL_ONEDNN_BF16 && a.bits && b.bits)
        rc = onednn_gemm(ONEDNN_BF16, m, n, k, alpha, a.bits, lda, b.bits, ldb, transb, beta, c,
                         ldc);
    else if (kernel == MM_KERNEL_EMULATED_ONEDNN && a.vals && b.vals)
        rc =
            onednn_gemm(ONEDNN_F32, m, n, k, alpha, a.vals, lda, b.vals, ldb, transb, beta, c, ldc);
    else if (kernel == MM_KERNEL_EMULATED && a.vals && b.vals) {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, transb ? CblasTrans : CblasNoTrans, m, n, k, alpha,
                    a.vals, (int)lda, b.vals, (int)ldb, beta, c, (int)ldc);
        rc = 0;
    }
    profile_product_done(start, m, n, k);
    if (rc == ONEDNN_OUT_OF_MEMORY)
        fail_kernel_memory(g, m, n, k);
    else if (rc != 0)
        graph_fail(g, "matmul (%lld x %lld x %lld) failed in the %s kernel", (long long)m,
                   (long long)n, (long long)k, mm_kernel_name(kernel));
    return rc;
}
