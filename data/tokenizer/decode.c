/* data/tokenizer/decode.c — ids -> text. Ids become token strings (added token content first,
 * then the model's), the decoder chain rewrites the list of strings (ByteLevel, Metaspace,
 * Replace, ByteFallback, Fuse, Strip, BPEDecoder, Sequence; each as its decode_chain in the Rust
 * library), and the strings are concatenated; with no decoder they are joined by spaces. Also the
 * streaming decoder, the library's DecodeStream step by step. */
#include <stdlib.h>
#include <string.h>

#include "data/tokenizer/internal.h"

/* A list of strings: (offset, length) pairs into data. */
typedef struct TokList {
    Buf data;
    U32Vec span;
} TokList;

static int tl_push(TokList *l, const char *s, size_t n) {
    uint32_t off = (uint32_t)l->data.len;
    if (buf_append(&l->data, s, n)) return -1;
    return u32vec_push(&l->span, off) || u32vec_push(&l->span, (uint32_t)n);
}
static size_t tl_n(const TokList *l) {
    return l->span.n / 2;
}
static const char *tl_s(const TokList *l, size_t i) {
    return l->data.p + l->span.v[2 * i];
}
static size_t tl_len(const TokList *l, size_t i) {
    return l->span.v[2 * i + 1];
}
static void tl_clear(TokList *l) {
    l->data.len = 0, l->span.n = 0;
}
static void tl_free(TokList *l) {
    buf_free(&l->data);
    free(l->span.v);
}

