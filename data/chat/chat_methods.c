/* data/chat/chat_methods.c — attribute access, the string and dict methods templates call
 * (message.content.split('</think>'), tool.items(), ...), and the global functions
 * namespace(), raise_exception(), range() and strftime_now().
 *
 * As in the reference, x.y on a dict looks the key up first and then the methods; a string
 * or list index counts from the end when negative and gives undefined past either end;
 * indexing a string counts UTF-16 units. Methods ignore arguments the reference ignores
 * (strip('\n') strips all whitespace). */
#include "data/chat/render.h"

#include <math.h>
#include <string.h>
#include <time.h>

int ct_v_is_kwargs(Value v) {
    return v.kind == V_OBJECT && v.u.obj->is_kwargs;
}

const Value *ct_args_get(const Args *a, int i, const char *name) {
    if (i >= 0 && (uint32_t)i < a->npos) return &a->pos[i];
    const OEntry *e = name ? ct_obj_find(a->kw, name, strlen(name)) : NULL;
    return e ? &e->v : NULL;
}

static const struct {
    const char *name;
    Method m;
} STR_METHODS[] =
    {
        {"upper", M_UPPER},   {"lower", M_LOWER},           {"strip", M_STRIP},
        {"title", M_TITLE},   {"capitalize", M_CAPITALIZE}, {"rstrip", M_RSTRIP},
        {"lstrip", M_LSTRIP}, {"startswith", M_STARTSWITH}, {"endswith", M_ENDSWITH},
        {"split", M_SPLIT},   {"replace", M_REPLACE},
},
  OBJ_METHODS[] = {
      {"get", M_GET},       {"items", M_ITEMS},       {"keys", M_KEYS},
      {"values", M_VALUES}, {"dictsort", M_DICTSORT},
};

static Value bind(Render *R, Value self, Method m) {
    Value f = ct_v_func(R, F_METHOD);
    f.u.fn->self = self;
    f.u.fn->method = (uint8_t)m;
    return f;
}

static int name_is(Value p, const char *name) {
    return p.len == strlen(name) && memcmp(p.u.s, name, p.len) == 0;
}

/* s.at(i) over UTF-16 units; a unit inside a 4-byte character is a lone surrogate. */
static Value str_unit_at(Render *R, Value s, double index) {
    double n = (double)ct_js_utf16_len(s.u.s, s.len);
    double i = index < 0 ? n + trunc(index) : trunc(index);
    if (!(i >= 0 && i < n)) return v_undef();
    size_t unit = 0, off = 0;
    while (off < s.len) {
        uint32_t cp;
        size_t k = ct_u8_decode(s.u.s + off, s.len - off, &cp);
        size_t units = cp >= 0x10000 ? 2 : 1;
        if ((double)(unit + units) > i) {
            if (units == 1) return v_str(s.u.s + off, k);
            uint32_t c = cp - 0x10000;
            uint32_t half = (double)unit == i ? 0xD800 + (c >> 10) : 0xDC00 + (c & 0x3FF);
            char *buf = ct_arena_alloc(&R->arena, 4);
            return v_str(buf, ct_u8_encode(half, buf));
        }
        unit += units;
        off += k;
    }
    return v_undef();
}

Value ct_get_member(Render *R, const Node *at, Value object, Value property) {
    if (object.kind == V_OBJECT || object.kind == V_NAMESPACE) {
        if (property.kind != V_STR)
            ct_rt_fail(R, at, "a %s key must be a string, not %s", ct_v_kind_name(object),
                       ct_v_kind_name(property));
        const OEntry *e = ct_obj_find(object.u.obj, property.u.s, property.len);
        if (e) return e->v;
        if (object.kind == V_OBJECT)
            for (size_t i = 0; i < sizeof OBJ_METHODS / sizeof OBJ_METHODS[0]; i++)
                if (name_is(property, OBJ_METHODS[i].name))
                    return bind(R, object, OBJ_METHODS[i].m);
        return v_undef();
    }
    if (object.kind == V_ARRAY || object.kind == V_STR) {
        if (property.kind == V_INT) {
            if (object.kind == V_STR) return str_unit_at(R, object, property.u.num);
            double n = object.u.arr->len, i = trunc(property.u.num);
            if (i < 0) i += n;
            return i >= 0 && i < n ? object.u.arr->items[(size_t)i] : v_undef();
        }
        if (property.kind != V_STR)
            ct_rt_fail(R, at, "a %s index must be an integer or a name, not %s",
                       ct_v_kind_name(object), ct_v_kind_name(property));
        if (object.kind == V_STR) ct_rt_step(R, at, object.len >> 6);
        if (name_is(property, "length"))
            return v_int(object.kind == V_STR ? (double)ct_js_utf16_len(object.u.s, object.len)
                                              : (double)object.u.arr->len);
        if (object.kind == V_STR)
            for (size_t i = 0; i < sizeof STR_METHODS / sizeof STR_METHODS[0]; i++)
                if (name_is(property, STR_METHODS[i].name))
                    return bind(R, object, STR_METHODS[i].m);
        return v_undef();
    }
    if (property.kind != V_STR)
        ct_rt_fail(R, at, "cannot index %s with %s", ct_v_kind_name(object),
                   ct_v_kind_name(property));
    return v_undef();
}

