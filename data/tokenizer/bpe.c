/* data/tokenizer/bpe.c — the BPE model: a piece (one pre-tokenized word) becomes one symbol per
 * character (vocabulary ids; byte-fallback "<0xXX>" ids or the unk token for characters not in
 * the vocabulary), then pairs are merged lowest rank first, leftmost first among equal ranks,
 * with a min-heap of candidate pairs — the Rust library's Word::merge_all, stale heap entries
 * included (an entry is used only if its pair still makes the id it promised). Merges and the
 * vocabulary are hash tables; words already seen are answered from a per-thread cache. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "data/tokenizer/internal.h"

#define CACHE_MAX_WORD    256 /* longer words are not cached (as in the library) */
#define CACHE_MAX_ENTRIES 32768

static uint64_t mix64(uint64_t x) {
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ULL;
    return x ^ (x >> 33);
}

static const PairMapSlot *pair_get(const Bpe *bpe, int32_t a, int32_t b) {
    if (!bpe->merges_cap) return NULL;
    uint64_t key = (uint64_t)(uint32_t)a << 32 | (uint32_t)b;
    size_t mask = bpe->merges_cap - 1;
    for (size_t j = mix64(key) & mask;; j = (j + 1) & mask) {
        const PairMapSlot *s = &bpe->merges[j];
        if (s->key == key) return s;
        if (s->key == UINT64_MAX) return NULL;
    }
}

static int pair_put(Bpe *bpe, uint64_t key, int32_t rank, int32_t new_id) {
    if (bpe->merges_cap == 0 || (bpe->n_merges + 1) * 2 > bpe->merges_cap) {
        size_t cap = bpe->merges_cap ? bpe->merges_cap * 2 : 1024;
        PairMapSlot *slots = malloc(cap * sizeof *slots);
        if (!slots) return -1;
        for (size_t i = 0; i < cap; i++) slots[i].key = UINT64_MAX;
        for (size_t i = 0; i < bpe->merges_cap; i++) {
            if (bpe->merges[i].key == UINT64_MAX) continue;
            size_t j = mix64(bpe->merges[i].key) & (cap - 1);
            while (slots[j].key != UINT64_MAX) j = (j + 1) & (cap - 1);
            slots[j] = bpe->merges[i];
        }
        free(bpe->merges);
        bpe->merges = slots;
        bpe->merges_cap = cap;
    }
    size_t mask = bpe->merges_cap - 1;
    for (size_t j = mix64(key) & mask;; j = (j + 1) & mask) {
        PairMapSlot *s = &bpe->merges[j];
        if (s->key == key || s->key == UINT64_MAX) { /* a repeated pair keeps the later rank */
            *s = (PairMapSlot){key, rank, new_id};
            return 0;
        }
    }
}

int bpe_add_merge(Bpe *bpe, const char *a, size_t a_len, const char *b, size_t b_len, char *err,
                  size_t errlen) {
    size_t rank = bpe->n_merges;
    int32_t ia = strmap_get(&bpe->vocab, a, (uint32_t)a_len);
    int32_t ib = strmap_get(&bpe->vocab, b, (uint32_t)b_len);
    if (ia < 0 || ib < 0) {
        tok_err(err, errlen, "model.merges[%zu]: token \"%.100s\" is not in the vocabulary", rank,
                ia < 0 ? a : b);
        return -1;
    }
    size_t plen = bpe->prefix ? strlen(bpe->prefix) : 0;
    if (b_len < plen) {
        tok_err(err, errlen, "model.merges[%zu]: \"%.100s\" is shorter than the subword prefix",
                rank, b);
        return -1;
    }
    char stack[512];
    size_t n = a_len + b_len - plen;
    char *joined = n <= sizeof stack ? stack : malloc(n);
    if (!joined) return tok_err(err, errlen, "out of memory"), -1;
    memcpy(joined, a, a_len);
    memcpy(joined + a_len, b + plen, b_len - plen);
    int32_t inew = strmap_get(&bpe->vocab, joined, (uint32_t)n);
    if (joined != stack) free(joined);
    if (inew < 0) {
        tok_err(
            err, errlen,
            "model.merges[%zu]: the merge of \"%.100s\" and \"%.100s\" is not in the vocabulary",
            rank, a, b);
        return -1;
    }
    if ((rank & (rank - 1)) == 0) { /* grow the list at powers of two */
        size_t cap = rank ? rank * 2 : 1;
        int32_t(*l)[2] = realloc(bpe->merge_list, cap * sizeof *l);
        if (!l) return tok_err(err, errlen, "out of memory"), -1;
        bpe->merge_list = l;
    }
    uint64_t key = (uint64_t)(uint32_t)ia << 32 | (uint32_t)ib;
    if (pair_put(bpe, key, (int32_t)rank, inew)) return tok_err(err, errlen, "out of memory"), -1;
    bpe->merge_list[rank][0] = ia;
    bpe->merge_list[rank][1] = ib;
    bpe->n_merges++;
    return 0;
}

