/* data/chat/chat_lexer.c — template text to tokens, exactly as @huggingface/jinja's lexer does it.
 *
 * The reference does not implement trim_blocks/lstrip_blocks in its parser: it rewrites the
 * source with regular expressions first (drop one trailing newline; /^[ \t]*({[#%-])/gm ->
 * "$1"; /([#%-]})\n/g -> "$1"; remove {% generation %} tags), then tokenizes the rewritten
 * text. Outputs only match if we do the same, quirks included (the rewrites also apply inside
 * string literals). Each pass keeps a map from its output bytes to original offsets, so
 * errors still point at the line and column the author wrote.
 *
 * Extension: {% raw %}...{% endraw %} (unknown to the reference) becomes a text token
 * followed by an empty comment token, so the text after it is lexed as text again. */
#include "data/chat/internal.h"

#include <string.h>

typedef struct Pass {
    char *s;
    uint32_t *map; /* original offset of each byte of s */
    size_t n;
} Pass;

static Pass pass_new(Arena *a, size_t cap) {
    Pass p = {ct_arena_alloc(a, cap + 1), ct_arena_alloc(a, (cap + 1) * sizeof(uint32_t)), 0};
    return p;
}

static void pass_put(Pass *out, const Pass *in, size_t i) {
    out->s[out->n] = in->s[i];
    out->map[out->n++] = in->map[i];
}

static int is_line_start(const Pass *in, size_t i) {
    if (i == 0) return 1;
    char c = in->s[i - 1];
    if (c == '\n' || c == '\r') return 1;
    /* U+2028 / U+2029 end lines for a JavaScript multiline ^ too */
    return i >= 3 && memcmp(in->s + i - 3, "\xE2\x80", 2) == 0 &&
           (in->s[i - 1] == '\xA8' || in->s[i - 1] == '\xA9');
}

/* /^[ \t]*({[#%-])/gm -> "$1" */
static Pass pass_lstrip(Arena *a, const Pass *in) {
    Pass out = pass_new(a, in->n);
    size_t i = 0;
    while (i < in->n) {
        if (is_line_start(in, i)) {
            size_t j = i;
            while (j < in->n && (in->s[j] == ' ' || in->s[j] == '\t')) j++;
            if (j + 1 < in->n && in->s[j] == '{' && strchr("#%-", in->s[j + 1]) && in->s[j + 1])
                i = j;
        }
        pass_put(&out, in, i++);
    }
    return out;
}

/* /([#%-]})\n/g -> "$1" */
static Pass pass_trim(Arena *a, const Pass *in) {
    Pass out = pass_new(a, in->n);
    size_t i = 0;
    while (i < in->n) {
        if (i + 2 < in->n && in->s[i] && strchr("#%-", in->s[i]) && in->s[i + 1] == '}' &&
            in->s[i + 2] == '\n') {
            pass_put(&out, in, i);
            pass_put(&out, in, i + 1);
            i += 3;
        } else {
            pass_put(&out, in, i++);
        }
    }
    return out;
}

static size_t space_at(const char *s, size_t n) { /* length of one \s char at s, or 0 */
    if (!n) return 0;
    uint32_t cp;
    size_t k = ct_u8_decode(s, n, &cp);
    return ct_js_is_space(cp) ? k : 0;
}

static size_t skip_spaces(const char *s, size_t n, size_t i) {
    size_t k;
    while ((k = space_at(s + i, n - i)) > 0) i += k;
    return i;
}

/* Matches {%-?\s*(end)?generation\s*-?%} at i; returns its end or 0. */
static size_t generation_tag(const Pass *in, size_t i, int *lstrip, int *rstrip) {
    const char *s = in->s;
    size_t n = in->n;
    if (i + 2 > n || s[i] != '{' || s[i + 1] != '%') return 0;
    size_t j = i + 2;
    *lstrip = j < n && s[j] == '-';
    if (*lstrip) j++;
    j = skip_spaces(s, n, j);
    if (n - j >= 3 && memcmp(s + j, "end", 3) == 0) j += 3;
    if (n - j < 10 || memcmp(s + j, "generation", 10) != 0) return 0;
    j = skip_spaces(s, n, j + 10);
    *rstrip = j < n && s[j] == '-';
    if (*rstrip) j++;
    if (n - j < 2 || s[j] != '%' || s[j + 1] != '}') return 0;
    return j + 2;
}