/* ---- string methods ---- */

static int starts_or_ends(Render *R, const Node *at, Value s, Value *args, uint32_t nargs,
                          int ends) {
    const char *what = ends ? "endswith" : "startswith";
    if (nargs == 0) ct_rt_fail(R, at, "%s() needs an argument", what);
    Value p = args[0];
    if (p.kind == V_STR) {
        if (p.len > s.len) return 0;
        return memcmp(s.u.s + (ends ? s.len - p.len : 0), p.u.s, p.len) == 0;
    }
    if (p.kind != V_ARRAY) ct_rt_fail(R, at, "%s() takes a string or a tuple of strings", what);
    for (uint32_t i = 0; i < p.u.arr->len; i++) {
        Value q = p.u.arr->items[i];
        if (q.kind != V_STR) ct_rt_fail(R, at, "%s() takes a string or a tuple of strings", what);
        if (q.len <= s.len && memcmp(s.u.s + (ends ? s.len - q.len : 0), q.u.s, q.len) == 0)
            return 1;
    }
    return 0;
}

typedef struct Pieces {
    Value *v;
    size_t n, cap;
} Pieces;

static void piece(Render *R, Pieces *p, Value v) {
    if (p->n == p->cap) {
        size_t cap = p->cap ? p->cap * 2 : 8;
        Value *nv = ct_arena_alloc(&R->arena, cap * sizeof *nv);
        if (p->n) memcpy(nv, p->v, p->n * sizeof *nv);
        p->v = nv;
        p->cap = cap;
    }
    p->v[p->n++] = v;
}

static Value pieces_array(Render *R, Pieces *p) {
    Value a = ct_v_array(R, p->n);
    if (p->n) memcpy(a.u.arr->items, p->v, p->n * sizeof(Value));
    return a;
}

/* Python's str.split as the reference implements it. */
static Value str_split(Render *R, const Node *at, Value s, Value *args, uint32_t nargs) {
    ct_rt_step(R, at, s.len >> 6);
    Value sep = nargs > 0 ? args[0] : v_null();
    if (sep.kind != V_STR && sep.kind != V_NULL)
        ct_rt_fail(R, at, "split() separator must be a string or none, not %s",
                   ct_v_kind_name(sep));
    Value maxv = nargs > 1 ? args[1] : v_int(-1);
    if (maxv.kind != V_INT) ct_rt_fail(R, at, "split() maxsplit must be an integer");
    double max = maxv.u.num;
    Pieces p = {0};
    if (sep.kind == V_NULL) {
        Value text = ct_str_trim(s, 1, 0);
        size_t i = 0;
        while (i < text.len) {
            size_t ws = ct_js_ws_prefix(text.u.s + i, text.len - i);
            i += ws;
            if (i >= text.len) break;
            size_t j = i;
            while (j < text.len) {
                uint32_t cp;
                size_t k = ct_u8_decode(text.u.s + j, text.len - j, &cp);
                if (ct_js_is_space(cp)) break;
                j += k;
            }
            if (max != -1 && (double)p.n >= max) {
                piece(R, &p, v_str(text.u.s + i, text.len - i));
                break;
            }
            piece(R, &p, v_str(text.u.s + i, j - i));
            ct_rt_step(R, at, 1);
            i = j;
        }
        return pieces_array(R, &p);
    }
    if (sep.len == 0) ct_rt_fail(R, at, "split() separator is empty");
    size_t i = 0;
    for (;;) {
        const char *hit =
            s.len - i >= sep.len ? memmem(s.u.s + i, s.len - i, sep.u.s, sep.len) : NULL;
        if (!hit) break;
        piece(R, &p, v_str(s.u.s + i, (size_t)(hit - s.u.s) - i));
        ct_rt_step(R, at, 1);
        i = (size_t)(hit - s.u.s) + sep.len;
    }
    piece(R, &p, v_str(s.u.s + i, s.len - i));
    if (max != -1 && (double)p.n > max) { /* result.push(result.splice(max).join(sep)) */
        double k = max < 0 ? fmax((double)p.n + max, 0) : max;
        size_t keep = (size_t)k;
        /* the pieces are consecutive ranges of s: the joined tail is one range */
        const char *from = p.v[keep].u.s;
        const char *to = p.v[p.n - 1].u.s + p.v[p.n - 1].len;
        p.n = keep;
        piece(R, &p, v_str(from, (size_t)(to - from)));
    }
    return pieces_array(R, &p);
}

