/* tensor/graph.c — tensors, graphs and the backward tape (see graph_internal.h). */
#include "tensor/graph_internal.h"

#include <stdarg.h>
#include <stdio.h>
#include "tensor/bf16.h"
#include "tensor/matmul.h"
#include "tensor/profile.h"

#include <stdlib.h>
#include <string.h>

#define GRAPH_CHUNK_BYTES ((size_t)16 << 20)

typedef struct TapeEntry {
    struct TapeEntry *prev;
    BackwardFn backward;
    TensorOpClass op_class; /* the profile class of the op that recorded it */
    int64_t made;           /* g->n_made when recorded (reuse_dead_grads) */
    /* the op's context follows, 64-byte aligned */
} TapeEntry;

#define TAPE_HEADER 64 /* sizeof(TapeEntry) rounded up so the context stays aligned */

struct Graph {
    Arena *arena;
    TapeEntry *tape; /* newest entry */
    bool failed;
    char error[512]; /* why the graph failed: the first failure's message */
    float *scratch;
    size_t scratch_bytes;
    float *weights; /* BF16 weights converted to F32 for one op at a time */
    size_t weights_bytes;
    TensorPrecision precision;
    MmKernel kernel;
    MmBuffers mm;             /* BF16 precision's operand conversions */
    DropoutRows dropout_rows; /* the masks' row numbering (graph_set_dropout_rows) */
    /* Gradient reuse (reuse_dead_grads): the tensors ops made, in order (a malloc'd array
     * kept across resets), and the dead gradient buffers, a list threaded through them. */
    Tensor **made;
    int64_t n_made, made_cap;
    struct DeadGrad *dead;
};

/* A gradient buffer no tensor uses any more, waiting for a gradient of the same size. */
typedef struct DeadGrad {
    struct DeadGrad *next;
    size_t bytes;
} DeadGrad;

/* ---- tensors outside graphs ---- */

static int64_t shape_size(int ndim, const int64_t *shape) {
    int64_t n = 1;
    for (int i = 0; i < ndim; i++) {
        if (shape[i] < 0) return -1;
        if (shape[i] && n > INT64_MAX / shape[i]) return -1;
        n *= shape[i];
    }
    return n;
}

void tensor_init(Tensor *t, float *data, int ndim, const int64_t *shape) {
    memset(t, 0, sizeof *t);
    t->data = data;
    t->ndim = ndim < 0 ? 0 : ndim > TENSOR_MAX_DIMS ? TENSOR_MAX_DIMS : ndim;
    for (int i = 0; i < t->ndim; i++) t->shape[i] = shape[i];
    t->size = shape_size(t->ndim, t->shape);
}

void tensor_init_bf16(Tensor *t, const uint16_t *bf16, int ndim, const int64_t *shape) {
    tensor_init(t, NULL, ndim, shape);
    t->bf16 = bf16;
}

void tensor_bf16_to_float(float *dst, const uint16_t *src, int64_t n) {
    const int64_t chunk = (int64_t)1 << 14;
#pragma omp parallel for schedule(static) if (n > chunk)
    for (int64_t i0 = 0; i0 < n; i0 += chunk) {
        int64_t end = n - i0 < chunk ? n : i0 + chunk;
        for (int64_t i = i0; i < end; i++) {
            uint32_t u = (uint32_t)src[i] << 16;
            memcpy(&dst[i], &u, sizeof u);
        }
    }
}

void tensor_bf16_rows_to_float(float *dst, const Tensor *w, int64_t row0, int64_t rows) {
    int64_t cols = tensor_cols(w), ld = tensor_bf16_ld(w);
    if (ld == cols) {
        tensor_bf16_to_float(dst, w->bf16 + row0 * cols, rows * cols);
        return;
    }
    for (int64_t i = 0; i < rows; i++)
        tensor_bf16_to_float(dst + i * cols, w->bf16 + (row0 + i) * ld, cols);
}

uint16_t tensor_float_to_bf16(float f) {
    return bf16_round(f);
}

