/* tensor/tensor.h — fp32 tensors, arenas, fused kernels and tape autograd.
 *
 * This is the whole public API of tensor/. It knows nothing of models or data: the
 * trainer builds a Llama forward pass out of these ops, and backward replays them.
 *
 * Dimension letters used in shape comments:
 *   N = rows (B*T tokens), B = batch, T = sequence length, C = features,
 *   NH = query heads, NKV = key/value heads, D = head_dim, V = vocabulary, R = LoRA rank.
 * Every tensor is contiguous, row-major, at most 4 dims.
 *
 * Memory: a Graph owns an arena. Ops allocate their outputs (and what they save for
 * backward) from it; graph_reset() forgets them all but keeps the memory, so a training
 * step after the first allocates nothing. Parameters (frozen weights, LoRA A/B) live
 * outside the graph and are owned by the caller.
 *
 * Errors: if the arena cannot grow, the op returns NULL and the graph remembers it.
 * Every op accepts NULL inputs and then returns NULL, so a forward pass can be written
 * without a check after each op; check graph_failed() (or the final result) once.
 *
 * Autograd: each op records a tape entry when any input requires a gradient. The output
 * then requires a gradient too. graph_backward() replays the tape in reverse; a tensor
 * that requires a gradient and has grad == NULL gets a zeroed buffer from the arena the
 * first time a gradient reaches it; a tensor whose grad is already set (a parameter whose
 * owner allocated it) has the gradient *added*, so micro-batches accumulate.
 * Tensors with requires_grad == false (the frozen base model) never get a grad buffer.
 * An op's output's gradient is dead once that op's backward has run: its buffer goes to the
 * next gradient of the same size and its grad is NULL after graph_backward (a backward holds
 * about one layer's activation gradients, not every layer's). Tensors made with graph_tensor
 * (inputs, leaves) keep theirs for the caller to read.
 * Ops keep pointers to their input tensors, weights and RoPE tables until graph_reset(), so
 * those must stay alive (and unchanged) until backward; id arrays (pos, segment, targets)
 * are copied and may be reused at once.
 *
 * Determinism: every reduction runs in a fixed order that does not depend on the thread
 * count's scheduling; the same inputs and thread count give bit-identical results. */
#ifndef LORAFIT_TENSOR_H
#define LORAFIT_TENSOR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tensor/quant.h"
#include "tensor/rng.h"

#define TENSOR_MAX_DIMS     4
#define TENSOR_IGNORE_INDEX (-100)

/* A frozen weight may hold BF16 instead of F32 (bf16 set, data NULL): op_linear,
 * op_lora_linear (W only), op_embedding and op_lm_head_cross_entropy accept it. In F32
 * precision they convert it to F32 into a scratch buffer owned by the graph, then run
 * exactly the sgemm calls of the F32 path, so results are bit-identical to an F32 tensor
 * holding the same values; in BF16 precision (graph_set_precision) oneDNN reads it in place.
 * Every other op, bias and norm weight needs F32 data (a BF16 tensor there fails the graph). */
typedef struct Tensor {
    float *data;
    float *grad;        /* same shape as data; NULL until a gradient reaches it */
    bool grad_reusable; /* grad is the graph's, free for reuse once dead (graph.c) */
    int ndim;
    int64_t shape[TENSOR_MAX_DIMS];
    int64_t size; /* product of shape */
    bool requires_grad;
    const uint16_t *bf16; /* frozen BF16 weights (size elements); data is NULL then */
    /* A BF16 weight (OUT, IN) with room for a LoRA of rank `room` (tensor_bf16_ld): bf16
     * holds (OUT + room) rows IN + room apart, W in the top-left (OUT, IN), the rest
     * op_lora_linear's to write (B^T's columns right of W, A's rows below). 0: rows of IN. */
    int room;
    /* A frozen 2-D weight (OUT, IN) held in a ggml type (tensor_init_quant): rows of IN
     * weights in quant_type's blocks, e.g. a GGUF file's tensor data in place; data and bf16
     * are NULL then. op_linear and op_lora_linear (W only) multiply by it in tiles
     * (quant_product.c); op_embedding and op_lm_head_cross_entropy dequantize the rows they
     * read, with the same results as an F32 weight holding the dequantized values. */
    const void *quant;
    GgmlType quant_type;
    /* (OUT) where each row of a quant weight is stored (row r is stored row quant_row_of[r]),
     * or NULL: in order. A GGUF's Q/K rows in llama.cpp's order, read in the Hugging Face
     * order without a permuted copy. Set after tensor_init_quant. */
    const int64_t *quant_row_of;
} Tensor;

/* ---- arenas -------------------------------------------------------------------- */

typedef struct Arena Arena;

