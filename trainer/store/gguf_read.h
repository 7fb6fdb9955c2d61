/* trainer/store/gguf_read.h — the GGUF reader: a file memory-mapped and checked whole at
 * open, then read in place (the format: gguf.h).
 *
 * gguf_open validates everything ggml's gguf.cpp would before anything is used: the magic
 * and version (2 or 3), every length and count against the bytes left (so an absurd count
 * is refused before anything is allocated for it), value types (nested arrays refused),
 * keys (no NUL byte, no duplicate), general.alignment (a u32 power of two), tensor names (1..63
 * bytes, no duplicate), dimensions (1..4, each >= 1, no overflow), types (those of tensor/quant.h;
 * any other, IQ2_XXS or MXFP4 say, is refused naming the tensor and the type), rows the type's
 * blocks divide, offsets aligned and laid out as ggml writes them (each tensor right after the
 * previous one's padded end), and every tensor's bytes inside the file. A refusal says the file,
 * what is wrong and at which byte; nothing is read outside the mapping afterwards.
 *
 * Values and tensor data point into the read-only mapping (valid until gguf_close); keys
 * and names are NUL-terminated copies. */
#ifndef LORAFIT_GGUF_READ_H
#define LORAFIT_GGUF_READ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "trainer/store/gguf.h"

typedef struct GgufFile GgufFile;

struct GgufKv {
    const char *key;
    GgufType type;          /* GGUF_TYPE_ARRAY for arrays */
    GgufType arr_type;      /* arrays: the elements' type */
    uint64_t n;             /* arrays: the element count; 1 otherwise */
    const uint8_t *val;     /* scalars: the value; strings: the u64 length, then the bytes;
                               arrays: the first element */
    const uint64_t *str_at; /* arrays of strings: each element's offset from val */
};                          /* GgufKv (gguf.h names the type) */

typedef struct {
    const char *name;
    int n_dims;
    int64_t ne[4]; /* ggml order: ne[0] is the row length */
    GgmlType type;
    uint64_t offset; /* from the start of the data section */
    const void *data;
    size_t nbytes;
} GgufTensorInfo;

GgufFile *gguf_open(const char *path, char *err, size_t errlen);
void gguf_close(GgufFile *f);
const char *gguf_file_path(const GgufFile *f);
size_t gguf_file_size(const GgufFile *f);
uint32_t gguf_file_version(const GgufFile *f);
uint32_t gguf_file_alignment(const GgufFile *f);
/* Where the data section starts in the file (the tensors' offsets count from there). */
size_t gguf_data_offset(const GgufFile *f);

/* Key-values in file order; gguf_find_kv is NULL when the key is absent. */
int gguf_kv_total(const GgufFile *f);
const GgufKv *gguf_kv_at(const GgufFile *f, int i);
const GgufKv *gguf_find_kv(const GgufFile *f, const char *key);
/* Tensors in file order; gguf_find_tensor is NULL when the name is absent. */
int gguf_tensor_total(const GgufFile *f);
const GgufTensorInfo *gguf_tensor_at(const GgufFile *f, int i);
const GgufTensorInfo *gguf_find_tensor(const GgufFile *f, const char *name);

/* Values. Each is false (and leaves *out alone) when the value is not of a fitting type:
 * integers from any integer type or bool (that fits int64), floats from F32 or F64,
 * strings (not NUL-terminated: *len bytes). The _elem forms read element i of an array. */
bool gguf_kv_int(const GgufKv *kv, int64_t *out);
bool gguf_kv_float(const GgufKv *kv, double *out);
bool gguf_kv_str(const GgufKv *kv, const char **s, size_t *len);
bool gguf_elem_int(const GgufKv *kv, uint64_t i, int64_t *out);
bool gguf_elem_float(const GgufKv *kv, uint64_t i, double *out);
bool gguf_elem_str(const GgufKv *kv, uint64_t i, const char **s, size_t *len);
/* Bytes of a scalar value type (1, 2, 4 or 8); 0 for strings, arrays and unknown types. */
size_t gguf_value_size(int type);
/* "u32", "string", "array", ... for messages; "?" for another value. */
const char *gguf_type_name(int type);
/* ggml's name of any tensor type id, lorafit's or not ("IQ2_XXS", "MXFP4"); NULL if none. */
const char *gguf_ggml_type_name_any(int type);

#endif
