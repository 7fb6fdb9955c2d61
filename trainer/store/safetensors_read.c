/* trainer/store/safetensors_read.c — the strict reader (see safetensors.h).
 *
 * The header is parsed with jansson (duplicate keys rejected) and kept alive: tensor names
 * and metadata strings point into it. Validation order follows the reference
 * implementation: header length, JSON, per-tensor entries, then the offsets as a whole
 * (sorted by begin they must tile the buffer exactly). */
#include "trainer/store/fsio.h"
#include "trainer/store/safetensors.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

struct SafeTensors {
    char *path;
    const uint8_t *map; /* whole file, read-only */
    size_t size;
    json_t *header;
    StTensor *tensors; /* (count) sorted by name */
    int count;
    const char **meta_keys, **meta_values;
    int meta_count;
};

static const char *const dtype_names[ST_DTYPE_COUNT] = {"F64", "F32", "F16", "BF16", "I64",
                                                        "I32", "I16", "I8",  "U8",   "BOOL"};
static const size_t dtype_sizes[ST_DTYPE_COUNT] = {8, 4, 2, 2, 8, 4, 2, 1, 1, 1};

size_t st_dtype_size(StDtype dt) {
    return (unsigned)dt < ST_DTYPE_COUNT ? dtype_sizes[dt] : 0;
}

const char *st_dtype_name(StDtype dt) {
    return (unsigned)dt < ST_DTYPE_COUNT ? dtype_names[dt] : "?";
}

int st_dtype_parse(const char *name, StDtype *out) {
    for (int i = 0; i < ST_DTYPE_COUNT; i++)
        if (strcmp(name, dtype_names[i]) == 0) {
            *out = (StDtype)i;
            return 0;
        }
    return -1;
}

static int by_name(const void *a, const void *b) {
    return strcmp(((const StTensor *)a)->name, ((const StTensor *)b)->name);
}

static int by_begin(const void *a, const void *b) {
    const StTensor *x = *(const StTensor *const *)a, *y = *(const StTensor *const *)b;
    if (x->data != y->data) return (const uint8_t *)x->data < (const uint8_t *)y->data ? -1 : 1;
    return x->nbytes < y->nbytes ? -1 : x->nbytes > y->nbytes;
}