Arena *arena_create(size_t chunk_bytes);
/* 64-byte aligned; grows by whole chunks (at least `bytes`); NULL when out of memory. */
void *arena_alloc(Arena *a, size_t bytes);
void arena_reset(Arena *a); /* forget every allocation, keep the chunks */
/* arena_reset, and the pages of its big chunks (those of 2 MiB and more) given back to the
 * kernel: the chunks stay allocated and fault zeroed pages in as they are used again. */
void arena_release_pages(Arena *a);
/* Drops the whole pages inside [p, p + bytes) from this process's resident memory
 * (MADV_DONTNEED): a buffer's next write faults in zeroed pages; a read-only file mapping's
 * next read maps the file's pages again. The mapping and the address stay. */
void tensor_release_pages(const void *p, size_t bytes);
/* `bytes` of memory (free() releases it): 64-byte aligned, and for 2 MiB or more 2 MiB
 * aligned with transparent huge pages advised, as the arena's big chunks are. For buffers a
 * step streams through (op buffers, frozen weights): a fault per 2 MiB rather than per 4 KiB,
 * and fewer TLB misses. NULL when out of memory. */
void *tensor_alloc_pages(size_t bytes);
size_t arena_used(const Arena *a);
size_t arena_capacity(const Arena *a);
void arena_destroy(Arena *a);

/* ---- tensors outside graphs (parameters) ----------------------------------------- */

/* Fills t's shape fields (ndim, shape, size) for data the caller owns. */
void tensor_init(Tensor *t, float *data, int ndim, const int64_t *shape);
/* The same for a frozen BF16 weight (bf16 bits, little-endian host order); data = NULL. */
void tensor_init_bf16(Tensor *t, const uint16_t *bf16, int ndim, const int64_t *shape);
/* The same for a frozen weight (OUT, IN) of type t (quant.h) at blocks, OUT rows of
 * ggml_row_bytes(t, IN) bytes each (not copied). -1 when t cannot hold rows of IN. */
int tensor_init_quant(Tensor *t, const void *blocks, GgmlType type, int64_t out, int64_t in);
/* Rows [row0, row0 + rows) of a quantized weight w (tensor_init_quant) dequantized into dst
 * (rows, IN); OpenMP-parallel over rows. */
void tensor_dequantize_rows(float *dst, const Tensor *w, int64_t row0, int64_t rows);
/* dst[i] = the float of src[i] (exact: BF16 is the top half of an F32); OpenMP-parallel. */
void tensor_bf16_to_float(float *dst, const uint16_t *src, int64_t n);
/* The distance between rows of a BF16 weight's bits: IN, or IN + room. */
static inline int64_t tensor_bf16_ld(const Tensor *t) {
    return t->shape[t->ndim - 1] + t->room;
}
/* Rows [row0, row0 + rows) of a BF16 weight w as floats into dst (rows, IN). */
void tensor_bf16_rows_to_float(float *dst, const Tensor *w, int64_t row0, int64_t rows);
/* Round to nearest even; NaN stays a (quiet) NaN. The one BF16 rounding in lorafit. */
uint16_t tensor_float_to_bf16(float f);
/* IEEE half, round to nearest even (subnormals included; overflow to inf; NaN stays NaN). */
uint16_t tensor_float_to_f16(float f);
/* dst[i] = BF16 (bf16 true) or F16 rounding of src[i]: adapters and models saved in half. */
void tensor_floats_to_half(uint16_t *dst, const float *src, int64_t n, bool bf16);
/* dst[i] = tensor_float_to_bf16(src[i]); OpenMP-parallel. For holding frozen F32 weights as
 * BF16 once (at load) for TENSOR_PRECISION_BF16, instead of rounding them in every op. */
void tensor_float_to_bf16_array(uint16_t *dst, const float *src, int64_t n);
/* Heap tensor: data zeroed; grad allocated (zeroed) when requires_grad. NULL on OOM. */
Tensor *tensor_new(int ndim, const int64_t *shape, bool requires_grad);
void tensor_free(Tensor *t); /* for tensor_new results only */

/* ---- graphs and the tape -------------------------------------------------------- */

typedef struct Graph Graph;

Graph *graph_create(void);
void graph_reset(Graph *g);
bool graph_failed(const Graph *g);
/* Why the graph failed: the op and the shapes or dtypes that did not fit, or how many bytes
 * could not be allocated. "" while it has not failed. */
const char *graph_error(const Graph *g);
size_t graph_arena_bytes(const Graph *g); /* capacity held by the arena */
/* Bytes in use since the last graph_reset: the arena's allocations plus the scratch and
 * conversion buffers the graph holds (what a step's activations cost, chunk slack aside). */
