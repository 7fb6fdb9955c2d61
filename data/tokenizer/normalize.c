/* data/tokenizer/normalize.c — normalizers: NFC NFD NFKC NFKD Lowercase StripAccents Prepend
 * Replace Strip Sequence, applied to one piece at a time (the Rust library normalizes each
 * piece left between added tokens, not the whole text: Prepend adds its text to every piece).
 * Each step also carries the piece's zpl forward (see internal.h) the way the library's
 * alignments move: inserted text takes the alignment of the character before it, or of the
 * first character when prepended. */
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

#include "data/tokenizer/internal.h"

/* Replaces p's text by sc->tmp (appended to the arena). */
static int commit(TokenizerScratch *sc, Piece *p, const Buf *text) {
    uint32_t off = (uint32_t)sc->arena.len;
    if (sc->arena.len + text->len > UINT32_MAX || buf_append(&sc->arena, text->p, text->len))
        return -1;
    p->off = off;
    p->len = (uint32_t)text->len;
    return 0;
}

static bool is_ascii(const char *s, size_t n) {
    for (size_t i = 0; i < n; i++)
        if ((uint8_t)s[i] >= 0x80) return false;
    return true;
}

/* Length of the leading zero-aligned bytes after normalizing: the prefix up to the next
 * starter after zpl, normalized on its own. */
static uint32_t zpl_after_nf(const char *s, size_t len, uint32_t zpl, char form) {
    if (!zpl) return 0;
    size_t end = zpl;
    while (end < len) {
        uint32_t cp;
        int n = utf8_next(s + end, len - end, &cp);
        const utf8proc_property_t *prop = utf8proc_get_property((utf8proc_int32_t)cp);
        if (prop->combining_class == 0 && !uni_is_mark(cp)) break;
        end += (size_t)n;
    }
    Buf b = {0};
    uint32_t r = zpl;
    if (uni_normalize(s, end, form, &b) == 0) r = (uint32_t)b.len;
    buf_free(&b);
    return r;
}

static int run_one(const Normalizer *n, TokenizerScratch *sc, Piece *p, char *err, size_t errlen) {
    Buf *out = &sc->tmp;
    out->len = 0;
    const char *s = sc->arena.p + p->off;
    size_t len = p->len;
    switch (n->kind) {
    case NORM_NFC:
    case NORM_NFD:
    case NORM_NFKC:
    case NORM_NFKD: {
        if (is_ascii(s, len)) return 0;
        char form = n->kind == NORM_NFC    ? 'C'
                    : n->kind == NORM_NFD  ? 'D'
                    : n->kind == NORM_NFKC ? 'c'
                                           : 'd';
        if (uni_normalize(s, len, form, out)) break;
        p->zpl = zpl_after_nf(s, len, p->zpl, form);
        return commit(sc, p, out);
    }
    case NORM_LOWERCASE: {
        if (uni_lowercase(s, len, out)) break;
        if (p->zpl) {
            Buf pre = {0};
            if (uni_lowercase(s, p->zpl < len ? p->zpl : len, &pre) == 0)
                p->zpl = (uint32_t)pre.len;
            buf_free(&pre);
        }
        return commit(sc, p, out);
    }
    case NORM_STRIP_ACCENTS: {
        uint32_t zpl = 0;
        bool zero = true;
        for (size_t i = 0; i < len;) {
            uint32_t cp;
            int k = utf8_next(s + i, len - i, &cp);
            if (!uni_is_mark(cp)) {
                if (buf_append(out, s + i, (size_t)k)) goto oom;
                if (zero && i < p->zpl)
                    zpl += (uint32_t)k;
                else
                    zero = false;
            }
            i += (size_t)k;
        }
        p->zpl = zpl;
        return commit(sc, p, out);
    }
    case NORM_PREPEND:
        if (!len) return 0;
        if (buf_append(out, n->text, n->text_len) || buf_append(out, s, len)) break;
        if (p->zpl) p->zpl += (uint32_t)n->text_len;
        return commit(sc, p, out);
    case NORM_REPLACE: {
        if (!len) return 0; /* the library finds no match, not even an empty one, in "" */
        U32Vec *m = &sc->matches;
        m->n = 0;
        if (regex_find_all(n->re, &sc->rs, s, len, m, err, errlen)) return -1;
        if (!m->n) return 0;
        size_t last = 0;
        uint32_t zpl = 0;
        bool zero = true;
        for (size_t i = 0; i < m->n; i += 2) {
            size_t ms = m->v[i], me = m->v[i + 1];
            if (buf_append(out, s + last, ms - last)) goto oom;
            for (size_t b = last; b < ms && zero; b++) {
                if (b < p->zpl)
                    zpl++;
                else
                    zero = false;
            }
            if (buf_append(out, n->text, n->text_len)) goto oom;
            if (zero) {
                if (me == 0 || me - 1 < p->zpl)
                    zpl += (uint32_t)n->text_len;
                else if (n->text_len)
                    zero = false;
            }
            last = me;
        }
        if (buf_append(out, s + last, len - last)) goto oom;
        for (size_t b = last; b < len && zero; b++) {
            if (b < p->zpl)
                zpl++;
            else
                zero = false;
        }
        p->zpl = zpl;
        return commit(sc, p, out);
    }
    case NORM_STRIP: {
        size_t a = 0, z = len;
        if (n->left) {
            while (a < len) {
                uint32_t cp;
                int k = utf8_next(s + a, len - a, &cp);
                if (!uni_is_whitespace(cp)) break;
                a += (size_t)k;
            }
        }
        if (n->right) {
            while (z > a) {
                size_t b = z - 1;
                while (b > a && ((uint8_t)s[b] & 0xC0) == 0x80) b--;
                uint32_t cp;
                utf8_next(s + b, z - b, &cp);
                if (!uni_is_whitespace(cp)) break;
                z = b;
            }
        }
        if (a == 0 && z == len) return 0;
        uint32_t zpl = p->zpl > a ? p->zpl - (uint32_t)a : 0;
        if (zpl > z - a) zpl = (uint32_t)(z - a);
        p->off += (uint32_t)a;
        p->len = (uint32_t)(z - a);
        p->zpl = zpl;
        return 0;
    }
    case NORM_SEQUENCE:
        for (size_t i = 0; i < n->n_items; i++)
            if (run_one(&n->items[i], sc, p, err, errlen)) return -1;
        return 0;
    }
oom:
    tok_err(err, errlen, "out of memory normalizing a %zu-byte piece", len);
    return -1;
}

int normalizer_run(const Normalizer *n, TokenizerScratch *sc, Piece *p, char *err, size_t errlen) {
    if (run_one(n, sc, p, err, errlen)) {
        if (err && !err[0]) tok_err(err, errlen, "out of memory normalizing");
        return -1;
    }
    return 0;
}

void normalizer_free(Normalizer *n) {
    if (!n) return;
    for (size_t i = 0; i < n->n_items; i++) normalizer_free(&n->items[i]);
    free(n->items);
    free(n->text);
    regex_free(n->re);
    memset(n, 0, sizeof *n);
}