/* Fills t from one header entry; begin/end are returned for the tiling check. */
static int parse_entry(const char *path, const char *name, json_t *v, StTensor *t, uint64_t *begin,
                       uint64_t *end, char *err, size_t errlen) {
    if (!json_is_object(v)) {
        snprintf(err, errlen, "%s: tensor '%s': header entry is not a JSON object", path, name);
        return -1;
    }
    json_t *dt = json_object_get(v, "dtype"), *shape = json_object_get(v, "shape"),
           *offs = json_object_get(v, "data_offsets");
    const char *missing = !dt ? "dtype" : !shape ? "shape" : !offs ? "data_offsets" : NULL;
    if (missing) {
        snprintf(err, errlen, "%s: tensor '%s': missing \"%s\"", path, name, missing);
        return -1;
    }
    const char *key;
    json_t *ignored;
    json_object_foreach(v, key, ignored) {
        if (strcmp(key, "dtype") && strcmp(key, "shape") && strcmp(key, "data_offsets")) {
            snprintf(err, errlen, "%s: tensor '%s': unknown key \"%s\"", path, name, key);
            return -1;
        }
    }
    if (!json_is_string(dt) || st_dtype_parse(json_string_value(dt), &t->dtype) != 0) {
        snprintf(err, errlen,
                 "%s: tensor '%s': unknown dtype %s%s%s (expected F64 F32 F16 BF16 I64 I32 I16 "
                 "I8 U8 BOOL)",
                 path, name, json_is_string(dt) ? "\"" : "",
                 json_is_string(dt) ? json_string_value(dt) : "(not a string)",
                 json_is_string(dt) ? "\"" : "");
        return -1;
    }
    if (!json_is_array(shape)) {
        snprintf(err, errlen, "%s: tensor '%s': shape is not an array", path, name);
        return -1;
    }
    if (json_array_size(shape) > ST_MAX_DIMS) {
        snprintf(err, errlen, "%s: tensor '%s': %zu dimensions (lorafit supports at most %d)", path,
                 name, json_array_size(shape), ST_MAX_DIMS);
        return -1;
    }
    t->ndim = (int)json_array_size(shape);
    uint64_t numel = 1;
    for (int d = 0; d < t->ndim; d++) {
        json_t *s = json_array_get(shape, (size_t)d);
        if (!json_is_integer(s) || json_integer_value(s) < 0) {
            snprintf(err, errlen, "%s: tensor '%s': shape[%d] is not a non-negative integer", path,
                     name, d);
            return -1;
        }
        uint64_t dim = (uint64_t)json_integer_value(s);
        if (dim != 0 && numel > (uint64_t)INT64_MAX / dim) {
            snprintf(err, errlen, "%s: tensor '%s': shape product overflows", path, name);
            return -1;
        }
        numel *= dim;
        t->shape[d] = (int64_t)dim;
    }
    if (numel > (uint64_t)INT64_MAX / 8) {
        snprintf(err, errlen, "%s: tensor '%s': byte size overflows", path, name);
        return -1;
    }
    t->numel = (int64_t)numel;
    if (!json_is_array(offs) || json_array_size(offs) != 2 ||
        !json_is_integer(json_array_get(offs, 0)) || !json_is_integer(json_array_get(offs, 1)) ||
        json_integer_value(json_array_get(offs, 0)) < 0 ||
        json_integer_value(json_array_get(offs, 1)) < 0) {
        snprintf(err, errlen,
                 "%s: tensor '%s': data_offsets must be [begin, end], two non-negative integers",
                 path, name);
        return -1;
    }
    *begin = (uint64_t)json_integer_value(json_array_get(offs, 0));
    *end = (uint64_t)json_integer_value(json_array_get(offs, 1));
    if (*end < *begin) {
        snprintf(err, errlen, "%s: tensor '%s': data_offsets end %llu is before begin %llu", path,
                 name, (unsigned long long)*end, (unsigned long long)*begin);
        return -1;
    }
    uint64_t want = numel * st_dtype_size(t->dtype);
    if (*end - *begin != want) {
        snprintf(err, errlen,
                 "%s: tensor '%s': data_offsets span %llu bytes but shape and dtype %s need %llu",
                 path, name, (unsigned long long)(*end - *begin), st_dtype_name(t->dtype),
                 (unsigned long long)want);
        return -1;
    }
    t->nbytes = (size_t)want;
    return 0;
}

static int parse_metadata(SafeTensors *st, json_t *meta, char *err, size_t errlen) {
    if (!json_is_object(meta)) {
        snprintf(err, errlen, "%s: __metadata__ is not a JSON object", st->path);
        return -1;
    }
    size_t n = json_object_size(meta);
    st->meta_keys = calloc(n + 1, sizeof *st->meta_keys);
    st->meta_values = calloc(n + 1, sizeof *st->meta_values);
    if (!st->meta_keys || !st->meta_values) {
        snprintf(err, errlen, "%s: out of memory", st->path);
        return -1;
    }
    const char *key;
    json_t *v;
    json_object_foreach(meta, key, v) {
        if (!json_is_string(v)) {
            snprintf(err, errlen,
                     "%s: __metadata__ \"%s\" is not a string (metadata must map "
                     "strings to strings)",
                     st->path, key);
            return -1;
        }
        st->meta_keys[st->meta_count] = key;
        st->meta_values[st->meta_count++] = json_string_value(v);
    }
    return 0;
}

