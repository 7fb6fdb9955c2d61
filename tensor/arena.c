/* tensor/arena.c — chunked bump allocator for activations.
 *
 * A training step allocates the same sequence of blocks every time, so after the first
 * step the chunks it needed already exist: arena_reset() only rewinds the cursors, and the
 * search below (first chunk from the current one with room) makes the same decisions again.
 * A request larger than the chunk size gets a chunk of its own size.
 *
 * Chunks of 2 MB or more are 2 MB aligned and advised as transparent huge pages: a SmolLM
 * step touches ~3.7 GB of activations, and with 4 KB pages the first step spent seconds in
 * page faults (and later steps in TLB misses). Where THP is off the advice is ignored. */
#include "tensor/graph_internal.h"

#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#define ARENA_ALIGN 64
#define HUGE_PAGE   ((size_t)2 << 20)

typedef struct Chunk {
    struct Chunk *next;
    char *data; /* ARENA_ALIGN-aligned */
    size_t cap;
    size_t used;
} Chunk;

struct Arena {
    Chunk *first, *last, *current;
    size_t chunk_bytes;
};

Arena *arena_create(size_t chunk_bytes) {
    Arena *a = calloc(1, sizeof *a);
    if (!a) return NULL;
    a->chunk_bytes = chunk_bytes ? chunk_bytes : (size_t)1 << 20;
    return a;
}

void *tensor_alloc_pages(size_t bytes) {
    size_t align = bytes >= HUGE_PAGE ? HUGE_PAGE : ARENA_ALIGN;
    if (bytes > SIZE_MAX - align) return NULL;
    size_t cap = (bytes + align - 1) / align * align;
    void *p = aligned_alloc(align, cap ? cap : align);
#ifdef MADV_HUGEPAGE
    if (p && align == HUGE_PAGE) madvise(p, cap, MADV_HUGEPAGE); /* advice only */
#endif
    return p;
}

static Chunk *chunk_new(size_t cap) {
    Chunk *c = calloc(1, sizeof *c);
    if (!c) return NULL;
    size_t align = cap >= HUGE_PAGE ? HUGE_PAGE : ARENA_ALIGN;
    if (cap > SIZE_MAX - align) {
        free(c);
        return NULL;
    }
    cap = (cap + align - 1) / align * align;
    c->data = aligned_alloc(align, cap);
    if (!c->data) {
        free(c);
        return NULL;
    }
#ifdef MADV_HUGEPAGE
    if (align == HUGE_PAGE) madvise(c->data, cap, MADV_HUGEPAGE); /* advice only */
#endif
    c->cap = cap;
    return c;
}

void *arena_alloc(Arena *a, size_t bytes) {
    if (!a) return NULL;
    if (bytes > SIZE_MAX - ARENA_ALIGN) return NULL;
    size_t need = (bytes + ARENA_ALIGN - 1) / ARENA_ALIGN * ARENA_ALIGN;
    if (need == 0) need = ARENA_ALIGN;
    for (Chunk *c = a->current; c; c = c->next) {
        if (c->cap - c->used >= need) {
            void *p = c->data + c->used;
            c->used += need;
            a->current = c;
            return p;
        }
    }
    Chunk *c = chunk_new(need > a->chunk_bytes ? need : a->chunk_bytes);
    if (!c) return NULL;
    if (a->last)
        a->last->next = c;
    else
        a->first = c;
    a->last = c;
    a->current = c;
    c->used = need;
    return c->data;
}

void arena_reset(Arena *a) {
    if (!a) return;
    for (Chunk *c = a->first; c; c = c->next) c->used = 0;
    a->current = a->first;
}

void tensor_release_pages(const void *p, size_t bytes) {
    long page = sysconf(_SC_PAGESIZE);
    if (!p || page <= 0) return;
    uintptr_t begin = ((uintptr_t)p + (uintptr_t)page - 1) / (uintptr_t)page * (uintptr_t)page;
    uintptr_t end = ((uintptr_t)p + bytes) / (uintptr_t)page * (uintptr_t)page;
    if (end > begin) madvise((void *)begin, end - begin, MADV_DONTNEED);
}

void arena_release_pages(Arena *a) {
    if (!a) return;
    for (Chunk *c = a->first; c; c = c->next) {
        c->used = 0;
        if (c->cap >= HUGE_PAGE) tensor_release_pages(c->data, c->cap);
    }
    a->current = a->first;
}

size_t arena_used(const Arena *a) {
    size_t n = 0;
    if (a)
        for (const Chunk *c = a->first; c; c = c->next) n += c->used;
    return n;
}

size_t arena_capacity(const Arena *a) {
    size_t n = 0;
    if (a)
        for (const Chunk *c = a->first; c; c = c->next) n += c->cap;
    return n;
}

void arena_destroy(Arena *a) {
    if (!a) return;
    Chunk *c = a->first;
    while (c) {
        Chunk *next = c->next;
        free(c->data);
        free(c);
        c = next;
    }
    free(a);
}
