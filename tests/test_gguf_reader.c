/* tests/test_gguf_reader.c — see test_gguf_reader.h. */
#include "tests/test_gguf_reader.h"

#include <check.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "tensor/tensor.h"
#include "tests/test_util.h"
#include "trainer/store/store.h"

void tg_read(const char *path, TgFile *f) {
    memset(f, 0, sizeof *f);
    f->buf = (uint8_t *)test_read_file(path, &f->len);
    ck_assert_msg(f->buf != NULL, "cannot read %s", path);
    char err[1024];
    GgufFile *g = gguf_open(path, err, sizeof err);
    ck_assert_msg(g != NULL, "%s", err);
    f->g = g;
    ck_assert_int_eq(gguf_file_version(g), 3);
    f->alignment = gguf_file_alignment(g);
    f->n_kv = gguf_kv_total(g);
    f->n_tensors = gguf_tensor_total(g);
    f->kv = calloc((size_t)f->n_kv + 1, sizeof *f->kv);
    f->t = calloc((size_t)f->n_tensors + 1, sizeof *f->t);
    for (int i = 0; i < f->n_kv; i++) {
        const GgufKv *kv = gguf_kv_at(g, i);
        ck_assert_msg(strlen(kv->key) < sizeof f->kv[i].key, "key %s too long here", kv->key);
        strcpy(f->kv[i].key, kv->key);
        f->kv[i].type = kv->type;
        f->kv[i].arr_type = kv->type == GGUF_TYPE_ARRAY ? kv->arr_type : 0;
        f->kv[i].n = kv->type == GGUF_TYPE_ARRAY ? kv->n : 0;
        f->kv[i].val = kv->val;
    }
    f->data_start = gguf_data_offset(g);
    uint64_t end = 0;
    for (int i = 0; i < f->n_tensors; i++) {
        const GgufTensorInfo *ti = gguf_tensor_at(g, i);
        TgTensor *t = &f->t[i];
        strcpy(t->name, ti->name);
        t->n_dims = (uint32_t)ti->n_dims;
        for (int d = 0; d < ti->n_dims; d++) t->ne[d] = (uint64_t)ti->ne[d];
        t->type = ti->type;
        t->offset = ti->offset;
        t->nbytes = ti->nbytes;
        t->data = ti->data;
        uint64_t e = t->offset + (t->nbytes + f->alignment - 1) / f->alignment * f->alignment;
        if (e > end) end = e;
    }
    /* a writer pads the last tensor and stops there */
    ck_assert_msg(f->data_start + end == f->len, "%s: %zu bytes, expected %zu", path, f->len,
                  (size_t)(f->data_start + end));
}

void tg_free(TgFile *f) {
    gguf_close(f->g);
    free(f->buf);
    free(f->kv);
    free(f->t);
    memset(f, 0, sizeof *f);
}

const TgKv *tg_kv(const TgFile *f, const char *key) {
    for (int i = 0; i < f->n_kv; i++)
        if (!strcmp(f->kv[i].key, key)) return &f->kv[i];
    return NULL;
}

static const TgKv *need(const TgFile *f, const char *key, uint32_t type) {
    const TgKv *kv = tg_kv(f, key);
    ck_assert_msg(kv != NULL, "key %s is missing", key);
    ck_assert_msg(kv->type == type, "key %s has type %u, not %u", key, kv->type, type);
    return kv;
}

uint32_t tg_u32(const TgFile *f, const char *key) {
    uint32_t v;
    memcpy(&v, need(f, key, 4)->val, 4);
    return v;
}

float tg_f32(const TgFile *f, const char *key) {
    float v;
    memcpy(&v, need(f, key, 6)->val, 4);
    return v;
}

int tg_bool(const TgFile *f, const char *key) {
    return need(f, key, 7)->val[0];
}

static char *str_at(const uint8_t *p) {
    uint64_t n;
    memcpy(&n, p, 8);
    char *s = malloc(n + 1);
    memcpy(s, p + 8, n);
    s[n] = '\0';
    return s;
}

char *tg_str(const TgFile *f, const char *key) {
    return str_at(need(f, key, 8)->val);
}

static const TgKv *need_arr(const TgFile *f, const char *key, uint32_t elem, uint64_t i) {
    const TgKv *kv = need(f, key, 9);
    ck_assert_msg(kv->arr_type == elem, "%s: elements of type %u, not %u", key, kv->arr_type, elem);
    ck_assert_msg(i < kv->n, "%s: index %llu of %llu", key, (unsigned long long)i,
                  (unsigned long long)kv->n);
    return kv;
}

char *tg_arr_str(const TgFile *f, const char *key, uint64_t i) {
    const uint8_t *p = need_arr(f, key, 8, i)->val;
    for (uint64_t k = 0; k < i; k++) {
        uint64_t n;
        memcpy(&n, p, 8);
        p += 8 + n;
    }
    return str_at(p);
}

int32_t tg_arr_i32(const TgFile *f, const char *key, uint64_t i) {
    int32_t v;
    memcpy(&v, need_arr(f, key, 5, i)->val + 4 * i, 4);
    return v;
}

float tg_arr_f32(const TgFile *f, const char *key, uint64_t i) {
    float v;
    memcpy(&v, need_arr(f, key, 6, i)->val + 4 * i, 4);
    return v;
}

uint64_t tg_arr_n(const TgFile *f, const char *key) {
    return need(f, key, 9)->n;
}

const TgTensor *tg_tensor(const TgFile *f, const char *name) {
    for (int i = 0; i < f->n_tensors; i++)
        if (!strcmp(f->t[i].name, name)) return &f->t[i];
    return NULL;
}

float *tg_floats(const TgTensor *t, uint64_t *n) {
    uint64_t numel = 1;
    for (uint32_t d = 0; d < t->n_dims; d++) numel *= t->ne[d];
    float *out = malloc(numel * sizeof *out);
    ck_assert(out);
    ck_assert_msg(quant_dequantize_row((int)t->type, t->data, out, (int64_t)numel) == 0,
                  "%s: type %u", t->name, t->type);
    *n = numel;
    return out;
}