/* /(\s*){%(-?)\s*(?:end)?generation\s*(-?)%}(\s*)/gs -> (lstrip ? "" : ws) + (rstrip ? "" : ws) */
static Pass pass_generation(Arena *a, const Pass *in) {
    Pass out = pass_new(a, in->n);
    size_t i = 0, last_end = 0;
    while (i < in->n) {
        int lstrip, rstrip;
        size_t end = in->s[i] == '{' ? generation_tag(in, i, &lstrip, &rstrip) : 0;
        if (!end) {
            pass_put(&out, in, i++);
            continue;
        }
        if (lstrip) { /* take back the whitespace copied since the last match */
            size_t start = i;
            while (start > last_end) {
                size_t b = start - 1;
                while (b > last_end && ((unsigned char)in->s[b] & 0xC0) == 0x80) b--;
                if (space_at(in->s + b, start - b) != start - b) break;
                start = b;
            }
            out.n -= i - start;
        }
        size_t after = skip_spaces(in->s, in->n, end);
        if (!rstrip)
            for (size_t k = end; k < after; k++) pass_put(&out, in, k);
        i = last_end = after;
    }
    return out;
}

typedef struct Lexer {
    Arena *keep, *scratch;
    Fail *fail;
    const char *src; /* original, for error locations */
    size_t srclen;
    const char *s; /* preprocessed */
    const uint32_t *map;
    size_t n, i;
    Token *tok;
    size_t ntok, captok;
    int curly_depth;
} Lexer;

_Noreturn static void lex_fail(Lexer *L, size_t at, const char *fmt, const char *arg) {
    uint32_t pos = at < L->n ? L->map[at] : (uint32_t)L->srclen;
    ct_fail_at(L->fail, L->src, L->srclen, pos, fmt, arg);
}

static void push(Lexer *L, TokType type, size_t at, const char *s, size_t len) {
    if (L->ntok == L->captok) {
        size_t cap = L->captok ? L->captok * 2 : 256;
        Token *t = ct_arena_alloc(L->scratch, cap * sizeof *t);
        if (L->ntok) memcpy(t, L->tok, L->ntok * sizeof *t);
        L->tok = t;
        L->captok = cap;
    }
    Token *t = &L->tok[L->ntok++];
    t->type = (uint8_t)type;
    t->pos = at < L->n ? L->map[at] : (uint32_t)L->srclen;
    t->s = s;
    t->len = (uint32_t)len;
}

static int last_type(const Lexer *L) {
    return L->ntok ? L->tok[L->ntok - 1].type : -1;
}

static void strip_trailing_ws(Lexer *L) {
    if (!L->ntok || L->tok[L->ntok - 1].type != T_TEXT) return;
    Token *t = &L->tok[L->ntok - 1];
    t->len -= (uint32_t)ct_js_ws_suffix(t->s, t->len);
    if (t->len == 0) L->ntok--;
}

static void skip_leading_ws(Lexer *L) {
    L->i = skip_spaces(L->s, L->n, L->i);
}

static int is_digit(char c) {
    return c >= '0' && c <= '9';
}
static int is_word(char c) {
    return is_digit(c) || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}

/* consumeWhile for digits and words: the reference fails when the run reaches the end. */
static size_t consume_run(Lexer *L, int (*pred)(char)) {
    size_t start = L->i;
    while (L->i < L->n && pred(L->s[L->i])) {
        if (++L->i >= L->n) lex_fail(L, L->i, "unexpected end of template%s", "");
    }
    return L->i - start;
}

static void consume_spaces(Lexer *L) {
    size_t k;
    while ((k = space_at(L->s + L->i, L->n - L->i)) > 0) {
        L->i += k;
        if (L->i >= L->n) lex_fail(L, L->i, "unexpected end of template%s", "");
    }
}