size_t graph_arena_used(const Graph *g);
void graph_destroy(Graph *g);
/* Returns the resident pages of g's op buffers (scratch, weight conversions, bf16 operands)
 * to the kernel while they stay allocated; ops fault zeroed pages back in as they need them.
 * Between an op's uses only: for a graph idle while another works (gradient checkpointing's
 * head, whose lm_head buffers are 300 MB at Llama-3.1-8B's vocabulary, during the layers'
 * backward). The arena and its tensors are untouched. */
void graph_release_buffers(Graph *g);
/* graph_reset, graph_release_buffers and the arena's pages released (arena_release_pages):
 * a graph that will not run for a while holds no resident memory. */
void graph_release(Graph *g);
/* An uninitialised activation tensor from the graph's arena (requires_grad false). */
Tensor *graph_tensor(Graph *g, int ndim, const int64_t *shape);
/* Seeds root->grad with `seed` in every element and replays the tape in reverse.
 * Returns 0, or -1 if the graph had failed. Call at most once per graph_reset. */
int graph_backward(Graph *g, Tensor *root, float seed);
/* The same with root->grad seeded by a copy of grad (root->size floats, bit for bit): the
 * backward of one piece of a bigger pass whose upstream gradient is known, e.g. a decoder
 * layer recomputed for gradient checkpointing, seeded with d(its output) from the layer
 * above. grad may lie in another graph's arena. Returns 0, or -1 if the graph had failed. */
int graph_backward_from(Graph *g, Tensor *root, const float *grad);

/* ---- precision of the frozen model's matrix products ----------------------------
 *
 * TENSOR_PRECISION_F32 (the default): every product is OpenBLAS sgemm on F32 values.
 * TENSOR_PRECISION_BF16: the products with the frozen model — x W^T and dy W of op_linear
 * and op_lora_linear, Q K^T, P V and their four backward products in op_attention, and the
 * lm_head products of op_lm_head_cross_entropy in both directions — take both inputs
 * rounded to bf16 (nearest even, as tensor_float_to_bf16) and accumulate and output in
 * f32. Everything else stays f32: the LoRA products (x A^T, h B^T, and dA, dB, dh: small),
 * norms, softmax, the loss and every reduction. Activations stay F32 tensors; an op
 * rounds its inputs into buffers the graph keeps (the bf16 copy of an input is reused by
 * the next op reading the same tensor, so q, k and v round their input once); op_attention
 * rounds q, k and v themselves in place and runs its products in its own loops (f32 fused
 * multiply-adds on the rounded values: the same arithmetic, on any CPU).
 * The kernel of the other products: oneDNN's matmul primitive when tensor_cpu_has_native_bf16() and
 * oneDNN has a bf16 matmul for this CPU (primitives created once per shape, kept for the process);
 * otherwise an emulation, OpenBLAS sgemm on the bf16-rounded values: the same arithmetic
 * (products of bf16 values are exact in f32), summed in another order, and slower than
 * F32 (the rounding costs time and gains nothing). Either way results are bit-identical
 * run to run for a given thread count.
 * Frozen weights: BF16 ones (Tensor.bf16) are used in place by oneDNN. F32 ones are rounded
 * in every op, which is slow: hold them as BF16 (tensor_float_to_bf16_array, once) in BF16
 * precision. Returns 0, or -1 for a NULL graph or an unknown precision. Set it before
 * building a step (it applies to the ops recorded after it; keep it for the backward). */
typedef enum { TENSOR_PRECISION_F32 = 0, TENSOR_PRECISION_BF16 = 1 } TensorPrecision;
int graph_set_precision(Graph *g, TensorPrecision p);
TensorPrecision graph_precision(const Graph *g);
/* Dropout masks (op_dropout, op_lora_linear) hash each element by its index in the input,
 * n(i) * cols + j for row i, where row i's number n(i) is row0 + i below split and
 * split_row0 + (i - split) from split on. A graph holding some rows of a larger batch (a
 * data-parallel rank) numbers them as that batch does and draws exactly its masks for them:
 * rows [R, R + N) are {R, INT64_MAX, 0} (dropout_rows_from); a preference rank's chosen rows
 * then its rejected rows are two runs. Zero (rows numbered from 0) by default; applies to
 * the ops recorded after it, and stays across graph_reset. */
typedef struct DropoutRows {
    int64_t row0, split, split_row0;
} DropoutRows;
static inline DropoutRows dropout_rows_from(int64_t row0) {
    return (DropoutRows){row0, INT64_MAX, 0};
}
void graph_set_dropout_rows(Graph *g, DropoutRows rows);
DropoutRows graph_dropout_rows(const Graph *g);
/* What runs the frozen model's products, for printing at start: "OpenBLAS sgemm, SkylakeX
 * kernels (f32)" (tensor_blas_core), "oneDNN matmul brg:avx512_core_amx_bf16 (bf16 inputs,
 * f32 accumulation)" (oneDNN's implementation name), or "emulated (bf16-rounded inputs,
 * OpenBLAS sgemm, Haswell kernels)". */
