/* data/chat/chat_arena.c — the bump allocator behind templates and renders, and the failure jump.
 *
 * Blocks grow geometrically (64 KiB up to 4 MiB, or one exact block for a large request), so
 * a small render costs one or two malloc calls. The limit counts bytes handed out: a runaway
 * template (`{% set s = s + s %}` in a loop) fails with a message instead of exhausting
 * memory. See internal.h for why errors unwind with longjmp. */
#include "data/chat/internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct ArenaBlock {
    ArenaBlock *next;
    size_t used, cap;
    _Alignas(16) char data[];
};

void ct_arena_init(Arena *a, size_t limit, Fail *fail) {
    a->head = NULL;
    a->used = 0;
    a->limit = limit;
    a->fail = fail;
}

void *ct_arena_alloc(Arena *a, size_t size) {
    size = (size + 7) & ~(size_t)7;
    if (size > a->limit - a->used) {
        ct_fail_at(a->fail, NULL, 0, NO_POS, "chat template needs more than %zu MiB of memory",
                   a->limit >> 20);
    }
    ArenaBlock *b = a->head;
    if (!b || b->cap - b->used < size) {
        size_t cap = b ? b->cap * 2 : (size_t)64 << 10;
        if (cap > (size_t)4 << 20) cap = (size_t)4 << 20;
        if (cap < size) cap = size;
        ArenaBlock *nb = malloc(sizeof *nb + cap);
        if (!nb) ct_fail_at(a->fail, NULL, 0, NO_POS, "out of memory rendering a chat template");
        nb->cap = cap;
        nb->used = 0;
        /* A one-off large block goes behind the current one, so the current block's free
         * space keeps serving small requests. */
        if (b && cap == size && b->cap - b->used > 4096) {
            nb->next = b->next;
            b->next = nb;
        } else {
            nb->next = b;
            a->head = nb;
            b = nb;
        }
        if (b != nb) {
            nb->used = size;
            a->used += size;
            return nb->data;
        }
    }
    void *p = b->data + b->used;
    b->used += size;
    a->used += size;
    return p;
}

void *ct_arena_zalloc(Arena *a, size_t size) {
    void *p = ct_arena_alloc(a, size);
    memset(p, 0, size);
    return p;
}

char *ct_arena_strdup(Arena *a, const char *s, size_t len) {
    char *p = ct_arena_alloc(a, len + 1);
    if (len) memcpy(p, s, len);
    p[len] = '\0';
    return p;
}

void ct_arena_free(Arena *a) {
    ArenaBlock *b = a->head;
    while (b) {
        ArenaBlock *next = b->next;
        free(b);
        b = next;
    }
    a->head = NULL;
    a->used = 0;
}

void ct_source_line_col(const char *src, size_t len, uint32_t pos, int *line, int *col) {
    int l = 1, c = 1;
    for (size_t i = 0; i < len && i < pos; i++) {
        unsigned char ch = (unsigned char)src[i];
        if (ch == '\n') {
            l++;
            c = 1;
        } else if ((ch & 0xC0) != 0x80) {
            c++; /* columns count characters, not bytes */
        }
    }
    *line = l;
    *col = c;
}

void ct_fail_at(Fail *f, const char *src, size_t srclen, uint32_t pos, const char *fmt, ...) {
    size_t off = 0;
    if (src && pos != NO_POS) {
        int line, col;
        ct_source_line_col(src, srclen, pos, &line, &col);
        int n = snprintf(f->msg, sizeof f->msg, "chat template line %d, column %d: ", line, col);
        off = n > 0 && (size_t)n < sizeof f->msg ? (size_t)n : 0;
    }
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(f->msg + off, sizeof f->msg - off, fmt, ap);
    va_end(ap);
    longjmp(f->jb, 1);
}

void ct_sb_init(StrBuf *b, Arena *a) {
    b->arena = a;
    b->p = NULL;
    b->len = b->cap = 0;
}

static void sb_reserve(StrBuf *b, size_t extra) {
    if (extra <= b->cap - b->len) return;
    if (extra > b->arena->limit) ct_arena_alloc(b->arena, extra); /* fails with the limit message */
    size_t cap = b->cap ? b->cap : 32;
    while (cap - b->len < extra) cap *= 2;
    char *p = ct_arena_alloc(b->arena, cap);
    if (b->len) memcpy(p, b->p, b->len);
    b->p = p;
    b->cap = cap;
}

void ct_sb_add(StrBuf *b, const char *s, size_t n) {
    if (!n) return;
    sb_reserve(b, n);
    memcpy(b->p + b->len, s, n);
    b->len += n;
}

void ct_sb_addc(StrBuf *b, char c) {
    sb_reserve(b, 1);
    b->p[b->len++] = c;
}

void ct_sb_addf(StrBuf *b, const char *fmt, ...) {
    char tmp[128];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n > 0) ct_sb_add(b, tmp, (size_t)n < sizeof tmp ? (size_t)n : sizeof tmp - 1);
}