void tensor_float_to_bf16_array(uint16_t *dst, const float *src, int64_t n) {
    const int64_t chunk = (int64_t)1 << 14;
#pragma omp parallel for schedule(static) if (n > chunk)
    for (int64_t i0 = 0; i0 < n; i0 += chunk) {
        int64_t end = n - i0 < chunk ? n : i0 + chunk;
        for (int64_t i = i0; i < end; i++) dst[i] = bf16_round(src[i]);
    }
}

uint16_t tensor_float_to_f16(float f) {
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    uint32_t sign = u >> 16 & 0x8000, a = u & 0x7fffffffu;
    if (a > 0x7f800000u) return (uint16_t)(sign | 0x7e00);
    if (a >= 0x477ff000u) return (uint16_t)(sign | 0x7c00); /* rounds to >= 65520: inf */
    if (a < 0x38800000u) {                                  /* below 2^-14: subnormal */
        /* Adding 0.5 makes the FPU round the mantissa to the f16 subnormal grid. */
        float r;
        memcpy(&r, &a, sizeof r);
        r += 0.5f;
        uint32_t ru;
        memcpy(&ru, &r, sizeof ru);
        return (uint16_t)(sign | (ru - 0x3f000000u));
    }
    uint32_t m = a + ((uint32_t)(15 - 127) << 23) + 0xfff + (a >> 13 & 1);
    return (uint16_t)(sign | m >> 13);
}

void tensor_floats_to_half(uint16_t *dst, const float *src, int64_t n, bool bf16) {
    for (int64_t i = 0; i < n; i++)
        dst[i] = bf16 ? tensor_float_to_bf16(src[i]) : tensor_float_to_f16(src[i]);
}

Tensor *tensor_new(int ndim, const int64_t *shape, bool requires_grad) {
    if (ndim < 0 || ndim > TENSOR_MAX_DIMS) return NULL;
    int64_t size = shape_size(ndim, shape);
    if (size < 0 || (uint64_t)size > SIZE_MAX / sizeof(float)) return NULL;
    Tensor *t = calloc(1, sizeof *t);
    if (!t) return NULL;
    tensor_init(t, NULL, ndim, shape);
    t->requires_grad = requires_grad;
    size_t bytes = (size_t)(size ? size : 1) * sizeof(float);
    t->data = calloc(1, bytes);
    if (requires_grad) t->grad = calloc(1, bytes);
    if (!t->data || (requires_grad && !t->grad)) {
        tensor_free(t);
        return NULL;
    }
    return t;
}

void tensor_free(Tensor *t) {
    if (!t) return;
    free(t->data);
    free(t->grad);
    free(t);
}

/* ---- graphs ---- */

Graph *graph_create(void) {
    Graph *g = calloc(1, sizeof *g);
    if (!g) return NULL;
    g->arena = arena_create(GRAPH_CHUNK_BYTES);
    if (!g->arena) {
        free(g);
        return NULL;
    }
    return g;
}

void graph_reset(Graph *g) {
    if (!g) return;
    arena_reset(g->arena);
    g->tape = NULL;
    g->n_made = 0;
    g->dead = NULL;
    g->failed = false;
    g->error[0] = '\0';
    g->mm.x_src = NULL; /* the arena's tensors are gone: forget which one mm.x holds */
    g->mm.cur = NULL;
    g->mm.kept = false; /* the backward passes that read mm.x are done */
}

void graph_release_buffers(Graph *g) {
    if (!g) return;
    tensor_release_pages(g->scratch, g->scratch_bytes);
    tensor_release_pages(g->weights, g->weights_bytes);
    tensor_release_pages(g->mm.x, g->mm.x_bytes);
    tensor_release_pages(g->mm.d, g->mm.d_bytes);
    g->mm.x_src = NULL; /* mm.x no longer holds its conversion */
    g->mm.cur = NULL;
}

void graph_release(Graph *g) {
    if (!g) return;
    graph_reset(g);
    graph_release_buffers(g);
    arena_release_pages(g->arena);
}