int bpe_finish(Bpe *bpe, char *err, size_t errlen) {
    int32_t max = -1;
    for (size_t i = 0; i < bpe->vocab.cap; i++)
        if (bpe->vocab.slots[i].key && bpe->vocab.slots[i].value > max)
            max = bpe->vocab.slots[i].value;
    bpe->n_ids = max + 1;
    bpe->vocab_count = bpe->vocab.n;
    bpe->id_str = calloc((size_t)bpe->n_ids + 1, sizeof *bpe->id_str);
    bpe->id_len = calloc((size_t)bpe->n_ids + 1, sizeof *bpe->id_len);
    if (!bpe->id_str || !bpe->id_len) return tok_err(err, errlen, "out of memory"), -1;
    for (size_t i = 0; i < bpe->vocab.cap; i++) {
        const StrMapEntry *e = &bpe->vocab.slots[i];
        if (!e->key) continue;
        /* two strings with one id: keep the lexicographically smaller one (deterministic) */
        const char *old = bpe->id_str[e->value];
        if (old && strcmp(old, e->key) < 0) continue;
        bpe->id_str[e->value] = e->key;
        bpe->id_len[e->value] = e->len;
    }
    for (int b = 0; b < 256; b++) {
        char name[8];
        snprintf(name, sizeof name, "<0x%02X>", b);
        bpe->byte_ids[b] = strmap_get(&bpe->vocab, name, 6);
    }
    return 0;
}

void bpe_free(Bpe *bpe) {
    strmap_free(&bpe->vocab);
    pool_free(&bpe->pool);
    free(bpe->id_str);
    free(bpe->id_len);
    free(bpe->merges);
    free(bpe->merge_list);
    free(bpe->unk_token);
    free(bpe->prefix);
    free(bpe->suffix);
    memset(bpe, 0, sizeof *bpe);
}

/* ---- the word cache (one per scratch, so per thread) ---- */
typedef struct CacheSlot {
    uint32_t hash, key_off, key_len, ids_off, n_ids; /* key_len 0 = empty */
} CacheSlot;
struct BpeCache {
    CacheSlot *slots;
    size_t cap, n;
    Buf keys;
    TokenizerIds ids;
};

BpeCache *bpe_cache_new(void) {
    BpeCache *c = calloc(1, sizeof *c);
    if (!c) return NULL;
    c->cap = 2 * CACHE_MAX_ENTRIES;
    c->slots = calloc(c->cap, sizeof *c->slots);
    if (!c->slots) {
        free(c);
        return NULL;
    }
    return c;
}

void bpe_cache_clear(BpeCache *c) {
    memset(c->slots, 0, c->cap * sizeof *c->slots);
    c->n = 0;
    c->keys.len = 0;
    c->ids.n = 0;
}

void bpe_cache_free(BpeCache *c) {
    if (!c) return;
    free(c->slots);
    buf_free(&c->keys);
    tokenizer_ids_free(&c->ids);
    free(c);
}

static CacheSlot *cache_find(BpeCache *c, const char *s, uint32_t len, uint32_t h) {
    size_t mask = c->cap - 1;
    for (size_t j = h & mask;; j = (j + 1) & mask) {
        CacheSlot *e = &c->slots[j];
        if (!e->key_len) return e;
        if (e->hash == h && e->key_len == len && memcmp(c->keys.p + e->key_off, s, len) == 0)
            return e;
    }
}

