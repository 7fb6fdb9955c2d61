/* trainer/store/gguf.h — the GGUF writer (llama.cpp, Ollama, LM Studio) and the ggml tensor
 * encodings lorafit writes (F32, F16, BF16, Q8_0, and the types tensor/quant.h quantizes).
 *
 * Format (ggml's docs/gguf.md, gguf-py's gguf_writer.py), little-endian throughout:
 *   u32 magic "GGUF", u32 version 3, u64 tensor count, u64 key-value count,
 *   key-values:   string key, u32 value type, value
 *                 (string = u64 byte length + bytes; array = u32 element type, u64 count,
 *                 elements),
 *   tensor infos: string name, u32 n_dims, u64 ne[n_dims] (ggml order: ne[0] is the row
 *                 length, the reverse of PyTorch's shape), u32 ggml type, u64 offset from
 *                 the start of the data section,
 *   zero padding to the alignment, then every tensor's bytes, each padded to the alignment.
 * The alignment is 32 unless general.alignment (u32) says otherwise; gguf_set_alignment
 * writes that key, as gguf-py's add_custom_alignment does.
 *
 * Key-values keep the order they were first set in; setting a key again replaces its value
 * in place (gguf-py warns and overwrites). Tensors are written in the order added. Their
 * bytes are either borrowed (data) or produced on demand by a fill callback at save time,
 * one tensor at a time, so a model is never held twice in memory. */
#ifndef LORAFIT_GGUF_H
#define LORAFIT_GGUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tensor/quant.h"

#define GGUF_VERSION           3
#define GGUF_DEFAULT_ALIGNMENT 32

typedef enum {
    GGUF_TYPE_UINT8 = 0,
    GGUF_TYPE_INT8 = 1,
    GGUF_TYPE_UINT16 = 2,
    GGUF_TYPE_INT16 = 3,
    GGUF_TYPE_UINT32 = 4,
    GGUF_TYPE_INT32 = 5,
    GGUF_TYPE_FLOAT32 = 6,
    GGUF_TYPE_BOOL = 7,
    GGUF_TYPE_STRING = 8,
    GGUF_TYPE_ARRAY = 9,
    GGUF_TYPE_UINT64 = 10,
    GGUF_TYPE_INT64 = 11,
    GGUF_TYPE_FLOAT64 = 12
} GgufType;

/* The ggml tensor types (GgmlType), their names and row sizes: tensor/quant.h. */

/* ---- encodings (ggml's rounding) -------------------------------------------------- */

/* float -> IEEE half, round to nearest even (F16C's _cvtss_sh, numpy's astype). */
uint16_t gguf_float_to_f16(float f);
/* float -> bfloat16 as ggml_compute_fp32_to_bf16: nearest even, NaN kept quiet. */
uint16_t gguf_float_to_bf16(float f);
/* n floats of rows of ne0 (n a multiple of ne0) into dst in type t (quant_quantize_row:
 * llama.cpp's reference quantizers); dst holds (n / ne0) * ggml_row_bytes(t, ne0) bytes.
 * -1 when the type cannot hold the rows or lorafit cannot write it. */
int gguf_encode(GgmlType t, const float *src, int64_t n, int64_t ne0, void *dst);

/* ---- writer ----------------------------------------------------------------------- */

typedef struct GgufWriter GgufWriter;

/* Produces a tensor's nbytes into dst (called once, at save time). 0 or -1 with err. */
typedef int (*GgufFill)(void *ctx, void *dst, size_t nbytes, char *err, size_t errlen);

GgufWriter *gguf_writer_new(void); /* NULL on OOM */
void gguf_writer_free(GgufWriter *w);

/* Each returns 0, or -1 with err (out of memory, a key that is empty or not UTF-8). */
int gguf_set_str(GgufWriter *w, const char *key, const char *value, char *err, size_t errlen);
int gguf_set_u32(GgufWriter *w, const char *key, uint32_t value, char *err, size_t errlen);
int gguf_set_i32(GgufWriter *w, const char *key, int32_t value, char *err, size_t errlen);
int gguf_set_f32(GgufWriter *w, const char *key, float value, char *err, size_t errlen);
int gguf_set_bool(GgufWriter *w, const char *key, bool value, char *err, size_t errlen);
/* Arrays (copied). Strings may hold any bytes; lens NULL means NUL-terminated strings. */
int gguf_set_arr_str(GgufWriter *w, const char *key, const char *const *values, const size_t *lens,
                     size_t n, char *err, size_t errlen);
int gguf_set_arr_i32(GgufWriter *w, const char *key, const int32_t *values, size_t n, char *err,
                     size_t errlen);
int gguf_set_arr_u32(GgufWriter *w, const char *key, const uint32_t *values, size_t n, char *err,
                     size_t errlen);
int gguf_set_arr_f32(GgufWriter *w, const char *key, const float *values, size_t n, char *err,
                     size_t errlen);
int gguf_set_arr_bool(GgufWriter *w, const char *key, const bool *values, size_t n, char *err,
                      size_t errlen);
/* A power of two >= 8; writes general.alignment. */
int gguf_set_alignment(GgufWriter *w, uint32_t alignment, char *err, size_t errlen);
int gguf_kv_count(const GgufWriter *w);
/* A key-value of a file being read (gguf_read.h), its type and bytes as they are: what a
 * writer that rewrites a file's tensors keeps of its metadata. general.alignment also sets
 * the alignment. */
typedef struct GgufKv GgufKv;
int gguf_copy_kv(GgufWriter *w, const GgufKv *kv, char *err, size_t errlen);
bool gguf_has_key(const GgufWriter *w, const char *key);

/* Adds a tensor of n_dims (1..4) sizes ne (ggml order) and ggml type; its bytes come from
 * data (borrowed until save) or, when data is NULL, from fill(ctx, ...). Errors: a
 * duplicate name, a name longer than 63 bytes (GGML_MAX_NAME), a row the type cannot
 * encode, no data and no fill. */
int gguf_add_tensor(GgufWriter *w, const char *name, GgmlType type, int n_dims, const int64_t *ne,
                    const void *data, GgufFill fill, void *ctx, char *err, size_t errlen);
int gguf_tensor_count(const GgufWriter *w);

/* Writes path through fsio (temporary name, fsync, rename): never a torn file under path. */
int gguf_writer_save(GgufWriter *w, const char *path, char *err, size_t errlen);

#endif
