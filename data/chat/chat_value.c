/* data/chat/chat_value.c — runtime values: construction, conversion to text and JSON, equality,
 * ordering, and the JSON context converted in.
 *
 * Two string conversions exist because the reference has two: printing ({{ v }}, the
 * `string` filter) uses its RuntimeValue.toString (floats keep ".0", lists print as JSON),
 * while `+` and `~` use JavaScript's String(v.value) (3.0 gives "3", a dict gives
 * "[object Map]", a list its items joined by ","). */
#include "data/chat/render.h"

#include <math.h>
#include <string.h>

#define MAX_VALUE_DEPTH 200

StrBuf ct_v_builder(Render *R) {
    StrBuf b;
    ct_sb_init(&b, &R->arena);
    return b;
}

Value ct_v_strbuf(Render *R, StrBuf *b) {
    (void)R;
    return v_str(b->len ? b->p : "", b->len);
}

Value ct_v_array(Render *R, size_t n) {
    if (n > R->arena.limit / sizeof(Value))
        ct_arena_alloc(&R->arena, R->arena.limit + 1); /* fails */
    VArray *a = ct_arena_alloc(&R->arena, sizeof *a);
    a->len = (uint32_t)n;
    a->is_tuple = 0;
    a->items = n ? ct_arena_alloc(&R->arena, n * sizeof(Value)) : NULL;
    for (size_t i = 0; i < n; i++) a->items[i] = v_undef();
    return (Value){.kind = V_ARRAY, .u.arr = a};
}

static VObject *new_obj(Render *R, uint32_t cap) {
    VObject *o = ct_arena_alloc(&R->arena, sizeof *o);
    o->len = 0;
    o->cap = cap;
    o->is_kwargs = 0;
    o->e = cap ? ct_arena_alloc(&R->arena, cap * sizeof(OEntry)) : NULL;
    return o;
}

Value ct_v_object(Render *R, uint32_t cap) {
    return (Value){.kind = V_OBJECT, .u.obj = new_obj(R, cap)};
}

Value ct_v_namespace(Render *R, uint32_t cap) {
    return (Value){.kind = V_NAMESPACE, .u.obj = new_obj(R, cap)};
}

Value ct_v_func(Render *R, FuncKind kind) {
    VFunc *f = ct_arena_zalloc(&R->arena, sizeof *f);
    f->kind = (uint8_t)kind;
    return (Value){.kind = V_FUNC, .u.fn = f};
}

OEntry *ct_obj_find(const VObject *o, const char *key, size_t klen) {
    for (uint32_t i = 0; i < o->len; i++)
        if (o->e[i].klen == klen && memcmp(o->e[i].key, key, klen) == 0) return &o->e[i];
    return NULL;
}

void ct_obj_set(Render *R, VObject *o, const char *key, size_t klen, Value v) {
    OEntry *e = ct_obj_find(o, key, klen);
    if (e) {
        e->v = v;
        return;
    }
    if (o->len == o->cap) {
        uint32_t cap = o->cap ? o->cap * 2 : 4;
        OEntry *ne = ct_arena_alloc(&R->arena, cap * sizeof *ne);
        if (o->len) memcpy(ne, o->e, o->len * sizeof *ne);
        o->e = ne;
        o->cap = cap;
    }
    o->e[o->len++] = (OEntry){key, (uint32_t)klen, v};
}

int ct_v_truthy(Value v) {
    switch (v.kind) {
    case V_BOOL:
        return v.b;
    case V_INT:
    case V_FLOAT:
        return v.u.num != 0 && !isnan(v.u.num);
    case V_STR:
        return v.len > 0;
    case V_ARRAY:
        return v.u.arr->len > 0;
    case V_OBJECT:
        return v.u.obj->len > 0;
    case V_NAMESPACE:
    case V_FUNC:
        return 1;
    default:
        return 0;
    }
}

const char *ct_v_kind_name(Value v) {
    switch (v.kind) {
    case V_UNDEF:
        return "undefined";
    case V_NULL:
        return "none";
    case V_BOOL:
        return "boolean";
    case V_INT:
        return "integer";
    case V_FLOAT:
        return "float";
    case V_STR:
        return "string";
    case V_ARRAY:
        return v.u.arr->is_tuple ? "tuple" : "list";
    case V_OBJECT:
        return v.u.obj->is_kwargs ? "keyword arguments" : "dict";
    case V_NAMESPACE:
        return "namespace";
    default:
        return "function";
    }
}

static void add_num(StrBuf *b, double d, int as_float) {
    char tmp[40];
    if (as_float)
        ct_js_float_str(d, tmp);
    else
        ct_js_number_str(d, tmp);
    ct_sb_add(b, tmp, strlen(tmp));
}

