/* data/tokenizer/pretokenize.c — pre-tokenizers: Split, ByteLevel, Metaspace, Digits,
 * Whitespace, WhitespaceSplit, Punctuation, Sequence. Each cuts every text piece into
 * smaller pieces; the cut points come as *spans* (start, end, is_match) covering the piece, as
 * the Rust library's Pattern::find_matches gives them, and the split behaviour (Isolated,
 * Removed, MergedWithPrevious, MergedWithNext, Contiguous) decides which spans are kept and
 * which are glued to a neighbour. Empty pieces are dropped, as the library drops them. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "data/tokenizer/internal.h"

const char *const BYTE_LEVEL_GPT2_PATTERN =
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";

/* GPT-2 bytes_to_unicode: printable Latin-1 bytes map to themselves, the others to 256+n. */
uint32_t byte_level_char(uint8_t b) {
    if ((b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || b >= 0xAE) return b;
    uint32_t n = 0;
    for (uint32_t x = 0; x < b; x++)
        if (!((x >= '!' && x <= '~') || (x >= 0xA1 && x <= 0xAC) || x >= 0xAE)) n++;
    return 256 + n;
}

static int16_t byte_level_inverse[324];

static void byte_level_init(void) {
    for (int i = 0; i < 324; i++) byte_level_inverse[i] = -1;
    for (int b = 0; b < 256; b++) byte_level_inverse[byte_level_char((uint8_t)b)] = (int16_t)b;
}

int byte_level_byte(uint32_t cp) {
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, byte_level_init);
    return cp < 324 ? byte_level_inverse[cp] : -1;
}

static int push_span(U32Vec *sp, uint32_t s, uint32_t e, bool match) {
    return u32vec_push(sp, s) || u32vec_push(sp, e) || u32vec_push(sp, match);
}

/* Spans from sc->matches (start, end pairs). */
static int spans_from_matches(TokenizerScratch *sc, uint32_t len, bool invert) {
    U32Vec *sp = &sc->spans, *m = &sc->matches;
    sp->n = 0;
    if (len == 0) return push_span(sp, 0, 0, invert);
    uint32_t prev = 0;
    for (size_t i = 0; i < m->n; i += 2) {
        if (prev != m->v[i] && push_span(sp, prev, m->v[i], invert)) return -1;
        if (push_span(sp, m->v[i], m->v[i + 1], !invert)) return -1;
        prev = m->v[i + 1];
    }
    if (prev != len && push_span(sp, prev, len, invert)) return -1;
    return 0;
}

typedef bool (*CharPred)(uint32_t cp);

static int matches_from_pred(TokenizerScratch *sc, const char *s, uint32_t len, CharPred pred) {
    sc->matches.n = 0;
    for (uint32_t i = 0; i < len;) {
        uint32_t cp;
        int n = utf8_next(s + i, len - i, &cp);
        if (pred(cp) &&
            (u32vec_push(&sc->matches, i) || u32vec_push(&sc->matches, i + (uint32_t)n)))
            return -1;
        i += (uint32_t)n;
    }
    return 0;
}

/* Applies the behaviour to sc->spans of piece p, appending the kept pieces to out. */
static int split_spans(TokenizerScratch *sc, const Piece *p, SplitBehavior how, PieceList *out) {
    U32Vec *sp = &sc->spans;
    size_t n = sp->n / 3;
    uint32_t *v = sp->v;
    /* merged spans are written over the input in place: (start, end) */
    size_t k = 0;
    bool prev_match = false;
    if (how == SPLIT_MERGED_WITH_NEXT) {
        /* walk backwards, gluing a match to the span after it; k counts from the end */
        size_t w = n;
        for (size_t i = n; i-- > 0;) {
            uint32_t s = v[3 * i], e = v[3 * i + 1];
            bool m = v[3 * i + 2];
            if (m && !prev_match && w < n)
                v[3 * w] = s;
            else {
                w--;
                v[3 * w] = s, v[3 * w + 1] = e, v[3 * w + 2] = 0;
            }
            prev_match = m;
        }
        for (size_t i = w; i < n; i++) {
            uint32_t s = v[3 * i], e = v[3 * i + 1];
            if (e > s && pieces_push(out, piece_slice(p, s, e - s))) return -1;
        }
        return 0;
    }
    for (size_t i = 0; i < n; i++) {
        uint32_t s = v[3 * i], e = v[3 * i + 1];
        bool m = v[3 * i + 2];
        bool glue = false;
        if (how == SPLIT_CONTIGUOUS)
            glue = m == prev_match && k > 0;
        else if (how == SPLIT_MERGED_WITH_PREVIOUS)
            glue = m && !prev_match && k > 0;
        if (glue)
            v[3 * (k - 1) + 1] = e;
        else if (!(how == SPLIT_REMOVED && m)) {
            v[3 * k] = s, v[3 * k + 1] = e, v[3 * k + 2] = 0;
            k++;
        }
        prev_match = m;
    }
    for (size_t i = 0; i < k; i++) {
        uint32_t s = v[3 * i], e = v[3 * i + 1];
        if (e > s && pieces_push(out, piece_slice(p, s, e - s))) return -1;
    }
    return 0;
}