/* Everything after the mapping: header JSON, entries, tiling. */
static int parse_header(SafeTensors *st, char *err, size_t errlen) {
    if (st->size < 8) {
        snprintf(err, errlen,
                 "%s: file is %zu bytes, too short for the 8-byte header length "
                 "(not a safetensors file?)",
                 st->path, st->size);
        return -1;
    }
    uint64_t n = 0;
    for (int i = 7; i >= 0; i--) n = n << 8 | st->map[i];
    if (n > ST_MAX_HEADER_SIZE) {
        snprintf(err, errlen, "%s: header length %llu exceeds the 100 MB limit (corrupt file?)",
                 st->path, (unsigned long long)n);
        return -1;
    }
    if (n > st->size - 8) {
        snprintf(err, errlen,
                 "%s: header length %llu runs past the end of the %zu-byte file "
                 "(truncated?)",
                 st->path, (unsigned long long)n, st->size);
        return -1;
    }
    if (n < 2 || st->map[8] != '{') {
        snprintf(err, errlen, "%s: header is not a JSON object (must start with '{')", st->path);
        return -1;
    }
    json_error_t je;
    st->header = json_loadb((const char *)st->map + 8, (size_t)n, JSON_REJECT_DUPLICATES, &je);
    if (!st->header) {
        snprintf(err, errlen, "%s: header JSON: %s (line %d, column %d)", st->path, je.text,
                 je.line, je.column);
        return -1;
    }
    if (!json_is_object(st->header)) {
        snprintf(err, errlen, "%s: header is not a JSON object", st->path);
        return -1;
    }
    size_t cap = json_object_size(st->header);
    st->tensors = calloc(cap + 1, sizeof *st->tensors);
    uint64_t *ends = calloc(cap + 1, sizeof *ends);
    const StTensor **order = calloc(cap + 1, sizeof *order);
    int rc = -1;
    if (!st->tensors || !ends || !order) {
        snprintf(err, errlen, "%s: out of memory", st->path);
        goto out;
    }
    const uint8_t *buffer = st->map + 8 + n;
    uint64_t buffer_size = st->size - 8 - n;
    const char *key;
    json_t *v;
    json_object_foreach(st->header, key, v) {
        if (strcmp(key, "__metadata__") == 0) {
            if (parse_metadata(st, v, err, errlen) != 0) goto out;
            continue;
        }
        StTensor *t = &st->tensors[st->count];
        uint64_t begin, end;
        t->name = key;
        if (parse_entry(st->path, key, v, t, &begin, &end, err, errlen) != 0) goto out;
        if (end > buffer_size) {
            snprintf(err, errlen,
                     "%s: tensor '%s': data_offsets end %llu is past the %llu-byte "
                     "data buffer (truncated file?)",
                     st->path, key, (unsigned long long)end, (unsigned long long)buffer_size);
            goto out;
        }
        t->data = buffer + begin;
        st->count++;
    }
    /* Sorted by begin, each tensor must start where the previous one ended. */
    for (int i = 0; i < st->count; i++) order[i] = &st->tensors[i];
    qsort(order, (size_t)st->count, sizeof *order, by_begin);
    uint64_t at = 0;
    for (int i = 0; i < st->count; i++) {
        uint64_t begin = (uint64_t)((const uint8_t *)order[i]->data - buffer);
        if (begin != at) {
            snprintf(err, errlen,
                     "%s: tensor '%s': data_offsets begin %llu but the previous "
                     "tensor ends at %llu (%s; tensors must be contiguous)",
                     st->path, order[i]->name, (unsigned long long)begin, (unsigned long long)at,
                     begin < at ? "overlap" : "gap");
            goto out;
        }
        at = begin + order[i]->nbytes;
    }
    if (at != buffer_size) {
        snprintf(err, errlen,
                 "%s: tensors end at byte %llu of the data buffer but the file has "
                 "%llu (trailing bytes or truncated)",
                 st->path, (unsigned long long)at, (unsigned long long)buffer_size);
        goto out;
    }
    qsort(st->tensors, (size_t)st->count, sizeof *st->tensors, by_name);
    rc = 0;
out:
    free(ends);
    free(order);
    return rc;
}

