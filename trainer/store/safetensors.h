/* trainer/store/safetensors.h — strict safetensors reader, writer and sharded-checkpoint lookup.
 *
 * Format (https://github.com/huggingface/safetensors): 8-byte little-endian header length
 * N, N bytes of JSON header, then the byte buffer. The header maps tensor names to
 * {"dtype", "shape", "data_offsets": [begin, end]} (offsets relative to the buffer) plus an
 * optional "__metadata__" string->string object.
 *
 * The reader memory-maps the file read-only and validates everything the reference Rust
 * implementation validates (header size and bounds, JSON object, known dtypes, shapes whose
 * product fits, sizes matching dtype * numel, tensors covering the buffer contiguously with
 * no gap or overlap, no trailing bytes), so a tensor's data pointer can be used in place.
 * Every error names the file, the tensor and what is wrong. */
#ifndef LORAFIT_SAFETENSORS_H
#define LORAFIT_SAFETENSORS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define ST_MAX_DIMS        8
#define ST_MAX_HEADER_SIZE (100u * 1000u * 1000u) /* the reference implementation's limit */

typedef enum {
    ST_F64,
    ST_F32,
    ST_F16,
    ST_BF16,
    ST_I64,
    ST_I32,
    ST_I16,
    ST_I8,
    ST_U8,
    ST_BOOL,
    ST_DTYPE_COUNT
} StDtype;

size_t st_dtype_size(StDtype dt);
const char *st_dtype_name(StDtype dt);
/* "F32" -> ST_F32; -1 when unknown. */
int st_dtype_parse(const char *name, StDtype *out);

typedef struct StTensor {
    const char *name; /* owned by the file handle */
    StDtype dtype;
    int ndim;
    int64_t shape[ST_MAX_DIMS];
    int64_t numel;
    const void *data; /* into the read-only mapping; may be unaligned for its dtype */
    size_t nbytes;
} StTensor;

/* ---- reader ------------------------------------------------------------------------ */

typedef struct SafeTensors SafeTensors;

SafeTensors *st_open(const char *path, char *err, size_t errlen);
void st_close(SafeTensors *st);
const char *st_path(const SafeTensors *st);
size_t st_file_size(const SafeTensors *st);
/* Where t (one of st's tensors) starts in st's file. */
uint64_t st_file_offset(const SafeTensors *st, const StTensor *t);
/* Tensors sorted by name. */
int st_count(const SafeTensors *st);
const StTensor *st_tensor_at(const SafeTensors *st, int i);
const StTensor *st_find(const SafeTensors *st, const char *name); /* NULL if absent */
/* __metadata__ entries (in header order); NULL when the key is absent. */
int st_metadata_count(const SafeTensors *st);
void st_metadata_at(const SafeTensors *st, int i, const char **key, const char **value);
const char *st_metadata(const SafeTensors *st, const char *key);

/* Converts an F32, F16 or BF16 tensor to floats (out holds t->numel). -1 for other dtypes. */
int st_to_float(const StTensor *t, float *out, char *err, size_t errlen);
/* Scalar conversions used by the writer and the converters (round to nearest even). */
float st_bf16_to_float(uint16_t h);
float st_f16_to_float(uint16_t h);

/* ---- a model checkpoint: model.safetensors or model.safetensors.index.json shards ---- */

typedef struct StCheckpoint StCheckpoint;

/* Opens DIR/model.safetensors, or, when absent, DIR/model.safetensors.index.json and every
 * shard its weight_map names (each tensor must be in the shard the map says). */
StCheckpoint *st_checkpoint_open(const char *dir, char *err, size_t errlen);
void st_checkpoint_close(StCheckpoint *c);
const StTensor *st_checkpoint_find(const StCheckpoint *c, const char *name);
int st_checkpoint_shards(const StCheckpoint *c);
const SafeTensors *st_checkpoint_shard(const StCheckpoint *c, int i);
size_t st_checkpoint_bytes(const StCheckpoint *c); /* total size of the files */
/* The shard holding t (a tensor st_checkpoint_find returned), or NULL. */
const SafeTensors *st_checkpoint_shard_of(const StCheckpoint *c, const StTensor *t);

/* ---- writer ------------------------------------------------------------------------ */

typedef struct StWriter StWriter;

StWriter *st_writer_new(void); /* NULL on OOM; metadata starts as {"format": "pt"} */
/* Adds a tensor; data is borrowed until st_writer_save (numel * dtype size bytes). */
int st_writer_add(StWriter *w, const char *name, StDtype dtype, int ndim, const int64_t *shape,
                  const void *data, char *err, size_t errlen);
/* The same, with the bytes produced at save time by fill (one tensor in memory at a time,
 * so a whole model can be written without holding it twice). */
typedef int (*StFill)(void *ctx, void *dst, size_t nbytes, char *err, size_t errlen);
int st_writer_add_fill(StWriter *w, const char *name, StDtype dtype, int ndim, const int64_t *shape,
                       StFill fill, void *ctx, char *err, size_t errlen);
int st_writer_set_metadata(StWriter *w, const char *key, const char *value, char *err,
                           size_t errlen);
/* Writes through fsio (temporary file, fsync, rename): header with tensors in sorted name
 * order, padded with spaces to a multiple of 8, then the data contiguously in that order. */
int st_writer_save(StWriter *w, const char *path, char *err, size_t errlen);
void st_writer_free(StWriter *w);

#endif
