/* tensor/arena.c — chunked bump allocator for activations.
 *
 * A training step allocates the same sequence of blocks every time, so after the first
 * step the chunks it needed already exist: arena_reset() only rewinds the cursors, and the
 * search below (first chunk from the current one with room) makes the same decisions again.
 * A request larger than the chunk size gets a chunk of its own size. */
#include "tensor/tensor.h"

#include <stdlib.h>

#define ARENA_ALIGN 64

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

static Chunk *chunk_new(size_t cap) {
    Chunk *c = calloc(1, sizeof *c);
    if (!c) return NULL;
    cap = (cap + ARENA_ALIGN - 1) / ARENA_ALIGN * ARENA_ALIGN;
    c->data = aligned_alloc(ARENA_ALIGN, cap);
    if (!c->data) {
        free(c);
        return NULL;
    }
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
