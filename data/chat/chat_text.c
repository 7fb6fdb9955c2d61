/* data/chat/chat_text.c — JavaScript's string and number semantics on UTF-8 bytes.
 *
 * The reference renderer is JavaScript, so its trim() strips Unicode whitespace, length
 * counts UTF-16 units, numbers are doubles printed by Number.prototype.toString, and
 * toUpperCase maps Unicode. These helpers reproduce that on our UTF-8 strings. Case mapping
 * uses glibc's C.UTF-8 tables (they agree with V8's one-to-one mappings); of the expansions
 * only ß -> SS is handled (ct_js_upper_cp returns a single code point; the caller expands ß). */
#include "data/chat/internal.h"

#include <locale.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <wctype.h>

size_t ct_u8_decode(const char *s, size_t n, uint32_t *cp) {
    const unsigned char *u = (const unsigned char *)s;
    if (u[0] < 0x80 || n < 2) {
        *cp = u[0];
        return 1;
    }
    if ((u[0] & 0xE0) == 0xC0) {
        *cp = ((uint32_t)(u[0] & 0x1F) << 6) | (u[1] & 0x3F);
        return 2;
    }
    if ((u[0] & 0xF0) == 0xE0 && n >= 3) {
        *cp = ((uint32_t)(u[0] & 0x0F) << 12) | ((uint32_t)(u[1] & 0x3F) << 6) | (u[2] & 0x3F);
        return 3;
    }
    if ((u[0] & 0xF8) == 0xF0 && n >= 4) {
        *cp = ((uint32_t)(u[0] & 0x07) << 18) | ((uint32_t)(u[1] & 0x3F) << 12) |
              ((uint32_t)(u[2] & 0x3F) << 6) | (u[3] & 0x3F);
        return 4;
    }
    *cp = u[0];
    return 1;
}

size_t ct_u8_encode(uint32_t cp, char *out) {
    unsigned char *o = (unsigned char *)out;
    if (cp < 0x80) {
        o[0] = (unsigned char)cp;
        return 1;
    }
    if (cp < 0x800) {
        o[0] = (unsigned char)(0xC0 | (cp >> 6));
        o[1] = (unsigned char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        o[0] = (unsigned char)(0xE0 | (cp >> 12));
        o[1] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
        o[2] = (unsigned char)(0x80 | (cp & 0x3F));
        return 3;
    }
    o[0] = (unsigned char)(0xF0 | (cp >> 18));
    o[1] = (unsigned char)(0x80 | ((cp >> 12) & 0x3F));
    o[2] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
    o[3] = (unsigned char)(0x80 | (cp & 0x3F));
    return 4;
}

size_t ct_u8_invalid_at(const char *s, size_t n) {
    const unsigned char *u = (const unsigned char *)s;
    size_t i = 0;
    while (i < n) {
        unsigned c = u[i];
        size_t k;
        uint32_t min;
        if (c < 0x80) {
            i++;
            continue;
        } else if ((c & 0xE0) == 0xC0) {
            k = 2, min = 0x80;
        } else if ((c & 0xF0) == 0xE0) {
            k = 3, min = 0x800;
        } else if ((c & 0xF8) == 0xF0) {
            k = 4, min = 0x10000;
        } else {
            return i;
        }
        if (n - i < k) return i;
        for (size_t j = 1; j < k; j++)
            if ((u[i + j] & 0xC0) != 0x80) return i;
        uint32_t cp;
        ct_u8_decode(s + i, k, &cp);
        if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return i;
        i += k;
    }
    return n;
}

int ct_js_is_space(uint32_t cp) {
    switch (cp) {
    case 0x09:
    case 0x0A:
    case 0x0B:
    case 0x0C:
    case 0x0D:
    case 0x20:
    case 0xA0:
    case 0x1680:
    case 0x2028:
    case 0x2029:
    case 0x202F:
    case 0x205F:
    case 0x3000:
    case 0xFEFF:
        return 1;
    default:
        return cp >= 0x2000 && cp <= 0x200A;
    }
}

size_t ct_js_ws_prefix(const char *s, size_t n) {
    size_t i = 0;
    while (i < n) {
        uint32_t cp;
        size_t k = ct_u8_decode(s + i, n - i, &cp);
        if (!ct_js_is_space(cp)) break;
        i += k;
    }
    return i;
}

size_t ct_js_ws_suffix(const char *s, size_t n) {
    size_t end = n;
    while (end > 0) {
        size_t start = end - 1;
        while (start > 0 && ((unsigned char)s[start] & 0xC0) == 0x80 && end - start < 4) start--;
        uint32_t cp;
        ct_u8_decode(s + start, end - start, &cp);
        if (!ct_js_is_space(cp)) break;
        end = start;
    }
    return n - end;
}

size_t ct_js_utf16_len(const char *s, size_t n) {
    size_t units = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if ((c & 0xC0) != 0x80) units += (c >= 0xF0) ? 2 : 1;
    }
    return units;
}