static void to_output(Render *R, const Node *at, Value v, StrBuf *b) {
    switch (v.kind) {
    case V_UNDEF:
        ct_sb_add(b, "undefined", 9);
        break;
    case V_NULL:
        ct_sb_add(b, "null", 4);
        break;
    case V_BOOL:
        v.b ? ct_sb_add(b, "true", 4) : ct_sb_add(b, "false", 5);
        break;
    case V_INT:
        add_num(b, v.u.num, 0);
        break;
    case V_FLOAT:
        add_num(b, v.u.num, 1);
        break;
    case V_STR:
        ct_sb_add(b, v.u.s, v.len);
        break;
    case V_FUNC:
        ct_rt_fail(R, at, "a function cannot be printed or converted to a string");
    default: {
        JsonOptions o = {0};
        ct_v_to_json(R, at, v, &o, b);
    }
    }
}

void ct_v_to_output(Render *R, const Node *at, Value v, StrBuf *b) {
    to_output(R, at, v, b);
}

void ct_v_to_js_string(Render *R, const Node *at, Value v, StrBuf *b) {
    switch (v.kind) {
    case V_FLOAT:
        add_num(b, v.u.num, 0);
        break;
    case V_ARRAY:
        for (uint32_t i = 0; i < v.u.arr->len; i++) {
            if (i) ct_sb_addc(b, ',');
            to_output(R, at, v.u.arr->items[i], b);
        }
        break;
    case V_OBJECT:
    case V_NAMESPACE:
        ct_sb_add(b, "[object Map]", 12);
        break;
    default:
        to_output(R, at, v, b);
    }
}

/* JSON.stringify of a string, then (ensure_ascii) every UTF-16 unit >= 0x7F as \uXXXX. */
static void json_quote(const char *s, size_t n, int ascii, StrBuf *b) {
    ct_sb_addc(b, '"');
    size_t i = 0;
    while (i < n) {
        uint32_t cp;
        size_t k = ct_u8_decode(s + i, n - i, &cp);
        if (cp >= 0xD800 && cp <= 0xDBFF && i + k < n) { /* WTF-8 pair made by concatenation */
            uint32_t lo;
            size_t k2 = ct_u8_decode(s + i + k, n - i - k, &lo);
            if (lo >= 0xDC00 && lo <= 0xDFFF) {
                cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                k += k2;
            }
        }
        switch (cp) {
        case '"':
            ct_sb_add(b, "\\\"", 2);
            break;
        case '\\':
            ct_sb_add(b, "\\\\", 2);
            break;
        case '\b':
            ct_sb_add(b, "\\b", 2);
            break;
        case '\f':
            ct_sb_add(b, "\\f", 2);
            break;
        case '\n':
            ct_sb_add(b, "\\n", 2);
            break;
        case '\r':
            ct_sb_add(b, "\\r", 2);
            break;
        case '\t':
            ct_sb_add(b, "\\t", 2);
            break;
        default:
            if (cp < 0x20 || (cp >= 0xD800 && cp <= 0xDFFF) ||
                (ascii && cp >= 0x7F && cp < 0x10000)) {
                ct_sb_addf(b, "\\u%04x", cp);
            } else if (ascii && cp >= 0x10000) {
                uint32_t c = cp - 0x10000;
                ct_sb_addf(b, "\\u%04x\\u%04x", 0xD800 + (c >> 10), 0xDC00 + (c & 0x3FF));
            } else if (k == 6) {
                char enc[4];
                ct_sb_add(b, enc, ct_u8_encode(cp, enc));
            } else {
                ct_sb_add(b, s + i, k);
            }
        }
        i += k;
    }
    ct_sb_addc(b, '"');
}

static void padding(StrBuf *b, int indent, int depth) {
    ct_sb_addc(b, '\n');
    for (int i = 0; i < indent * depth; i++) ct_sb_addc(b, ' ');
}

static int key_order(const void *pa, const void *pb) {
    const OEntry *a = *(const OEntry *const *)pa, *b = *(const OEntry *const *)pb;
    size_t n = a->klen < b->klen ? a->klen : b->klen;
    int c = memcmp(a->key, b->key, n);
    return c ? c : (a->klen > b->klen) - (a->klen < b->klen);
}