static void cache_put(BpeCache *c, CacheSlot *slot, const char *s, uint32_t len, uint32_t h,
                      const int32_t *ids, size_t n) {
    if (c->n >= CACHE_MAX_ENTRIES) { /* full: start over (the cache only saves time) */
        bpe_cache_clear(c);
        slot = cache_find(c, s, len, h);
    }
    uint32_t key_off = (uint32_t)c->keys.len, ids_off = (uint32_t)c->ids.n;
    if (buf_append(&c->keys, s, len)) return;
    for (size_t i = 0; i < n; i++)
        if (ids_push(&c->ids, ids[i])) return;
    *slot = (CacheSlot){h, key_off, len, ids_off, (uint32_t)n};
    c->n++;
}

/* ---- merging ---- */
typedef struct Symbol {
    int32_t c, prev, next;
    uint32_t len;
} Symbol;
typedef struct Cand {
    int32_t rank, new_id;
    uint32_t pos;
} Cand;

static bool cand_less(Cand a, Cand b) {
    return a.rank != b.rank ? a.rank < b.rank : a.pos < b.pos;
}

static void heap_push(Cand *h, size_t *n, Cand x) {
    size_t i = (*n)++;
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (!cand_less(x, h[parent])) break;
        h[i] = h[parent];
        i = parent;
    }
    h[i] = x;
}

static Cand heap_pop(Cand *h, size_t *n) {
    Cand top = h[0], x = h[--*n];
    size_t i = 0;
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        Cand best = x;
        if (l < *n && cand_less(h[l], best)) m = l, best = h[l];
        if (r < *n && cand_less(h[r], best)) m = r;
        if (m == i) break;
        h[i] = h[m];
        i = m;
    }
    if (*n) h[i] = x;
    return top;
}