static locale_t utf8_locale;
static pthread_once_t utf8_locale_once = PTHREAD_ONCE_INIT;
static void utf8_locale_init(void) {
    utf8_locale = newlocale(LC_CTYPE_MASK, "C.UTF-8", (locale_t)0);
}

uint32_t ct_js_upper_cp(uint32_t cp) {
    if (cp < 0x80) return (cp >= 'a' && cp <= 'z') ? cp - 32 : cp;
    if (cp >= 0xD800 && cp <= 0xDFFF) return cp;
    pthread_once(&utf8_locale_once, utf8_locale_init);
    return utf8_locale ? (uint32_t)towupper_l((wint_t)cp, utf8_locale) : cp;
}

uint32_t ct_js_lower_cp(uint32_t cp) {
    if (cp < 0x80) return (cp >= 'A' && cp <= 'Z') ? cp + 32 : cp;
    if (cp >= 0xD800 && cp <= 0xDFFF) return cp;
    pthread_once(&utf8_locale_once, utf8_locale_init);
    return utf8_locale ? (uint32_t)towlower_l((wint_t)cp, utf8_locale) : cp;
}

/* Shortest digits that read back as v (v finite, > 0): digits in d, decimal exponent n such
 * that v = 0.d1d2... * 10^n. */
static int shortest_digits(double v, char d[24], int *n) {
    char tmp[40];
    for (int p = 1; p <= 17; p++) {
        snprintf(tmp, sizeof tmp, "%.*e", p - 1, v);
        if (strtod(tmp, NULL) == v || p == 17) break;
    }
    int k = 0;
    const char *c = tmp;
    for (; *c && *c != 'e'; c++)
        if (*c >= '0' && *c <= '9') d[k++] = *c;
    while (k > 1 && d[k - 1] == '0') k--;
    d[k] = '\0';
    *n = atoi(c + 1) + 1;
    return k;
}

void ct_js_number_str(double v, char out[40]) {
    if (isnan(v)) {
        strcpy(out, "NaN");
        return;
    }
    if (isinf(v)) {
        strcpy(out, v > 0 ? "Infinity" : "-Infinity");
        return;
    }
    if (v == 0) {
        strcpy(out, "0");
        return;
    }
    char *o = out;
    if (v < 0) {
        *o++ = '-';
        v = -v;
    }
    char d[24];
    int n, k = shortest_digits(v, d, &n);
    if (k <= n && n <= 21) {
        memcpy(o, d, (size_t)k);
        o += k;
        for (int i = k; i < n; i++) *o++ = '0';
    } else if (0 < n && n <= 21) {
        memcpy(o, d, (size_t)n);
        o += n;
        *o++ = '.';
        memcpy(o, d + n, (size_t)(k - n));
        o += k - n;
    } else if (-6 < n && n <= 0) {
        *o++ = '0';
        *o++ = '.';
        for (int i = 0; i < -n; i++) *o++ = '0';
        memcpy(o, d, (size_t)k);
        o += k;
    } else {
        *o++ = d[0];
        if (k > 1) {
            *o++ = '.';
            memcpy(o, d + 1, (size_t)(k - 1));
            o += k - 1;
        }
        o += sprintf(o, "e%c%d", n - 1 >= 0 ? '+' : '-', abs(n - 1));
    }
    *o = '\0';
}

void ct_js_float_str(double v, char out[40]) {
    if (v == 0 && signbit(v)) {
        strcpy(out, "-0.0");
    } else if (isfinite(v) && v == floor(v) && fabs(v) < 1e21) {
        snprintf(out, 40, "%.1f", v); /* toFixed(1): the exact integer */
    } else {
        ct_js_number_str(v, out);
    }
}

/* Copies s[0..n) into a NUL-terminated buffer for strtod; long inputs are truncated to a
 * length strtod reads the same (digits beyond 800 do not change a double). */
static void cstr(char *dst, size_t cap, const char *s, size_t n) {
    if (n > cap - 1) n = cap - 1;
    memcpy(dst, s, n);
    dst[n] = '\0';
}