static int hexval(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* "<0xXX>" -> byte (u8::from_str_radix, which also takes "+X"), else -1. */
static int byte_token(const char *s, size_t n) {
    if (n != 6 || memcmp(s, "<0x", 3) != 0 || s[5] != '>') return -1;
    if (s[3] == '+') return hexval(s[4]);
    int hi = hexval(s[3]), lo = hexval(s[4]);
    return hi < 0 || lo < 0 ? -1 : hi * 16 + lo;
}

static int flush_bytes(TokList *out, Buf *bytes) {
    if (!bytes->len) return 0;
    int rc = 0;
    if (utf8_valid_prefix(bytes->p, bytes->len) == bytes->len)
        rc = tl_push(out, bytes->p, bytes->len);
    else
        for (size_t i = 0; i < bytes->len && !rc; i++) rc = tl_push(out, "\xEF\xBF\xBD", 3);
    bytes->len = 0;
    return rc;
}

static int run(const Decoder *d, const Tokenizer *t, TokList *in, TokList *out, RegexScratch *rs,
               Buf *tmp, char *err, size_t errlen);

static int run_one(const Decoder *d, TokList *in, TokList *out, RegexScratch *rs, Buf *tmp,
                   char *err, size_t errlen) {
    size_t n = tl_n(in);
    tmp->len = 0;
    switch (d->kind) {
    case DEC_BYTE_LEVEL: {
        Buf bytes = {0};
        int rc = 0;
        for (size_t i = 0; i < n && !rc; i++) {
            const char *s = tl_s(in, i);
            size_t len = tl_len(in, i), start = bytes.len;
            bool all = true;
            for (size_t k = 0; k < len && all;) {
                uint32_t cp;
                int m = utf8_next(s + k, len - k, &cp);
                int b = byte_level_byte(cp);
                if (b < 0)
                    all = false;
                else {
                    char c = (char)b;
                    rc = rc || buf_append(&bytes, &c, 1);
                }
                k += (size_t)m;
            }
            if (!all) {
                bytes.len = start;
                rc = rc || buf_append(&bytes, s, len);
            }
        }
        rc = rc || utf8_append_lossy(tmp, bytes.p ? bytes.p : "", bytes.len) ||
             tl_push(out, tmp->p ? tmp->p : "", tmp->len);
        buf_free(&bytes);
        return rc;
    }
    case DEC_METASPACE:
        for (size_t i = 0; i < n; i++) {
            const char *s = tl_s(in, i);
            size_t len = tl_len(in, i);
            tmp->len = 0;
            for (size_t k = 0; k < len;) {
                uint32_t cp;
                int m = utf8_next(s + k, len - k, &cp);
                int rc = 0;
                if (cp == d->replacement) {
                    if (!(i == 0 && d->prepend_scheme != PREPEND_NEVER))
                        rc = buf_append(tmp, " ", 1);
                } else {
                    rc = buf_append(tmp, s + k, (size_t)m);
                }
                if (rc) return -1;
                k += (size_t)m;
            }
            if (tl_push(out, tmp->p ? tmp->p : "", tmp->len)) return -1;
        }
        return 0;
    case DEC_REPLACE: {
        U32Vec m = {0};
        int rc = 0;
        for (size_t i = 0; i < n && !rc; i++) {
            const char *s = tl_s(in, i);
            size_t len = tl_len(in, i), last = 0;
            m.n = 0;
            tmp->len = 0;
            if (!len) { /* no match, not even an empty one, in "" (as the library) */
                rc = tl_push(out, "", 0);
                continue;
            }
            if (d->re->code && !rs->md && regex_scratch_init(rs)) rc = -1;
            if (rc || regex_find_all(d->re, rs, s, len, &m, err, errlen)) {
                if (rc) break;
                free(m.v);
                return -2;
            }
            for (size_t k = 0; k < m.n && !rc; k += 2) {
                rc = buf_append(tmp, s + last, m.v[k] - last) ||
                     buf_append(tmp, d->content, d->content_len);
                last = m.v[k + 1];
            }
            rc = rc || buf_append(tmp, s + last, len - last) ||
                 tl_push(out, tmp->p ? tmp->p : "", tmp->len);
        }
        free(m.v);
        return rc;
    }
    case DEC_BYTE_FALLBACK:
        for (size_t i = 0; i < n; i++) {
            int b = byte_token(tl_s(in, i), tl_len(in, i));
            if (b >= 0) {
                char c = (char)b;
                if (buf_append(tmp, &c, 1)) return -1;
                continue;
            }
            if (flush_bytes(out, tmp) || tl_push(out, tl_s(in, i), tl_len(in, i))) return -1;
        }
        return flush_bytes(out, tmp);
    case DEC_FUSE:
        return tl_push(out, in->data.p ? in->data.p : "", in->data.len);
    case DEC_STRIP:
        for (size_t i = 0; i < n; i++) {
            const char *s = tl_s(in, i);
            size_t len = tl_len(in, i);
            U32Vec chars = {0}, *cs = &chars; /* (byte offset, code point) per character */
            for (size_t k = 0; k < len;) {
                uint32_t cp;
                int m = utf8_next(s + k, len - k, &cp);
                if (u32vec_push(cs, (uint32_t)k) || u32vec_push(cs, cp)) {
                    free(chars.v);
                    return -1;
                }
                k += (size_t)m;
            }
            size_t nc = chars.n / 2, start_cut = 0, stop_cut = nc;
            for (size_t k = 0; k < d->start && k < nc; k++) {
                if (chars.v[2 * k + 1] != d->strip_char) break;
                start_cut = k + 1;
            }
            for (size_t k = 0; k < d->stop && k < nc; k++) {
                size_t idx = nc - k - 1;
                if (chars.v[2 * idx + 1] != d->strip_char) break;
                stop_cut = idx;
            }
            if (stop_cut < start_cut) stop_cut = start_cut;
            size_t b0 = start_cut < nc ? chars.v[2 * start_cut] : len;
            size_t b1 = stop_cut < nc ? chars.v[2 * stop_cut] : len;
            free(chars.v);
            if (tl_push(out, s + b0, b1 - b0)) return -1;
        }
        return 0;
    case DEC_BPE:
        for (size_t i = 0; i < n; i++) {
            const char *s = tl_s(in, i);
            size_t len = tl_len(in, i), k = 0;
            tmp->len = 0;
            const char *rep = i + 1 == n ? "" : " ";
            while (k < len) {
                if (d->content_len && k + d->content_len <= len &&
                    memcmp(s + k, d->content, d->content_len) == 0) {
                    if (buf_append(tmp, rep, strlen(rep))) return -1;
                    k += d->content_len;
                } else {
                    if (buf_append(tmp, s + k, 1)) return -1;
                    k++;
                }
            }
            if (tl_push(out, tmp->p ? tmp->p : "", tmp->len)) return -1;
        }
        return 0;
    case DEC_SEQUENCE:
        break;
    }
    return 0;
}

static int run(const Decoder *d, const Tokenizer *t, TokList *in, TokList *out, RegexScratch *rs,
               Buf *tmp, char *err, size_t errlen) {
    (void)t;
    if (d->kind != DEC_SEQUENCE) {
        tl_clear(out);
        return run_one(d, in, out, rs, tmp, err, errlen);
    }
    for (size_t i = 0; i < d->n_items; i++) {
        int rc = run(&d->items[i], t, in, out, rs, tmp, err, errlen);
        if (rc) return rc;
        TokList x = *in;
        *in = *out;
        *out = x;
    }
    /* the result is in `in`: move it to `out` */
    TokList x = *in;
    *in = *out;
    *out = x;
    return 0;
}

int tokenizer_decode(const Tokenizer *t, const int32_t *ids, size_t n, bool skip_special_tokens,
                     char **text, size_t *len, char *err, size_t errlen) {
    TokList a = {0}, b = {0};
    Buf tmp = {0}, res = {0};
    RegexScratch rs = {0};
    int rc = 0;
    *text = NULL;
    if (len) *len = 0;
    for (size_t i = 0; i < n && !rc; i++) {
        size_t sl;
        const char *s = tokenizer_id_to_token(t, ids[i], &sl);
        if (!s) continue;
        if (skip_special_tokens) {
            int32_t k = strmap_get(&t->added.by_content, s, (uint32_t)sl);
            if (k >= 0 && t->added.tokens[k].special) continue;
        }
        rc = tl_push(&a, s, sl);
    }
    if (!rc && t->decoder) {
        if (regex_scratch_init(&rs))
            rc = -1;
        else
            rc = run(t->decoder, t, &a, &b, &rs, &tmp, err, errlen);
        if (!rc) { /* the result is in b */
            TokList x = a;
            a = b;
            b = x;
        }
    }
    for (size_t i = 0; i < tl_n(&a) && !rc; i++) {
        if (!t->decoder && i > 0) rc = buf_append(&res, " ", 1);
        rc = rc || buf_append(&res, tl_s(&a, i), tl_len(&a, i));
    }
    rc = rc || buf_append(&res, "", 0);
    tl_free(&a);
    tl_free(&b);
    buf_free(&tmp);
    regex_scratch_free(&rs);
    if (rc) {
        if (rc != -2) tok_err(err, errlen, "out of memory decoding %zu ids", n);
        buf_free(&res);
        return -1;
    }
    *text = res.p;
    if (len) *len = res.len;
    return 0;
}

/* ---- streaming ---- */
struct TokenizerStream {
    const Tokenizer *t;
    bool skip;
    TokenizerIds ids;
    char *prefix;
    size_t prefix_len, prefix_index;
    char *text; /* the last piece handed out */
    size_t text_len;
};

TokenizerStream *tokenizer_stream_new(const Tokenizer *t, bool skip_special_tokens) {
    TokenizerStream *s = calloc(1, sizeof *s);
    if (!s) return NULL;
    s->t = t;
    s->skip = skip_special_tokens;
    return s;
}

void tokenizer_stream_free(TokenizerStream *s) {
    if (!s) return;
    tokenizer_ids_free(&s->ids);
    free(s->prefix);
    free(s->text);
    free(s);
}

static bool ends_with_fffd(const char *s, size_t n) {
    return n >= 3 && memcmp(s + n - 3, "\xEF\xBF\xBD", 3) == 0;
}

int tokenizer_stream_step(TokenizerStream *s, int32_t id, const char **text, size_t *len, char *err,
                          size_t errlen) {
    *text = NULL;
    *len = 0;
    free(s->text);
    s->text = NULL;
    char *str;
    size_t n;
    if (s->prefix_len == 0 && s->ids.n) {
        if (tokenizer_decode(s->t, s->ids.ids, s->ids.n, s->skip, &str, &n, err, errlen)) return -1;
        if (!ends_with_fffd(str, n)) {
            free(s->prefix);
            s->prefix = str, s->prefix_len = n, s->prefix_index = s->ids.n;
        } else {
            free(str);
        }
    }
    if (ids_push(&s->ids, id)) return tok_err(err, errlen, "out of memory"), -1;
    if (tokenizer_decode(s->t, s->ids.ids, s->ids.n, s->skip, &str, &n, err, errlen)) return -1;
    if (n > s->prefix_len && !ends_with_fffd(str, n)) {
        if (s->prefix_len && memcmp(str, s->prefix, s->prefix_len) != 0) {
            tok_err(err, errlen,
                    "streaming decode: the text of the ids so far no longer starts "
                    "with the text already given out (at id %d)",
                    (int)id);
            free(str);
            return -1;
        }
        s->text_len = n - s->prefix_len;
        s->text = tok_strndup(str + s->prefix_len, s->text_len);
        free(str);
        if (!s->text) return tok_err(err, errlen, "out of memory"), -1;
        size_t new_index = s->ids.n - s->prefix_index;
        memmove(s->ids.ids, s->ids.ids + s->prefix_index,
                (s->ids.n - s->prefix_index) * sizeof *s->ids.ids);
        s->ids.n -= s->prefix_index;
        free(s->prefix);
        s->prefix = NULL;
        s->prefix_len = 0;
        if (tokenizer_decode(s->t, s->ids.ids, s->ids.n, s->skip, &s->prefix, &s->prefix_len, err,
                             errlen))
            return -1;
        s->prefix_index = new_index;
        *text = s->text;
        *len = s->text_len;
        return 0;
    }
    free(str);
    return 0;
}

void decoder_free(Decoder *d) {
    if (!d) return;
    for (size_t i = 0; i < d->n_items; i++) decoder_free(&d->items[i]);
    free(d->items);
    regex_free(d->re);
    free(d->content);
    memset(d, 0, sizeof *d);
}