const char *graph_matmul_kernel(const Graph *g);
/* true when BF16 precision runs on oneDNN's native bf16 kernels, false when emulated. */
bool graph_matmul_native_bf16(const Graph *g);
/* Whether this CPU has native BF16 matrix instructions (AVX512-BF16, or AMX-BF16, with the
 * OS saving their register state). The environment variable LORAFIT_CPU_BF16=0, =1 or
 * =slow overrides the answer (tests force each path with it: none; native and faster;
 * native, no faster); BF16 precision then emulates when oneDNN has no bf16 matmul for the
 * CPU after all. */
bool tensor_cpu_has_native_bf16(void);
/* Whether native bf16 products are faster than f32 ones here (what train.precision: auto
 * goes by): AMX-BF16, or AVX512-BF16 on a core that runs it at twice its f32 rate; not
 * AVX512-BF16 alone on Intel's Sapphire Rapids and later cores (AMX hidden, e.g. by a
 * hypervisor), which multiply bf16 no faster than f32 (tensor/cpu.c). */
bool tensor_cpu_bf16_faster(void);

/* ---- threads -------------------------------------------------------------------- */

/* OpenBLAS chooses its kernels by CPU model when it loads, and on a CPU newer than it knows
 * it falls back to "Prescott" (SSE3), several times slower than the AVX-512 or AVX2 kernels
 * the CPU runs; on AMD's Zen 4 it picks "Cooperlake", slower there than "SkylakeX".
 * tensor_blas_use_cpu_kernels(argv), first thing in main: when OPENBLAS_CORETYPE is unset and
 * OpenBLAS picked such kernels, sets it to the faster ones (tensor_blas_better_core) and runs
 * the program again with the same arguments; returns when there is nothing to do (or running
 * again failed: then a warning). */
void tensor_blas_use_cpu_kernels(char **argv);
/* "SkylakeX" (avx512: F, BW, VL, DQ, CD) or "Haswell" (AVX2 and FMA) when OpenBLAS's core
 * is its fallback "Prescott"; "SkylakeX" for "Cooperlake" on an AMD CPU with avx512; NULL
 * otherwise (OpenBLAS's choice is the best it has). */
const char *tensor_blas_better_core(const char *core, bool amd, bool avx512, bool avx2_fma);
/* The kernels OpenBLAS runs: "SkylakeX", "Haswell", "Zen", "Prescott", ... */
const char *tensor_blas_core(void);

/* Sets the thread count used by OpenBLAS and by OpenMP loops; 0 = all cores. */
void tensor_set_threads(int n);
int tensor_threads(void);

/* ---- profile: where a step's time goes (tools/bench_train) ----------------------- */

/* Wall seconds by op class between tensor_profile_begin and _end, each class exclusive of
 * the classes inside it: matrix products (sgemm, oneDNN; with their GFLOPs) are taken out
 * of the op that runs them, and OTHER is everything outside ops (optimizer, data, the
 * caller). Process-wide and for one thread of ops: meant for benchmarks, not for training
 * runs (the timers cost a clock read per op and per product). */
typedef enum {
    TENSOR_OP_OTHER,
    TENSOR_OP_PRODUCTS,
    TENSOR_OP_EMBEDDING,
    TENSOR_OP_NORM,
    TENSOR_OP_ROPE,
    TENSOR_OP_ATTENTION, /* attention's softmax, masks and bookkeeping */
    TENSOR_OP_SWIGLU,
    TENSOR_OP_RESIDUAL,
    TENSOR_OP_DROPOUT,
    TENSOR_OP_LINEAR,     /* linear and LoRA element-wise: bias, dropout of x, scale */
    TENSOR_OP_LOSS,       /* the fused lm_head's softmax and cross-entropy */
    TENSOR_OP_CONVERSION, /* BF16 precision's roundings; BF16 weights widened to F32 */
    TENSOR_OP_DELTANET,   /* the DeltaNet's delta rule (its products aside), conv, norms, gates */
    TENSOR_OP_CLASSES
} TensorOpClass;
typedef struct {
    double seconds[TENSOR_OP_CLASSES];
    double product_flops; /* 2 M N K summed over the products */
    /* the products by the op that ran them (seconds of products inside attention, ...) */
    double product_seconds_in[TENSOR_OP_CLASSES], product_flops_in[TENSOR_OP_CLASSES];
} TensorProfile;
void tensor_profile_begin(void); /* zeroes the timers and starts them */
void tensor_profile_end(TensorProfile *out);
const char *tensor_op_class_name(TensorOpClass c); /* "matrix products", "RMSNorm", ... */

/* ---- ops ------------------------------------------------------------------------ */

