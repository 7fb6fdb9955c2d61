/* data/tokenizer/nf_align.c — where the zero-aligned prefix of a piece ends after NFC/NFD/
 * NFKC/NFKD, exactly as the Rust library computes alignments (see internal.h for why only the
 * prefix matters). The library's unicode-normalization-alignments crate labels each output
 * character: 0 for the first character of a decomposition, 1 for the others, and a composed
 * character gets the sum of its parts' labels minus one; canonical reordering moves labels
 * with their characters. NormalizedString::transform then walks the old text: a label <= 0
 * takes the alignment of the next old character (and skips -label more), a label 1 takes the
 * alignment of the byte before. This file replays that on the prefix (the text is normalized
 * by utf8proc, which gives the same characters). */
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

#include "data/tokenizer/internal.h"

typedef struct Labeled {
    int32_t cp;
    int change;
    uint8_t ccc;
} Labeled;

static uint8_t ccc_of(int32_t cp) {
    return (uint8_t)utf8proc_get_property(cp)->combining_class;
}

/* Primary composite of a + b, or -1. */
static int32_t compose_pair(int32_t a, int32_t b) {
    utf8proc_int32_t buf[2] = {a, b};
    utf8proc_ssize_t n = utf8proc_normalize_utf32(buf, 2, UTF8PROC_STABLE | UTF8PROC_COMPOSE);
    return n == 1 ? buf[0] : -1;
}

/* Decompositions: each input character's full decomposition, labelled, with each run of
 * non-starters stably sorted by combining class (labels move along). */
static size_t decompose(const int32_t *in, size_t n, bool compat, Labeled *out) {
    size_t m = 0, pending = 0;
    for (size_t i = 0; i < n; i++) {
        utf8proc_int32_t d[32];
        int lbc = 0;
        utf8proc_ssize_t k = utf8proc_decompose_char(
            in[i], d, 32, (utf8proc_option_t)(UTF8PROC_DECOMPOSE | (compat ? UTF8PROC_COMPAT : 0)),
            &lbc);
        if (k < 1 || k > 32) d[0] = in[i], k = 1;
        for (utf8proc_ssize_t j = 0; j < k; j++) {
            uint8_t c = ccc_of(d[j]);
            if (c == 0) { /* sort the pending run (insertion sort is stable) */
                for (size_t a = pending + 1; a < m; a++)
                    for (size_t b = a; b > pending && out[b - 1].ccc > out[b].ccc; b--) {
                        Labeled t = out[b];
                        out[b] = out[b - 1], out[b - 1] = t;
                    }
                pending = m;
            }
            out[m++] = (Labeled){d[j], j == 0 ? 0 : 1, c};
        }
    }
    for (size_t a = pending + 1; a < m; a++)
        for (size_t b = a; b > pending && out[b - 1].ccc > out[b].ccc; b--) {
            Labeled t = out[b];
            out[b] = out[b - 1], out[b - 1] = t;
        }
    return m;
}

/* Recompositions, the crate's state machine on the decomposed, labelled sequence. */
static size_t recompose(const Labeled *in, size_t n, Labeled *out) {
    size_t m = 0, nbuf = 0;
    Labeled *buf = malloc((n + 1) * sizeof *buf);
    if (!buf) return 0;
    bool have = false;
    Labeled k = {0};
    int last_ccc = -1;
    for (size_t i = 0; i < n; i++) {
        Labeled ch = in[i];
        if (!have) {
            if (ch.ccc != 0) {
                out[m++] = ch;
                continue;
            }
            k = ch, have = true;
            continue;
        }
        if (last_ccc < 0) {
            int32_t r = compose_pair(k.cp, ch.cp);
            if (r >= 0) {
                k = (Labeled){r, k.change + ch.change - 1, ccc_of(r)};
                continue;
            }
            if (ch.ccc == 0) {
                out[m++] = k;
                k = ch;
                continue;
            }
            buf[nbuf++] = ch;
            last_ccc = ch.ccc;
            continue;
        }
        if (last_ccc >= ch.ccc) { /* blocked */
            if (ch.ccc == 0) {
                out[m++] = k;
                for (size_t b = 0; b < nbuf; b++) out[m++] = buf[b];
                nbuf = 0;
                k = ch;
                last_ccc = -1;
                continue;
            }
            buf[nbuf++] = ch;
            last_ccc = ch.ccc;
            continue;
        }
        int32_t r = compose_pair(k.cp, ch.cp);
        if (r >= 0) {
            k = (Labeled){r, k.change + ch.change - 1, ccc_of(r)};
            continue;
        }
        buf[nbuf++] = ch;
        last_ccc = ch.ccc;
    }
    if (have) out[m++] = k;
    for (size_t b = 0; b < nbuf; b++) out[m++] = buf[b];
    free(buf);
    return m;
}

static int utf8_len_cp(int32_t cp) {
    return cp < 0x80 ? 1 : cp < 0x800 ? 2 : cp < 0x10000 ? 3 : 4;
}

uint32_t nf_zero_prefix(const char *s, size_t len, uint32_t zpl, char form) {
    if (!zpl) return 0;
    /* the prefix, and two more starters: enough for every label that reaches into it */
    size_t end = zpl < len ? zpl : len, starters = 0;
    while (end < len && starters < 3) {
        uint32_t cp;
        int n = utf8_next(s + end, len - end, &cp);
        if (ccc_of((int32_t)cp) == 0) starters++;
        if (starters < 3) end += (size_t)n;
    }
    size_t nin = 0;
    int32_t *in = malloc((end + 1) * sizeof *in);
    Labeled *d = malloc((end * 18 + 1) * sizeof *d), *c = malloc((end * 18 + 1) * sizeof *c);
    uint32_t r = 0;
    if (!in || !d || !c) goto done;
    for (size_t i = 0; i < end;) {
        uint32_t cp;
        i += (size_t)utf8_next(s + i, end - i, &cp);
        in[nin++] = (int32_t)cp;
    }
    bool compat = form == 'c' || form == 'd', comp = form == 'C' || form == 'c';
    size_t nd = decompose(in, nin, compat, d);
    const Labeled *outs = d;
    size_t nout = nd;
    if (comp) outs = c, nout = recompose(d, nd, c);
    /* transform: walk the old text (old byte b is zero-aligned iff b < zpl) */
    size_t offset = 0;
    for (size_t i = 0; i < nout; i++) {
        bool zero;
        if (outs[i].change > 0) {
            zero = offset < 1 || offset - 1 < zpl;
        } else {
            zero = offset < zpl;
            for (int skip = 0; skip < 1 - outs[i].change && offset < end; skip++) {
                uint32_t cp;
                offset += (size_t)utf8_next(s + offset, end - offset, &cp);
            }
        }
        if (!zero) break;
        r += (uint32_t)utf8_len_cp(outs[i].cp);
    }
done:
    free(in);
    free(d);
    free(c);
    return r;
}
