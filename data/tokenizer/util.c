/* data/tokenizer/util.c — the small containers the tokenizer is built from: byte buffers, id and
 * piece vectors, a never-moving string pool and a string -> int32 hash map (the vocabulary and
 * the added tokens are looked up by string on every word, so the map is open addressing with
 * the hash kept in the slot: a miss costs one probe in the common case). */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "data/tokenizer/internal.h"

void tok_err(char *err, size_t errlen, const char *fmt, ...) {
    if (!err || !errlen) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

char *tok_strndup(const char *s, size_t n) {
    char *p = malloc(n + 1);
    if (!p) return NULL;
    memcpy(p, s, n);
    p[n] = 0;
    return p;
}

int buf_reserve(Buf *b, size_t extra) {
    if (b->len + extra <= b->cap) return 0;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + extra) cap *= 2;
    char *p = realloc(b->p, cap);
    if (!p) return -1;
    b->p = p;
    b->cap = cap;
    return 0;
}

int buf_append(Buf *b, const void *data, size_t n) {
    if (buf_reserve(b, n + 1)) return -1;
    if (n) memcpy(b->p + b->len, data, n);
    b->len += n;
    b->p[b->len] = 0;
    return 0;
}

int buf_append_cp(Buf *b, uint32_t cp) {
    char u[4];
    size_t n;
    if (cp < 0x80) {
        u[0] = (char)cp;
        n = 1;
    } else if (cp < 0x800) {
        u[0] = (char)(0xC0 | (cp >> 6));
        u[1] = (char)(0x80 | (cp & 0x3F));
        n = 2;
    } else if (cp < 0x10000) {
        u[0] = (char)(0xE0 | (cp >> 12));
        u[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        u[2] = (char)(0x80 | (cp & 0x3F));
        n = 3;
    } else {
        u[0] = (char)(0xF0 | (cp >> 18));
        u[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
        u[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
        u[3] = (char)(0x80 | (cp & 0x3F));
        n = 4;
    }
    return buf_append(b, u, n);
}

void buf_free(Buf *b) {
    free(b->p);
    memset(b, 0, sizeof *b);
}

int u32vec_push(U32Vec *v, uint32_t x) {
    if (v->n == v->cap) {
        size_t cap = v->cap ? v->cap * 2 : 64;
        uint32_t *p = realloc(v->v, cap * sizeof *p);
        if (!p) return -1;
        v->v = p;
        v->cap = cap;
    }
    v->v[v->n++] = x;
    return 0;
}

int ids_push(TokenizerIds *ids, int32_t id) {
    if (ids->n == ids->cap) {
        size_t cap = ids->cap ? ids->cap * 2 : 64;
        int32_t *p = realloc(ids->ids, cap * sizeof *p);
        if (!p) return -1;
        ids->ids = p;
        ids->cap = cap;
    }
    ids->ids[ids->n++] = id;
    return 0;
}

void tokenizer_ids_free(TokenizerIds *ids) {
    if (!ids) return;
    free(ids->ids);
    memset(ids, 0, sizeof *ids);
}

int pieces_push(PieceList *l, Piece p) {
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 64;
        Piece *v = realloc(l->v, cap * sizeof *v);
        if (!v) return -1;
        l->v = v;
        l->cap = cap;
    }
    l->v[l->n++] = p;
    return 0;
}

Piece piece_slice(const Piece *p, uint32_t k, uint32_t len) {
    Piece s = {.off = p->off + k, .len = len, .id = -1};
    s.at_start = p->at_start && k < p->zpl;
    s.zpl = k < p->zpl ? p->zpl - k : 0;
    return s;
}

typedef struct PoolChunk {
    struct PoolChunk *next;
    size_t used, cap;
    char data[];
} PoolChunk;

char *pool_strndup(Pool *pool, const char *s, size_t n) {
    PoolChunk *c = pool->head;
    if (!c || c->cap - c->used < n + 1) {
        size_t cap = n + 1 > (1u << 20) ? n + 1 : (1u << 20);
        c = malloc(sizeof *c + cap);
        if (!c) return NULL;
        c->next = pool->head;
        c->used = 0;
        c->cap = cap;
        pool->head = c;
    }
    char *p = c->data + c->used;
    memcpy(p, s, n);
    p[n] = 0;
    c->used += n + 1;
    return p;
}

void pool_free(Pool *pool) {
    for (PoolChunk *c = pool->head, *next; c; c = next) {
        next = c->next;
        free(c);
    }
    pool->head = NULL;
}

uint32_t str_hash(const char *s, size_t n) { /* FNV-1a */
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < n; i++) h = (h ^ (uint8_t)s[i]) * 16777619u;
    return h;
}

static int strmap_grow(StrMap *m) {
    size_t cap = m->cap ? m->cap * 2 : 64;
    StrMapEntry *slots = calloc(cap, sizeof *slots);
    if (!slots) return -1;
    for (size_t i = 0; i < m->cap; i++) {
        StrMapEntry *e = &m->slots[i];
        if (!e->key) continue;
        size_t j = e->hash & (cap - 1);
        while (slots[j].key) j = (j + 1) & (cap - 1);
        slots[j] = *e;
    }
    free(m->slots);
    m->slots = slots;
    m->cap = cap;
    return 0;
}

int strmap_put(StrMap *m, const char *key, uint32_t len, int32_t value) {
    if ((m->n + 1) * 2 > m->cap && strmap_grow(m)) return -1;
    uint32_t h = str_hash(key, len);
    size_t j = h & (m->cap - 1);
    for (;; j = (j + 1) & (m->cap - 1)) {
        StrMapEntry *e = &m->slots[j];
        if (!e->key) {
            *e = (StrMapEntry){key, len, h, value};
            m->n++;
            return 0;
        }
        if (e->hash == h && e->len == len && memcmp(e->key, key, len) == 0) {
            e->value = value;
            return 0;
        }
    }
}

int32_t strmap_get(const StrMap *m, const char *key, uint32_t len) {
    if (!m->cap) return -1;
    uint32_t h = str_hash(key, len);
    for (size_t j = h & (m->cap - 1);; j = (j + 1) & (m->cap - 1)) {
        const StrMapEntry *e = &m->slots[j];
        if (!e->key) return -1;
        if (e->hash == h && e->len == len && memcmp(e->key, key, len) == 0) return e->value;
    }
}

void strmap_free(StrMap *m) {
    free(m->slots);
    memset(m, 0, sizeof *m);
}