/* Embedding lookup: out[n] = table[ids[n]]. No gradient (tables are frozen).
 * table (V, C), ids (N) -> (N, C). Ids must be in [0, V) (the caller validates). */
Tensor *op_embedding(Graph *g, const Tensor *table, const int32_t *ids, int64_t n);
/* op_embedding on a table whose rows are read on demand rather than held in memory (a file's
 * table read with pread, which keeps it out of resident memory): read(ctx, row, dst, bytes)
 * fills dst with row `row` as stored in table's type (F32, BF16 or quant_type; table's data
 * pointers unused, its shape and type only), or returns -1 with why in err. The rows are
 * converted as op_embedding converts them: the same bits. */
typedef int (*EmbeddingRowRead)(void *ctx, int64_t row, void *dst, size_t bytes, char *err,
                                size_t errlen);
Tensor *op_embedding_read(Graph *g, const Tensor *table, const int32_t *ids, int64_t n,
                          EmbeddingRowRead read, void *ctx);

/* RMSNorm: y = x / sqrt(mean(x^2) + eps) * w. x (N, C), w (C) frozen -> (N, C). */
Tensor *op_rmsnorm(Graph *g, Tensor *x, const Tensor *w, float eps);

/* Per-head RMSNorm (Qwen3's q_norm and k_norm): each head's D values normalised on their
 * own, y[n, h*D + j] = x[n, h*D + j] / sqrt(mean_j(x[n, h*D + j]^2) + eps) * w[j].
 * x (N, H*D), w (D) frozen -> (N, H*D). */
Tensor *op_head_rmsnorm(Graph *g, Tensor *x, int n_heads, const Tensor *w, float eps);

/* The same two with the weight stored as an offset from 1 (Gemma's RMSNorm): the scale is
 * 1 + w, added in float32 as Gemma computes it, y = x / sqrt(mean(x^2) + eps) * (1 + w).
 * x (N, C), w (C) -> (N, C); per head: x (N, H*D), w (D) -> (N, H*D). */
Tensor *op_rmsnorm_unit_offset(Graph *g, Tensor *x, const Tensor *w, float eps);
Tensor *op_head_rmsnorm_unit_offset(Graph *g, Tensor *x, int n_heads, const Tensor *w, float eps);

/* Linear: y = x W^T (+ b). x (N, IN), W (OUT, IN) frozen, b (OUT) frozen or NULL -> (N, OUT). */
Tensor *op_linear(Graph *g, Tensor *x, const Tensor *w, const Tensor *b);

/* LoRA linear (PEFT): y = x W^T (+ b) + scaling * (dropout(x) A^T) B^T.
 * x (N, IN), W (OUT, IN), b (OUT) or NULL, A (R, IN), B (OUT, R) -> (N, OUT).
 * Gradients flow to x, A and B (whichever require them), never to W or b.
 * dropout in [0, 1): inverted dropout on the LoRA path, mask drawn from dropout_seed
 * (a counter-based hash of seed and element index, so it is thread-count independent). */
Tensor *op_lora_linear(Graph *g, Tensor *x, const Tensor *w, const Tensor *b, Tensor *A, Tensor *B,
                       float scaling, float dropout, uint64_t dropout_seed);
/* Whether op_lora_linear in g multiplies by a W with room for its LoRA (Tensor.room = R,
 * dropout 0) in one product per direction: [x | s h] [W | B]^T forward and
 * [dy | dh] [W ; A] backward, with h, dh, A and B rounded to bf16 as the products' other
 * operands are, instead of adding LoRA's rank-R products to y and dx in separate passes.
 * BF16 precision on oneDNN's bf16 kernels with AVX512-BF16 (thin_bf16). */
bool graph_lora_uses_room(const Graph *g);

/* RoPE, Hugging Face rotate-half layout, applied per head:
 *   out[i]       = x[i] cos - x[i + D/2] sin,  out[i + D/2] = x[i + D/2] cos + x[i] sin
 * with angle = pos[n] * inv_freq[i], i < D/2. x (N, H*D), pos (N) -> (N, H*D).
 * cos_table/sin_table (max_pos, D/2): precomputed cos/sin of pos * inv_freq (the model
 * computes inv_freq, including llama3 scaling). Positions must be < max_pos. */
Tensor *op_rope(Graph *g, Tensor *x, int n_heads, int head_dim, const int32_t *pos,
                const float *cos_table, const float *sin_table, int max_pos);

/* Partial rotary (transformers' partial_rotary_factor): the first rot_dim of each head's
 * head_dim values rotate as op_rope rotates a head of rot_dim (pairs i and i + rot_dim/2,
 * tables (max_pos, rot_dim/2)); the other head_dim - rot_dim pass through. rot_dim even,
 * <= head_dim; rot_dim = head_dim is op_rope. x (N, H*D), pos (N) -> (N, H*D). */
