/* data/tokenizer/added.c — added tokens (tokenizer.json "added_tokens"): their ids, and cutting
 * them out of text before anything else sees it. As in the library's AddedVocabulary, tokens
 * with normalized=false are found in the raw text, the others in each normalized piece (by
 * their own normalized form); the search is leftmost-longest over a byte trie, and a match is
 * then checked (single_word) and widened over whitespace (lstrip, rstrip) exactly as
 * AddedVocabulary::find_matches does, including its quirks: a rejected match still consumes its
 * text, and an rstrip may run into the next match. */
#include <stdlib.h>
#include <string.h>

#include "data/tokenizer/internal.h"

int added_add(Added *a, const Bpe *bpe, const AddedToken *t, char *err, size_t errlen) {
    if (t->len == 0) return 0; /* ignored by the library */
    int32_t idx = strmap_get(&a->by_content, t->content, (uint32_t)t->len);
    if (idx >= 0) { /* the same content again: the later flags win, special sticks */
        AddedToken *o = &a->tokens[idx];
        bool special = o->special || t->special;
        o->single_word = t->single_word, o->lstrip = t->lstrip, o->rstrip = t->rstrip;
        o->normalized = t->normalized, o->special = special;
        return 0;
    }
    if (a->n == a->cap) {
        size_t cap = a->cap ? a->cap * 2 : 16;
        AddedToken *v = realloc(a->tokens, cap * sizeof *v);
        if (!v) return tok_err(err, errlen, "out of memory"), -1;
        a->tokens = v;
        a->cap = cap;
    }
    AddedToken n = *t;
    n.content = pool_strndup(&a->pool, t->content, t->len);
    if (!n.content) return tok_err(err, errlen, "out of memory"), -1;
    int32_t id = strmap_get(&bpe->vocab, t->content, (uint32_t)t->len);
    if (id <
        0) { /* the next id after the model's vocabulary (its entry count, as in the library) */
        if (a->next_id < (int32_t)bpe->vocab_count) a->next_id = (int32_t)bpe->vocab_count;
        if (a->next_id == INT32_MAX) return tok_err(err, errlen, "too many added tokens"), -1;
        id = a->next_id++;
    }
    n.id = id;
    if (strmap_put(&a->by_content, n.content, (uint32_t)n.len, (int32_t)a->n))
        return tok_err(err, errlen, "out of memory"), -1;
    a->tokens[a->n++] = n;
    return 0;
}

static int32_t trie_child(const Trie *t, int32_t node, uint8_t b) {
    if (node < 0) return t->root_child[b];
    for (int32_t c = t->nodes[node].first_child; c >= 0; c = t->nodes[c].next_sibling)
        if (t->nodes[c].byte == b) return c;
    return -1;
}

static int trie_insert(Trie *t, const char *s, size_t len, int32_t token) {
    int32_t node = -1;
    for (size_t i = 0; i < len; i++) {
        uint8_t b = (uint8_t)s[i];
        int32_t c = trie_child(t, node, b);
        if (c < 0) {
            if (t->n == t->cap) {
                size_t cap = t->cap ? t->cap * 2 : 256;
                TrieNode *v = realloc(t->nodes, cap * sizeof *v);
                if (!v) return -1;
                t->nodes = v;
                t->cap = cap;
            }
            c = (int32_t)t->n++;
            t->nodes[c] = (TrieNode){-1, -1, -1, b};
            if (node < 0)
                t->root_child[b] = c;
            else {
                t->nodes[c].next_sibling = t->nodes[node].first_child;
                t->nodes[node].first_child = c;
            }
        }
        node = c;
    }
    if (node >= 0 && t->nodes[node].token < 0) t->nodes[node].token = token;
    return 0;
}