SafeTensors *st_open(const char *path, char *err, size_t errlen) {
    SafeTensors *st = calloc(1, sizeof *st);
    if (!st || !(st->path = strdup(path))) {
        free(st);
        snprintf(err, errlen, "%s: out of memory", path);
        return NULL;
    }
    const void *map;
    if (fsio_map_read(path, &map, &st->size, err, errlen) != 0) {
        st_close(st);
        return NULL;
    }
    st->map = map;
    if (parse_header(st, err, errlen) != 0) {
        st_close(st);
        return NULL;
    }
    return st;
}

void st_close(SafeTensors *st) {
    if (!st) return;
    if (st->map) munmap((void *)st->map, st->size);
    json_decref(st->header);
    free(st->tensors);
    free(st->meta_keys);
    free(st->meta_values);
    free(st->path);
    free(st);
}

const char *st_path(const SafeTensors *st) {
    return st->path;
}

uint64_t st_file_offset(const SafeTensors *st, const StTensor *t) {
    return (uint64_t)((const uint8_t *)t->data - st->map);
}

size_t st_file_size(const SafeTensors *st) {
    return st->size;
}

int st_count(const SafeTensors *st) {
    return st->count;
}

const StTensor *st_tensor_at(const SafeTensors *st, int i) {
    return i >= 0 && i < st->count ? &st->tensors[i] : NULL;
}

const StTensor *st_find(const SafeTensors *st, const char *name) {
    StTensor key = {.name = name};
    return bsearch(&key, st->tensors, (size_t)st->count, sizeof key, by_name);
}

int st_metadata_count(const SafeTensors *st) {
    return st->meta_count;
}

void st_metadata_at(const SafeTensors *st, int i, const char **key, const char **value) {
    *key = st->meta_keys[i];
    *value = st->meta_values[i];
}

const char *st_metadata(const SafeTensors *st, const char *key) {
    for (int i = 0; i < st->meta_count; i++)
        if (strcmp(st->meta_keys[i], key) == 0) return st->meta_values[i];
    return NULL;
}

/* ---- dtype conversions ------------------------------------------------------------- */

static float bits_to_float(uint32_t u) {
    float f;
    memcpy(&f, &u, 4);
    return f;
}

float st_bf16_to_float(uint16_t h) {
    return bits_to_float((uint32_t)h << 16);
}

float st_f16_to_float(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000) << 16, exp = (h >> 10) & 0x1f, man = h & 0x3ff;
    if (exp == 0x1f) return bits_to_float(sign | 0x7f800000u | man << 13); /* inf / nan */
    if (exp == 0) { /* zero or subnormal: man * 2^-24 */
        float f = (float)man * (1.0f / 16777216.0f);
        return sign ? -f : f;
    }
    return bits_to_float(sign | (exp + 112) << 23 | man << 13);
}

#define COPY_CHUNK ((size_t)1 << 20)

int st_to_float(const StTensor *t, float *out, char *err, size_t errlen) {
    const uint8_t *p = t->data;
    switch (t->dtype) {
    case ST_F32: /* in chunks over the threads: a big tensor's first read faults its pages in */
#pragma omp parallel for schedule(static) if (t->nbytes > 4 * COPY_CHUNK)
        for (size_t at = 0; at < t->nbytes; at += COPY_CHUNK)
            memcpy((uint8_t *)out + at, p + at,
                   t->nbytes - at < COPY_CHUNK ? t->nbytes - at : COPY_CHUNK);
        return 0;
    case ST_F16:
    case ST_BF16:
#pragma omp parallel for schedule(static) if (t->numel > (int64_t)COPY_CHUNK)
        for (int64_t i = 0; i < t->numel; i++) {
            uint16_t h = (uint16_t)(p[2 * i] | p[2 * i + 1] << 8);
            out[i] = t->dtype == ST_F16 ? st_f16_to_float(h) : st_bf16_to_float(h);
        }
        return 0;
    default:
        snprintf(err, errlen,
                 "tensor '%s': dtype %s cannot be used as floating point (expected "
                 "F32, F16 or BF16)",
                 t->name, st_dtype_name(t->dtype));
        return -1;
    }
}