Tensor *op_rope_partial(Graph *g, Tensor *x, int n_heads, int head_dim, int rot_dim,
                        const int32_t *pos, const float *cos_table, const float *sin_table,
                        int max_pos);

/* Causal grouped-query attention with softmax scale 1/sqrt(D): op_attention_ex with no
 * soft-cap and no window (below). */
Tensor *op_attention(Graph *g, Tensor *q, Tensor *k, Tensor *v, int batch, int seq_len, int n_heads,
                     int n_kv_heads, int head_dim, const int32_t *segment);

/* What op_attention_ex computes besides causal GQA: */
typedef struct {
    int batch, seq_len, n_heads, n_kv_heads, head_dim;
    float scale;            /* scores = scale * q.k; 0 means 1/sqrt(head_dim) */
    float softcap;          /* > 0: scores = softcap * tanh(scores / softcap); 0: none */
    int window;             /* > 0: t attends s only when t - s < window; 0: none */
    const int32_t *segment; /* (B*T) packed-row ids, or NULL */
} AttentionSpec;
/* Fused causal grouped-query attention (FlashAttention-2's scheme: the T x T probabilities are
 * never stored; the layer keeps O(T D) for backward, which recomputes them block by block).
 * q (B*T, NH*D), k and v (B*T, NKV*D), NH a multiple of NKV; query head h uses kv head
 * h / (NH/NKV). Position t attends to s when s <= t, and t - s < window (window > 0: the
 * sliding window of Mistral, Gemma's local layers), and segment[s] == segment[t] (segment
 * not NULL: packed rows attend only to themselves; ids need not be contiguous). s = t is
 * always allowed. Scores: scale q.k, soft-capped when softcap > 0, then the softmax over the
 * allowed s. -> (B*T, NH*D). Results are bit-identical for any thread count. In BF16
 * precision q, k and v are rounded to bf16 in place (attention is their only reader). */
Tensor *op_attention_ex(Graph *g, Tensor *q, Tensor *k, Tensor *v, const AttentionSpec *spec);

/* SwiGLU gate: y = silu(gate) * up. gate, up (N, C) -> (N, C). */
Tensor *op_swiglu(Graph *g, Tensor *gate, Tensor *up);

/* GeGLU gate with PyTorch's tanh approximation of GELU (hidden_act gelu_pytorch_tanh, Gemma):
 * y = 0.5 gate (1 + tanh(sqrt(2/pi) (gate + 0.044715 gate^3))) * up. gate, up (N, C) -> (N, C). */
Tensor *op_geglu(Graph *g, Tensor *gate, Tensor *up);

/* Residual add: y = a + b, same shapes. */
Tensor *op_add(Graph *g, Tensor *a, Tensor *b);

/* Multiplication by a constant: y = s x (float32). x F32 -> same shape. */
Tensor *op_scale(Graph *g, Tensor *x, float s);

/* A block of columns: y = x[:, first : first + n]; x (N, C) F32 -> (N, n). Backward adds dy
 * into those columns of dx (the split of a fused projection such as Phi-3's qkv_proj). */
Tensor *op_columns(Graph *g, Tensor *x, int64_t first, int64_t n);
/* The same block of each head's columns: x (N, H*S) -> y (N, H*n),
 * y[:, h*n + j] = x[:, h*S + first + j] (Qwen3.5's q_proj: each head's query half, then its
 * gate half). */
Tensor *op_head_columns(Graph *g, Tensor *x, int n_heads, int64_t first, int64_t n);

/* Standalone inverted dropout (same mask rule as op_lora_linear). x -> same shape. */
Tensor *op_dropout(Graph *g, Tensor *x, float p, uint64_t seed);

/* Cross-entropy summed over rows whose target is not TENSOR_IGNORE_INDEX.
 * logits (N, V), targets (N) -> a (1) tensor holding the SUM of the per-row losses
 * (accumulated in double, in row order). *n_targets gets the number of counted rows.
 * To average over a step's micro-batches, backward with seed 1 / total_targets. */
Tensor *op_cross_entropy(Graph *g, Tensor *logits, const int32_t *targets, int64_t *n_targets);

/* The lm_head and cross-entropy fused: the loss of op_cross_entropy(op_linear(x, W, NULL))
 * (within fp32 rounding) without materialising the (N, V) logits. x (N, C), W (V, C) frozen,
 * F32 or BF16, targets (N) -> a (1) tensor holding the SUM of the counted rows' losses
 * (double, row order); *n_targets as op_cross_entropy. Rows whose target is
 * TENSOR_IGNORE_INDEX cost nothing; backward recomputes the logits block by block. */
