/* trainer/store/gguf_read.c — the GGUF reader (see gguf_read.h).
 *
 * One pass over the header with a cursor that refuses to step past the end of the file;
 * every count is checked against the bytes left before anything is allocated for it (a
 * key-value takes at least 12 bytes, a tensor info at least 28), so a 40-byte file claiming
 * 2^60 tensors is refused at once instead of exhausting memory. Offsets are compared with
 * what ggml's writer would have put (each tensor right after the previous one, padded to
 * the alignment), which is also what ggml's reader requires. */
#include <stdarg.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "trainer/store/fsio.h"
#include "trainer/store/gguf_read.h"

#define MAX_NAME 63 /* GGML_MAX_NAME - 1 */

struct GgufFile {
    char *path;
    const uint8_t *map;
    size_t size;
    uint32_t version, alignment;
    int n_kv, n_tensors;
    GgufKv *kv;
    GgufTensorInfo *tensors;
    size_t data_start;
};

typedef struct {
    const GgufFile *f;
    size_t at;
    char *err;
    size_t errlen;
} Cursor;

__attribute__((format(printf, 2, 3))) static int fail(Cursor *c, const char *fmt, ...) {
    char what[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    snprintf(c->err, c->errlen, "%s: not a GGUF file lorafit can read: %s", c->f->path, what);
    return -1;
}

static int need(Cursor *c, uint64_t bytes, const char *what) {
    if (bytes > c->f->size - c->at)
        return fail(c,
                    "%s needs %" PRIu64 " bytes at byte %zu, past the end of the file (%zu "
                    "bytes): truncated or damaged",
                    what, bytes, c->at, c->f->size);
    return 0;
}

static int read_u32(Cursor *c, uint32_t *v, const char *what) {
    if (need(c, 4, what)) return -1;
    memcpy(v, c->f->map + c->at, 4);
    c->at += 4;
    return 0;
}

static int read_u64(Cursor *c, uint64_t *v, const char *what) {
    if (need(c, 8, what)) return -1;
    memcpy(v, c->f->map + c->at, 8);
    c->at += 8;
    return 0;
}

/* A string: u64 length, bytes. *s points into the mapping. */
static int read_str(Cursor *c, const char **s, uint64_t *len, const char *what) {
    if (read_u64(c, len, what) || need(c, *len, what)) return -1;
    *s = (const char *)c->f->map + c->at;
    c->at += *len;
    return 0;
}

/* A value of type t (not an array) at the cursor: skipped after its bounds are checked. */
static int skip_value(Cursor *c, uint32_t t, const char *what) {
    if (t == GGUF_TYPE_STRING) {
        const char *s;
        uint64_t len;
        return read_str(c, &s, &len, what);
    }
    size_t sz = gguf_value_size(t);
    if (need(c, sz, what)) return -1;
    c->at += sz;
    return 0;
}

static int read_kv(Cursor *c, GgufFile *f, int i) {
    GgufKv *kv = &f->kv[i];
    char what[96];
    snprintf(what, sizeof what, "key-value %d", i);
    const char *key;
    uint64_t klen;
    if (read_str(c, &key, &klen, what)) return -1;
    if (klen == 0 || memchr(key, 0, klen))
        return fail(c, "%s has %s key at byte %zu", what, klen ? "a NUL byte in its" : "an empty",
                    c->at - klen);
    char *copy = strndup(key, klen);
    if (!copy) return fail(c, "out of memory");
    kv->key = copy;
    for (int j = 0; j < i; j++)
        if (strcmp(f->kv[j].key, copy) == 0)
            return fail(c, "key '%s' appears twice (key-values %d and %d)", copy, j, i);
    uint32_t type;
    if (read_u32(c, &type, copy)) return -1;
    kv->type = (GgufType)type;
    kv->n = 1;
    if (type > GGUF_TYPE_FLOAT64)
        return fail(c, "key '%s' has value type %u at byte %zu (GGUF has 0..12)", copy, type,
                    c->at - 4);
    if (type != GGUF_TYPE_ARRAY) {
        kv->val = f->map + c->at;
        return skip_value(c, type, copy);
    }
    uint32_t et;
    if (read_u32(c, &et, copy) || read_u64(c, &kv->n, copy)) return -1;
    kv->arr_type = (GgufType)et;
    if (et > GGUF_TYPE_FLOAT64 || et == GGUF_TYPE_ARRAY)
        return fail(c, "key '%s' is an array of %s at byte %zu", copy,
                    et == GGUF_TYPE_ARRAY ? "arrays (nested arrays are not GGUF)"
                                          : "an unknown type",
                    c->at - 12);
    kv->val = f->map + c->at;
    /* a string takes at least its 8-byte length: the count cannot exceed what is left */
    size_t least = et == GGUF_TYPE_STRING ? 8 : gguf_value_size(et);
    if (kv->n > (f->size - c->at) / least)
        return fail(c,
                    "key '%s' claims %" PRIu64 " elements at byte %zu, more than the %zu bytes "
                    "left hold: truncated or damaged",
                    copy, kv->n, c->at, f->size - c->at);
    if (et != GGUF_TYPE_STRING) {
        c->at += (size_t)kv->n * least;
        return 0;
    }
    uint64_t *at = malloc((size_t)(kv->n ? kv->n : 1) * sizeof *at);
    if (!at) return fail(c, "out of memory for the %" PRIu64 " strings of '%s'", kv->n, copy);
    kv->str_at = at;
    for (uint64_t k = 0; k < kv->n; k++) {
        at[k] = (uint64_t)(f->map + c->at - kv->val);
        if (skip_value(c, GGUF_TYPE_STRING, copy)) return -1;
    }
    return 0;
}

static int read_tensor_info(Cursor *c, GgufFile *f, int i) {
    GgufTensorInfo *t = &f->tensors[i];
    char what[64];
    snprintf(what, sizeof what, "tensor info %d", i);
    const char *name;
    uint64_t nlen;
    if (read_str(c, &name, &nlen, what)) return -1;
    if (nlen == 0 || nlen > MAX_NAME || memchr(name, 0, nlen))
        return fail(c, "%s has a name of %" PRIu64 " bytes at byte %zu (1 to %d, no NUL)", what,
                    nlen, c->at - nlen, MAX_NAME);
    char *copy = strndup(name, nlen);
    if (!copy) return fail(c, "out of memory");
    t->name = copy;
    uint32_t n_dims;
    if (read_u32(c, &n_dims, copy)) return -1;
    if (n_dims < 1 || n_dims > 4)
        return fail(c, "tensor '%s' has %u dimensions (1 to 4)", copy, n_dims);
    t->n_dims = (int)n_dims;
    uint64_t numel = 1;
    for (int d = 0; d < 4; d++) t->ne[d] = 1;
    for (uint32_t d = 0; d < n_dims; d++) {
        uint64_t ne;
        if (read_u64(c, &ne, copy)) return -1;
        if (ne < 1 || ne > (uint64_t)INT64_MAX / numel)
            return fail(c, "tensor '%s' has dimension %u of %" PRIu64 " at byte %zu", copy, d, ne,
                        c->at - 8);
        t->ne[d] = (int64_t)ne;
        numel *= ne;
    }
    uint32_t type;
    if (read_u32(c, &type, copy) || read_u64(c, &t->offset, copy)) return -1;
    t->type = (GgmlType)type;
    if (!ggml_type_name((int)type)) {
        const char *other = gguf_ggml_type_name_any((int)type);
        return fail(c,
                    "tensor '%s' has ggml type %u (%s), which lorafit cannot read (it reads F32, "
                    "F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K)",
                    copy, type, other ? other : "unknown");
    }
    size_t row = ggml_row_bytes((int)type, t->ne[0]);
    if (row == 0)
        return fail(c,
                    "tensor '%s' has rows of %" PRId64 " weights, which %s blocks of %" PRId64
                    " do not divide",
                    copy, t->ne[0], ggml_type_name((int)type), ggml_block_size((int)type));
    uint64_t rows = numel / (uint64_t)t->ne[0];
    if (rows > SIZE_MAX / row) return fail(c, "tensor '%s' is too big", copy);
    t->nbytes = row * (size_t)rows;
    return 0;
}

/* The tensors' offsets as ggml lays them out, and their bytes inside the file. */
static int place_tensors(Cursor *c, GgufFile *f) {
    uint64_t expect = 0;
    for (int i = 0; i < f->n_tensors; i++) {
        GgufTensorInfo *t = &f->tensors[i];
        if (t->offset != expect)
            return fail(c,
                        "tensor '%s' has data offset %" PRIu64 ", expected %" PRIu64
                        " (right after the previous tensor, aligned to %u)",
                        t->name, t->offset, expect, f->alignment);
        uint64_t avail = f->size - f->data_start;
        if (t->offset > avail || t->nbytes > avail - t->offset)
            return fail(c,
                        "tensor '%s' (%s, %zu bytes) runs from byte %" PRIu64 " past the end of "
                        "the file (%zu bytes): truncated or damaged",
                        t->name, ggml_type_name(t->type), t->nbytes, f->data_start + t->offset,
                        f->size);
        t->data = f->map + f->data_start + t->offset;
        uint64_t padded = ((uint64_t)t->nbytes + f->alignment - 1) / f->alignment * f->alignment;
        expect = t->offset + padded;
    }
    return 0;
}

static int parse(GgufFile *f, char *err, size_t errlen) {
    Cursor c = {f, 0, err, errlen};
    if (f->size < 4 || memcmp(f->map, "GGUF", 4) != 0)
        return fail(&c, "it does not start with the magic \"GGUF\"");
    c.at = 4;
    uint64_t n_tensors, n_kv;
    if (read_u32(&c, &f->version, "the version")) return -1;
    if (f->version != 2 && f->version != 3) {
        uint32_t v = f->version,
                 swapped = (v >> 24) | (v >> 8 & 0xff00) | (v << 8 & 0xff0000) | v << 24;
        return fail(&c, "version %u (lorafit reads versions 2 and 3%s)", v,
                    swapped == 2 || swapped == 3 ? "; this looks like a big-endian GGUF" : "");
    }
    if (read_u64(&c, &n_tensors, "the tensor count") || read_u64(&c, &n_kv, "the key-value count"))
        return -1;
    size_t left = f->size - c.at;
    if (n_kv > left / 12 || n_tensors > left / 28 || n_kv + n_tensors > INT32_MAX)
        return fail(&c,
                    "it claims %" PRIu64 " key-values and %" PRIu64
                    " tensors, more than its %zu bytes can hold: truncated or damaged",
                    n_kv, n_tensors, f->size);
    f->kv = calloc(n_kv ? n_kv : 1, sizeof *f->kv);
    f->tensors = calloc(n_tensors ? n_tensors : 1, sizeof *f->tensors);
    if (!f->kv || !f->tensors) return fail(&c, "out of memory");
    f->alignment = GGUF_DEFAULT_ALIGNMENT;
    for (uint64_t i = 0; i < n_kv; i++) {
        f->n_kv = (int)i + 1;
        if (read_kv(&c, f, (int)i)) return -1;
        const GgufKv *kv = &f->kv[i];
        if (strcmp(kv->key, "general.alignment") == 0) {
            int64_t a;
            if (kv->type != GGUF_TYPE_UINT32 || !gguf_kv_int(kv, &a) || a == 0 || (a & (a - 1)))
                return fail(&c, "general.alignment must be a u32 power of two");
            f->alignment = (uint32_t)a;
        }
    }
    for (uint64_t i = 0; i < n_tensors; i++) {
        f->n_tensors = (int)i + 1;
        if (read_tensor_info(&c, f, (int)i)) return -1;
        for (uint64_t j = 0; j < i; j++)
            if (strcmp(f->tensors[j].name, f->tensors[i].name) == 0)
                return fail(&c, "tensor '%s' appears twice", f->tensors[i].name);
    }
    uint64_t start = ((uint64_t)c.at + f->alignment - 1) / f->alignment * f->alignment;
    if (n_tensors > 0 && start > f->size)
        return fail(&c, "the data section would start at byte %" PRIu64 ", past the end (%zu)",
                    start, f->size);
    f->data_start = (size_t)(start < f->size ? start : f->size);
    return place_tensors(&c, f);
}

GgufFile *gguf_open(const char *path, char *err, size_t errlen) {
    GgufFile *f = calloc(1, sizeof *f);
    if (!f || !(f->path = strdup(path))) {
        free(f);
        snprintf(err, errlen, "%s: out of memory", path);
        return NULL;
    }
    const void *map;
    if (fsio_map_read(path, &map, &f->size, err, errlen) != 0) {
        gguf_close(f);
        return NULL;
    }
    f->map = map;
    if (parse(f, err, errlen) != 0) {
        gguf_close(f);
        return NULL;
    }
    return f;
}

void gguf_close(GgufFile *f) {
    if (!f) return;
    if (f->map) munmap((void *)f->map, f->size);
    for (int i = 0; i < f->n_kv; i++) {
        free((void *)f->kv[i].key);
        free((void *)f->kv[i].str_at);
    }
    for (int i = 0; i < f->n_tensors; i++) free((void *)f->tensors[i].name);
    free(f->kv);
    free(f->tensors);
    free(f->path);
    free(f);
}

const char *gguf_file_path(const GgufFile *f) {
    return f->path;
}
size_t gguf_file_size(const GgufFile *f) {
    return f->size;
}
uint32_t gguf_file_version(const GgufFile *f) {
    return f->version;
}
uint32_t gguf_file_alignment(const GgufFile *f) {
    return f->alignment;
}
size_t gguf_data_offset(const GgufFile *f) {
    return f->data_start;
}
int gguf_kv_total(const GgufFile *f) {
    return f->n_kv;
}
const GgufKv *gguf_kv_at(const GgufFile *f, int i) {
    return i >= 0 && i < f->n_kv ? &f->kv[i] : NULL;
}
int gguf_tensor_total(const GgufFile *f) {
    return f->n_tensors;
}
const GgufTensorInfo *gguf_tensor_at(const GgufFile *f, int i) {
    return i >= 0 && i < f->n_tensors ? &f->tensors[i] : NULL;
}

const GgufKv *gguf_find_kv(const GgufFile *f, const char *key) {
    for (int i = 0; i < f->n_kv; i++)
        if (strcmp(f->kv[i].key, key) == 0) return &f->kv[i];
    return NULL;
}

const GgufTensorInfo *gguf_find_tensor(const GgufFile *f, const char *name) {
    for (int i = 0; i < f->n_tensors; i++)
        if (strcmp(f->tensors[i].name, name) == 0) return &f->tensors[i];
    return NULL;
}