static void to_json(Render *R, const Node *at, Value v, const JsonOptions *o, int depth,
                    StrBuf *b) {
    if (depth > MAX_VALUE_DEPTH)
        ct_rt_fail(R, at, "value nests deeper than %d levels (or contains itself)",
                   MAX_VALUE_DEPTH);
    const char *isep = o->item_sep ? o->item_sep : o->indent ? "," : ", ";
    size_t isep_len = o->item_sep ? o->item_sep_len : strlen(isep);
    const char *ksep = o->key_sep ? o->key_sep : ": ";
    size_t ksep_len = o->key_sep ? o->key_sep_len : 2;
    switch (v.kind) {
    case V_UNDEF:
        o->undefined_as_null ? ct_sb_add(b, "null", 4) : ct_sb_add(b, "undefined", 9);
        return;
    case V_NULL:
        ct_sb_add(b, "null", 4);
        return;
    case V_BOOL:
        v.b ? ct_sb_add(b, "true", 4) : ct_sb_add(b, "false", 5);
        return;
    case V_INT:
    case V_FLOAT:
        if (isfinite(v.u.num))
            add_num(b, v.u.num, 0);
        else
            ct_sb_add(b, "null", 4);
        return;
    case V_STR:
        ct_rt_step(R, at, v.len >> 6);
        json_quote(v.u.s, v.len, o->ensure_ascii, b);
        return;
    case V_ARRAY: {
        if (v.u.arr->is_tuple) ct_rt_fail(R, at, "a tuple cannot be converted to JSON");
        const VArray *a = v.u.arr;
        ct_rt_step(R, at, a->len);
        ct_sb_addc(b, '[');
        for (uint32_t i = 0; i < a->len; i++) {
            if (i) ct_sb_add(b, isep, isep_len);
            if (o->indent) padding(b, o->indent, depth + 1);
            to_json(R, at, a->items[i], o, depth + 1, b);
        }
        if (o->indent && a->len) padding(b, o->indent, depth);
        ct_sb_addc(b, ']');
        return;
    }
    case V_OBJECT:
    case V_NAMESPACE: {
        if (v.u.obj->is_kwargs) ct_rt_fail(R, at, "keyword arguments cannot be converted to JSON");
        const VObject *ob = v.u.obj;
        ct_rt_step(R, at, ob->len);
        const OEntry **order = ob->len ? ct_arena_alloc(&R->arena, ob->len * sizeof *order) : NULL;
        for (uint32_t i = 0; i < ob->len; i++) order[i] = &ob->e[i];
        if (o->sort_keys && ob->len > 1) qsort(order, ob->len, sizeof *order, key_order);
        ct_sb_addc(b, '{');
        for (uint32_t i = 0; i < ob->len; i++) {
            if (i) ct_sb_add(b, isep, isep_len);
            if (o->indent) padding(b, o->indent, depth + 1);
            json_quote(order[i]->key, order[i]->klen, o->ensure_ascii, b);
            ct_sb_add(b, ksep, ksep_len);
            to_json(R, at, order[i]->v, o, depth + 1, b);
        }
        if (o->indent && ob->len) padding(b, o->indent, depth);
        ct_sb_addc(b, '}');
        return;
    }
    default:
        ct_rt_fail(R, at, "a function cannot be converted to JSON");
    }
}

void ct_v_to_json(Render *R, const Node *at, Value v, const JsonOptions *o, StrBuf *b) {
    to_json(R, at, v, o, 0, b);
}

/* JavaScript type classes for == and ===. */
enum { JS_UNDEF, JS_NULL, JS_BOOL, JS_NUM, JS_STR, JS_OBJ };
static int js_class(Value v) {
    switch (v.kind) {
    case V_UNDEF:
        return JS_UNDEF;
    case V_NULL:
        return JS_NULL;
    case V_BOOL:
        return JS_BOOL;
    case V_INT:
    case V_FLOAT:
        return JS_NUM;
    case V_STR:
        return JS_STR;
    default:
        return JS_OBJ;
    }
}

static const void *identity(Value v) {
    return v.kind == V_ARRAY  ? (const void *)v.u.arr
           : v.kind == V_FUNC ? (const void *)v.u.fn
                              : (const void *)v.u.obj;
}

static int str_eq(Value a, Value b) {
    return a.len == b.len && (a.len == 0 || memcmp(a.u.s, b.u.s, a.len) == 0);
}

int ct_v_strict_eq(Value a, Value b) {
    int ca = js_class(a), cb = js_class(b);
    if (ca != cb) return 0;
    switch (ca) {
    case JS_UNDEF:
    case JS_NULL:
        return 1;
    case JS_BOOL:
        return a.b == b.b;
    case JS_NUM:
        return a.u.num == b.u.num;
    case JS_STR:
        return str_eq(a, b);
    default:
        return identity(a) == identity(b);
    }
}