/* The scratch's tmp2 holds symbols then candidates. */
static int merge_word(const Bpe *bpe, TokenizerScratch *sc, const char *w, size_t len,
                      TokenizerIds *out, char *err, size_t errlen) {
    Buf *mem = &sc->tmp2;
    mem->len = 0;
    /* at most one symbol per byte of each character's lookup string */
    size_t plen = bpe->prefix ? strlen(bpe->prefix) : 0,
           slen_sfx = bpe->suffix ? strlen(bpe->suffix) : 0;
    size_t max_syms = len * (1 + plen) + slen_sfx + 1;
    size_t need = max_syms * sizeof(Symbol) + (4 * max_syms + 4) * sizeof(Cand) + 16;
    if (buf_reserve(mem, need)) goto oom;
    Symbol *sym = (Symbol *)(void *)mem->p;
    Cand *heap = (Cand *)(void *)(mem->p + ((max_syms * sizeof(Symbol) + 15) & ~(size_t)15));
    size_t n = 0, nh = 0;
    int32_t unk_id = -1;
    uint32_t unk_len = 0;
    bool unk_pending = false;
    Buf *tmp = &sc->tmp;
#define ADD_SYM(ID, LEN)                                                                           \
    do {                                                                                           \
        sym[n] = (Symbol){(ID), (int32_t)n - 1, -1, (LEN)};                                        \
        if (n) sym[n - 1].next = (int32_t)n;                                                       \
        n++;                                                                                       \
    } while (0)
    for (size_t i = 0; i < len;) {
        uint32_t cp;
        size_t clen = (size_t)utf8_next(w + i, len - i, &cp);
        bool first = i == 0, last = i + clen == len;
        const char *s = w + i;
        size_t slen = clen;
        if ((!first && bpe->prefix) || (last && bpe->suffix)) {
            tmp->len = 0;
            if ((!first && bpe->prefix && buf_append(tmp, bpe->prefix, strlen(bpe->prefix))) ||
                buf_append(tmp, w + i, clen) ||
                (last && bpe->suffix && buf_append(tmp, bpe->suffix, strlen(bpe->suffix))))
                goto oom;
            s = tmp->p;
            slen = tmp->len;
        }
        int32_t id = strmap_get(&bpe->vocab, s, (uint32_t)slen);
        if (id >= 0) {
            if (unk_pending) {
                ADD_SYM(unk_id, unk_len);
                unk_pending = false;
            }
            ADD_SYM(id, (uint32_t)clen);
        } else {
            bool done = false;
            if (bpe->byte_fallback) {
                bool all = true;
                for (size_t k = 0; k < slen; k++) all = all && bpe->byte_ids[(uint8_t)s[k]] >= 0;
                if (all) {
                    for (size_t k = 0; k < slen; k++) ADD_SYM(bpe->byte_ids[(uint8_t)s[k]], 1);
                    done = true;
                }
            }
            if (!done && bpe->unk_token) {
                int32_t u =
                    strmap_get(&bpe->vocab, bpe->unk_token, (uint32_t)strlen(bpe->unk_token));
                if (u < 0) {
                    tok_err(err, errlen, "model.unk_token \"%.100s\" is not in the vocabulary",
                            bpe->unk_token);
                    return -1;
                }
                if (unk_pending && bpe->fuse_unk)
                    unk_len += (uint32_t)clen;
                else {
                    if (unk_pending) ADD_SYM(unk_id, unk_len);
                    unk_id = u, unk_len = (uint32_t)clen, unk_pending = true;
                }
            }
        }
        i += clen;
    }
    if (unk_pending) ADD_SYM(unk_id, unk_len);
#undef ADD_SYM
    for (size_t i = 0; i + 1 < n; i++) {
        const PairMapSlot *m = pair_get(bpe, sym[i].c, sym[i + 1].c);
        if (m) heap_push(heap, &nh, (Cand){m->rank, m->new_id, (uint32_t)i});
    }
    while (nh) {
        Cand top = heap_pop(heap, &nh);
        Symbol *cur = &sym[top.pos];
        if (cur->len == 0 || cur->next == -1) continue;
        int32_t next_pos = cur->next;
        Symbol right = sym[next_pos];
        const PairMapSlot *m = pair_get(bpe, cur->c, right.c);
        if (!m || m->new_id != top.new_id) continue;
        cur->c = top.new_id;
        cur->len += right.len;
        cur->next = right.next;
        sym[next_pos].len = 0;
        if (right.next > -1 && (size_t)right.next < n) sym[right.next].prev = (int32_t)top.pos;
        if (cur->prev >= 0) {
            const PairMapSlot *pm = pair_get(bpe, sym[cur->prev].c, cur->c);
            if (pm) heap_push(heap, &nh, (Cand){pm->rank, pm->new_id, (uint32_t)cur->prev});
        }
        if (cur->next >= 0 && (size_t)cur->next < n) {
            const PairMapSlot *nm = pair_get(bpe, cur->c, sym[cur->next].c);
            if (nm) heap_push(heap, &nh, (Cand){nm->rank, nm->new_id, top.pos});
        }
    }
    for (size_t i = 0; i < n; i++)
        if (sym[i].len && ids_push(out, sym[i].c)) goto oom;
    return 0;
oom:
    tok_err(err, errlen, "out of memory in BPE on a %zu-byte word", len);
    return -1;
}

int bpe_encode(const Bpe *bpe, TokenizerScratch *sc, const char *s, size_t len, TokenizerIds *out,
               char *err, size_t errlen) {
    if (!len) return 0;
    if (bpe->ignore_merges) {
        int32_t id = strmap_get(&bpe->vocab, s, (uint32_t)len);
        if (id >= 0) return ids_push(out, id) ? (tok_err(err, errlen, "out of memory"), -1) : 0;
    }
    BpeCache *c = sc->cache;
    CacheSlot *slot = NULL;
    uint32_t h = 0;
    if (c && len < CACHE_MAX_WORD) {
        h = str_hash(s, len);
        slot = cache_find(c, s, (uint32_t)len, h);
        if (slot->key_len) {
            for (uint32_t i = 0; i < slot->n_ids; i++)
                if (ids_push(out, c->ids.ids[slot->ids_off + i]))
                    return tok_err(err, errlen, "out of memory"), -1;
            return 0;
        }
    }
    size_t first = out->n;
    if (merge_word(bpe, sc, s, len, out, err, errlen)) return -1;
    if (slot)
        cache_put(c, slot, s, (uint32_t)len, h, out->ids ? out->ids + first : NULL, out->n - first);
    return 0;
}