Tensor *op_lm_head_cross_entropy(Graph *g, Tensor *x, const Tensor *w, const int32_t *targets,
                                 int64_t *n_targets);
/* The same on soft-capped logits (Gemma 2's final_logit_softcapping): the loss of
 * op_cross_entropy(op_softcap(op_linear(x, W, NULL), softcap)); softcap 0 is the above. */
Tensor *op_lm_head_cross_entropy_softcap(Graph *g, Tensor *x, const Tensor *w,
                                         const int32_t *targets, float softcap, int64_t *n_targets);

/* The same per row: y (N) holds each counted row's loss lse - logit[target] (0 on ignored
 * rows), and backward weighs each row's gradient by its own upstream value — for losses
 * built from per-sequence sums of token log-probabilities (preference tuning), seeded
 * through op_weighted_sum. softcap 0 = none. */
Tensor *op_lm_head_token_losses(Graph *g, Tensor *x, const Tensor *w, const int32_t *targets,
                                float softcap, int64_t *n_targets);

/* Soft-capping: y = cap tanh(x / cap), cap > 0. x any shape -> the same. */
Tensor *op_softcap(Graph *g, Tensor *x, float cap);

/* Weighted sum: y = sum_i x_i w_i, a (1) tensor (accumulated in double, in index order).
 * x any shape, w the same size, frozen. Seeds backward with dx = w: gradient checks and
 * auxiliary scalar losses. */
Tensor *op_weighted_sum(Graph *g, Tensor *x, const Tensor *w);

/* ---- Gated DeltaNet (Qwen3.5's linear-attention layers) ------------------------------
 *
 * A DeltaNet layer is built from these: in_proj_qkv -> op_causal_conv1d_silu -> split into
 * q, k, v -> op_head_l2norm on q (scale 1/sqrt(Dk)) and k (scale 1) -> op_gated_delta_rule
 * with beta = op_sigmoid(in_proj_b x) and g = op_deltanet_log_decay(in_proj_a x, A_log,
 * dt_bias) -> op_head_rmsnorm_gated(o, in_proj_z x) -> out_proj. Letters: NK key heads of
 * DK, NV value heads of DV (NV a multiple of NK: value head h reads key head h / (NV/NK), as
 * transformers' repeat_interleave), CH conv channels, KW the conv kernel width. */

/* The gated delta rule, per (batch row, value head h), over positions t with state
 * S (DK, DV) = 0 at the start of each packed row:
 *   S_t = exp(g_t) (I - beta_t k_t k_t^T) S_{t-1} + beta_t k_t v_t^T,   o_t = S_t^T q_t.
 * q, k (B*T, NK*DK) as given (the layer L2-normalises them and scales q first), v
 * (B*T, NV*DV), g (B*T, NV) log-decays (<= 0 in Qwen3.5, any finite value accepted),
 * beta (B*T, NV) -> o (B*T, NV*DV), float32.
 * Computed in chunks of 64 positions (the WY / UT-transform form of transformers'
 * torch_chunk_gated_delta_rule: products within a chunk, a unit-triangular solve, the state
 * carried between chunks); chunks start at each packed row's start, so no state crosses
 * from one row into the next. Backward by hand: the state entering each chunk is saved, and
 * everything within a chunk recomputed from it (no step is ever inverted). Gradients reach
 * q, k, v, g and beta. Work runs in parallel over (batch row, key head), value heads of one
 * key head in order: bit-identical for any thread count. */
typedef struct {
    int batch, seq_len, n_k_heads, n_v_heads, k_dim, v_dim;
    const int32_t *segment; /* (B*T) packed-row ids, or NULL: a row starts where the id changes */
    float *final_state;     /* (B, NV, DK, DV) or NULL: gets each batch row's state after its last
                               position (for generation after a prompt); written by the forward */
} DeltaRuleSpec;
Tensor *op_gated_delta_rule(Graph *g, Tensor *q, Tensor *k, Tensor *v, Tensor *gate, Tensor *beta,
                            const DeltaRuleSpec *spec);
/* The same rule reading q, k, v in place from one (B*T, 2 NK*DK + NV*DV) tensor, columns
 * [q | k | v] (op_deltanet_qkv's output): no copies; the gradient goes to qkv. Same bits. */
Tensor *op_gated_delta_rule_qkv(Graph *g, Tensor *qkv, Tensor *gate, Tensor *beta,
                                const DeltaRuleSpec *spec);
/* One position of the same rule for generation, constant work: state (NV, DK, DV) updated
 * in place (zeros at a sequence's start, or op_gated_delta_rule's final_state); q, k
 * (NK*DK), v (NV*DV), g, beta (NV) -> o (NV*DV). Single-threaded. */
void tensor_gated_delta_step(float *state, float *o, const float *q, const float *k, const float *v,
                             const float *g, const float *beta, int n_k_heads, int n_v_heads,
                             int k_dim, int v_dim);