/* Whitespace: runs of \w, and runs of characters that are neither \w nor whitespace. */
static int split_whitespace(TokenizerScratch *sc, const Piece *p, PieceList *out) {
    const char *s = sc->arena.p + p->off;
    uint32_t i = 0, len = p->len;
    while (i < len) {
        uint32_t cp;
        int n = utf8_next(s + i, len - i, &cp);
        int cls = uni_is_word(cp) ? 1 : uni_is_whitespace(cp) ? 0 : 2;
        if (!cls) {
            i += (uint32_t)n;
            continue;
        }
        uint32_t j = i + (uint32_t)n;
        while (j < len) {
            int m = utf8_next(s + j, len - j, &cp);
            int c2 = uni_is_word(cp) ? 1 : uni_is_whitespace(cp) ? 0 : 2;
            if (c2 != cls) break;
            j += (uint32_t)m;
        }
        if (pieces_push(out, piece_slice(p, i, j - i))) return -1;
        i = j;
    }
    return 0;
}

/* Prepends text to piece p (a new string in the arena); inserted bytes share the alignment of
 * the first character. */
static int piece_prepend(TokenizerScratch *sc, Piece *p, const char *text, size_t n) {
    Buf *t = &sc->tmp;
    t->len = 0;
    if (buf_append(t, text, n) || buf_append(t, sc->arena.p + p->off, p->len)) return -1;
    uint32_t off = (uint32_t)sc->arena.len;
    if (buf_append(&sc->arena, t->p, t->len)) return -1;
    p->off = off;
    p->len = (uint32_t)t->len;
    if (p->zpl) p->zpl += (uint32_t)n;
    return 0;
}

/* Maps every byte of p to its GPT-2 character. */
static int byte_level_map(TokenizerScratch *sc, Piece *p) {
    Buf *t = &sc->tmp;
    t->len = 0;
    const uint8_t *s = (const uint8_t *)sc->arena.p + p->off;
    uint32_t zpl = 0;
    if (buf_reserve(t, (size_t)p->len * 2 + 1)) return -1;
    for (uint32_t i = 0; i < p->len; i++) {
        size_t before = t->len;
        uint32_t c = byte_level_char(s[i]);
        if (c < 0x80)
            t->p[t->len++] = (char)c;
        else {
            t->p[t->len++] = (char)(0xC0 | (c >> 6));
            t->p[t->len++] = (char)(0x80 | (c & 0x3F));
        }
        if (i < p->zpl) zpl += (uint32_t)(t->len - before);
    }
    uint32_t off = (uint32_t)sc->arena.len;
    if (buf_append(&sc->arena, t->p, t->len)) return -1;
    p->off = off;
    p->len = (uint32_t)t->len;
    p->zpl = zpl;
    return 0;
}

/* Metaspace: ' ' -> replacement, prepend per scheme, then split before each replacement. */
static int metaspace(const PreTokenizer *pt, TokenizerScratch *sc, Piece *p, PieceList *out) {
    Buf *t = &sc->tmp;
    t->len = 0;
    const char *s = sc->arena.p + p->off;
    size_t rl = strlen(pt->replacement_utf8);
    uint32_t zpl = 0;
    bool changed = false;
    for (uint32_t i = 0; i < p->len; i++) {
        size_t before = t->len;
        if (s[i] == ' ') {
            if (buf_append(t, pt->replacement_utf8, rl)) return -1;
            changed = true;
        } else if (buf_append(t, s + i, 1))
            return -1;
        if (i < p->zpl) zpl += (uint32_t)(t->len - before);
    }
    if (changed) {
        uint32_t off = (uint32_t)sc->arena.len;
        if (buf_append(&sc->arena, t->p, t->len)) return -1;
        p->off = off;
        p->len = (uint32_t)t->len;
        p->zpl = zpl;
    }
    bool starts = p->len >= rl && memcmp(sc->arena.p + p->off, pt->replacement_utf8, rl) == 0;
    if (!starts && p->len &&
        (pt->prepend_scheme == PREPEND_ALWAYS ||
         (pt->prepend_scheme == PREPEND_FIRST && p->at_start))) {
        if (piece_prepend(sc, p, pt->replacement_utf8, rl)) return -1;
    }
    if (!pt->split) return pieces_push(out, *p);
    sc->matches.n = 0;
    const char *q = sc->arena.p + p->off;
    for (uint32_t i = 0; i + rl <= p->len;) {
        if (memcmp(q + i, pt->replacement_utf8, rl) == 0) {
            if (u32vec_push(&sc->matches, i) || u32vec_push(&sc->matches, i + (uint32_t)rl))
                return -1;
            i += (uint32_t)rl;
        } else {
            uint32_t cp;
            i += (uint32_t)utf8_next(q + i, p->len - i, &cp);
        }
    }
    if (spans_from_matches(sc, p->len, false)) return -1;
    return split_spans(sc, p, SPLIT_MERGED_WITH_NEXT, out);
}

