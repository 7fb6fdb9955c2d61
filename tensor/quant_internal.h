/* tensor/quant_internal.h — ggml's block structs and the helpers quant.c and quant_k.c
 * share; private to tensor/.
 *
 * The structs are ggml-common.h's, field for field (halves as uint16_t bits), so a pointer
 * into a GGUF file's tensor data is an array of them. */
#ifndef LORAFIT_QUANT_INTERNAL_H
#define LORAFIT_QUANT_INTERNAL_H

#include <assert.h>
#include <string.h>

#include "tensor/tensor.h"

#define QK4_0        32
#define QK4_1        32
#define QK5_0        32
#define QK5_1        32
#define QK_K         GGML_QK_K
#define K_SCALE_SIZE 12

typedef struct {
    uint16_t d;
    uint8_t qs[QK4_0 / 2];
} BlockQ4_0;
typedef struct {
    uint16_t d, m;
    uint8_t qs[QK4_1 / 2];
} BlockQ4_1;
typedef struct {
    uint16_t d;
    uint8_t qh[4];
    uint8_t qs[QK5_0 / 2];
} BlockQ5_0;
typedef struct {
    uint16_t d, m;
    uint8_t qh[4];
    uint8_t qs[QK5_1 / 2];
} BlockQ5_1;
typedef struct {
    uint16_t d;
    int8_t qs[GGML_QK8_0];
} BlockQ8_0;
typedef struct {
    uint8_t scales[QK_K / 16]; /* 4-bit scales and mins */
    uint8_t qs[QK_K / 4];
    uint16_t d, dmin;
} BlockQ2_K;
typedef struct {
    uint8_t hmask[QK_K / 8];
    uint8_t qs[QK_K / 4];
    uint8_t scales[12]; /* 6-bit scales */
    uint16_t d;
} BlockQ3_K;
typedef struct {
    uint16_t d, dmin;
    uint8_t scales[K_SCALE_SIZE]; /* 6-bit scales and mins */
    uint8_t qs[QK_K / 2];
} BlockQ4_K;
typedef struct {
    uint16_t d, dmin;
    uint8_t scales[K_SCALE_SIZE];
    uint8_t qh[QK_K / 8];
    uint8_t qs[QK_K / 2];
} BlockQ5_K;
typedef struct {
    uint8_t ql[QK_K / 2];
    uint8_t qh[QK_K / 4];
    int8_t scales[QK_K / 16];
    uint16_t d;
} BlockQ6_K;

static_assert(sizeof(BlockQ4_0) == 18, "q4_0 block");
static_assert(sizeof(BlockQ4_1) == 20, "q4_1 block");
static_assert(sizeof(BlockQ5_0) == 22, "q5_0 block");
static_assert(sizeof(BlockQ5_1) == 24, "q5_1 block");
static_assert(sizeof(BlockQ8_0) == GGML_Q8_0_BLOCK_BYTES, "q8_0 block");
static_assert(sizeof(BlockQ2_K) == 84, "q2_K block");
static_assert(sizeof(BlockQ3_K) == 110, "q3_K block");
static_assert(sizeof(BlockQ4_K) == 144, "q4_K block");
static_assert(sizeof(BlockQ5_K) == 176, "q5_K block");
static_assert(sizeof(BlockQ6_K) == 210, "q6_K block");

/* ggml's MIN / MAX: which operand wins on ties and NaN matters for bit-identity. */
#define QMIN(a, b) ((a) < (b) ? (a) : (b))
#define QMAX(a, b) ((a) > (b) ? (a) : (b))

static inline float f16_to_float(uint16_t h) {
    return quant_f16_to_float(h);
}

/* The K-quant searches' "all zero" threshold on a group's largest magnitude. */
#define GROUP_MAX_EPS 1e-15f

/* Round to nearest, ties to even, by the float-add trick ggml uses (|fval| < 2^22). */
static inline int nearest_int(float fval) {
    float val = fval + 12582912.f;
    int i;
    memcpy(&i, &val, sizeof(int));
    return (i & 0x007fffff) - 0x00400000;
}

/* Scale and min of n weights x as levels L in [0, nmax] (x ~ scale L - the_min): ggml's
 * weighted least-squares fit over nstep + 1 trial scales, errors squared or, use_mad,
 * absolute (quant_k.c; Q2_K uses it from quant_k_low.c). */
float make_qkx2_quants(int n, int nmax, const float *x, const float *weights, uint8_t *L,
                       float *the_min, uint8_t *Laux, float rmin, float rdelta, int nstep,
                       bool use_mad);

/* The K-quant rows (quant_k.c); nb super-blocks. */
void dequantize_q2_k(const BlockQ2_K *x, float *y, int64_t nb);
void dequantize_q3_k(const BlockQ3_K *x, float *y, int64_t nb);
void dequantize_q4_k(const BlockQ4_K *x, float *y, int64_t nb);
void dequantize_q5_k(const BlockQ5_K *x, float *y, int64_t nb);
void dequantize_q6_k(const BlockQ6_K *x, float *y, int64_t nb);
void quantize_q4_k(const float *x, BlockQ4_K *y, int64_t nb);
void quantize_q5_k(const float *x, BlockQ5_K *y, int64_t nb);
void quantize_q6_k(const float *x, BlockQ6_K *y, int64_t nb);
void quantize_q2_k(const float *x, BlockQ2_K *y, int64_t nb); /* quant_k_low.c */
void quantize_q3_k(const float *x, BlockQ3_K *y, int64_t nb);

/* The products with a quantized weight w (OUT, IN) (quant_product.c), in the graph's
 * precision; rows of n activations. 0, or -1 with the graph failed.
 *   y (N, OUT) = x (N, IN) W^T + beta y;   dx (N, IN) += dy (N, OUT) W. */
int quant_product_xwt(Graph *g, const float *x, int64_t n, const Tensor *w, float beta, float *y);
int quant_product_dyw(Graph *g, const float *dy, int64_t n, const Tensor *w, float *dx);

/* Where row r of the quant weight w is stored (Tensor.quant_row_of). */
static inline int64_t quant_stored_row(const Tensor *w, int64_t r) {
    return w->quant_row_of ? w->quant_row_of[r] : r;
}

#endif