static Value call_str_method(Render *R, const Node *at, Method m, Value s, Value *args,
                             uint32_t nargs) {
    switch (m) {
    case M_UPPER:
        return ct_str_upper(R, s);
    case M_LOWER:
        return ct_str_lower(R, s);
    case M_STRIP:
        return ct_str_trim(s, 1, 1);
    case M_LSTRIP:
        return ct_str_trim(s, 1, 0);
    case M_RSTRIP:
        return ct_str_trim(s, 0, 1);
    case M_TITLE:
        return ct_str_title(R, s);
    case M_CAPITALIZE:
        return ct_str_capitalize(R, s);
    case M_STARTSWITH:
        return v_bool(starts_or_ends(R, at, s, args, nargs, 0));
    case M_ENDSWITH:
        return v_bool(starts_or_ends(R, at, s, args, nargs, 1));
    case M_SPLIT:
        return str_split(R, at, s, args, nargs);
    case M_REPLACE: {
        if (nargs < 2) ct_rt_fail(R, at, "replace() needs two arguments");
        if (args[0].kind != V_STR || args[1].kind != V_STR)
            ct_rt_fail(R, at, "replace() arguments must be strings");
        Value count = v_null();
        if (nargs > 2) {
            count = args[2];
            if (ct_v_is_kwargs(count)) {
                const OEntry *e = ct_obj_find(count.u.obj, "count", 5);
                count = e ? e->v : v_null();
            }
        }
        if (count.kind != V_INT && count.kind != V_NULL)
            ct_rt_fail(R, at, "replace() count must be an integer or none");
        return ct_str_replace(R, at, s, args[0], args[1], count.kind == V_NULL ? -1 : count.u.num);
    }
    default:
        ct_rt_fail(R, at, "not a string method");
    }
}

/* ---- dict methods ---- */

static Value dict_items(Render *R, const VObject *o) {
    Value a = ct_v_array(R, o->len);
    for (uint32_t i = 0; i < o->len; i++) {
        Value pair = ct_v_array(R, 2);
        pair.u.arr->items[0] = v_str(o->e[i].key, o->e[i].klen);
        pair.u.arr->items[1] = o->e[i].v;
        a.u.arr->items[i] = pair;
    }
    return a;
}

/* Stable merge sort (Array.prototype.sort is stable); cmp may fail and jump out. */
static void merge_sort(Render *R, const Node *at, Value *v, Value *tmp, size_t n, SortCmp cmp,
                       const void *ctx) {
    if (n < 2) return;
    size_t h = n / 2;
    merge_sort(R, at, v, tmp, h, cmp, ctx);
    merge_sort(R, at, v + h, tmp, n - h, cmp, ctx);
    size_t i = 0, j = h, k = 0;
    while (i < h && j < n) tmp[k++] = cmp(R, at, ctx, v[j], v[i]) < 0 ? v[j++] : v[i++];
    while (i < h) tmp[k++] = v[i++];
    while (j < n) tmp[k++] = v[j++];
    memcpy(v, tmp, n * sizeof *v);
    ct_rt_step(R, at, n);
}

void ct_sort_values(Render *R, const Node *at, Value *v, size_t n, SortCmp cmp, const void *ctx) {
    if (n < 2) return;
    Value *tmp = ct_arena_alloc(&R->arena, n * sizeof *tmp);
    merge_sort(R, at, v, tmp, n, cmp, ctx);
}

typedef struct PairOrder {
    int index, case_sensitive, reverse;
} PairOrder;

static int pair_cmp(Render *R, const Node *at, const void *ctx, Value a, Value b) {
    const PairOrder *c = ctx;
    int r =
        ct_v_compare(R, at, a.u.arr->items[c->index], b.u.arr->items[c->index], c->case_sensitive);
    return c->reverse ? -r : r;
}