static int hex_val(char c) {
    if (is_digit(c)) return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* Appends UTF-16 code unit u, joining it with a preceding lone high surrogate. */
static void add_unit(StrBuf *b, uint32_t u) {
    if (u >= 0xDC00 && u <= 0xDFFF && b->len >= 3 && (unsigned char)b->p[b->len - 3] == 0xED &&
        (unsigned char)b->p[b->len - 2] >= 0xA0 && (unsigned char)b->p[b->len - 2] <= 0xAF) {
        uint32_t hi;
        ct_u8_decode(b->p + b->len - 3, 3, &hi);
        b->len -= 3;
        u = 0x10000 + ((hi - 0xD800) << 10) + (u - 0xDC00);
    }
    char enc[4];
    ct_sb_add(b, enc, ct_u8_encode(u, enc));
}

static void lex_string(Lexer *L) {
    char quote = L->s[L->i];
    size_t start = L->i++;
    StrBuf b;
    ct_sb_init(&b, L->keep);
    for (;;) {
        if (L->i >= L->n) lex_fail(L, start, "string literal is not closed%s", "");
        char c = L->s[L->i];
        if (c == quote) break;
        if (c == '\\') {
            if (++L->i >= L->n) lex_fail(L, start, "string literal is not closed%s", "");
            size_t esc_at = L->i - 1;
            char e = L->s[L->i++];
            if (e == 'x' || e == 'u') {
                size_t len = e == 'x' ? 2 : 4;
                uint32_t u = 0;
                for (size_t k = 0; k < len; k++) {
                    int h = L->i + k < L->n ? hex_val(L->s[L->i + k]) : -1;
                    if (h < 0)
                        lex_fail(L, esc_at, "invalid \\%s escape in a string literal",
                                 e == 'x' ? "x" : "u");
                    u = u * 16 + (uint32_t)h;
                }
                L->i += len;
                add_unit(&b, u);
                continue;
            }
            static const char from[] = "ntrbfv'\"\\", to[] = "\n\t\r\b\f\v'\"\\";
            const char *m = e ? strchr(from, e) : NULL;
            if (!m) {
                char what[8] = {e, 0};
                lex_fail(L, esc_at, "unsupported escape \\%s in a string literal", what);
            }
            ct_sb_addc(&b, to[m - from]);
            continue;
        }
        ct_sb_addc(&b, c);
        if (++L->i >= L->n) lex_fail(L, start, "string literal is not closed%s", "");
    }
    L->i++; /* closing quote */
    push(L, T_STRING, start, b.p ? b.p : "", b.len);
}

/* {%-? raw -?%} at L->i (extension). Returns 1 if it was one and was consumed. */
static int lex_raw(Lexer *L) {
    size_t j = L->i + 2;
    int lstrip = j < L->n && L->s[j] == '-';
    j = skip_spaces(L->s, L->n, j + (size_t)lstrip);
    if (L->n - j < 3 || memcmp(L->s + j, "raw", 3) != 0) return 0;
    j = skip_spaces(L->s, L->n, j + 3);
    int rstrip = j < L->n && L->s[j] == '-';
    j += (size_t)rstrip;
    if (L->n - j < 2 || L->s[j] != '%' || L->s[j + 1] != '}') return 0;
    size_t tag = L->i, body = j + 2;
    if (lstrip) strip_trailing_ws(L);
    if (rstrip) body = skip_spaces(L->s, L->n, body);
    for (size_t k = body; k + 1 < L->n; k++) {
        if (L->s[k] != '{' || L->s[k + 1] != '%') continue;
        size_t e = k + 2;
        int elstrip = e < L->n && L->s[e] == '-';
        e = skip_spaces(L->s, L->n, e + (size_t)elstrip);
        if (L->n - e < 6 || memcmp(L->s + e, "endraw", 6) != 0) continue;
        e = skip_spaces(L->s, L->n, e + 6);
        int erstrip = e < L->n && L->s[e] == '-';
        e += (size_t)erstrip;
        if (L->n - e < 2 || L->s[e] != '%' || L->s[e + 1] != '}') continue;
        size_t len = k - body;
        if (elstrip) len -= ct_js_ws_suffix(L->s + body, len);
        if (len) push(L, T_TEXT, body, L->s + body, len);
        push(L, T_COMMENT, k, "", 0);
        L->i = e + 2;
        if (erstrip) skip_leading_ws(L);
        return 1;
    }
    lex_fail(L, tag, "{%% raw %%} is not closed by {%% endraw %%}%s", "");
}

static const struct {
    const char *seq;
    TokType type;
} TABLE[] = {
    {"{%", T_OPEN_STMT}, {"%}", T_CLOSE_STMT}, {"{{", T_OPEN_EXPR}, {"}}", T_CLOSE_EXPR},
    {"(", T_LPAREN},     {")", T_RPAREN},      {"{", T_LBRACE},     {"}", T_RBRACE},
    {"[", T_LBRACKET},   {"]", T_RBRACKET},    {",", T_COMMA},      {".", T_DOT},
    {":", T_COLON},      {"|", T_PIPE},        {"<=", T_CMP_OP},    {">=", T_CMP_OP},
    {"==", T_CMP_OP},    {"!=", T_CMP_OP},     {"<", T_CMP_OP},     {">", T_CMP_OP},
    {"+", T_ADD_OP},     {"-", T_ADD_OP},      {"~", T_ADD_OP},     {"**", T_POW_OP},
    {"*", T_MUL_OP},     {"//", T_MUL_OP},     {"/", T_MUL_OP},     {"%", T_MUL_OP},
    {"=", T_EQUALS},
};

static void lex_comment(Lexer *L) {
    size_t start = L->i;
    L->i += 2;
    int strip_before = L->i < L->n && L->s[L->i] == '-';
    if (strip_before) L->i++;
    size_t body = L->i;
    while (L->i + 1 >= L->n || L->s[L->i] != '#' || L->s[L->i + 1] != '}') {
        if (L->i + 2 >= L->n) lex_fail(L, start, "comment is not closed by #}%s", "");
        L->i++;
    }
    int strip_after = L->i > body && L->s[L->i - 1] == '-';
    if (strip_before) strip_trailing_ws(L);
    push(L, T_COMMENT, start, "", 0);
    L->i += 2;
    if (strip_after) skip_leading_ws(L);
}

static void lex_tokens(Lexer *L) {
    while (L->i < L->n) {
        int last = last_type(L);
        if (last < 0 || last == T_CLOSE_STMT || last == T_CLOSE_EXPR || last == T_COMMENT) {
            size_t start = L->i;
            while (L->i < L->n && !(L->s[L->i] == '{' && L->i + 1 < L->n &&
                                    strchr("%{#", L->s[L->i + 1]) && L->s[L->i + 1]))
                L->i++;
            if (L->i > start) {
                push(L, T_TEXT, start, L->s + start, L->i - start);
                continue;
            }
        }
        const char *c = L->s + L->i;
        size_t left = L->n - L->i;
        if (left >= 2 && c[0] == '{' && c[1] == '#') {
            lex_comment(L);
            continue;
        }
        int at_text_level = last < 0 || last == T_TEXT || last == T_CLOSE_STMT ||
                            last == T_CLOSE_EXPR || last == T_COMMENT;
        if (left >= 2 && c[0] == '{' && c[1] == '%' && at_text_level && lex_raw(L)) continue;
        if (left >= 3 && memcmp(c, "{%-", 3) == 0) {
            strip_trailing_ws(L);
            push(L, T_OPEN_STMT, L->i, "{%", 2);
            L->i += 3;
            continue;
        }
        if (left >= 3 && memcmp(c, "{{-", 3) == 0) {
            strip_trailing_ws(L);
            push(L, T_OPEN_EXPR, L->i, "{{", 2);
            L->curly_depth = 0;
            L->i += 3;
            continue;
        }
        consume_spaces(L);
        c = L->s + L->i;
        left = L->n - L->i;
        if (left >= 3 && memcmp(c, "-%}", 3) == 0) {
            push(L, T_CLOSE_STMT, L->i, "%}", 2);
            L->i += 3;
            skip_leading_ws(L);
            continue;
        }
        if (left >= 3 && memcmp(c, "-}}", 3) == 0) {
            push(L, T_CLOSE_EXPR, L->i, "}}", 2);
            L->i += 3;
            skip_leading_ws(L);
            continue;
        }
        if (left && (c[0] == '-' || c[0] == '+')) {
            last = last_type(L);
            if (last < 0 || last == T_TEXT)
                lex_fail(L, L->i, "unexpected character '%s'", c[0] == '-' ? "-" : "+");
            if (last != T_IDENT && last != T_NUMBER && last != T_STRING && last != T_RPAREN &&
                last != T_RBRACKET) {
                size_t start = L->i++;
                size_t digits = consume_run(L, is_digit);
                if (digits && L->i + 1 < L->n && L->s[L->i] == '.' && is_digit(L->s[L->i + 1])) {
                    L->i++;
                    consume_run(L, is_digit);
                }
                push(L, digits ? T_NUMBER : T_UNARY_OP, start, L->s + start,
                     digits ? L->i - start : 1);
                continue;
            }
        }
        int matched = 0;
        for (size_t k = 0; k < sizeof TABLE / sizeof TABLE[0]; k++) {
            if (TABLE[k].type == T_CLOSE_EXPR && L->curly_depth > 0) continue;
            size_t len = strlen(TABLE[k].seq);
            if (left < len || memcmp(c, TABLE[k].seq, len) != 0) continue;
            push(L, TABLE[k].type, L->i, c, len);
            if (TABLE[k].type == T_OPEN_EXPR) L->curly_depth = 0;
            if (TABLE[k].type == T_LBRACE) L->curly_depth++;
            if (TABLE[k].type == T_RBRACE) L->curly_depth--;
            L->i += len;
            matched = 1;
            break;
        }
        if (matched) continue;
        if (left && (c[0] == '\'' || c[0] == '"')) {
            lex_string(L);
            continue;
        }
        if (left && is_digit(c[0])) {
            size_t start = L->i;
            consume_run(L, is_digit);
            if (last_type(L) != T_DOT && L->i + 1 < L->n && L->s[L->i] == '.' &&
                is_digit(L->s[L->i + 1])) {
                L->i++;
                consume_run(L, is_digit);
            }
            push(L, T_NUMBER, start, L->s + start, L->i - start);
            continue;
        }
        if (left && is_word(c[0])) {
            size_t start = L->i;
            consume_run(L, is_word);
            push(L, T_IDENT, start, L->s + start, L->i - start);
            continue;
        }
        if (!left) break; /* only whitespace was left inside a tag */
        uint32_t cp;
        size_t k = ct_u8_decode(c, left, &cp);
        char what[8] = {0};
        memcpy(what, c, k);
        lex_fail(L, L->i, "unexpected character '%s'", what);
    }
}

TokenList ct_lex_template(Arena *keep, Arena *scratch, Fail *f, const char *src, size_t len) {
    Pass p0 = pass_new(scratch, len);
    memcpy(p0.s, src, len);
    for (size_t i = 0; i < len; i++) p0.map[i] = (uint32_t)i;
    p0.n = len;
    if (p0.n && p0.s[p0.n - 1] == '\n') p0.n--;
    Pass p1 = pass_lstrip(scratch, &p0);
    Pass p2 = pass_trim(scratch, &p1);
    Pass p3 = pass_generation(scratch, &p2);
    /* Token strings point into the final text, so it lives as long as the template. */
    char *text = ct_arena_strdup(keep, p3.s, p3.n);
    Lexer L = {.keep = keep,
               .scratch = scratch,
               .fail = f,
               .src = src,
               .srclen = len,
               .s = text,
               .map = p3.map,
               .n = p3.n};
    lex_tokens(&L);
    TokenList out = {L.tok, L.ntok};
    return out;
}