int graph_set_precision(Graph *g, TensorPrecision p) {
    if (!g || (p != TENSOR_PRECISION_F32 && p != TENSOR_PRECISION_BF16)) return -1;
    g->precision = p;
    g->kernel = p == TENSOR_PRECISION_BF16 ? mm_choose_kernel() : MM_KERNEL_F32;
    g->mm.x_src = NULL;
    return 0;
}

void graph_set_dropout_rows(Graph *g, DropoutRows rows) {
    if (g) g->dropout_rows = rows;
}

DropoutRows graph_dropout_rows(const Graph *g) {
    return g ? g->dropout_rows : (DropoutRows){0, 0, 0};
}

TensorPrecision graph_precision(const Graph *g) {
    return g ? g->precision : TENSOR_PRECISION_F32;
}

const char *graph_matmul_kernel(const Graph *g) {
    return mm_kernel_name(g ? g->kernel : MM_KERNEL_F32);
}

bool graph_matmul_native_bf16(const Graph *g) {
    return g && g->kernel == MM_KERNEL_ONEDNN_BF16;
}

MmKernel graph_mm_kernel(const Graph *g) {
    return g->kernel;
}

MmBuffers *graph_mm_buffers(Graph *g) {
    return &g->mm;
}

bool graph_failed(const Graph *g) {
    return !g || g->failed;
}

size_t graph_arena_bytes(const Graph *g) {
    return g ? arena_capacity(g->arena) + g->scratch_bytes + g->weights_bytes + g->mm.x_bytes +
                   g->mm.d_bytes
             : 0;
}

size_t graph_arena_used(const Graph *g) {
    return g ? arena_used(g->arena) + g->scratch_bytes + g->weights_bytes + g->mm.x_bytes +
                   g->mm.d_bytes
             : 0;
}

void graph_destroy(Graph *g) {
    if (!g) return;
    arena_destroy(g->arena);
    free(g->scratch);
    free(g->weights);
    free(g->mm.x);
    free(g->mm.d);
    free(g->made);
    free(g);
}

void graph_fail(Graph *g, const char *fmt, ...) {
    if (!g) return;
    if (!g->failed) { /* the first failure is the cause; later ones follow from it */
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(g->error, sizeof g->error, fmt, ap);
        va_end(ap);
    }
    g->failed = true;
}

const char *graph_error(const Graph *g) {
    if (!g) return "no graph (out of memory creating it)";
    return g->failed ? (g->error[0] ? g->error : "the graph failed") : "";
}

char *tensor_shape_text(const Tensor *t, char *buf, size_t len) {
    int n = snprintf(buf, len, "(");
    for (int i = 0; t && i < t->ndim && n > 0 && (size_t)n < len; i++)
        n += snprintf(buf + n, len - (size_t)n, i ? ", %lld" : "%lld", (long long)t->shape[i]);
    if (n > 0 && (size_t)n < len)
        snprintf(buf + n, len - (size_t)n, ")%s%s", t && !t->data && t->bf16 ? " bf16" : "",
                 t && !t->data && t->quant ? " quantized" : "");
    return buf;
}

void *graph_alloc(Graph *g, size_t bytes) {
    if (!g) return NULL;
    void *p = arena_alloc(g->arena, bytes);
    if (!p)
        graph_fail(g, "out of memory: cannot allocate %zu more bytes for activations (%zu held)",
                   bytes, arena_capacity(g->arena));
    return p;
}

static Tensor *make_tensor(Graph *g, int ndim, const int64_t *shape) {
    if (!g || ndim < 1 || ndim > TENSOR_MAX_DIMS) {
        graph_fail(g, "a tensor of %d dimensions (1 to %d are allowed)", ndim, TENSOR_MAX_DIMS);
        return NULL;
    }
    int64_t size = shape_size(ndim, shape);
    if (size < 0 || (uint64_t)size > SIZE_MAX / sizeof(float)) {
        graph_fail(g, "a tensor shape with a negative or overflowing size");
        return NULL;
    }
    Tensor *t = graph_alloc(g, sizeof *t);
    float *data = graph_alloc(g, (size_t)size * sizeof(float));
    if (!t || !data) return NULL;
    tensor_init(t, data, ndim, shape);
    return t;
}

