/* data/chat/chat_string.c — the string operations shared by filters and methods (upper,
 * lower, trim, title, capitalize, replace), with JavaScript's results: upper() maps Unicode
 * (ß becomes SS), title() only uppercases ASCII letters after a non-word character and leaves
 * the rest as it is, replace('', x) inserts x between all characters. */
#include "data/chat/render.h"

#include <math.h>
#include <string.h>

static void add_cp(StrBuf *b, uint32_t cp) {
    char enc[4];
    ct_sb_add(b, enc, ct_u8_encode(cp, enc));
}

Value ct_str_upper(Render *R, Value s) {
    ct_rt_step(R, NULL, s.len >> 6);
    StrBuf b = ct_v_builder(R);
    for (size_t i = 0; i < s.len;) {
        uint32_t cp;
        size_t k = ct_u8_decode(s.u.s + i, s.len - i, &cp);
        if (cp == 0xDF)
            ct_sb_add(&b, "SS", 2);
        else
            add_cp(&b, ct_js_upper_cp(cp));
        i += k;
    }
    return ct_v_strbuf(R, &b);
}

Value ct_str_lower(Render *R, Value s) {
    ct_rt_step(R, NULL, s.len >> 6);
    StrBuf b = ct_v_builder(R);
    for (size_t i = 0; i < s.len;) {
        uint32_t cp;
        size_t k = ct_u8_decode(s.u.s + i, s.len - i, &cp);
        add_cp(&b, ct_js_lower_cp(cp));
        i += k;
    }
    return ct_v_strbuf(R, &b);
}

Value ct_str_trim(Value s, int start, int end) {
    size_t a = start ? ct_js_ws_prefix(s.u.s, s.len) : 0;
    size_t z = end && a < s.len ? ct_js_ws_suffix(s.u.s + a, s.len - a) : 0;
    return v_str(s.u.s + a, s.len - a - z);
}

static int word_byte(char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
}

Value ct_str_title(Render *R, Value s) { /* value.replace(/\b\w/g, c => c.toUpperCase()) */
    ct_rt_step(R, NULL, s.len >> 6);
    StrBuf b = ct_v_builder(R);
    ct_sb_add(&b, s.u.s, s.len);
    for (size_t i = 0; i < b.len; i++)
        if (b.p[i] >= 'a' && b.p[i] <= 'z' && (i == 0 || !word_byte(s.u.s[i - 1]))) b.p[i] -= 32;
    return ct_v_strbuf(R, &b);
}

Value ct_str_capitalize(Render *R, Value s) { /* charAt(0).toUpperCase() + slice(1) */
    if (!s.len) return s;
    uint32_t cp;
    size_t k = ct_u8_decode(s.u.s, s.len, &cp);
    if (cp >= 0x10000) return s;
    ct_rt_step(R, NULL, s.len >> 6);
    StrBuf b = ct_v_builder(R);
    if (cp == 0xDF)
        ct_sb_add(&b, "SS", 2);
    else
        add_cp(&b, ct_js_upper_cp(cp));
    ct_sb_add(&b, s.u.s + k, s.len - k);
    return ct_v_strbuf(R, &b);
}

Value ct_str_replace(Render *R, const Node *at, Value s, Value from, Value to, double count) {
    ct_rt_step(R, at, s.len >> 6);
    if (count == 0) return s;
    double remaining = (isnan(count) || count < 0) ? INFINITY : count;
    StrBuf b = ct_v_builder(R);
    size_t i = 0;
    if (from.len == 0) { /* the empty pattern matches before every character and at the end */
        for (;;) {
            if (remaining > 0) {
                ct_sb_add(&b, to.u.s, to.len);
                remaining--;
            }
            if (i >= s.len) break;
            uint32_t cp;
            size_t k = ct_u8_decode(s.u.s + i, s.len - i, &cp);
            ct_sb_add(&b, s.u.s + i, k);
            i += k;
            ct_rt_step(R, at, 1);
        }
        return ct_v_strbuf(R, &b);
    }
    while (i < s.len) {
        const char *hit = remaining > 0 && s.len - i >= from.len
                              ? memmem(s.u.s + i, s.len - i, from.u.s, from.len)
                              : NULL;
        if (!hit) break;
        size_t at_off = (size_t)(hit - s.u.s);
        ct_sb_add(&b, s.u.s + i, at_off - i);
        ct_sb_add(&b, to.u.s, to.len);
        remaining--;
        i = at_off + from.len;
        ct_rt_step(R, at, 1);
    }
    ct_sb_add(&b, s.u.s + i, s.len - i);
    return ct_v_strbuf(R, &b);
}
