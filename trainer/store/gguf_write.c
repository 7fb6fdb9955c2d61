/* trainer/store/gguf_write.c — the GGUF writer (see gguf.h).
 *
 * Why values are serialized when they are set: a key-value is then one byte string (type +
 * payload) that save writes as it is, and replacing a key is swapping that string. Tensor
 * bytes are the opposite: borrowed or produced by a callback at save time, one tensor in
 * memory at a time, because they are most of the file. Each passes store_check_finite on its
 * way out: a file that would hold a NaN or an infinity is abandoned. */
#include "trainer/store/gguf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "trainer/store/gguf_read.h"
#include "trainer/store/store.h"

#define GGUF_MAX_NAME 64 /* GGML_MAX_NAME: a tensor name is shorter than this */

typedef struct {
    uint8_t *p;
    size_t len, cap;
    int oom;
} Bytes;

static void put(Bytes *b, const void *data, size_t n) {
    if (b->oom) return;
    if (b->len + n > b->cap) {
        size_t cap = b->cap ? b->cap : 64;
        while (cap < b->len + n) cap *= 2;
        uint8_t *p = realloc(b->p, cap);
        if (!p) {
            b->oom = 1;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, data, n);
    b->len += n;
}

static void put_u32(Bytes *b, uint32_t v) {
    uint8_t x[4] = {(uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16), (uint8_t)(v >> 24)};
    put(b, x, 4);
}

static void put_u64(Bytes *b, uint64_t v) {
    uint8_t x[8];
    for (int i = 0; i < 8; i++) x[i] = (uint8_t)(v >> (8 * i));
    put(b, x, 8);
}

static void put_str(Bytes *b, const char *s, size_t n) {
    put_u64(b, n);
    put(b, s, n);
}

typedef struct {
    char *key;
    Bytes value; /* u32 type + payload */
} Kv;

typedef struct {
    char *name;
    GgmlType type;
    int n_dims;
    int64_t ne[4];
    size_t nbytes;
    const void *data;
    GgufFill fill;
    void *ctx;
} TensorEntry;

struct GgufWriter {
    Kv *kvs;
    int n_kv, cap_kv;
    TensorEntry *tensors;
    int n_tensors, cap_tensors;
    uint32_t alignment;
};

GgufWriter *gguf_writer_new(void) {
    GgufWriter *w = calloc(1, sizeof *w);
    if (w) w->alignment = GGUF_DEFAULT_ALIGNMENT;
    return w;
}

void gguf_writer_free(GgufWriter *w) {
    if (!w) return;
    for (int i = 0; i < w->n_kv; i++) {
        free(w->kvs[i].key);
        free(w->kvs[i].value.p);
    }
    for (int i = 0; i < w->n_tensors; i++) free(w->tensors[i].name);
    free(w->kvs);
    free(w->tensors);
    free(w);
}

int gguf_kv_count(const GgufWriter *w) {
    return w->n_kv;
}

int gguf_tensor_count(const GgufWriter *w) {
    return w->n_tensors;
}

static int find_key(const GgufWriter *w, const char *key) {
    for (int i = 0; i < w->n_kv; i++)
        if (strcmp(w->kvs[i].key, key) == 0) return i;
    return -1;
}

bool gguf_has_key(const GgufWriter *w, const char *key) {
    return find_key(w, key) >= 0;
}

/* Takes ownership of value (freed on failure too). */
static int set_kv(GgufWriter *w, const char *key, Bytes value, char *err, size_t errlen) {
    if (value.oom) {
        free(value.p);
        return store_error(err, errlen, 0, "gguf: out of memory setting '%s'", key);
    }
    if (!*key) {
        free(value.p);
        return store_error(err, errlen, 0, "gguf: empty key");
    }
    int i = find_key(w, key);
    if (i >= 0) {
        free(w->kvs[i].value.p);
        w->kvs[i].value = value;
        return 0;
    }
    if (w->n_kv == w->cap_kv) {
        int cap = w->cap_kv ? 2 * w->cap_kv : 32;
        Kv *kvs = realloc(w->kvs, (size_t)cap * sizeof *kvs);
        if (!kvs) goto oom;
        w->kvs = kvs;
        w->cap_kv = cap;
    }
    char *k = strdup(key);
    if (!k) goto oom;
    w->kvs[w->n_kv].key = k;
    w->kvs[w->n_kv].value = value;
    w->n_kv++;
    return 0;
oom:
    free(value.p);
    return store_error(err, errlen, 0, "gguf: out of memory setting '%s'", key);
}

int gguf_set_str(GgufWriter *w, const char *key, const char *value, char *err, size_t errlen) {
    Bytes b = {0};
    put_u32(&b, GGUF_TYPE_STRING);
    put_str(&b, value, strlen(value));
    return set_kv(w, key, b, err, errlen);
}

static int set_scalar(GgufWriter *w, const char *key, GgufType type, const void *v, size_t n,
                      char *err, size_t errlen) {
    Bytes b = {0};
    put_u32(&b, type);
    put(&b, v, n); /* little-endian host: x86-64, aarch64 */
    return set_kv(w, key, b, err, errlen);
}

int gguf_set_u32(GgufWriter *w, const char *key, uint32_t value, char *err, size_t errlen) {
    return set_scalar(w, key, GGUF_TYPE_UINT32, &value, 4, err, errlen);
}

int gguf_set_i32(GgufWriter *w, const char *key, int32_t value, char *err, size_t errlen) {
    return set_scalar(w, key, GGUF_TYPE_INT32, &value, 4, err, errlen);
}

int gguf_set_f32(GgufWriter *w, const char *key, float value, char *err, size_t errlen) {
    return set_scalar(w, key, GGUF_TYPE_FLOAT32, &value, 4, err, errlen);
}

int gguf_set_bool(GgufWriter *w, const char *key, bool value, char *err, size_t errlen) {
    uint8_t v = value ? 1 : 0;
    return set_scalar(w, key, GGUF_TYPE_BOOL, &v, 1, err, errlen);
}

int gguf_set_arr_str(GgufWriter *w, const char *key, const char *const *values, const size_t *lens,
                     size_t n, char *err, size_t errlen) {
    Bytes b = {0};
    put_u32(&b, GGUF_TYPE_ARRAY);
    put_u32(&b, GGUF_TYPE_STRING);
    put_u64(&b, n);
    for (size_t i = 0; i < n; i++) put_str(&b, values[i], lens ? lens[i] : strlen(values[i]));
    return set_kv(w, key, b, err, errlen);
}

static int set_array(GgufWriter *w, const char *key, GgufType type, const void *values, size_t n,
                     char *err, size_t errlen) {
    Bytes b = {0};
    put_u32(&b, GGUF_TYPE_ARRAY);
    put_u32(&b, type);
    put_u64(&b, n);
    put(&b, values, 4 * n);
    return set_kv(w, key, b, err, errlen);
}

int gguf_set_arr_i32(GgufWriter *w, const char *key, const int32_t *values, size_t n, char *err,
                     size_t errlen) {
    return set_array(w, key, GGUF_TYPE_INT32, values, n, err, errlen);
}

int gguf_set_arr_u32(GgufWriter *w, const char *key, const uint32_t *values, size_t n, char *err,
                     size_t errlen) {
    return set_array(w, key, GGUF_TYPE_UINT32, values, n, err, errlen);
}

int gguf_set_arr_f32(GgufWriter *w, const char *key, const float *values, size_t n, char *err,
                     size_t errlen) {
    return set_array(w, key, GGUF_TYPE_FLOAT32, values, n, err, errlen);
}

int gguf_set_arr_bool(GgufWriter *w, const char *key, const bool *values, size_t n, char *err,
                      size_t errlen) {
    Bytes b = {0};
    put_u32(&b, GGUF_TYPE_ARRAY);
    put_u32(&b, GGUF_TYPE_BOOL);
    put_u64(&b, n);
    for (size_t i = 0; i < n; i++) {
        uint8_t v = values[i] ? 1 : 0;
        put(&b, &v, 1);
    }
    return set_kv(w, key, b, err, errlen);
}

int gguf_set_alignment(GgufWriter *w, uint32_t alignment, char *err, size_t errlen) {
    if (alignment < 8 || (alignment & (alignment - 1)) != 0)
        return store_error(err, errlen, 0, "gguf: alignment %u is not a power of two >= 8",
                           alignment);
    if (gguf_set_u32(w, "general.alignment", alignment, err, errlen) != 0) return -1;
    w->alignment = alignment;
    return 0;
}

int gguf_copy_kv(GgufWriter *w, const GgufKv *kv, char *err, size_t errlen) {
    size_t elem = gguf_value_size(kv->type == GGUF_TYPE_ARRAY ? kv->arr_type : kv->type);
    size_t payload = elem * kv->n; /* scalars: n is 1 */
    const char *s;
    size_t len;
    if (kv->type == GGUF_TYPE_STRING && gguf_kv_str(kv, &s, &len))
        payload = 8 + len;
    else if (kv->type == GGUF_TYPE_ARRAY && kv->arr_type == GGUF_TYPE_STRING)
        payload =
            kv->n && gguf_elem_str(kv, kv->n - 1, &s, &len) ? kv->str_at[kv->n - 1] + 8 + len : 0;
    else if (elem == 0)
        return store_error(err, errlen, 0, "gguf: key '%s' has a value of unknown type", kv->key);
    if (strcmp(kv->key, "general.alignment") == 0) {
        int64_t a;
        if (kv->type != GGUF_TYPE_UINT32 || !gguf_kv_int(kv, &a))
            return store_error(err, errlen, 0, "gguf: general.alignment is not a u32");
        return gguf_set_alignment(w, (uint32_t)a, err, errlen);
    }
    Bytes b = {0};
    put_u32(&b, kv->type);
    if (kv->type == GGUF_TYPE_ARRAY) {
        put_u32(&b, kv->arr_type);
        put_u64(&b, kv->n);
    }
    put(&b, kv->val, payload); /* the file's little-endian bytes as they are */
    return set_kv(w, kv->key, b, err, errlen);
}

int gguf_add_tensor(GgufWriter *w, const char *name, GgmlType type, int n_dims, const int64_t *ne,
                    const void *data, GgufFill fill, void *ctx, char *err, size_t errlen) {
    if (strlen(name) >= GGUF_MAX_NAME || !*name)
        return store_error(err, errlen, 0,
                           "gguf: tensor name '%s' is empty or longer than %d bytes", name,
                           GGUF_MAX_NAME - 1);
    if (n_dims < 1 || n_dims > 4 || (!data && !fill))
        return store_error(err, errlen, 0, "gguf: tensor '%s': %d dimensions (1 to 4) or no data",
                           name, n_dims);
    for (int i = 0; i < w->n_tensors; i++)
        if (strcmp(w->tensors[i].name, name) == 0)
            return store_error(err, errlen, 0, "gguf: duplicate tensor '%s'", name);
    size_t row = ggml_row_bytes(type, ne[0]);
    if (row == 0)
        return store_error(err, errlen, 0,
                           "gguf: tensor '%s': rows of %lld elements cannot be stored as %s", name,
                           (long long)ne[0], ggml_type_name(type) ? ggml_type_name(type) : "?");
    size_t nbytes = row;
    for (int d = 1; d < n_dims; d++) {
        if (ne[d] < 1 || nbytes > SIZE_MAX / (size_t)ne[d])
            return store_error(err, errlen, 0, "gguf: tensor '%s': bad size", name);
        nbytes *= (size_t)ne[d];
    }
    if (w->n_tensors == w->cap_tensors) {
        int cap = w->cap_tensors ? 2 * w->cap_tensors : 64;
        TensorEntry *t = realloc(w->tensors, (size_t)cap * sizeof *t);
        if (!t) return store_error(err, errlen, 0, "gguf: out of memory adding '%s'", name);
        w->tensors = t;
        w->cap_tensors = cap;
    }
    TensorEntry *e = &w->tensors[w->n_tensors];
    memset(e, 0, sizeof *e);
    if (!(e->name = strdup(name))) return store_error(err, errlen, 0, "gguf: out of memory");
    e->type = type;
    e->n_dims = n_dims;
    for (int d = 0; d < n_dims; d++) e->ne[d] = ne[d];
    e->nbytes = nbytes;
    e->data = data;
    e->fill = fill;
    e->ctx = ctx;
    w->n_tensors++;
    return 0;
}

static uint64_t pad_to(uint64_t x, uint64_t n) {
    return (x + n - 1) / n * n;
}

/* Header, key-values and tensor infos, padded to the alignment. */
static int build_header(const GgufWriter *w, Bytes *h) {
    put(h, "GGUF", 4);
    put_u32(h, GGUF_VERSION);
    put_u64(h, (uint64_t)w->n_tensors);
    put_u64(h, (uint64_t)w->n_kv);
    for (int i = 0; i < w->n_kv; i++) {
        put_str(h, w->kvs[i].key, strlen(w->kvs[i].key));
        put(h, w->kvs[i].value.p, w->kvs[i].value.len);
    }
    uint64_t offset = 0;
    for (int i = 0; i < w->n_tensors; i++) {
        const TensorEntry *e = &w->tensors[i];
        put_str(h, e->name, strlen(e->name));
        put_u32(h, (uint32_t)e->n_dims);
        for (int d = 0; d < e->n_dims; d++) put_u64(h, (uint64_t)e->ne[d]);
        put_u32(h, (uint32_t)e->type);
        put_u64(h, offset);
        offset += pad_to(e->nbytes, w->alignment);
    }
    static const uint8_t zeros[256];
    size_t padded = (size_t)pad_to(h->len, w->alignment);
    while (!h->oom && h->len < padded)
        put(h, zeros, padded - h->len < sizeof zeros ? padded - h->len : sizeof zeros);
    return h->oom ? -1 : 0;
}

static StoreEncoding encoding(GgmlType t) {
    return t == GGML_TYPE_F32    ? STORE_F32
           : t == GGML_TYPE_F16  ? STORE_F16
           : t == GGML_TYPE_BF16 ? STORE_BF16
           : t == GGML_TYPE_Q8_0 ? STORE_Q8_0
                                 : STORE_NOT_FLOAT;
}

int gguf_writer_save(GgufWriter *w, const char *path, char *err, size_t errlen) {
    Bytes h = {0};
    if (build_header(w, &h) != 0) {
        free(h.p);
        return store_error(err, errlen, 0, "%s: out of memory building the GGUF header", path);
    }
    size_t biggest = 0;
    for (int i = 0; i < w->n_tensors; i++)
        if (!w->tensors[i].data && w->tensors[i].nbytes > biggest) biggest = w->tensors[i].nbytes;
    uint8_t *buf = biggest ? malloc(biggest) : NULL;
    if (biggest && !buf) {
        free(h.p);
        return store_error(err, errlen, 0, "%s: out of memory (%zu bytes for a tensor)", path,
                           biggest);
    }
    FsioFile *f = fsio_create(path, err, errlen);
    int rc = f ? fsio_write(f, h.p, h.len, err, errlen) : -1;
    free(h.p);
    static const uint8_t zeros[256];
    for (int i = 0; rc == 0 && i < w->n_tensors; i++) {
        const TensorEntry *e = &w->tensors[i];
        const void *data = e->data;
        if (!data) {
            rc = e->fill(e->ctx, buf, e->nbytes, err, errlen);
            data = buf;
        }
        if (rc == 0)
            rc = store_check_finite(encoding(e->type), data, e->nbytes, path, e->name, err, errlen);
        if (rc == 0) rc = fsio_write(f, data, e->nbytes, err, errlen);
        size_t pad = (size_t)(pad_to(e->nbytes, w->alignment) - e->nbytes);
        while (rc == 0 && pad > 0) {
            size_t n = pad < sizeof zeros ? pad : sizeof zeros;
            rc = fsio_write(f, zeros, n, err, errlen);
            pad -= n;
        }
    }
    free(buf);
    if (!f) return -1;
    if (rc != 0) {
        fsio_abort(f);
        return -1;
    }
    return fsio_commit(f, err, errlen);
}