int added_build(Added *a, const Normalizer *norm, TokenizerScratch *sc, char *err, size_t errlen) {
    for (int b = 0; b < 256; b++) a->raw.root_child[b] = a->norm.root_child[b] = -1;
    int32_t max = -1;
    for (size_t i = 0; i < a->n; i++)
        if (a->tokens[i].id > max) max = a->tokens[i].id;
    a->n_ids = max + 1;
    a->by_id = malloc(((size_t)a->n_ids + 1) * sizeof *a->by_id);
    if (!a->by_id) return tok_err(err, errlen, "out of memory"), -1;
    for (int32_t i = 0; i < a->n_ids; i++) a->by_id[i] = -1;
    for (size_t i = 0; i < a->n; i++) a->by_id[a->tokens[i].id] = (int32_t)i;
    /* special tokens first: among equal patterns the first inserted is reported */
    for (int pass = 0; pass < 2; pass++) {
        for (size_t i = 0; i < a->n; i++) {
            const AddedToken *t = &a->tokens[i];
            if (t->special != (pass == 0)) continue;
            int rc;
            if (!t->normalized || !norm) {
                rc =
                    trie_insert(t->normalized ? &a->norm : &a->raw, t->content, t->len, (int32_t)i);
            } else {
                sc->arena.len = 0;
                if (buf_append(&sc->arena, t->content, t->len))
                    return tok_err(err, errlen, "out of memory"), -1;
                Piece p = {0, (uint32_t)t->len, -1, true, (uint32_t)t->len};
                if (normalizer_run(norm, sc, &p, err, errlen)) return -1;
                rc = trie_insert(&a->norm, sc->arena.p + p.off, p.len, (int32_t)i);
            }
            if (rc) return tok_err(err, errlen, "out of memory"), -1;
        }
    }
    return 0;
}

static bool ends_with_word(const char *s, size_t len) {
    if (!len) return false;
    size_t b = len - 1;
    while (b > 0 && ((uint8_t)s[b] & 0xC0) == 0x80) b--;
    uint32_t cp;
    utf8_next(s + b, len - b, &cp);
    return uni_is_word(cp);
}

static bool starts_with_word(const char *s, size_t len) {
    if (!len) return false;
    uint32_t cp;
    utf8_next(s, len, &cp);
    return uni_is_word(cp);
}

static size_t space_leftmost_at_end(const char *s, size_t len) {
    size_t z = len;
    while (z > 0) {
        size_t b = z - 1;
        while (b > 0 && ((uint8_t)s[b] & 0xC0) == 0x80) b--;
        uint32_t cp;
        utf8_next(s + b, z - b, &cp);
        if (!uni_is_whitespace(cp)) break;
        z = b;
    }
    return z;
}

static size_t space_rightmost_at_start(const char *s, size_t len) {
    size_t i = 0;
    while (i < len) {
        uint32_t cp;
        int n = utf8_next(s + i, len - i, &cp);
        if (!uni_is_whitespace(cp)) break;
        i += (size_t)n;
    }
    return i;
}

int added_split(const Added *a, const Trie *trie, TokenizerScratch *sc, const Piece *p,
                PieceList *out) {
    if (!trie->n) return p->len ? pieces_push(out, *p) : 0;
    const char *s = sc->arena.p + p->off;
    size_t len = p->len, start_offset = 0;
    for (size_t i = 0; i < len;) {
        int32_t node = trie->root_child[(uint8_t)s[i]], best = -1;
        size_t best_len = 0;
        for (size_t j = i; node >= 0;) {
            if (trie->nodes[node].token >= 0) best = trie->nodes[node].token, best_len = j + 1 - i;
            if (++j >= len) break;
            node = trie_child(trie, node, (uint8_t)s[j]);
        }
        if (best < 0) {
            i++;
            continue;
        }
        size_t start = i, stop = i + best_len;
        i = stop;
        const AddedToken *t = &a->tokens[best];
        if (t->single_word) {
            bool start_space = start == 0 || !ends_with_word(s, start);
            bool stop_space = stop == len || !starts_with_word(s + stop, len - stop);
            if (!start_space || !stop_space) continue;
        }
        if (t->lstrip) {
            size_t ns = space_leftmost_at_end(s, start);
            start = ns > start_offset ? ns : start_offset;
        }
        if (t->rstrip) stop += space_rightmost_at_start(s + stop, len - stop);
        if (start > stop) stop = start;
        if (start_offset < start && pieces_push(out, piece_slice(p, (uint32_t)start_offset,
                                                                 (uint32_t)(start - start_offset))))
            return -1;
        Piece tp = piece_slice(p, (uint32_t)start, (uint32_t)(stop - start));
        tp.id = t->id;
        if (pieces_push(out, tp)) return -1;
        start_offset = stop; /* the search goes on from the match's own end, as the library's */
    }
    if (start_offset < len &&
        pieces_push(out, piece_slice(p, (uint32_t)start_offset, (uint32_t)(len - start_offset))))
        return -1;
    return 0;
}

void added_free(Added *a) {
    free(a->tokens);
    strmap_free(&a->by_content);
    free(a->by_id);
    free(a->raw.nodes);
    free(a->norm.nodes);
    pool_free(&a->pool);
    memset(a, 0, sizeof *a);
}
