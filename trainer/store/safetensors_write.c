/* trainer/store/safetensors_write.c — the writer (see safetensors.h).
 *
 * Tensors are only borrowed: the writer holds names, shapes and pointers, and streams the
 * data straight into the fsio file, so saving an adapter allocates only the header. Each
 * floating-point tensor passes store_check_finite on its way out: a file that would hold a
 * NaN or an infinity is abandoned and never appears under its name. */
#include "trainer/store/fsio.h"
#include "trainer/store/safetensors.h"
#include "trainer/store/store.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    char *name;
    StDtype dtype;
    int ndim;
    int64_t shape[ST_MAX_DIMS];
    const void *data;
    size_t nbytes;
    StFill fill; /* when data is NULL: produces the bytes at save time */
    void *ctx;
} WriterEntry;

struct StWriter {
    WriterEntry *entries;
    int count, cap;
    json_t *metadata;
};

StWriter *st_writer_new(void) {
    StWriter *w = calloc(1, sizeof *w);
    if (!w) return NULL;
    w->metadata = json_object();
    if (!w->metadata || json_object_set_new(w->metadata, "format", json_string("pt")) != 0) {
        st_writer_free(w);
        return NULL;
    }
    return w;
}

void st_writer_free(StWriter *w) {
    if (!w) return;
    for (int i = 0; i < w->count; i++) free(w->entries[i].name);
    free(w->entries);
    json_decref(w->metadata);
    free(w);
}

int st_writer_add(StWriter *w, const char *name, StDtype dtype, int ndim, const int64_t *shape,
                  const void *data, char *err, size_t errlen) {
    if (strcmp(name, "__metadata__") == 0 || (unsigned)dtype >= ST_DTYPE_COUNT || ndim < 0 ||
        ndim > ST_MAX_DIMS) {
        snprintf(err, errlen, "safetensors writer: tensor '%s': invalid name, dtype or rank", name);
        return -1;
    }
    for (int i = 0; i < w->count; i++)
        if (strcmp(w->entries[i].name, name) == 0) {
            snprintf(err, errlen, "safetensors writer: duplicate tensor '%s'", name);
            return -1;
        }
    if (w->count == w->cap) {
        int cap = w->cap ? 2 * w->cap : 16;
        WriterEntry *e = realloc(w->entries, (size_t)cap * sizeof *e);
        if (!e) goto oom;
        w->entries = e;
        w->cap = cap;
    }
    WriterEntry *e = &w->entries[w->count];
    memset(e, 0, sizeof *e);
    if (!(e->name = strdup(name))) goto oom;
    e->dtype = dtype;
    e->ndim = ndim;
    size_t numel = 1;
    for (int d = 0; d < ndim; d++) {
        e->shape[d] = shape[d];
        numel *= (size_t)shape[d];
    }
    e->data = data;
    e->nbytes = numel * st_dtype_size(dtype);
    w->count++;
    return 0;
oom:
    snprintf(err, errlen, "safetensors writer: out of memory adding '%s'", name);
    return -1;
}

int st_writer_add_fill(StWriter *w, const char *name, StDtype dtype, int ndim, const int64_t *shape,
                       StFill fill, void *ctx, char *err, size_t errlen) {
    static const char placeholder;
    if (st_writer_add(w, name, dtype, ndim, shape, &placeholder, err, errlen) != 0) return -1;
    w->entries[w->count - 1].data = NULL;
    w->entries[w->count - 1].fill = fill;
    w->entries[w->count - 1].ctx = ctx;
    return 0;
}

int st_writer_set_metadata(StWriter *w, const char *key, const char *value, char *err,
                           size_t errlen) {
    if (json_object_set_new(w->metadata, key, json_string(value)) != 0) {
        snprintf(err, errlen, "safetensors writer: metadata '%s' is not valid UTF-8", key);
        return -1;
    }
    return 0;
}

static int by_entry_name(const void *a, const void *b) {
    return strcmp(((const WriterEntry *)a)->name, ((const WriterEntry *)b)->name);
}

/* {"__metadata__": {...}, name: {"dtype", "shape", "data_offsets"}, ...}, names sorted. */
static char *build_header(StWriter *w, size_t *len) {
    json_t *h = json_object();
    if (!h) return NULL;
    json_object_set(h, "__metadata__", w->metadata);
    uint64_t off = 0;
    for (int i = 0; i < w->count; i++) {
        WriterEntry *e = &w->entries[i];
        json_t *shape = json_array();
        for (int d = 0; d < e->ndim; d++) json_array_append_new(shape, json_integer(e->shape[d]));
        json_t *t =
            json_pack("{s:s, s:o, s:[I, I]}", "dtype", st_dtype_name(e->dtype), "shape", shape,
                      "data_offsets", (json_int_t)off, (json_int_t)(off + e->nbytes));
        if (!t || json_object_set_new(h, e->name, t) != 0) {
            json_decref(h);
            return NULL;
        }
        off += e->nbytes;
    }
    /* JSON_PRESERVE_ORDER keeps __metadata__ first and the tensors in sorted order. */
    char *s = json_dumps(h, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(h);
    if (!s) return NULL;
    size_t n = strlen(s), padded = (n + 7) / 8 * 8;
    char *out = malloc(8 + padded);
    if (out) {
        for (int i = 0; i < 8; i++) out[i] = (char)((uint64_t)padded >> (8 * i) & 0xff);
        memcpy(out + 8, s, n);
        memset(out + 8 + n, ' ', padded - n);
        *len = 8 + padded;
    }
    free(s);
    return out;
}

static StoreEncoding encoding(StDtype d) {
    return d == ST_F64    ? STORE_F64
           : d == ST_F32  ? STORE_F32
           : d == ST_F16  ? STORE_F16
           : d == ST_BF16 ? STORE_BF16
                          : STORE_NOT_FLOAT;
}

int st_writer_save(StWriter *w, const char *path, char *err, size_t errlen) {
    qsort(w->entries, (size_t)w->count, sizeof *w->entries, by_entry_name);
    size_t hlen = 0;
    char *header = build_header(w, &hlen);
    if (!header) {
        snprintf(err, errlen, "%s: out of memory building the safetensors header", path);
        return -1;
    }
    FsioFile *f = fsio_create(path, err, errlen);
    if (!f) {
        free(header);
        return -1;
    }
    int rc = fsio_write(f, header, hlen, err, errlen);
    free(header);
    size_t biggest = 0; /* one buffer for the tensors produced by a fill callback */
    for (int i = 0; i < w->count; i++)
        if (w->entries[i].fill && w->entries[i].nbytes > biggest) biggest = w->entries[i].nbytes;
    void *buf = biggest ? malloc(biggest) : NULL;
    if (rc == 0 && biggest && !buf) {
        snprintf(err, errlen, "%s: out of memory (%zu bytes for a tensor)", path, biggest);
        rc = -1;
    }
    for (int i = 0; rc == 0 && i < w->count; i++) {
        const WriterEntry *e = &w->entries[i];
        if (!e->nbytes) continue;
        if (e->fill && (rc = e->fill(e->ctx, buf, e->nbytes, err, errlen)) != 0) break;
        const void *data = e->fill ? buf : e->data;
        rc = store_check_finite(encoding(e->dtype), data, e->nbytes, path, e->name, err, errlen);
        if (rc == 0) rc = fsio_write(f, data, e->nbytes, err, errlen);
    }
    free(buf);
    if (rc != 0) {
        fsio_abort(f);
        return -1;
    }
    return fsio_commit(f, err, errlen);
}