static int run_piece(const PreTokenizer *pt, const Tokenizer *tok, TokenizerScratch *sc, Piece p,
                     PieceList *out, char *err, size_t errlen) {
    const char *s = sc->arena.p + p.off;
    switch (pt->kind) {
    case PRE_SPLIT:
        sc->matches.n = 0;
        if (regex_find_all(pt->re, &sc->rs, s, p.len, &sc->matches, err, errlen)) return -1;
        if (spans_from_matches(sc, p.len, pt->invert)) return -2;
        return split_spans(sc, &p, pt->behavior, out) ? -2 : 0;
    case PRE_DIGITS:
        if (matches_from_pred(sc, s, p.len, uni_is_numeric) || spans_from_matches(sc, p.len, false))
            return -2;
        return split_spans(sc, &p, pt->individual_digits ? SPLIT_ISOLATED : SPLIT_CONTIGUOUS, out)
                   ? -2
                   : 0;
    case PRE_PUNCTUATION:
        if (matches_from_pred(sc, s, p.len, uni_is_punctuation) ||
            spans_from_matches(sc, p.len, false))
            return -2;
        return split_spans(sc, &p, pt->behavior, out) ? -2 : 0;
    case PRE_WHITESPACE_SPLIT:
        if (matches_from_pred(sc, s, p.len, uni_is_whitespace) ||
            spans_from_matches(sc, p.len, false))
            return -2;
        return split_spans(sc, &p, SPLIT_REMOVED, out) ? -2 : 0;
    case PRE_WHITESPACE:
        return split_whitespace(sc, &p, out) ? -2 : 0;
    case PRE_METASPACE:
        return metaspace(pt, sc, &p, out) ? -2 : 0;
    case PRE_BYTE_LEVEL: {
        if (pt->add_prefix_space && s[0] != ' ' && piece_prepend(sc, &p, " ", 1)) return -2;
        size_t first = out->n;
        if (pt->use_regex) {
            sc->matches.n = 0;
            if (regex_find_all(tok->gpt2, &sc->rs, sc->arena.p + p.off, p.len, &sc->matches, err,
                               errlen))
                return -1;
            if (spans_from_matches(sc, p.len, false) || split_spans(sc, &p, SPLIT_ISOLATED, out))
                return -2;
        } else if (pieces_push(out, p)) {
            return -2;
        }
        for (size_t i = first; i < out->n; i++)
            if (byte_level_map(sc, &out->v[i])) return -2;
        return 0;
    }
    case PRE_SEQUENCE:
        break;
    }
    return 0;
}

int pretokenizer_run(const PreTokenizer *pt, TokenizerScratch *sc, PieceList **list, char *err,
                     size_t errlen) {
    if (pt->kind == PRE_SEQUENCE) {
        for (size_t i = 0; i < pt->n_items; i++)
            if (pretokenizer_run(&pt->items[i], sc, list, err, errlen)) return -1;
        return 0;
    }
    PieceList *in = *list, *out = in == &sc->a ? &sc->b : &sc->a;
    out->n = 0;
    for (size_t i = 0; i < in->n; i++) {
        if (in->v[i].id >= 0 || in->v[i].len == 0) {
            if (in->v[i].len && pieces_push(out, in->v[i])) goto oom;
            continue;
        }
        int rc = run_piece(pt, sc->tok, sc, in->v[i], out, err, errlen);
        if (rc == -1) return -1;
        if (rc == -2) goto oom;
    }
    *list = out;
    return 0;
oom:
    tok_err(err, errlen, "out of memory pre-tokenizing");
    return -1;
}

void pretokenizer_free(PreTokenizer *pt) {
    if (!pt) return;
    for (size_t i = 0; i < pt->n_items; i++) pretokenizer_free(&pt->items[i]);
    free(pt->items);
    regex_free(pt->re);
    memset(pt, 0, sizeof *pt);
}
