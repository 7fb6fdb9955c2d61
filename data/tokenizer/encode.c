/* data/tokenizer/encode.c — text -> ids, the library's encode_single_sequence: added tokens cut
 * from the raw text, each remaining piece normalized and searched for normalized added tokens,
 * pre-tokenized, and tokenized by BPE; then the post-processor. Also the per-thread scratch. */
#include <stdlib.h>
#include <string.h>

#include "data/tokenizer/internal.h"

TokenizerScratch *tokenizer_scratch_new(void) {
    TokenizerScratch *sc = calloc(1, sizeof *sc);
    if (!sc) return NULL;
    if (regex_scratch_init(&sc->rs) || !(sc->cache = bpe_cache_new())) {
        tokenizer_scratch_free(sc);
        return NULL;
    }
    return sc;
}

void tokenizer_scratch_free(TokenizerScratch *sc) {
    if (!sc) return;
    buf_free(&sc->arena);
    buf_free(&sc->tmp);
    buf_free(&sc->tmp2);
    free(sc->a.v);
    free(sc->b.v);
    free(sc->matches.v);
    free(sc->spans.v);
    regex_scratch_free(&sc->rs);
    bpe_cache_free(sc->cache);
    tokenizer_ids_free(&sc->ids_a);
    tokenizer_ids_free(&sc->ids_b);
    free(sc);
}

/* One sequence: its ids (no template tokens) appended to out. */
static int encode_sequence(const Tokenizer *t, TokenizerScratch *sc, const char *text, size_t len,
                           TokenizerIds *out, char *err, size_t errlen) {
    size_t bad = utf8_valid_prefix(text, len);
    if (bad < len) {
        tok_err(err, errlen, "text is not valid UTF-8 (byte %zu of %zu)", bad, len);
        return -1;
    }
    if (len > UINT32_MAX / 8) {
        tok_err(err, errlen, "text of %zu bytes is too long to encode at once", len);
        return -1;
    }
    sc->tok = t;
    if (sc->cache_owner != t->serial) { /* the scratch served another tokenizer before */
        bpe_cache_clear(sc->cache);
        sc->cache_owner = t->serial;
    }
    sc->arena.len = 0;
    if (buf_append(&sc->arena, text, len)) goto oom;
    uint32_t first_len = 0;
    if (len) {
        uint32_t cp;
        first_len = (uint32_t)utf8_next(text, len, &cp);
    }
    Piece whole = {0, (uint32_t)len, -1, true, first_len};
    PieceList *list = &sc->a, *other = &sc->b;
    list->n = 0;
    if (added_split(&t->added, &t->added.raw, sc, &whole, list)) goto oom;
    /* normalize the text pieces and cut out the normalized added tokens */
    other->n = 0;
    for (size_t i = 0; i < list->n; i++) {
        Piece p = list->v[i];
        if (p.id >= 0) {
            if (pieces_push(other, p)) goto oom;
            continue;
        }
        if (t->normalizer && normalizer_run(t->normalizer, sc, &p, err, errlen)) return -1;
        if (p.len && added_split(&t->added, &t->added.norm, sc, &p, other)) goto oom;
    }
    list = other;
    if (t->pretok && pretokenizer_run(t->pretok, sc, &list, err, errlen)) return -1;
    for (size_t i = 0; i < list->n; i++) {
        const Piece *p = &list->v[i];
        if (p->id >= 0) {
            if (ids_push(out, p->id)) goto oom;
        } else if (bpe_encode(&t->bpe, sc, sc->arena.p + p->off, p->len, out, err, errlen)) {
            return -1;
        }
    }
    return 0;
oom:
    tok_err(err, errlen, "out of memory encoding a %zu-byte text", len);
    return -1;
}

int tokenizer_encode(const Tokenizer *t, TokenizerScratch *sc, const char *text, size_t len,
                     bool add_special_tokens, TokenizerIds *out, char *err, size_t errlen) {
    return tokenizer_encode_pair(t, sc, text, len, NULL, 0, add_special_tokens, out, err, errlen);
}

int tokenizer_encode_pair(const Tokenizer *t, TokenizerScratch *sc, const char *a, size_t a_len,
                          const char *b, size_t b_len, bool add_special_tokens, TokenizerIds *out,
                          char *err, size_t errlen) {
    if (err && errlen) err[0] = 0;
    sc->ids_a.n = sc->ids_b.n = 0;
    if (encode_sequence(t, sc, a, a_len, &sc->ids_a, err, errlen)) return -1;
    if (b && encode_sequence(t, sc, b, b_len, &sc->ids_b, err, errlen)) return -1;
    if (post_apply(&t->post, &sc->ids_a, b ? &sc->ids_b : NULL, add_special_tokens, out)) {
        tok_err(err, errlen, "out of memory");
        return -1;
    }
    return 0;
}