/* An op's tensor, listed in g->made for reuse_dead_grads (unlisted when the list cannot
 * grow: its gradient then just stays). */
Tensor *graph_new_tensor(Graph *g, int ndim, const int64_t *shape) {
    Tensor *t = make_tensor(g, ndim, shape);
    if (!t) return NULL;
    if (g->n_made == g->made_cap) {
        int64_t cap = g->made_cap ? 2 * g->made_cap : 1024;
        Tensor **grown = realloc(g->made, (size_t)cap * sizeof *grown);
        if (!grown) return t;
        g->made = grown, g->made_cap = cap;
    }
    g->made[g->n_made++] = t;
    return t;
}

/* A caller's tensor: not listed, so its gradient outlives backward for the caller to read. */
Tensor *graph_tensor(Graph *g, int ndim, const int64_t *shape) {
    return make_tensor(g, ndim, shape);
}

void *graph_record(Graph *g, BackwardFn backward, size_t ctx_bytes) {
    char *p = graph_alloc(g, TAPE_HEADER + ctx_bytes);
    if (!p) return NULL;
    TapeEntry *e = (TapeEntry *)p;
    e->prev = g->tape;
    e->backward = backward;
    e->op_class = profile_current();
    e->made = g->n_made;
    g->tape = e;
    memset(p + TAPE_HEADER, 0, ctx_bytes);
    return p + TAPE_HEADER;
}

/* Zeroes n floats; big buffers (activation gradients, the logits' gradient) in parallel so
 * the second core does not sit idle through a serial memset. */
static void zero_floats(float *p, int64_t n) {
    const int64_t chunk = (int64_t)1 << 16;
    if (n <= chunk) {
        memset(p, 0, (size_t)n * sizeof(float));
        return;
    }
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; i += chunk)
        memset(p + i, 0, (size_t)(n - i < chunk ? n - i : chunk) * sizeof(float));
}

float *graph_grad_for_write(Graph *g, Tensor *t, bool *add) {
    *add = true;
    if (!t || !t->requires_grad) return NULL;
    if (t->grad) return t->grad;
    size_t bytes = (size_t)t->size * sizeof(float);
    for (DeadGrad **p = &g->dead; *p; p = &(*p)->next)
        if ((*p)->bytes == bytes) {
            t->grad = (float *)*p;
            *p = (*p)->next;
            break;
        }
    if (!t->grad) t->grad = graph_alloc(g, bytes);
    t->grad_reusable = t->grad != NULL;
    *add = false;
    return t->grad;
}

float *graph_grad(Graph *g, Tensor *t) {
    bool add;
    float *d = graph_grad_for_write(g, t, &add);
    if (d && !add) zero_floats(d, t->size);
    return d;
}

float *graph_scratch(Graph *g, size_t bytes) {
    if (bytes > g->scratch_bytes) {
        free(g->scratch);
        g->scratch = tensor_alloc_pages((bytes + 63) / 64 * 64);
        g->scratch_bytes = g->scratch ? (bytes + 63) / 64 * 64 : 0;
        if (!g->scratch)
            graph_fail(g, "out of memory: cannot allocate a %zu-byte scratch buffer", bytes);
    }
    return g->scratch;
}

/* Grows like graph_scratch, but separate: an op needs its weights and a scratch activation
 * (the dropout-masked input) at the same time. */
static float *weight_scratch(Graph *g, size_t bytes) {
    if (bytes > g->weights_bytes) {
        free(g->weights);
        size_t rounded = (bytes + 63) / 64 * 64;
        g->weights = tensor_alloc_pages(rounded);
        g->weights_bytes = g->weights ? rounded : 0;
        if (!g->weights)
            graph_fail(g, "out of memory: cannot allocate %zu bytes to convert BF16 weights",
                       bytes);
    }
    return g->weights;
}

void *graph_weight_buffer(Graph *g, size_t bytes) {
    return weight_scratch(g, bytes);
}