int ct_js_parse_int(const char *s, size_t n, double *out) {
    size_t i = ct_js_ws_prefix(s, n);
    int neg = 0;
    if (i < n && (s[i] == '+' || s[i] == '-')) neg = s[i++] == '-';
    size_t start = i;
    while (i < n && s[i] >= '0' && s[i] <= '9') i++;
    if (i == start) return 0;
    char buf[1024];
    cstr(buf, sizeof buf, s + start, i - start);
    double v = strtod(buf, NULL);
    if (i - start > sizeof buf - 1) v *= pow(10, (double)(i - start - (sizeof buf - 1)));
    *out = neg ? -v : v;
    return 1;
}

/* Length of the longest StrDecimalLiteral prefix (without sign) at s, 0 if none. */
static size_t decimal_prefix(const char *s, size_t n, int *is_inf) {
    *is_inf = 0;
    if (n >= 8 && memcmp(s, "Infinity", 8) == 0) {
        *is_inf = 1;
        return 8;
    }
    size_t i = 0, digits = 0;
    while (i < n && s[i] >= '0' && s[i] <= '9') i++, digits++;
    if (i < n && s[i] == '.') {
        size_t j = i + 1, frac = 0;
        while (j < n && s[j] >= '0' && s[j] <= '9') j++, frac++;
        if (digits || frac) {
            i = j;
            digits += frac;
        }
    }
    if (!digits) return 0;
    if (i < n && (s[i] == 'e' || s[i] == 'E')) {
        size_t j = i + 1;
        if (j < n && (s[j] == '+' || s[j] == '-')) j++;
        size_t e = j;
        while (j < n && s[j] >= '0' && s[j] <= '9') j++;
        if (j > e) i = j;
    }
    return i;
}

int ct_js_parse_float(const char *s, size_t n, double *out) {
    size_t i = ct_js_ws_prefix(s, n);
    int neg = 0;
    if (i < n && (s[i] == '+' || s[i] == '-')) neg = s[i++] == '-';
    int inf;
    size_t k = decimal_prefix(s + i, n - i, &inf);
    if (!k) return 0;
    double v = INFINITY;
    if (!inf) {
        char buf[1024];
        cstr(buf, sizeof buf, s + i, k);
        v = strtod(buf, NULL);
    }
    *out = neg ? -v : v;
    return 1;
}

double ct_js_to_number(const char *s, size_t n) {
    size_t a = ct_js_ws_prefix(s, n);
    size_t b = a < n ? ct_js_ws_suffix(s + a, n - a) : 0;
    s += a;
    n -= a + b;
    if (n == 0) return 0;
    if (n > 2 && s[0] == '0' && strchr("xXoObB", s[1])) {
        int base = (s[1] == 'x' || s[1] == 'X') ? 16 : (s[1] == 'o' || s[1] == 'O') ? 8 : 2;
        double v = 0;
        for (size_t i = 2; i < n; i++) {
            int d = (s[i] >= '0' && s[i] <= '9')   ? s[i] - '0'
                    : (s[i] >= 'a' && s[i] <= 'f') ? s[i] - 'a' + 10
                    : (s[i] >= 'A' && s[i] <= 'F') ? s[i] - 'A' + 10
                                                   : 99;
            if (d >= base) return NAN;
            v = v * base + d;
        }
        return v;
    }
    size_t i = 0;
    int neg = 0;
    if (s[0] == '+' || s[0] == '-') neg = s[i++] == '-';
    int inf;
    size_t k = decimal_prefix(s + i, n - i, &inf);
    if (!k || i + k != n) return NAN;
    double v = INFINITY;
    if (!inf) {
        char buf[1024];
        cstr(buf, sizeof buf, s + i, k);
        v = strtod(buf, NULL);
    }
    return neg ? -v : v;
}

size_t ct_wtf8_to_utf8(char *s, size_t n) {
    size_t r = 0, w = 0;
    unsigned char *u = (unsigned char *)s;
    while (r < n) {
        if (u[r] == 0xED && r + 2 < n && u[r + 1] >= 0xA0) {
            uint32_t hi;
            ct_u8_decode(s + r, 3, &hi);
            if (hi < 0xDC00 && r + 5 < n && u[r + 3] == 0xED && u[r + 4] >= 0xB0) {
                uint32_t lo;
                ct_u8_decode(s + r + 3, 3, &lo);
                uint32_t cp = 0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00);
                w += ct_u8_encode(cp, s + w);
                r += 6;
            } else {
                memcpy(s + w, "\xEF\xBF\xBD", 3);
                w += 3;
                r += 3;
            }
        } else {
            s[w++] = s[r++];
        }
    }
    return w;
}
