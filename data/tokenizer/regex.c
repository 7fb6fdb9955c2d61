/* data/tokenizer/regex.c — the regexes of Split and Replace. tokenizer.json patterns are
 * Oniguruma patterns (the Rust library compiles them with the onig crate, Oniguruma syntax);
 * they run here on PCRE2 (UTF + UCP + JIT) after a translation of the constructs whose meaning
 * differs: \s \S (Oniguruma: \t \n \v \f \r U+0085 and Z*; PCRE2's \s also takes U+180E),
 * \w \W \b \B (Oniguruma's Unicode word: letters, marks, numbers, connector punctuation; the
 * boundaries become lookarounds on that class), \h \H (hex
 * digits in Oniguruma), \uHHHH, ^ and $ (always line anchors in Oniguruma: PCRE2_MULTILINE)
 * and the (?m) option (Oniguruma's dot-all, PCRE2's (?s)). Iteration follows the onig crate's
 * find_iter: after an empty match the search moves on one character, and an empty match that
 * follows a non-empty one is dropped. */
#include <stdlib.h>
#include <string.h>

#include "data/tokenizer/internal.h"

#define WS_CLASS   "\\t\\n\\x0B\\f\\r\\x{85}\\p{Z}"
#define WORD_CLASS "\\p{L}\\p{M}\\p{N}\\p{Pc}\\x{24B6}-\\x{24E9}"
#define HEX_CLASS  "0-9a-fA-F"

static int translate(const char *p, size_t len, Buf *out) {
    int in_class = 0;
    for (size_t i = 0; i < len; i++) {
        char c = p[i];
        if (c == '\\' && i + 1 < len) {
            char e = p[++i];
            const char *cls = NULL;
            bool neg = false;
            switch (e) {
            case 's':
                cls = WS_CLASS;
                break;
            case 'S':
                cls = WS_CLASS, neg = true;
                break;
            case 'w':
                cls = WORD_CLASS;
                break;
            case 'W':
                cls = WORD_CLASS, neg = true;
                break;
            case 'h':
                cls = HEX_CLASS;
                break;
            case 'H':
                cls = HEX_CLASS, neg = true;
                break;
            default:
                break;
            }
            int rc = 0;
            if (!in_class && (e == 'b' || e == 'B')) { /* word boundary on Oniguruma's \w */
                const char *w = "[" WORD_CLASS "]";
                Buf lk = {0};
                rc = buf_append(&lk, "(?:(?<=", 7);
                if (e == 'b') {
                    /* (?:(?<=W)(?!W)|(?<!W)(?=W)) */
                    rc = rc || buf_append(&lk, w, strlen(w)) || buf_append(&lk, ")(?!", 4) ||
                         buf_append(&lk, w, strlen(w)) || buf_append(&lk, ")|(?<!", 6) ||
                         buf_append(&lk, w, strlen(w)) || buf_append(&lk, ")(?=", 4) ||
                         buf_append(&lk, w, strlen(w)) || buf_append(&lk, "))", 2);
                } else {
                    /* (?:(?<=W)(?=W)|(?<!W)(?!W)) */
                    rc = rc || buf_append(&lk, w, strlen(w)) || buf_append(&lk, ")(?=", 4) ||
                         buf_append(&lk, w, strlen(w)) || buf_append(&lk, ")|(?<!", 6) ||
                         buf_append(&lk, w, strlen(w)) || buf_append(&lk, ")(?!", 4) ||
                         buf_append(&lk, w, strlen(w)) || buf_append(&lk, "))", 2);
                }
                rc = rc || buf_append(out, lk.p, lk.len);
                buf_free(&lk);
                if (rc) return -1;
                continue;
            }
            if (cls && !in_class) {
                rc = buf_append(out, neg ? "[^" : "[", neg ? 2 : 1) ||
                     buf_append(out, cls, strlen(cls)) || buf_append(out, "]", 1);
            } else if (cls && !neg) {
                rc = buf_append(out, cls, strlen(cls));
            } else if (cls) { /* a negated class inside a class: PCRE2's own meaning */
                char esc[2] = {'\\', e};
                rc = buf_append(out, esc, 2);
            } else if (e == 'u') {
                size_t k = 0;
                while (k < 4 && i + 1 + k < len && p[i + 1 + k] &&
                       strchr("0123456789abcdefABCDEF", p[i + 1 + k]))
                    k++;
                if (k == 4) {
                    rc = buf_append(out, "\\x{", 3) || buf_append(out, p + i + 1, 4) ||
                         buf_append(out, "}", 1);
                    i += 4;
                } else {
                    rc = buf_append(out, "\\u", 2);
                }
            } else {
                char esc[2] = {'\\', e};
                rc = buf_append(out, esc, 2);
            }
            if (rc) return -1;
            continue;
        }
        if (in_class) {
            if (c == '[')
                in_class++;
            else if (c == ']')
                in_class--;
        } else if (c == '[') {
            in_class = 1;
            if (buf_append(out, "[", 1)) return -1;
            /* a leading ']' or '^]' is a literal ']' */
            if (i + 1 < len && p[i + 1] == '^') {
                if (buf_append(out, "^", 1)) return -1;
                i++;
            }
            if (i + 1 < len && p[i + 1] == ']') {
                if (buf_append(out, "\\]", 2)) return -1;
                i++;
            }
            continue;
        } else if (c == '(' && i + 1 < len && p[i + 1] == '?') {
            /* option letters: (?imx-imx) or (?imx-imx:...) */
            size_t j = i + 2;
            while (j < len && p[j] && strchr("imx-", p[j])) j++;
            if (j > i + 2 && j < len && (p[j] == ')' || p[j] == ':')) {
                if (buf_append(out, "(?", 2)) return -1;
                for (size_t k = i + 2; k < j; k++) {
                    char f = p[k] == 'm' ? 's' : p[k];
                    if (buf_append(out, &f, 1)) return -1;
                }
                i = j - 1;
                continue;
            }
        }
        if (buf_append(out, &c, 1)) return -1;
    }
    return 0;
}