const float *graph_weight_rows(Graph *g, const Tensor *w, int64_t row0, int64_t rows) {
    int64_t cols = tensor_cols(w);
    if (w->data) return w->data + row0 * cols; /* used in place: no conversion to time */
    PROFILE_OP(TENSOR_OP_CONVERSION);
    if ((!w->bf16 && !w->quant) || rows < 0 || (uint64_t)(rows * cols) > SIZE_MAX / sizeof(float)) {
        graph_fail(g, "a weight %s with neither F32, BF16 nor quantized data",
                   tensor_shape_text(w, (char[64]){0}, 64));
        return NULL;
    }
    int64_t n = rows * cols;
    float *dst = weight_scratch(g, (size_t)(n > 0 ? n : 1) * sizeof(float));
    if (dst && w->quant)
        tensor_dequantize_rows(dst, w, row0, rows);
    else if (dst)
        tensor_bf16_rows_to_float(dst, w, row0, rows);
    return dst;
}

int32_t *graph_copy_ids(Graph *g, const int32_t *ids, int64_t n) {
    int32_t *p = graph_alloc(g, (size_t)(n > 0 ? n : 1) * sizeof(int32_t));
    if (p && n > 0) memcpy(p, ids, (size_t)n * sizeof(int32_t));
    return p;
}

/* After entry e's backward, the gradients of the tensors ops made between e and the next
 * entry, g->made[from, to), are dead: the op that made such a tensor recorded either e, just
 * before making it, or the next entry, just after (whose backward has run), and no entry
 * older than e can hold a tensor made after it, so nothing reads those gradients again.
 * Their buffers go on the dead list for the next gradients of the same size: a backward holds
 * about one layer's gradients instead of every layer's (SmolLM-135M, B 4 x 256, bf16: graph
 * arena 3190 -> 1747 MB, peak RSS 3189 -> 1920 MB). Only buffers graph_grad_for_write took
 * from the arena (grad_reusable); grad becomes NULL; mm_input forgets a conversion of one. */
static void reuse_dead_grads(Graph *g, int64_t from, int64_t to) {
    for (int64_t i = from; i < to; i++) {
        Tensor *t = g->made[i];
        size_t bytes = (size_t)t->size * sizeof(float);
        if (!t->grad || !t->grad_reusable || bytes < sizeof(DeadGrad)) continue;
        uintptr_t cached = (uintptr_t)g->mm.x_src, buf = (uintptr_t)t->grad;
        if (cached >= buf && cached < buf + bytes) g->mm.x_src = NULL; /* mm_input's cache */
        DeadGrad *d = (DeadGrad *)(void *)t->grad;
        d->bytes = bytes;
        d->next = g->dead;
        g->dead = d;
        t->grad = NULL;
        t->grad_reusable = false;
    }
}

static int replay_tape(Graph *g) {
    int64_t next = g->n_made; /* the newer entry's g->made mark */
    for (TapeEntry *e = g->tape; e; e = e->prev) {
        PROFILE_OP(e->op_class);
        e->backward(g, (char *)e + TAPE_HEADER);
        if (g->failed) return -1;
        reuse_dead_grads(g, e->made, next);
        next = e->made;
    }
    reuse_dead_grads(g, 0, next); /* made before any entry: the oldest's backward has run */
    return 0;
}

int graph_backward(Graph *g, Tensor *root, float seed) {
    if (!g || g->failed || !root) return -1;
    if (!root->requires_grad) return 0; /* nothing upstream wants a gradient */
    float *d = graph_grad(g, root);
    if (!d) return -1;
    for (int64_t i = 0; i < root->size; i++) d[i] = seed;
    return replay_tape(g);
}

int graph_backward_from(Graph *g, Tensor *root, const float *grad) {
    if (!g || g->failed || !root || !grad) return -1;
    if (!root->requires_grad) return 0;
    float *d = graph_grad(g, root);
    if (!d) return -1;
    /* A copy, not an add into the zeroed buffer: 0 + (-0) would turn a -0 into +0, and the
     * plain pass hands the layer exactly the bits the layer above produced. */
    memcpy(d, grad, (size_t)root->size * sizeof(float));
    return replay_tape(g);
}
