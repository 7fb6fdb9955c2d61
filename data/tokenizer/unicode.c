/* data/tokenizer/unicode.c — the Unicode facts the pipeline needs, with the Rust library's
 * definitions: UTF-8 decoding and lossy repair as String::from_utf8_lossy does it, White_Space
 * and the character classes of char::is_numeric / is_punctuation / regex \w, and normalization
 * and lowercasing through utf8proc (Rust's char::to_lowercase is per character: the one
 * unconditional multi-character lowercase mapping, U+0130, is handled here; no final sigma). */
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

#include "data/tokenizer/internal.h"

int utf8_next(const char *s, size_t len, uint32_t *cp) {
    const uint8_t *u = (const uint8_t *)s;
    if (u[0] < 0x80 || len < 2) {
        *cp = u[0];
        return 1;
    }
    if (u[0] < 0xE0) {
        *cp = ((uint32_t)(u[0] & 0x1F) << 6) | (u[1] & 0x3F);
        return 2;
    }
    if (u[0] < 0xF0 || len < 4) {
        *cp = ((uint32_t)(u[0] & 0x0F) << 12) | ((uint32_t)(u[1] & 0x3F) << 6) | (u[2] & 0x3F);
        return 3;
    }
    *cp = ((uint32_t)(u[0] & 0x07) << 18) | ((uint32_t)(u[1] & 0x3F) << 12) |
          ((uint32_t)(u[2] & 0x3F) << 6) | (u[3] & 0x3F);
    return 4;
}

/* Length of the valid sequence at s, or 0; *bad gets the length of the maximal prefix of a
 * valid sequence when invalid (at least 1), which from_utf8_lossy replaces with one U+FFFD. */
static size_t utf8_check(const uint8_t *s, size_t len, size_t *bad) {
    uint8_t c = s[0];
    size_t need;
    uint8_t lo = 0x80, hi = 0xBF;
    if (c < 0x80) return 1;
    if (c >= 0xC2 && c <= 0xDF)
        need = 2;
    else if (c >= 0xE0 && c <= 0xEF) {
        need = 3;
        if (c == 0xE0) lo = 0xA0;
        if (c == 0xED) hi = 0x9F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        need = 4;
        if (c == 0xF0) lo = 0x90;
        if (c == 0xF4) hi = 0x8F;
    } else {
        *bad = 1;
        return 0;
    }
    size_t i = 1;
    for (; i < need; i++) {
        if (i >= len) break;
        uint8_t b = s[i];
        if (i == 1 ? (b < lo || b > hi) : (b < 0x80 || b > 0xBF)) break;
    }
    if (i == need) return need;
    *bad = i;
    return 0;
}

size_t utf8_valid_prefix(const char *s, size_t len) {
    size_t i = 0, bad;
    while (i < len) {
        size_t n = utf8_check((const uint8_t *)s + i, len - i, &bad);
        if (!n) return i;
        i += n;
    }
    return len;
}

int utf8_append_lossy(Buf *out, const char *s, size_t len) {
    size_t i = 0, run = 0, bad;
    while (i < len) {
        size_t n = utf8_check((const uint8_t *)s + i, len - i, &bad);
        if (n) {
            i += n;
            continue;
        }
        if (buf_append(out, s + run, i - run) || buf_append(out, "\xEF\xBF\xBD", 3)) return -1;
        i += bad;
        run = i;
    }
    return buf_append(out, s + run, len - run);
}

bool uni_is_whitespace(uint32_t c) {
    return (c >= 0x09 && c <= 0x0D) || c == 0x20 || c == 0x85 || c == 0xA0 || c == 0x1680 ||
           (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F ||
           c == 0x205F || c == 0x3000;
}

static utf8proc_category_t cat(uint32_t c) {
    return c > 0x10FFFF ? UTF8PROC_CATEGORY_CN : utf8proc_category((utf8proc_int32_t)c);
}

bool uni_is_numeric(uint32_t c) {
    utf8proc_category_t k = cat(c);
    return k == UTF8PROC_CATEGORY_ND || k == UTF8PROC_CATEGORY_NL || k == UTF8PROC_CATEGORY_NO;
}

bool uni_is_punctuation(uint32_t c) {
    if (c < 0x80)
        return (c >= 0x21 && c <= 0x2F) || (c >= 0x3A && c <= 0x40) || (c >= 0x5B && c <= 0x60) ||
               (c >= 0x7B && c <= 0x7E);
    utf8proc_category_t k = cat(c);
    return k >= UTF8PROC_CATEGORY_PC && k <= UTF8PROC_CATEGORY_PO;
}

bool uni_is_mark(uint32_t c) {
    utf8proc_category_t k = cat(c);
    return k == UTF8PROC_CATEGORY_MN || k == UTF8PROC_CATEGORY_MC || k == UTF8PROC_CATEGORY_ME;
}

bool uni_is_word(uint32_t c) {
    if (c < 0x80)
        return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
               c == '_';
    if (c == 0x200C || c == 0x200D) return true; /* Join_Control */
    /* Other_Alphabetic symbols (circled and squared letters) */
    if ((c >= 0x24B6 && c <= 0x24E9) || (c >= 0x1F130 && c <= 0x1F149) ||
        (c >= 0x1F150 && c <= 0x1F169) || (c >= 0x1F170 && c <= 0x1F189))
        return true;
    utf8proc_category_t k = cat(c);
    return (k >= UTF8PROC_CATEGORY_LU && k <= UTF8PROC_CATEGORY_LO) || uni_is_mark(c) ||
           k == UTF8PROC_CATEGORY_ND || k == UTF8PROC_CATEGORY_NL || k == UTF8PROC_CATEGORY_PC;
}

int uni_normalize(const char *s, size_t len, char form, Buf *out) {
    if (!len) return 0;
    utf8proc_option_t opt = UTF8PROC_STABLE;
    switch (form) {
    case 'C':
        opt |= UTF8PROC_COMPOSE;
        break;
    case 'D':
        opt |= UTF8PROC_DECOMPOSE;
        break;
    case 'c':
        opt |= UTF8PROC_COMPOSE | UTF8PROC_COMPAT;
        break;
    default:
        opt |= UTF8PROC_DECOMPOSE | UTF8PROC_COMPAT;
        break;
    }
    utf8proc_uint8_t *res = NULL;
    utf8proc_ssize_t n =
        utf8proc_map((const utf8proc_uint8_t *)s, (utf8proc_ssize_t)len, &res, opt);
    if (n < 0) return -1;
    int rc = buf_append(out, res, (size_t)n);
    free(res);
    return rc;
}

int uni_lowercase(const char *s, size_t len, Buf *out) {
    if (buf_reserve(out, len + 8)) return -1;
    for (size_t i = 0; i < len;) {
        uint32_t c;
        int n = utf8_next(s + i, len - i, &c);
        int rc;
        if (c < 0x80) {
            char b = (char)(c >= 'A' && c <= 'Z' ? c + 32 : c);
            rc = buf_append(out, &b, 1);
        } else if (c == 0x130) {
            rc = buf_append(out, "i\xCC\x87", 3);
        } else {
            rc = buf_append_cp(out, (uint32_t)utf8proc_tolower((utf8proc_int32_t)c));
        }
        if (rc) return -1;
        i += (size_t)n;
    }
    return 0;
}