Regex *regex_compile(const char *pattern, size_t len, char *err, size_t errlen) {
    Regex *re = calloc(1, sizeof *re);
    Buf pcre = {0};
    if (!re || !(re->source = tok_strndup(pattern, len)) || translate(pattern, len, &pcre) ||
        buf_append(&pcre, "", 0)) {
        tok_err(err, errlen, "out of memory compiling a regex");
        goto fail;
    }
    pcre2_compile_context *cc = pcre2_compile_context_create(NULL);
    if (!cc) {
        tok_err(err, errlen, "out of memory compiling a regex");
        goto fail;
    }
    pcre2_set_newline(cc, PCRE2_NEWLINE_LF);
    int code;
    PCRE2_SIZE at;
    re->code =
        pcre2_compile((PCRE2_SPTR)pcre.p, pcre.len,
                      PCRE2_UTF | PCRE2_UCP | PCRE2_MULTILINE | PCRE2_NO_UTF_CHECK, &code, &at, cc);
    pcre2_compile_context_free(cc);
    if (!re->code) {
        PCRE2_UCHAR msg[256];
        pcre2_get_error_message(code, msg, sizeof msg);
        tok_err(err, errlen, "regex \"%.200s\": %s (at offset %zu of its PCRE2 form)", re->source,
                (const char *)msg, (size_t)at);
        goto fail;
    }
    pcre2_jit_compile(re->code, PCRE2_JIT_COMPLETE); /* the interpreter runs it if JIT cannot */
    buf_free(&pcre);
    return re;
fail:
    buf_free(&pcre);
    regex_free(re);
    return NULL;
}

Regex *regex_literal(const char *s, size_t len) {
    Regex *re = calloc(1, sizeof *re);
    if (!re) return NULL;
    re->literal = tok_strndup(s, len);
    re->source = tok_strndup(s, len);
    re->literal_len = len;
    if (!re->literal || !re->source) {
        regex_free(re);
        return NULL;
    }
    return re;
}

void regex_free(Regex *re) {
    if (!re) return;
    if (re->code) pcre2_code_free(re->code);
    free(re->literal);
    free(re->source);
    free(re);
}

int regex_scratch_init(RegexScratch *rs) {
    rs->md = pcre2_match_data_create(1, NULL);
    rs->mctx = pcre2_match_context_create(NULL);
    rs->jit = pcre2_jit_stack_create(32 * 1024, 8 * 1024 * 1024, NULL);
    if (!rs->md || !rs->mctx || !rs->jit) {
        regex_scratch_free(rs);
        return -1;
    }
    pcre2_jit_stack_assign(rs->mctx, NULL, rs->jit);
    return 0;
}

void regex_scratch_free(RegexScratch *rs) {
    if (rs->md) pcre2_match_data_free(rs->md);
    if (rs->mctx) pcre2_match_context_free(rs->mctx);
    if (rs->jit) pcre2_jit_stack_free(rs->jit);
    memset(rs, 0, sizeof *rs);
}

/* The leftmost match at or after `from`: 1 found, 0 none, -1 error. */
static int search(const Regex *re, RegexScratch *rs, const char *s, size_t len, size_t from,
                  size_t *ms, size_t *me, char *err, size_t errlen) {
    if (!re->code) {
        if (re->literal_len == 0) {
            *ms = *me = from;
            return 1;
        }
        const char *hit = memmem(s + from, len - from, re->literal, re->literal_len);
        if (!hit) return 0;
        *ms = (size_t)(hit - s);
        *me = *ms + re->literal_len;
        return 1;
    }
    int rc = pcre2_match(re->code, (PCRE2_SPTR)s, len, from, PCRE2_NO_UTF_CHECK, rs->md, rs->mctx);
    if (rc == PCRE2_ERROR_NOMATCH) return 0;
    if (rc < 0) {
        PCRE2_UCHAR msg[256];
        pcre2_get_error_message(rc, msg, sizeof msg);
        tok_err(err, errlen, "regex \"%.200s\" failed on a %zu-byte text: %s", re->source, len,
                (const char *)msg);
        return -1;
    }
    PCRE2_SIZE *ov = pcre2_get_ovector_pointer(rs->md);
    *ms = ov[0];
    *me = ov[1];
    if (*me < *ms) *me = *ms; /* \K tricks: keep the span sane */
    return 1;
}

int regex_find_all(const Regex *re, RegexScratch *rs, const char *s, size_t len, U32Vec *out,
                   char *err, size_t errlen) {
    size_t last_end = 0;
    bool skip_next_empty = false;
    while (last_end <= len) {
        size_t ms, me;
        int rc = search(re, rs, s, len, last_end, &ms, &me, err, errlen);
        if (rc < 0) return -1;
        if (rc == 0) break;
        last_end = me;
        if (me == ms) {
            uint32_t cp;
            last_end += me < len ? (size_t)utf8_next(s + me, len - me, &cp) : 1;
            if (skip_next_empty) {
                skip_next_empty = false;
                continue;
            }
        } else {
            skip_next_empty = true;
        }
        if (u32vec_push(out, (uint32_t)ms) || u32vec_push(out, (uint32_t)me)) {
            tok_err(err, errlen, "out of memory");
            return -1;
        }
    }
    return 0;
}