int ct_v_loose_eq(Render *R, const Node *at, Value a, Value b) {
    for (int round = 0; round < 4; round++) {
        int ca = js_class(a), cb = js_class(b);
        if (ca == cb) return ct_v_strict_eq(a, b);
        if ((ca == JS_UNDEF || ca == JS_NULL) && (cb == JS_UNDEF || cb == JS_NULL)) return 1;
        if (ca == JS_UNDEF || ca == JS_NULL || cb == JS_UNDEF || cb == JS_NULL) return 0;
        if (ca == JS_NUM && cb == JS_STR) return a.u.num == ct_js_to_number(b.u.s, b.len);
        if (ca == JS_STR && cb == JS_NUM) return ct_js_to_number(a.u.s, a.len) == b.u.num;
        if (ca == JS_BOOL) {
            a = v_int(a.b);
            continue;
        }
        if (cb == JS_BOOL) {
            b = v_int(b.b);
            continue;
        }
        /* an object against a number or string: compare its primitive (string) form */
        Value *obj = ca == JS_OBJ ? &a : &b;
        if (obj->kind == V_FUNC) return 0;
        StrBuf s = ct_v_builder(R);
        ct_v_to_js_string(R, at, *obj, &s);
        *obj = ct_v_strbuf(R, &s);
    }
    return 0;
}

/* UTF-16 code unit order, as JavaScript's < on strings. */
static int utf16_cmp(const char *a, size_t an, const char *b, size_t bn) {
    size_t i = 0, j = 0;
    while (i < an && j < bn) {
        if (a[i] == b[j] && (unsigned char)a[i] < 0x80) {
            i++, j++;
            continue;
        }
        uint32_t x, y;
        size_t ki = ct_u8_decode(a + i, an - i, &x), kj = ct_u8_decode(b + j, bn - j, &y);
        if (x != y) {
            uint32_t ux = x >= 0x10000 ? 0xD800 + ((x - 0x10000) >> 10) : x;
            uint32_t uy = y >= 0x10000 ? 0xD800 + ((y - 0x10000) >> 10) : y;
            if (ux != uy) return ux < uy ? -1 : 1;
            return x < y ? -1 : 1; /* same high surrogate: the low ones order as code points */
        }
        i += ki, j += kj;
    }
    return (i < an) - (j < bn);
}

int ct_v_compare(Render *R, const Node *at, Value a, Value b, int case_sensitive) {
    if (a.kind == V_NULL && b.kind == V_NULL) return 0;
    if (a.kind == V_UNDEF && b.kind == V_UNDEF) return 0;
    if (a.kind == V_NULL || b.kind == V_NULL || a.kind == V_UNDEF || b.kind == V_UNDEF)
        ct_rt_fail(R, at, "cannot compare %s with %s", ct_v_kind_name(a), ct_v_kind_name(b));
    int na = v_is_num(a) || a.kind == V_BOOL, nb = v_is_num(b) || b.kind == V_BOOL;
    if (na && nb) {
        double x = a.kind == V_BOOL ? a.b : a.u.num, y = b.kind == V_BOOL ? b.b : b.u.num;
        return x < y ? -1 : x > y ? 1 : 0;
    }
    if (a.kind != V_STR || b.kind != V_STR) {
        if (strcmp(ct_v_kind_name(a), ct_v_kind_name(b)) != 0)
            ct_rt_fail(R, at, "cannot compare %s with %s", ct_v_kind_name(a), ct_v_kind_name(b));
        ct_rt_fail(R, at, "cannot order values of type %s", ct_v_kind_name(a));
    }
    if (!case_sensitive) {
        a = ct_str_lower(R, a);
        b = ct_str_lower(R, b);
    }
    return utf16_cmp(a.u.s, a.len, b.u.s, b.len);
}

Value ct_v_from_json(Render *R, const json_t *j, int depth) {
    if (depth > MAX_VALUE_DEPTH)
        ct_rt_fail(R, NULL, "chat template context nests deeper than %d levels", MAX_VALUE_DEPTH);
    switch (json_typeof(j)) {
    case JSON_OBJECT: {
        Value v = ct_v_object(R, (uint32_t)json_object_size(j));
        const char *key;
        const json_t *val;
        void *it = json_object_iter((json_t *)j);
        while (it) {
            key = json_object_iter_key(it);
            val = json_object_iter_value(it);
            Value x = ct_v_from_json(R, val, depth + 1);
            VObject *o = v.u.obj;
            o->e[o->len++] = (OEntry){key, (uint32_t)json_object_iter_key_len(it), x};
            it = json_object_iter_next((json_t *)j, it);
        }
        return v;
    }
    case JSON_ARRAY: {
        size_t n = json_array_size(j);
        Value v = ct_v_array(R, n);
        for (size_t i = 0; i < n; i++)
            v.u.arr->items[i] = ct_v_from_json(R, json_array_get(j, i), depth + 1);
        return v;
    }
    case JSON_STRING:
        return v_str(json_string_value(j), json_string_length(j));
    case JSON_INTEGER:
        return v_int((double)json_integer_value(j));
    case JSON_REAL: {
        double d = json_real_value(j); /* JSON.parse gives 1.0 as the integer 1 */
        return d == floor(d) && isfinite(d) ? v_int(d) : v_float(d);
    }
    case JSON_TRUE:
        return v_bool(1);
    case JSON_FALSE:
        return v_bool(0);
    default:
        return v_null();
    }
}