/* Depthwise causal convolution and SiLU (transformers' causal_conv1d_fn, no bias):
 *   y[t, c] = silu(sum_{j < KW} w[c, j] x[t - KW + 1 + j, c]),
 * x at positions before the packed row's start (or before t = 0) read as 0.
 * x (B*T, CH), w (CH, KW) frozen F32 (the checkpoint's (CH, 1, KW) weight) -> (B*T, CH).
 * segment (B*T) or NULL as in DeltaRuleSpec. Gradient to x only. */
Tensor *op_causal_conv1d_silu(Graph *g, Tensor *x, const Tensor *w, int batch, int seq_len,
                              const int32_t *segment);
/* The DeltaNet layer's mixed q, k, v after its conv, in one op (one pass over memory each
 * way): u = causal_conv1d_silu(x, w) as above, then per row y = [q | k | v] with q's NK heads
 * of DK q_scale u / sqrt(sum u^2 + eps) (op_head_l2norm's), k's NK heads the same with scale
 * 1, v = u. x (B*T, 2 NK*DK + NV*DV), w (CH, KW); batch, seq_len, segment, n_k_heads, k_dim
 * from spec. The same bits as the conv, op_columns and op_head_l2norm in sequence. */
Tensor *op_deltanet_qkv(Graph *g, Tensor *x, const Tensor *w, const DeltaRuleSpec *spec,
                        float q_scale, float eps);
/* One position for generation: window (CH, KW - 1) holds each channel's previous KW - 1
 * inputs, oldest first (zeros at a sequence's start); x (CH) -> y (CH); the window shifts
 * in place to end with x. */
void tensor_conv1d_silu_step(float *window, float *y, const float *x, const float *w, int channels,
                             int kernel);

/* Per-head L2 norm (transformers' l2norm, eps 1e-6 there) times a constant:
 * y = scale x / sqrt(sum_j x_j^2 + eps) over each head's D values. x (N, H*D) -> (N, H*D). */
Tensor *op_head_l2norm(Graph *g, Tensor *x, int n_heads, float eps, float scale);

/* Gated RMSNorm (Qwen3_5RMSNormGated): per head of D values,
 * y = w * (x / sqrt(mean(x^2) + eps)) * silu(z). x, z (N, H*D), w (D) frozen -> (N, H*D).
 * Gradients to x and z. */
Tensor *op_head_rmsnorm_gated(Graph *g, Tensor *x, Tensor *z, int n_heads, const Tensor *w,
                              float eps);

/* beta = sigmoid(x) = 1 / (1 + exp(-x)). x -> same shape. */
Tensor *op_sigmoid(Graph *g, Tensor *x);
/* An output gate: y = x * sigmoid(gate) (Qwen3.5's gated attention), gradients to both.
 * x, gate the same shape -> same shape. */
Tensor *op_sigmoid_gate(Graph *g, Tensor *x, Tensor *gate);

/* The DeltaNet log-decay g = -exp(A_log[h]) * softplus(a + dt_bias[h]) (softplus as
 * PyTorch's, x itself above 20). a (N, H), A_log and dt_bias (H) frozen F32 -> (N, H). */
Tensor *op_deltanet_log_decay(Graph *g, Tensor *a, const Tensor *a_log, const Tensor *dt_bias);

/* ---- helpers for callers ---------------------------------------------------------- */

/* Row-major matrix product for inference paths and tests: C (M, N) = A (M, K) B^T (N, K)
 * (transb) or A B (K, N); accumulate adds into C instead of overwriting. OpenBLAS sgemm. */
void tensor_matmul(float *c, const float *a, const float *b, int m, int n, int k, bool transb,
                   bool accumulate);
/* The same product with bf16 inputs (bits, as tensor_float_to_bf16) and f32 output on
 * oneDNN's matmul (tools/bench_kernels measures its peak with it); 0, or -1 when oneDNN
 * has no bf16 matmul for this CPU. Overwrites C. split: its rows split between the threads
 * as lorafit runs its products (one single-threaded oneDNN product per band), else one
 * product on oneDNN's own threads. */
int tensor_matmul_bf16(float *c, const uint16_t *a, const uint16_t *b, int m, int n, int k,
                       bool transb, bool split);
/* The same in f32 on oneDNN's f32 matmul, which F32 precision's layer products run on
 * (tools/bench_kernels measures its peak beside sgemm's); 0, or -1 when oneDNN cannot run it. */
int tensor_matmul_onednn_f32(float *c, const float *a, const float *b, int m, int n, int k,
                             bool transb, bool split);
/* The element-index hash used for dropout masks: uniform in [0, 1). */
float tensor_dropout_uniform(uint64_t seed, uint64_t index);

#endif
