/* tests/test_gguf_reader.c — see test_gguf_reader.h. Written from ggml's docs/gguf.md and
 * gguf.cpp, not from lorafit's writer, so the two can disagree. */
#include "tests/test_gguf_reader.h"

#include <check.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "tests/test_util.h"

typedef struct {
    const uint8_t *p;
    size_t len, at;
} Cur;

static uint64_t rd(Cur *c, int bytes) {
    ck_assert_msg(c->at + (size_t)bytes <= c->len, "gguf: truncated at byte %zu", c->at);
    uint64_t v = 0;
    for (int i = 0; i < bytes; i++) v |= (uint64_t)c->p[c->at + i] << (8 * i);
    c->at += (size_t)bytes;
    return v;
}

static void rd_str(Cur *c, char *out, size_t cap) {
    uint64_t n = rd(c, 8);
    ck_assert_msg(c->at + n <= c->len, "gguf: string past the end");
    if (out) {
        ck_assert_msg(n < cap, "gguf: string of %llu bytes too long here", (unsigned long long)n);
        memcpy(out, c->p + c->at, n);
        out[n] = '\0';
    }
    c->at += n;
}

static size_t type_size(uint32_t t) {
    static const size_t sizes[13] = {1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8};
    ck_assert_msg(t <= 12, "gguf: value type %u", t);
    return sizes[t];
}

static void skip_value(Cur *c, uint32_t type) {
    if (type == 8) return rd_str(c, NULL, 0);
    ck_assert_msg(type != 9, "gguf: nested array");
    c->at += type_size(type);
    ck_assert(c->at <= c->len);
}

void tg_read(const char *path, TgFile *f) {
    memset(f, 0, sizeof *f);
    f->buf = (uint8_t *)test_read_file(path, &f->len);
    ck_assert_msg(f->buf != NULL, "cannot read %s", path);
    Cur c = {f->buf, f->len, 0};
    ck_assert_msg(f->len >= 24 && memcmp(f->buf, "GGUF", 4) == 0, "%s: no GGUF magic", path);
    c.at = 4;
    ck_assert_int_eq(rd(&c, 4), 3);
    uint64_t n_tensors = rd(&c, 8), n_kv = rd(&c, 8);
    ck_assert(n_tensors < 100000 && n_kv < 100000);
    f->n_tensors = (int)n_tensors;
    f->n_kv = (int)n_kv;
    f->kv = calloc(n_kv + 1, sizeof *f->kv);
    f->t = calloc(n_tensors + 1, sizeof *f->t);
    f->alignment = 32;
    for (int i = 0; i < f->n_kv; i++) {
        TgKv *kv = &f->kv[i];
        rd_str(&c, kv->key, sizeof kv->key);
        for (int j = 0; j < i; j++)
            ck_assert_msg(strcmp(f->kv[j].key, kv->key), "duplicate key %s", kv->key);
        kv->type = (uint32_t)rd(&c, 4);
        if (kv->type == 9) {
            kv->arr_type = (uint32_t)rd(&c, 4);
            kv->n = rd(&c, 8);
            kv->val = c.p + c.at;
            for (uint64_t k = 0; k < kv->n; k++) skip_value(&c, kv->arr_type);
        } else {
            kv->val = c.p + c.at;
            skip_value(&c, kv->type);
        }
        if (!strcmp(kv->key, "general.alignment")) {
            ck_assert_int_eq(kv->type, 4);
            memcpy(&f->alignment, kv->val, 4);
            ck_assert(f->alignment && (f->alignment & (f->alignment - 1)) == 0);
        }
    }
    for (int i = 0; i < f->n_tensors; i++) {
        TgTensor *t = &f->t[i];
        rd_str(&c, t->name, sizeof t->name);
        t->n_dims = (uint32_t)rd(&c, 4);
        ck_assert(t->n_dims >= 1 && t->n_dims <= 4);
        uint64_t numel = 1;
        for (uint32_t d = 0; d < t->n_dims; d++) numel *= (t->ne[d] = rd(&c, 8));
        t->type = (uint32_t)rd(&c, 4);
        t->offset = rd(&c, 8);
        ck_assert_msg(t->offset % f->alignment == 0, "%s: offset not aligned", t->name);
        if (t->type == 0)
            t->nbytes = numel * 4;
        else if (t->type == 1 || t->type == 30)
            t->nbytes = numel * 2;
        else if (t->type == 8) {
            ck_assert_msg(t->ne[0] % 32 == 0, "%s: Q8_0 row of %llu", t->name,
                          (unsigned long long)t->ne[0]);
            t->nbytes = numel / 32 * 34;
        } else
            ck_abort_msg("%s: tensor type %u", t->name, t->type);
    }
    f->data_start = (c.at + f->alignment - 1) / f->alignment * f->alignment;
    for (size_t k = c.at; k < f->data_start; k++) ck_assert_msg(f->buf[k] == 0, "padding not zero");
    uint64_t end = 0;
    for (int i = 0; i < f->n_tensors; i++) {
        TgTensor *t = &f->t[i];
        ck_assert_msg(f->data_start + t->offset + t->nbytes <= f->len, "%s: data past the end",
                      t->name);
        t->data = f->buf + f->data_start + t->offset;
        uint64_t e = t->offset + (t->nbytes + f->alignment - 1) / f->alignment * f->alignment;
        if (e > end) end = e;
    }
    ck_assert_msg(f->data_start + end == f->len, "%s: %zu bytes, expected %zu", path, f->len,
                  (size_t)(f->data_start + end));
}

void tg_free(TgFile *f) {
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

/* IEEE half and bfloat16 to float, by the book (not lorafit's converters). */
static float half_to_float(uint16_t h) {
    int e = h >> 10 & 31, m = h & 1023;
    float v = e == 0    ? ldexpf((float)m, -24)
              : e == 31 ? (m ? NAN : INFINITY)
                        : ldexpf((float)(m | 1024), e - 25);
    return h & 0x8000 ? -v : v;
}

float *tg_floats(const TgTensor *t, uint64_t *n) {
    uint64_t numel = 1;
    for (uint32_t d = 0; d < t->n_dims; d++) numel *= t->ne[d];
    float *out = malloc(numel * sizeof *out);
    for (uint64_t i = 0; i < numel; i++) {
        const uint8_t *p = t->data;
        if (t->type == 0) {
            memcpy(&out[i], p + 4 * i, 4);
        } else if (t->type == 1) {
            out[i] = half_to_float((uint16_t)(p[2 * i] | p[2 * i + 1] << 8));
        } else if (t->type == 30) {
            uint32_t u = (uint32_t)(p[2 * i] | p[2 * i + 1] << 8) << 16;
            memcpy(&out[i], &u, 4);
        } else {
            const uint8_t *b = p + i / 32 * 34;
            out[i] = half_to_float((uint16_t)(b[0] | b[1] << 8)) * (float)(int8_t)b[2 + i % 32];
        }
    }
    *n = numel;
    return out;
}