static Value dict_sort(Render *R, const Node *at, const VObject *o, Value *args, uint32_t nargs) {
    Args a = {args, nargs, NULL};
    VObject empty = {0};
    a.kw = &empty;
    if (nargs && ct_v_is_kwargs(args[nargs - 1])) {
        a.kw = args[nargs - 1].u.obj;
        a.npos--;
    }
    const Value *cs = ct_args_get(&a, 0, "case_sensitive"), *by = ct_args_get(&a, 1, "by"),
                *rev = ct_args_get(&a, 2, "reverse");
    if (cs && cs->kind != V_BOOL) ct_rt_fail(R, at, "dictsort case_sensitive must be a boolean");
    if (by && (by->kind != V_STR || !(name_is(*by, "key") || name_is(*by, "value"))))
        ct_rt_fail(R, at, "dictsort by must be 'key' or 'value'");
    if (rev && rev->kind != V_BOOL) ct_rt_fail(R, at, "dictsort reverse must be a boolean");
    Value items = dict_items(R, o);
    PairOrder c = {by && name_is(*by, "value"), cs && cs->b, rev && rev->b};
    ct_sort_values(R, at, items.u.arr->items, items.u.arr->len, pair_cmp, &c);
    return items;
}

static Value call_dict_method(Render *R, const Node *at, Method m, Value self, Value *args,
                              uint32_t nargs) {
    const VObject *o = self.u.obj;
    switch (m) {
    case M_GET: {
        if (nargs == 0 || args[0].kind != V_STR)
            ct_rt_fail(R, at, "get() key must be a string, not %s",
                       nargs ? ct_v_kind_name(args[0]) : "missing");
        const OEntry *e = ct_obj_find(o, args[0].u.s, args[0].len);
        if (e) return e->v;
        return nargs > 1 ? args[1] : v_null();
    }
    case M_ITEMS:
        return dict_items(R, o);
    case M_KEYS: {
        Value a = ct_v_array(R, o->len);
        for (uint32_t i = 0; i < o->len; i++) a.u.arr->items[i] = v_str(o->e[i].key, o->e[i].klen);
        return a;
    }
    case M_VALUES: {
        Value a = ct_v_array(R, o->len);
        for (uint32_t i = 0; i < o->len; i++) a.u.arr->items[i] = o->e[i].v;
        return a;
    }
    case M_DICTSORT:
        return dict_sort(R, at, o, args, nargs);
    default:
        ct_rt_fail(R, at, "not a dict method");
    }
}

static Value call_method(Render *R, const Node *at, VFunc *f, Value *args, uint32_t nargs) {
    if (f->self.kind == V_STR)
        return call_str_method(R, at, (Method)f->method, f->self, args, nargs);
    return call_dict_method(R, at, (Method)f->method, f->self, args, nargs);
}

/* ---- global functions ---- */

static int two_chars(Value s) {
    size_t n = 0;
    for (size_t i = 0; i < s.len; n++) {
        uint32_t cp;
        i += ct_u8_decode(s.u.s + i, s.len - i, &cp);
    }
    return n == 2;
}

static Value fn_namespace(Render *R, const Node *at, Value *args, uint32_t nargs) {
    VObject *kw = NULL;
    if (nargs && ct_v_is_kwargs(args[nargs - 1])) kw = args[--nargs].u.obj;
    if (nargs > 1)
        ct_rt_fail(R, at, "namespace() takes at most 1 positional argument, got %u", nargs);
    Value ns = ct_v_namespace(R, 8);
    if (nargs == 1) {
        Value src = args[0];
        if (src.kind == V_OBJECT) {
            for (uint32_t i = 0; i < src.u.obj->len; i++)
                ct_obj_set(R, ns.u.obj, src.u.obj->e[i].key, src.u.obj->e[i].klen,
                           src.u.obj->e[i].v);
        } else if (src.kind == V_ARRAY) {
            for (uint32_t i = 0; i < src.u.arr->len; i++) {
                Value pair = src.u.arr->items[i];
                Value k, v;
                if (pair.kind == V_ARRAY && pair.u.arr->len == 2) {
                    k = pair.u.arr->items[0];
                    v = pair.u.arr->items[1];
                } else if (pair.kind == V_STR && two_chars(pair)) { /* "ab": key "a", value "b" */
                    uint32_t cp;
                    size_t k1 = ct_u8_decode(pair.u.s, pair.len, &cp);
                    k = v_str(pair.u.s, k1);
                    v = v_str(pair.u.s + k1, pair.len - k1);
                } else {
                    ct_rt_fail(R, at, "namespace() expects a dict or a list of [key, value] pairs");
                }
                if (k.kind != V_STR) ct_rt_fail(R, at, "namespace() keys must be strings");
                ct_obj_set(R, ns.u.obj, k.u.s, k.len, v);
            }
        } else {
            ct_rt_fail(R, at, "namespace() cannot take a %s", ct_v_kind_name(src));
        }
    }
    if (kw)
        for (uint32_t i = 0; i < kw->len; i++)
            ct_obj_set(R, ns.u.obj, kw->e[i].key, kw->e[i].klen, kw->e[i].v);
    return ns;
}

static Value fn_range(Render *R, const Node *at, Value *args, uint32_t nargs) {
    if (nargs < 1 || nargs > 3)
        ct_rt_fail(R, at, "range() takes 1 to 3 numbers, got %u arguments", nargs);
    for (uint32_t i = 0; i < nargs; i++)
        if (!v_is_num(args[i]))
            ct_rt_fail(R, at, "range() takes numbers, not %s", ct_v_kind_name(args[i]));
    double start = nargs == 1 ? 0 : args[0].u.num,
           stop = nargs == 1 ? args[0].u.num : args[1].u.num;
    double step = nargs == 3 ? args[2].u.num : 1;
    if (step == 0) ct_rt_fail(R, at, "range() step must not be zero");
    double count = 0;
    if (step > 0 && stop > start) count = ceil((stop - start) / step);
    if (step < 0 && stop < start) count = ceil((start - stop) / -step);
    if (!(count < (double)(R->arena.limit / sizeof(Value))))
        ct_rt_fail(R, at, "range() of %.0f numbers is too long", count);
    Pieces p = {0};
    for (double i = start; step > 0 ? i < stop : i > stop; i += step) {
        piece(R, &p, i == floor(i) ? v_int(i) : v_float(i));
        ct_rt_step(R, at, 1);
    }
    return pieces_array(R, &p);
}

/* The reference's minimal strftime: %Y %m %d %b %B %H %M %%; others stay as written. */
static Value fn_strftime_now(Render *R, const Node *at, Value *args, uint32_t nargs) {
    if (nargs < 1 || args[0].kind != V_STR)
        ct_rt_fail(R, at, "strftime_now() takes a format string");
    static const char *const months[] = {"January",   "February", "March",    "April",
                                         "May",       "June",     "July",     "August",
                                         "September", "October",  "November", "December"};
    time_t now = time(NULL);
    struct tm tm;
    localtime_r(&now, &tm);
    StrBuf b = ct_v_builder(R);
    Value f = args[0];
    for (size_t i = 0; i < f.len; i++) {
        if (f.u.s[i] != '%' || i + 1 >= f.len || !strchr("YmdbBHM%", f.u.s[i + 1]) ||
            !f.u.s[i + 1]) {
            ct_sb_addc(&b, f.u.s[i]);
            continue;
        }
        switch (f.u.s[++i]) {
        case 'Y':
            ct_sb_addf(&b, "%d", tm.tm_year + 1900);
            break;
        case 'm':
            ct_sb_addf(&b, "%02d", tm.tm_mon + 1);
            break;
        case 'd':
            ct_sb_addf(&b, "%02d", tm.tm_mday);
            break;
        case 'b':
            ct_sb_add(&b, months[tm.tm_mon], 3);
            break;
        case 'B':
            ct_sb_add(&b, months[tm.tm_mon], strlen(months[tm.tm_mon]));
            break;
        case 'H':
            ct_sb_addf(&b, "%02d", tm.tm_hour);
            break;
        case 'M':
            ct_sb_addf(&b, "%02d", tm.tm_min);
            break;
        default:
            ct_sb_addc(&b, '%');
        }
    }
    return ct_v_strbuf(R, &b);
}

Value ct_call_function(Render *R, const Node *at, Value fn, Value *args, uint32_t nargs, Env *env) {
    VFunc *f = fn.u.fn;
    switch (f->kind) {
    case F_NAMESPACE:
        return fn_namespace(R, at, args, nargs);
    case F_RANGE:
        return fn_range(R, at, args, nargs);
    case F_STRFTIME_NOW:
        return fn_strftime_now(R, at, args, nargs);
    case F_RAISE_EXCEPTION: {
        StrBuf b = ct_v_builder(R);
        if (nargs && args[0].kind != V_UNDEF) ct_v_to_js_string(R, at, args[0], &b);
        ct_rt_fail(R, at, "raise_exception: %.*s", (int)(b.len > 600 ? 600 : b.len),
                   b.len ? b.p : "");
    }
    case F_METHOD:
        return call_method(R, at, f, args, nargs);
    default:
        return ct_invoke_macro(R, at, f, args, nargs, env);
    }
}
